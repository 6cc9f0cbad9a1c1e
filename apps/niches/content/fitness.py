"""Fitness studios: boutique gyms, yoga, pilates, CrossFit boxes, personal training.

The sale: get an interested person into a free trial class, make them feel welcome, convert
them to a membership. The line never crossed: medical, injury or nutrition advice, and
promised body results.
"""

NICHE = {
    "slug": "fitness",
    "name": "Fitness studio",
    "description": (
        "Boutique gyms, yoga and pilates studios, personal trainers: trial classes, "
        "memberships and retention."
    ),
    "qualify_threshold": 60,
    "disqualify_threshold": -20,
}

AGENT_PACK = {
    "key": "front-desk",
    "name": "Front-desk coach",
    "agent_name": "Jess",
    "tone": "Warm, upbeat and encouraging; short texts",
    "persona": (
        "Jess runs the front desk of a boutique fitness studio. She is friendly and "
        "encouraging, never pushy, and texts like a real person: short messages, one question "
        "at a time. She finds out what the person wants to achieve and when they want to "
        "start, books them into a free trial class and makes sure they arrive feeling welcome. "
        "She never gives medical, injury or nutrition advice and never promises results."
    ),
}

PROMPTS = [
    {
        "key": "system",
        "purpose": "system",
        "variables": ["agent_name", "business_name"],
        "template": (
            "You are {agent_name}, the front-desk assistant of {business_name}, a fitness "
            "studio. You text with people who asked about classes or memberships.\n"
            "\n"
            "Your goals, in order: answer their question briefly and warmly; learn their main "
            "goal and when they would like to start; book them into a free trial class using "
            "only the times you are given; hand the conversation to a coach when you cannot "
            "help.\n"
            "\n"
            "Style: short text messages (under 300 characters), one question at a time, plain "
            "words, no pressure and no emojis. Never invent prices, class times, offers or "
            "coach names; if you do not know, say a coach will confirm.\n"
            "\n"
            "Rules: you are not a doctor, physiotherapist or dietitian. Do not give medical, "
            "injury, rehabilitation or nutrition advice, and never promise results such as a "
            "number of pounds lost by a date. If someone mentions an injury, pregnancy, a heart "
            "or blood-pressure condition or any other health concern, suggest they check with "
            "their doctor before starting and tell them the coach will adapt the class for "
            "them. If asked whether you are a person, say you are the virtual assistant of "
            "{business_name}. If someone asks you to stop messaging, stop."
        ),
    },
    {
        "key": "greeting",
        "purpose": "greeting",
        "variables": ["first_name", "agent_name", "business_name"],
        "template": (
            "Hi {first_name}, it's {agent_name} from {business_name}. Thanks for reaching out! "
            "What's your main goal right now: building strength, losing weight, moving better, "
            "or getting back into a routine?"
        ),
    },
    {
        "key": "qualify-timing",
        "purpose": "qualify",
        "variables": ["first_name"],
        "template": (
            "Love that. When would you like to start, {first_name}: this week, next week, or "
            "later this month?"
        ),
    },
    {
        "key": "booking-offer",
        "purpose": "booking",
        "variables": ["slots"],
        "template": (
            "The best first step is a free trial class: you meet the coaches, try a session "
            "and see if it feels right, with no commitment. I have {slots}. Which one works "
            "for you?"
        ),
    },
    {
        "key": "reminder",
        "purpose": "reminder",
        "variables": [
            "first_name",
            "booking_date",
            "booking_time",
            "appointment_type",
            "business_name",
        ],
        "template": (
            "Hi {first_name}, see you {booking_date} at {booking_time} for your "
            "{appointment_type} at {business_name}! Wear comfortable clothes, bring water and "
            "arrive 10 minutes early so we can get you set up. Need a different time? Just "
            "reply here."
        ),
    },
    {
        "key": "no-show",
        "purpose": "no_show",
        "variables": ["first_name", "appointment_type", "slots"],
        "template": (
            "Hi {first_name}, we missed you at your {appointment_type}. No worries, life "
            "happens! Want me to save you a spot at another time? I have {slots}."
        ),
    },
    {
        "key": "onboarding",
        "purpose": "onboarding",
        "variables": ["business_name", "first_name"],
        "template": (
            "Welcome to {business_name}, {first_name}! You're all set. Three tips for your "
            "first weeks: arrive 10 minutes early, tell your coach about any injuries before "
            "class, and aim for two or three sessions a week to build the habit. Questions? "
            "Reply here anytime."
        ),
    },
]

OBJECTIONS = [
    {
        "key": "price",
        "name": "Too expensive",
        "trigger_phrases": [
            "too expensive",
            "can't afford",
            "cannot afford",
            "out of my budget",
            "too much money",
            "cheaper gym",
        ],
        "response_template": (
            "Totally fair, {first_name}. That's exactly why your first class is free: you can "
            "see whether it's worth it before you spend anything. After class a coach can walk "
            "you through the membership options, including the lighter ones. Want me to save "
            "you a spot?"
        ),
    },
    {
        "key": "no-time",
        "name": "No time",
        "trigger_phrases": [
            "no time",
            "too busy",
            "busy schedule",
            "don't have time",
            "work late",
            "shift work",
        ],
        "response_template": (
            "I hear you, most of our members juggle work and family too. Classes run at "
            "different times through the day so they fit around a full schedule. Would "
            "mornings, lunchtimes or evenings suit you best?"
        ),
    },
    {
        "key": "not-fit-enough",
        "name": "Not fit enough / intimidated",
        "trigger_phrases": [
            "not fit enough",
            "out of shape",
            "intimidated",
            "complete beginner",
            "never done this",
            "embarrassed",
        ],
        "response_template": (
            "You're in good company: lots of our members started out feeling exactly the same. "
            "Every exercise can be scaled, and the coach shows you what to do and checks in "
            "with you during class. Everyone is busy with their own workout! Want to try one "
            "class and see how it feels?"
        ),
    },
    {
        "key": "think-about-it",
        "name": "Wants to think about it",
        "trigger_phrases": [
            "think about it",
            "not sure yet",
            "maybe later",
            "get back to you",
            "let me check",
        ],
        "response_template": (
            "Of course, no rush. The trial class is free with no commitment, so trying one is "
            "often the easiest way to decide. Should I hold a spot for you this week, or check "
            "back with you in a few days?"
        ),
    },
]

