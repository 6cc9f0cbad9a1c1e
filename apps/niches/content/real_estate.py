"""Real estate agents and teams: buyer and seller leads, property viewings.

The sale: learn buy/sell, timeline and financing, then book a viewing or an agent call. The
line never crossed: the Fair Housing Act. Describe properties, never people; no steering
and no discriminatory phrasing.
"""

NICHE = {
    "slug": "real_estate",
    "name": "Real estate",
    "description": (
        "Agents and teams: buyer and seller leads, property viewings, fair-housing compliant "
        "conversations."
    ),
    "qualify_threshold": 60,
    "disqualify_threshold": -20,
}

AGENT_PACK = {
    "key": "showing-assistant",
    "name": "Showing assistant",
    "agent_name": "Alex",
    "tone": "Friendly, professional and concise",
    "persona": (
        "Alex is the showing assistant of a real estate team. Friendly, professional and "
        "quick, Alex finds out whether a person is buying or selling, their timeline and how "
        "they plan to finance, and books a property viewing or a call with an agent. Alex "
        "follows fair-housing rules to the letter: talks about homes, never about who lives "
        "in a neighbourhood or who a home would suit."
    ),
}

PROMPTS = [
    {
        "key": "system",
        "purpose": "system",
        "variables": ["agent_name", "business_name"],
        "template": (
            "You are {agent_name}, the assistant of {business_name}, a real estate team. You "
            "text with buyers and sellers who enquired about a property or about selling "
            "their home.\n"
            "\n"
            "Your goals: find out whether they are buying, selling or both, their timeline, "
            "and whether they are pre-approved for a mortgage or paying cash; then book a "
            "property viewing or a call with an agent using only the times you are given.\n"
            "\n"
            "Style: friendly, professional and concise; one question at a time; no emojis.\n"
            "\n"
            "Fair housing, always: describe properties, never people. Never mention, ask "
            "about or steer anyone by race, colour, religion, national origin, sex, sexual "
            "orientation, gender identity, disability, familial status (children), age, "
            "source of income or any other protected characteristic. Never describe a "
            "neighbourhood as safe, good, family-friendly or exclusive, or by who lives there. "
            "If asked about schools, crime or the people in an area, say they can check "
            "official sources such as the school district's website, local police crime maps "
            "or census data, and offer to connect them with an agent for everything about the "
            "home itself. Do not give legal, tax or mortgage advice, and never guarantee a "
            "sale price, an appraisal or that an offer will be accepted. If asked whether you "
            "are a person, say you are the virtual assistant of {business_name}."
        ),
    },
    {
        "key": "greeting",
        "purpose": "greeting",
        "variables": ["first_name", "agent_name", "business_name"],
        "template": (
            "Hi {first_name}, it's {agent_name} with {business_name}. Thanks for reaching out! "
            "Are you looking to buy, sell, or both?"
        ),
    },
    {
        "key": "qualify-timeline",
        "purpose": "qualify",
        "variables": ["first_name"],
        "template": (
            "Got it, thanks. What's your timeline, {first_name}: hoping to move in the next "
            "three months, sometime this year, or just starting to look?"
        ),
    },
    {
        "key": "booking-offer",
        "purpose": "booking",
        "variables": ["slots", "appointment_type"],
        "template": (
            "Happy to set that up. I have {slots} for your {appointment_type} with one of our "
            "agents. Which works best for you?"
        ),
    },
    {
        "key": "no-show",
        "purpose": "no_show",
        "variables": ["first_name", "appointment_type", "slots"],
        "template": (
            "Hi {first_name}, sorry we missed each other for the {appointment_type}. Happy to "
            "set up another time: I have {slots}. Would one of those work?"
        ),
    },
    {
        "key": "onboarding",
        "purpose": "onboarding",
        "variables": ["first_name", "business_name"],
        "template": (
            "Congratulations, {first_name}, and thank you for choosing {business_name}! Your "
            "agent will be in touch within one business day with the next steps and key dates. "
            "If anything comes up in the meantime, just reply here."
        ),
    },
]

