"""Consultants, coaches and agencies: discovery calls, proposals and retainers.

The sale: understand the challenge, budget and decision-makers, then book a discovery call.
The line never crossed: promised outcomes (income, ROI, revenue multiples).
"""

NICHE = {
    "slug": "consultant",
    "name": "Consultant",
    "description": (
        "Coaches, agencies and independent consultants: discovery calls, proposals and retainers."
    ),
    "qualify_threshold": 60,
    "disqualify_threshold": -20,
}

AGENT_PACK = {
    "key": "client-coordinator",
    "name": "Client coordinator",
    "agent_name": "Sam",
    "tone": "Consultative, concise and respectful of people's time",
    "persona": (
        "Sam coordinates new clients for a consulting practice. Sharp and courteous, Sam asks "
        "what the person is trying to solve, whether there is a budget and who decides, and "
        "books a discovery call when there is a fit. Sam never promises outcomes and never "
        "gives legal, tax or investment advice."
    ),
}

PROMPTS = [
    {
        "key": "system",
        "purpose": "system",
        "variables": ["agent_name", "business_name"],
        "template": (
            "You are {agent_name}, the client coordinator of {business_name}, a consulting "
            "practice. You talk with business owners and professionals who enquired about "
            "working together.\n"
            "\n"
            "Your goals: understand the challenge they want help with, their budget range and "
            "who else is involved in the decision, then book a discovery call using only the "
            "times you are given. If they are clearly not a fit, say so kindly.\n"
            "\n"
            "Style: concise, consultative and respectful of their time; no jargon; one "
            "question at a time; no emojis.\n"
            "\n"
            "Rules: do not give specific legal, tax, accounting or investment advice, and "
            "never promise outcomes such as guaranteed revenue, return on investment, rankings "
            "or doubling their income; say the consultant will look at what's realistic on "
            "the call. Do not quote fees unless they are given to you. If asked whether you "
            "are a person, say you are the virtual assistant of {business_name}."
        ),
    },
    {
        "key": "greeting",
        "purpose": "greeting",
        "variables": ["first_name", "agent_name", "business_name"],
        "template": (
            "Hi {first_name}, this is {agent_name} from {business_name}. Thanks for getting in "
            "touch! What's the main challenge you'd like help with right now?"
        ),
    },
    {
        "key": "qualify-budget",
        "purpose": "qualify",
        "variables": ["first_name"],
        "template": (
            "That's helpful, thank you. So I can point you to the right option, {first_name}: "
            "do you have a rough budget range in mind for solving this?"
        ),
    },
    {
        "key": "booking-offer",
        "purpose": "booking",
        "variables": ["appointment_type", "slots"],
        "template": (
            "The best next step is a short {appointment_type} to see whether we're a good "
            "fit, with no obligation. I have {slots}. Which works for you?"
        ),
    },
    {
        "key": "reminder",
        "purpose": "reminder",
        "variables": [
            "first_name",
            "appointment_type",
            "business_name",
            "booking_date",
            "booking_time",
        ],
        "template": (
            "Hi {first_name}, a quick reminder of your {appointment_type} with {business_name} "
            "on {booking_date} at {booking_time}. To make the most of it, jot down your main "
            "goal and any numbers you'd like to discuss. If the time no longer works, reply "
            "here and I'll move it."
        ),
    },
    {
        "key": "onboarding",
        "purpose": "onboarding",
        "variables": ["first_name", "business_name"],
        "template": (
            "Welcome aboard, {first_name}! We're excited to work with you. You'll shortly get "
            "an email from {business_name} with your welcome pack, a short intake "
            "questionnaire and a link to book your kickoff session. Reply here if anything is "
            "unclear."
        ),
    },
]

OBJECTIONS = [
    {
        "key": "budget",
        "name": "No budget / too expensive",
        "trigger_phrases": [
            "too expensive",
            "no budget",
            "can't afford",
            "out of budget",
            "costs too much",
            "your rates",
        ],
        "response_template": (
            "Understood, {first_name}, and it's better to say so early. On a discovery call "
            "we'd look at what this problem is costing you today and whether there's a scope "
            "that fits your budget; if we're not the right fit, we'll tell you. Would that be "
            "worth a short call?"
        ),
    },
    {
        "key": "check-with-team",
        "name": "Needs to check with a partner or team",
        "trigger_phrases": [
            "check with my partner",
            "talk to my team",
            "ask my boss",
            "run it by",
            "not my decision",
            "co-founder",
        ],
        "response_template": (
            "Makes sense. Would it help to invite them to the discovery call? That way "
            "everyone hears the same thing and can ask their own questions. I can find a time "
            "that suits you both."
        ),
    },
    {
        "key": "tried-before",
        "name": "Bad experience with consultants",
        "trigger_phrases": [
            "tried consultants",
            "didn't work before",
            "waste of money",
            "bad experience",
            "been burned",
            "tried a coach",
        ],
        "response_template": (
            "I'm sorry that happened; it's a story we hear often. That's why we start with a "
            "conversation: we want to understand what didn't work last time and be upfront "
            "about whether we can do better. Would you be open to a discovery call?"
        ),
    },
]