QUALIFICATION_RULES = [
    {
        "key": "start-soon",
        "name": "Wants to start within two weeks",
        "kind": "answer",
        "question": "When would you like to start?",
        "answer_field": "start_timing",
        "condition": {"in": ["today", "tomorrow", "this week", "next week", "asap"]},
        "points": 35,
    },
    {
        "key": "buying-intent",
        "name": "Asks about joining, trials or schedules",
        "kind": "keyword",
        "condition": {
            "keywords": [
                "membership",
                "sign up",
                "join",
                "trial",
                "class times",
                "schedule",
                "how much",
            ]
        },
        "points": 25,
    },
    {
        "key": "engaged",
        "name": "Engaged in the conversation (3+ replies)",
        "kind": "engagement",
        "condition": {"min_inbound_messages": 3},
        "points": 15,
    },
]

COMPLIANCE_RULES = [
    {
        "key": "fitness-no-medical-advice",
        "name": "No medical advice or promised body results",
        "description": (
            "Coaches and assistants are not clinicians: no diagnosis, no advice on injuries, "
            "medication, conditions or diets for a condition, and no promised results (FTC: "
            "results claims need substantiation). Blocked replies are replaced by the "
            "engine's safe answer: suggest checking with a doctor, and a coach will adapt the "
            "class."
        ),
        "kind": "forbidden_phrase",
        "severity": "block",
        "pattern": (
            r"\b(diagnos(e|is|ed)|prescri(be|ption))\b"
            r"|\b(cure|heal|fix|treat)s?\s+(your|the|that)\s+"
            r"(injury|back|knee|shoulder|hip|pain|condition|diabetes|blood pressure|arthritis)"
            r"|\b(safe|fine|ok|okay)\s+(for|with)\s+(your|the)\s+"
            r"(injury|condition|pregnancy|heart|back|knee|blood pressure|surgery)"
            r"|\b(stop|skip|reduce|come off)\s+(taking\s+)?your\s+(medication|meds|insulin)"
            r"|\b(lose|drop|burn)\s+\d+\s*(lbs?|pounds|kg|kilos|dress sizes?)"
            r"|\bguaranteed\s+(results|weight loss|to lose)"
        ),
    },
]

WORKFLOWS = [
    {
        "key": "trial-class-lead",
        "name": "New lead → free trial class",
        "description": (
            "Greet the lead within a minute, learn their goal and start date, offer trial "
            "class slots and book one. Quiet leads get a template follow-up the next day and "
            "a call task after two days."
        ),
        "trigger": "lead.created",
        "n8n_workflow": "lead-qualify-book",
        "steps": [
            {"action": "send_prompt", "prompt": "greeting"},
            {"action": "wait_for_reply", "timeout": "P1D"},
            {"action": "send_template", "template_purpose": "follow_up", "when": "no_reply"},
            {
                "action": "ask_qualification",
                "prompt": "qualify-timing",
                "rules": ["start-soon"],
                "when": "replied",
            },
            {"action": "score_lead"},
            {
                "action": "offer_slots",
                "prompt": "booking-offer",
                "appointment_type": "Free trial class",
            },
            {"action": "book_slot"},
            {
                "action": "create_task",
                "title": "Call the lead: no trial class booked yet",
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
            "Every message from a lead or member is answered by the agent through the "
            "decision API; health questions and complaints go to a coach."
        ),
        "trigger": "message.received",
        "n8n_workflow": "message-received-ai-reply",
        "steps": [
            {"action": "decide"},
            {"action": "hand_off", "when": "escalated"},
        ],
    },
    {
        "key": "trial-no-show",
        "name": "Missed trial class → rebook",
        "description": (
            "Half an hour after a missed trial class, a friendly no-pressure message with new "
            "times; if there is no answer, a template follow-up the next day and a task for "
            "the front desk."
        ),
        "trigger": "booking.no_show",
        "n8n_workflow": "no-show-follow-up",
        "steps": [
            {"action": "send_prompt", "prompt": "no-show", "delay": "PT30M"},
            {"action": "wait_for_reply", "timeout": "P1D"},
            {"action": "send_template", "template_purpose": "no_show", "when": "no_reply"},
            {
                "action": "create_task",
                "title": "Call to rebook the missed trial class",
                "delay": "P2D",
                "when": "not_booked",
                "due": "P1D",
            },
        ],
    },
    {
        "key": "member-onboarding",
        "name": "New member → onboarding",
        "description": (
            "When a membership is sold: welcome message, member tag, and tasks to add them to "
            "the class app and check in after two weeks."
        ),
        "trigger": "deal.won",
        "n8n_workflow": "deal-won-onboarding",
        "steps": [
            {"action": "send_prompt", "prompt": "onboarding"},
            {"action": "tag_contact", "tag": "member"},
            {
                "action": "create_task",
                "title": "Add the new member to the booking app and introduce their coach",
                "due": "P1D",
            },
            {
                "action": "create_task",
                "title": "Two-week check-in call with the new member",
                "delay": "P14D",
                "due": "P1D",
            },
        ],
    },
]