OBJECTIONS = [
    {
        "key": "has-an-agent",
        "name": "Already working with an agent",
        "trigger_phrases": [
            "already have an agent",
            "working with an agent",
            "have a realtor",
            "my realtor",
            "signed with",
        ],
        "response_template": (
            "Thanks for letting me know, {first_name}. If you've signed an agreement with "
            "another agent, they're the right person to help you. If you haven't committed "
            "to anyone yet, we'd be glad to show you how we work, with no obligation."
        ),
    },
    {
        "key": "just-looking",
        "name": "Just looking / not ready",
        "trigger_phrases": [
            "just looking",
            "just browsing",
            "not ready",
            "no rush",
            "down the road",
        ],
        "response_template": (
            "No pressure at all, plenty of people start exactly there. Would it help if I sent "
            "you new listings that match what you're after, so you can get a feel for the "
            "market at your own pace?"
        ),
    },
    {
        "key": "waiting-for-market",
        "name": "Waiting for rates or prices to drop",
        "trigger_phrases": [
            "interest rates",
            "rates are too high",
            "wait for rates",
            "prices will drop",
            "wait for the market",
            "market crash",
        ],
        "response_template": (
            "That's a fair thing to weigh, and nobody can predict exactly where rates or "
            "prices are going. Many of our clients find it useful to talk to a lender now so "
            "they know their options either way. Would you like a quick call with one of our "
            "agents to go over your plans?"
        ),
    },
]

QUALIFICATION_RULES = [
    {
        "key": "timeline-3-months",
        "name": "Moving within three months",
        "kind": "answer",
        "question": "When are you hoping to move?",
        "answer_field": "timeline",
        "condition": {"in": ["asap", "this month", "next month", "0-3 months"]},
        "points": 40,
    },
    {
        "key": "financing-ready",
        "name": "Pre-approved or paying cash",
        "kind": "answer",
        "question": "Are you pre-approved for a mortgage, or paying cash?",
        "answer_field": "financing",
        "condition": {"in": ["pre-approved", "cash"]},
        "points": 30,
    },
    {
        "key": "just-browsing",
        "name": "Says they are just browsing",
        "kind": "keyword",
        "condition": {"keywords": ["just looking", "just browsing", "not ready", "no rush"]},
        "points": -15,
    },
]

COMPLIANCE_RULES = [
    {
        "key": "real-estate-no-steering",
        "name": "Fair housing: no steering",
        "description": (
            "Fair Housing Act (42 U.S.C. 3604) and HUD guidance: describing a neighbourhood by "
            "its people, or saying an area or home suits a kind of buyer, is steering. "
            "Describe the property and its features; point people to official sources for "
            "schools and crime statistics."
        ),
        "kind": "forbidden_phrase",
        "severity": "block",
        "pattern": (
            r"\b(safe|safer|good|nice|bad|rough|dangerous|sketchy|better|upscale|exclusive"
            r"|desirable)\s+(neighbou?rhoods?|areas?|part of town|communit(y|ies)|school district)"
            r"|\bfamily[- ]friendly\b"
            r"|\b(perfect|ideal|great)\s+for\s+(a\s+)?(famil(y|ies)|couples?|singles?"
            r"|young professionals|retirees|empty nesters|kids|children)"
            r"|\b(you|you'd|you'll|your family|your kids|people like you)\s+((would|will|might)\s+)?"
            r"(fit in|feel (more )?at home)"
            r"|\b(mostly|predominantly|lots of|full of)\s+((young|older|elderly)\s+(people|couples"
            r"|professionals|families)|white|black|hispanic|latino|asian|christian|jewish|muslim"
            r"|immigrants?|families|retirees|couples|students)\b"
        ),
    },
    {
        "key": "real-estate-no-discriminatory-language",
        "name": "Fair housing: no discriminatory phrasing",
        "description": (
            "Fair Housing Act (42 U.S.C. 3604(c)) forbids statements that indicate a "
            "preference or limitation based on a protected class: race, colour, religion, "
            "national origin, sex, disability or familial status (and, in many states, "
            "source of income, age, sexual orientation and gender identity)."
        ),
        "kind": "forbidden_phrase",
        "severity": "block",
        "pattern": (
            r"\bno\s+(kids|children|families|section\s*8|vouchers?|disabled|wheelchairs?"
            r"|immigrants?)\b"
            r"|\badults?\s+only\b"
            r"|\b(christian|jewish|muslim|catholic|hindu)\s+(home|community|neighbou?rhood|buyers?)"
            r"|\b(white|black|hispanic|latino|asian)\s+(neighbou?rhood|area|community|buyers?)"
            r"|\benglish[- ]speaking\s+only\b"
            r"|\b(ideal|perfect)\s+for\s+(a\s+)?(single|married)\s+(person|man|woman|couple)"
            r"|\bnot\s+suitable\s+for\s+(handicapped|disabled|the disabled|wheelchair users|children)"
        ),
    },
]