QUALIFICATION_RULES = [
    {
        "key": "budget-fit",
        "name": "Budget of $5k or more",
        "kind": "answer",
        "question": "Do you have a rough budget range in mind: under $2k, $2k-5k, $5k-15k, or "
        "$15k+?",
        "answer_field": "budget",
        "condition": {"in": ["$5k-15k", "$15k+"]},
        "points": 40,
    },
    {
        "key": "decision-maker",
        "name": "Talking to the decision-maker",
        "kind": "answer",
        "question": "Are you the one who makes the final decision, or is someone else involved?",
        "answer_field": "decision_maker",
        "condition": {"in": ["yes", "shared"]},
        "points": 25,
    },
]

COMPLIANCE_RULES = [
    {
        "key": "consultant-no-guaranteed-outcomes",
        "name": "No guaranteed income, ROI or revenue claims",
        "description": (
            "FTC rules on earnings claims (16 CFR 437, business-opportunity guidance): "
            "outcomes depend on the client, so replies never promise income, ROI, revenue "
            "multiples or rankings."
        ),
        "kind": "forbidden_phrase",
        "severity": "block",
        "pattern": (
            r"\b(we|i)\s+(guarantee|promise)\b"
            r"|\bguaranteed\s+(roi|returns?|results?|revenue|income|growth|leads|rankings?|clients)"
            r"|\b(double|triple|10x|2x|3x)\s+your\s+(revenue|income|sales|profits?|business|leads)"
            r"|\b(risk[- ]free|get rich|passive income|six[- ]figures?|seven[- ]figures?)\b"
            r"|\b(make|earn)\s+(you\s+)?\$\s?\d"
        ),
    },
]

WORKFLOWS = [
    {
        "key": "discovery-call-lead",
        "name": "New lead → discovery call",
        "description": (
            "Greet the lead, learn the challenge, budget and decision-maker, and book a "
            "discovery call when the lead qualifies. Quiet leads get a template follow-up and "
            "a task for the consultant."
        ),
        "trigger": "lead.created",
        "n8n_workflow": "lead-qualify-book",
        "steps": [
            {"action": "send_prompt", "prompt": "greeting"},
            {"action": "wait_for_reply", "timeout": "P1D"},
            {"action": "send_template", "template_purpose": "follow_up", "when": "no_reply"},
            {
                "action": "ask_qualification",
                "prompt": "qualify-budget",
                "rules": ["budget-fit", "decision-maker"],
                "when": "replied",
            },
            {"action": "score_lead"},
            {
                "action": "offer_slots",
                "prompt": "booking-offer",
                "appointment_type": "Discovery call",
                "when": "qualified",
            },
            {"action": "book_slot"},
            {
                "action": "create_task",
                "title": "Personal follow-up: qualified lead without a discovery call",
                "delay": "P2D",
                "when": "not_booked",
                "due": "P1D",
            },
        ],
    },
    {
        "key": "ai-reply",
        "name": "Inbound message → AI reply",
        "description": (
            "Every message is answered by the agent through the decision API; proposals, "
            "contracts and fee negotiations go to the consultant."
        ),
        "trigger": "message.received",
        "n8n_workflow": "message-received-ai-reply",
        "steps": [
            {"action": "decide"},
            {"action": "hand_off", "when": "escalated"},
        ],
    },
    {
        "key": "client-onboarding",
        "name": "Signed client → onboarding",
        "description": (
            "When the engagement is won: welcome message, client tag, and tasks to send the "
            "welcome pack and schedule the kickoff."
        ),
        "trigger": "deal.won",
        "n8n_workflow": "deal-won-onboarding",
        "steps": [
            {"action": "send_prompt", "prompt": "onboarding"},
            {"action": "tag_contact", "tag": "client"},
            {
                "action": "create_task",
                "title": "Send the welcome pack and intake questionnaire",
                "due": "PT4H",
            },
            {
                "action": "create_task",
                "title": "Schedule the kickoff session",
                "due": "P3D",
            },
        ],
    },
]
