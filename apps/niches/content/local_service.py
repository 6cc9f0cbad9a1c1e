"""Local services: plumbers, electricians, cleaners, HVAC, handymen and other trades.

The sale: learn the job and its urgency, then book an on-site visit or quote. The line
never crossed: a firm price over text, and DIY instructions for dangerous work.
"""

NICHE = {
    "slug": "local_service",
    "name": "Local service",
    "description": (
        "Plumbers, cleaners, electricians and other trades: quotes, on-site visits and repeat work."
    ),
    "qualify_threshold": 60,
    "disqualify_threshold": -20,
}

AGENT_PACK = {
    "key": "booking-desk",
    "name": "Booking desk",
    "agent_name": "Chris",
    "tone": "Friendly, practical and straight to the point",
    "persona": (
        "Chris runs the booking desk of a local home-services business. Practical and "
        "friendly, Chris finds out what the job is, where it is and how urgent it is, and "
        "books a visit or a quote. Chris never gives a firm price over text and never talks "
        "anyone through dangerous repairs."
    ),
}

ESTIMATE_DISCLAIMER = (
    "This is an estimate; the final price is confirmed once a technician has seen the job."
)

PROMPTS = [
    {
        "key": "system",
        "purpose": "system",
        "variables": ["agent_name", "business_name"],
        "template": (
            "You are {agent_name}, the booking assistant of {business_name}, a local "
            "home-services business. You text with customers who need a job done: repairs, "
            "installations, cleaning or maintenance.\n"
            "\n"
            "Your goals: find out what the job is, the address or area, and how urgent it is; "
            "then book an on-site visit or quote using only the times you are given. Photos "
            "of the problem help the team, so ask for them when useful.\n"
            "\n"
            "Style: friendly, practical and brief; one question at a time; no emojis.\n"
            "\n"
            "Rules: never give a firm price over text. Any figure is an estimate until a "
            "technician has seen the job, and only quote figures you have been given. Do not "
            "give instructions for electrical, gas or structural work. For a gas smell, "
            "sparking, flooding or any other danger, tell them to get to safety and call "
            "emergency services or their utility first. Never promise an arrival time you "
            "have not been given. If asked whether you are a person, say you are the virtual "
            "assistant of {business_name}."
        ),
    },
    {
        "key": "greeting",
        "purpose": "greeting",
        "variables": ["first_name", "agent_name", "business_name"],
        "template": (
            "Hi {first_name}, it's {agent_name} at {business_name}. Thanks for getting in "
            "touch! What do you need a hand with?"
        ),
    },
    {
        "key": "qualify-urgency",
        "purpose": "qualify",
        "variables": ["first_name"],
        "template": (
            "Got it, thanks. How soon do you need someone, {first_name}: today, this week, or "
            "is it flexible?"
        ),
    },
    {
        "key": "booking-offer",
        "purpose": "booking",
        "variables": ["slots", "appointment_type"],
        "template": (
            "We can send someone out to take a look and give you an exact quote. I have "
            "{slots} for your {appointment_type}. Which works best?"
        ),
    },
    {
        "key": "reminder",
        "purpose": "reminder",
        "variables": [
            "first_name",
            "business_name",
            "appointment_type",
            "booking_date",
            "booking_time",
        ],
        "template": (
            "Hi {first_name}, reminder: {business_name} is booked for your {appointment_type} "
            "on {booking_date}, arriving around {booking_time}. Please make sure we can reach "
            "the work area, and let us know about parking or pets. Need to change it? Just "
            "reply here."
        ),
    },
    {
        "key": "no-show",
        "purpose": "no_show",
        "variables": ["first_name", "appointment_type", "slots"],
        "template": (
            "Hi {first_name}, our technician came by for your {appointment_type} but couldn't "
            "reach anyone. No problem: would another time work? I have {slots}."
        ),
    },
]