WORKFLOWS = [
    {
        "key": "buyer-seller-lead",
        "name": "New lead → qualify → viewing or agent call",
        "description": (
            "Greet the lead within minutes (speed wins in real estate), learn buy/sell, "
            "timeline and financing, then book a property viewing or a call with an agent. "
            "Leads who go quiet get a template follow-up and a task for the listing agent."
        ),
        "trigger": "lead.created",
        "n8n_workflow": "lead-qualify-book",
        "steps": [
            {"action": "send_prompt", "prompt": "greeting"},
            {"action": "wait_for_reply", "timeout": "PT4H"},
            {"action": "send_template", "template_purpose": "follow_up", "when": "no_reply"},
            {
                "action": "ask_qualification",
                "prompt": "qualify-timeline",
                "rules": ["timeline-3-months", "financing-ready"],
                "when": "replied",
            },
            {"action": "score_lead"},
            {
                "action": "offer_slots",
                "prompt": "booking-offer",
                "appointment_type": "Property viewing",
                "when": "qualified",
            },
            {"action": "book_slot"},
            {
                "action": "create_task",
                "title": "Agent call: qualified lead without a viewing",
                "delay": "P1D",
                "when": "not_booked",
                "due": "PT4H",
            },
        ],
    },
    {
        "key": "ai-reply",
        "name": "Inbound message → AI reply",
        "description": (
            "Every message is answered by the agent through the decision API; offers, "
            "contracts, pricing opinions and anything legal go to the agent."
        ),
        "trigger": "message.received",
        "n8n_workflow": "message-received-ai-reply",
        "steps": [
            {"action": "decide"},
            {"action": "hand_off", "when": "escalated"},
        ],
    },
    {
        "key": "viewing-no-show",
        "name": "Missed viewing → reschedule",
        "description": (
            "Shortly after a missed viewing, an easy-going message with new times; a template "
            "follow-up the next day and a task for the agent if there is no answer."
        ),
        "trigger": "booking.no_show",
        "n8n_workflow": "no-show-follow-up",
        "steps": [
            {"action": "send_prompt", "prompt": "no-show", "delay": "PT30M"},
            {"action": "wait_for_reply", "timeout": "P1D"},
            {"action": "send_template", "template_purpose": "no_show", "when": "no_reply"},
            {
                "action": "create_task",
                "title": "Call to reschedule the missed viewing",
                "delay": "P1D",
                "when": "not_booked",
                "due": "P1D",
            },
        ],
    },
    {
        "key": "client-onboarding",
        "name": "Signed client → onboarding",
        "description": (
            "When a buyer or listing agreement is won: congratulations message, client tag, "
            "and the agent's tasks to send the timeline and introduce the transaction "
            "coordinator."
        ),
        "trigger": "deal.won",
        "n8n_workflow": "deal-won-onboarding",
        "steps": [
            {"action": "send_prompt", "prompt": "onboarding"},
            {"action": "tag_contact", "tag": "client"},
            {
                "action": "create_task",
                "title": "Send the client the timeline and key dates",
                "due": "P1D",
            },
            {
                "action": "create_task",
                "title": "Introduce the transaction coordinator",
                "due": "P2D",
            },
        ],
    },
]