OBJECTIONS = [
    {
        "key": "cheaper-quote",
        "name": "Found a cheaper quote",
        "trigger_phrases": [
            "cheaper",
            "better price",
            "another quote",
            "too expensive",
            "lower price",
            "beat the price",
        ],
        "response_template": (
            "Thanks for being upfront, {first_name}. It's worth comparing like for like: "
            "whether each quote includes parts, labour and cleanup, and whether the work is "
            "insured. If you'd like, we can come out, take a look and give you a firm price "
            "with no obligation."
        ),
    },
    {
        "key": "price-by-text",
        "name": "Wants a price over text",
        "trigger_phrases": [
            "just give me a price",
            "ballpark",
            "rough price",
            "rough idea",
            "quote over the phone",
            "price by text",
        ],
        "response_template": (
            "I wish I could! The price depends on what we find on site, and I'd hate to give "
            "you a number that changes later. If you send a couple of photos, the team can "
            "give you a rough range, and a quick visit gets you an exact quote. Which would "
            "you prefer?"
        ),
    },
    {
        "key": "not-urgent",
        "name": "Not urgent / might do it myself",
        "trigger_phrases": [
            "not urgent",
            "no rush",
            "diy",
            "do it myself",
            "can wait",
            "maybe later",
        ],
        "response_template": (
            "No problem at all. Some problems grow if they're left, so keep an eye on it. "
            "Should I check back with you in a couple of weeks, or would you rather book a "
            "time now while the schedule is open?"
        ),
    },
]

QUALIFICATION_RULES = [
    {
        "key": "urgent-job",
        "name": "Needs someone this week",
        "kind": "answer",
        "question": "How soon do you need someone?",
        "answer_field": "urgency",
        "condition": {"in": ["emergency", "today", "tomorrow", "this week", "asap"]},
        "points": 40,
    },
    {
        "key": "referral-or-repeat",
        "name": "Referral or repeat customer",
        "kind": "source",
        "condition": {"sources": ["referral", "repeat_customer", "google_business_profile"]},
        "points": 25,
    },
]

COMPLIANCE_RULES = [
    {
        "key": "local-service-estimate-disclaimer",
        "name": "Prices in messages are estimates",
        "description": (
            "State consumer-protection and home-improvement rules: a price given before "
            "anyone has seen the job is an estimate. Any reply with an amount of money gets "
            "the estimate disclaimer appended."
        ),
        "kind": "required_disclaimer",
        "severity": "rewrite",
        "pattern": r"(\$\s?\d|\b\d[\d,.]*\s?(dollars|usd|bucks)\b)",
        "replacement": ESTIMATE_DISCLAIMER,
    },
]

WORKFLOWS = [
    {
        "key": "quote-request-lead",
        "name": "New job request → site visit",
        "description": (
            "Answer a new job request at once (the first business to reply usually wins), "
            "learn the urgency and book a visit or quote. Urgent jobs that don't book get a "
            "call task within the hour."
        ),
        "trigger": "lead.created",
        "n8n_workflow": "lead-qualify-book",
        "steps": [
            {"action": "send_prompt", "prompt": "greeting"},
            {"action": "wait_for_reply", "timeout": "PT2H"},
            {"action": "send_template", "template_purpose": "follow_up", "when": "no_reply"},
            {
                "action": "ask_qualification",
                "prompt": "qualify-urgency",
                "rules": ["urgent-job"],
                "when": "replied",
            },
            {"action": "score_lead"},
            {
                "action": "offer_slots",
                "prompt": "booking-offer",
                "appointment_type": "On-site estimate",
            },
            {"action": "book_slot"},
            {
                "action": "create_task",
                "title": "Call the customer: job request not booked",
                "delay": "PT1H",
                "when": "not_booked",
                "due": "PT1H",
            },
        ],
    },
    {
        "key": "ai-reply",
        "name": "Inbound message → AI reply",
        "description": (
            "Every message is answered by the agent through the decision API; emergencies, "
            "complaints and price negotiations go to the office."
        ),
        "trigger": "message.received",
        "n8n_workflow": "message-received-ai-reply",
        "steps": [
            {"action": "decide"},
            {"action": "hand_off", "when": "escalated"},
        ],
    },
    {
        "key": "missed-visit",
        "name": "Nobody home → rebook the visit",
        "description": (
            "When the technician could not reach the customer: a message with new times "
            "right away, a template follow-up the next day and a call task for the office."
        ),
        "trigger": "booking.no_show",
        "n8n_workflow": "no-show-follow-up",
        "steps": [
            {"action": "send_prompt", "prompt": "no-show", "delay": "PT15M"},
            {"action": "wait_for_reply", "timeout": "P1D"},
            {"action": "send_template", "template_purpose": "no_show", "when": "no_reply"},
            {
                "action": "create_task",
                "title": "Call to rebook the missed visit",
                "delay": "P1D",
                "when": "not_booked",
                "due": "PT4H",
            },
        ],
    },
]
