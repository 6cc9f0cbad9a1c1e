"""Med spas: injectables, laser, skin treatments.

The sale: a consultation with a licensed provider comes first. The lines never crossed: no
diagnosis or medical claims, no guaranteed or "permanent/painless/risk-free" results, and
results statements always carry the "results vary" disclaimer.
"""

NICHE = {
    "slug": "med_spa",
    "name": "Med spa",
    "description": (
        "Aesthetic clinics offering injectables, laser and skin treatments: consultations "
        "first, no medical promises."
    ),
    "qualify_threshold": 60,
    "disqualify_threshold": -20,
}

AGENT_PACK = {
    "key": "patient-coordinator",
    "name": "Patient coordinator",
    "agent_name": "Sofia",
    "tone": "Calm, polished and reassuring; discreet",
    "persona": (
        "Sofia is the patient coordinator of a medical spa. She is warm, discreet and precise. "
        "She explains how consultations and treatments work in general terms, finds out what "
        "the person is interested in and when they can come in, and books a consultation with "
        "a licensed provider. She never assesses anyone's skin or health, never recommends a "
        "treatment or dose for a person, and never promises results."
    ),
}

RESULTS_DISCLAIMER = (
    "Individual results vary; your provider will confirm what's realistic for you at your "
    "consultation."
)

PROMPTS = [
    {
        "key": "system",
        "purpose": "system",
        "variables": ["agent_name", "business_name"],
        "template": (
            "You are {agent_name}, the patient coordinator of {business_name}, a medical spa. "
            "You text with people interested in treatments such as injectables, laser hair "
            "removal, skin resurfacing and facials.\n"
            "\n"
            "Your goals: answer general questions about how consultations and treatments work; "
            "learn which treatment they are interested in and when they would like to come in; "
            "book a consultation using only the times you are given.\n"
            "\n"
            "Style: warm, discreet and professional; short messages; one question at a time; "
            "no emojis.\n"
            "\n"
            "Rules you never break: you are not a clinician. Do not diagnose, assess photos, "
            "recommend a treatment, product or number of units for a person, or say a "
            "treatment is safe for them: only a licensed provider can do that, at the "
            "consultation. Never promise or guarantee results, and never call a treatment "
            "permanent, painless, risk-free or free of side effects or downtime. Whenever you "
            "mention results, add that individual results vary. Do not quote prices unless "
            "they are given to you. If someone mentions a medical condition, pregnancy, "
            "medication, an allergy, or a problem after a treatment, hand the conversation to "
            "the clinical team at once, and if it sounds urgent tell them to contact their "
            "doctor or emergency services. If asked whether you are a person, say you are the "
            "virtual assistant of {business_name}."
        ),
    },
    {
        "key": "greeting",
        "purpose": "greeting",
        "variables": ["first_name", "agent_name", "business_name"],
        "template": (
            "Hi {first_name}, this is {agent_name} at {business_name}. Thank you for your "
            "interest! Which treatment are you curious about: injectables, laser, skin "
            "treatments, or something else?"
        ),
    },
    {
        "key": "qualify-timing",
        "purpose": "qualify",
        "variables": ["first_name"],
        "template": (
            "Thank you, {first_name}. When would you ideally like to come in: within the next "
            "two weeks, or later than that?"
        ),
    },
    {
        "key": "booking-offer",
        "purpose": "booking",
        "variables": ["slots", "appointment_type"],
        "template": (
            "Every treatment starts with a consultation with one of our licensed providers, "
            "who will listen to your goals and answer all your questions, with no obligation "
            "to go ahead. I have {slots} for your {appointment_type}. Which suits you best?"
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
            "Hi {first_name}, a reminder of your {appointment_type} at {business_name} on "
            "{booking_date} at {booking_time}. Please arrive 10 minutes early to complete your "
            "health questionnaire, and bring a list of any medications you take. If you need "
            "to reschedule, reply here, ideally 24 hours ahead."
        ),
    },
    {
        "key": "no-show",
        "purpose": "no_show",
        "variables": ["first_name", "appointment_type", "slots"],
        "template": (
            "Hi {first_name}, we missed you at your {appointment_type}. No problem at all. "
            "Would you like to rebook? I have {slots}."
        ),
    },
    {
        "key": "handoff-clinical",
        "purpose": "handoff",
        "variables": ["first_name"],
        "template": (
            "Thank you for telling me, {first_name}. That's a question for our clinical team, "
            "so I've passed your message to them and a member of the team will get back to "
            "you shortly. If this is urgent or you feel unwell, please contact your doctor or "
            "emergency services."
        ),
    },
]

OBJECTIONS = [
    {
        "key": "price",
        "name": "Price / too expensive",
        "trigger_phrases": [
            "too expensive",
            "how much",
            "can't afford",
            "cheaper",
            "what does it cost",
            "pricey",
        ],
        "response_template": (
            "I understand, {first_name}. The cost depends on the treatment plan, which your "
            "provider puts together with you at the consultation, so you'll know the exact "
            "price before anything is done and there's no obligation to go ahead. Would you "
            "like to book a consultation for a personalised quote?"
        ),
    },
    {
        "key": "pain-fear",
        "name": "Afraid it will hurt",
        "trigger_phrases": [
            "does it hurt",
            "painful",
            "scared of needles",
            "afraid of needles",
            "nervous about",
            "hate needles",
        ],
        "response_template": (
            "That's a very common question, and a good one to ask. How a treatment feels "
            "varies from person to person; your provider talks you through every step and "
            "can discuss comfort options such as numbing cream where appropriate. You can ask "
            "them anything at the consultation before you decide. Shall I find you a time?"
        ),
    },
    {
        "key": "natural-look",
        "name": "Worried about looking fake",
        "trigger_phrases": [
            "look fake",
            "look natural",
            "overdone",
            "frozen face",
            "duck lips",
            "look done",
        ],
        "response_template": (
            "That's one of the most common concerns we hear. At the consultation your provider "
            "asks what look you want and explains honestly what's realistic for you, so "
            "nothing is decided until you feel comfortable. Would you like to book one?"
        ),
    },
    {
        "key": "think-about-it",
        "name": "Wants to think / ask a partner",
        "trigger_phrases": [
            "think about it",
            "talk to my husband",
            "talk to my wife",
            "talk to my partner",
            "not sure yet",
            "maybe later",
        ],
        "response_template": (
            "Of course, it's a personal decision and there's no rush. A consultation doesn't "
            "commit you to anything; it's simply a chance to have your questions answered by "
            "a provider. Would you like me to hold a time for you, or check back in a week?"
        ),
    },
]

QUALIFICATION_RULES = [
    {
        "key": "treatment-interest",
        "name": "Named a treatment we offer",
        "kind": "answer",
        "question": "Which treatment are you interested in?",
        "answer_field": "treatment",
        "condition": {
            "in": [
                "injectables",
                "botox",
                "dermal filler",
                "laser hair removal",
                "laser resurfacing",
                "microneedling",
                "chemical peel",
                "hydrafacial",
                "facial",
            ]
        },
        "points": 25,
    },
    {
        "key": "timing-soon",
        "name": "Wants to come in within two weeks",
        "kind": "answer",
        "question": "When would you ideally like to come in?",
        "answer_field": "timing",
        "condition": {"in": ["this week", "next week", "within two weeks", "asap"]},
        "points": 35,
    },
    {
        "key": "referral",
        "name": "Referred by a client",
        "kind": "source",
        "condition": {"sources": ["referral", "returning_client"]},
        "points": 20,
    },
]

COMPLIANCE_RULES = [
    {
        "key": "med-spa-no-guaranteed-results",
        "name": "No guaranteed, permanent or risk-free results",
        "description": (
            "FTC and state medical boards: aesthetic treatments carry risks and results vary, "
            "so replies never guarantee outcomes or call a treatment permanent, painless, "
            "risk-free or free of side effects or downtime."
        ),
        "kind": "forbidden_phrase",
        "severity": "block",
        "pattern": (
            r"\b(we|i)\s+(guarantee|promise)\b"
            r"|\bguaranteed\s+(results?|outcomes?|to)\b"
            r"|\b100\s?%\s+(safe|effective|results?|satisfaction)"
            r"|\bpermanent(ly)?\s+(results?|removal|fix|solution)"
            r"|\b(painless|risk[- ]free|no\s+side[- ]effects|zero\s+side[- ]effects|no\s+downtime)\b"
            r"|\b(look|make you look)\s+\d+\s+years\s+younger"
        ),
    },
    {
        "key": "med-spa-no-diagnosis",
        "name": "No diagnosis or medical claims",
        "description": (
            "Only a licensed provider may assess a person's skin or health, recommend a "
            "treatment or dose, or say a treatment is safe for them. The assistant never "
            "names a condition a person has, never recommends units, and never comments on "
            "medication."
        ),
        "kind": "forbidden_phrase",
        "severity": "block",
        "pattern": (
            r"\b(you|it)\s+(have|has|'ve got|probably have|likely have|looks like|sounds like)\s+"
            r"(a\s+|an\s+)?(rosacea|melasma|acne|eczema|psoriasis|dermatitis|an infection|infection"
            r"|an allergy|allergy|skin cancer|melanoma|a mole|cyst|a cyst)"
            r"|\b(it'?s|it is|that'?s|that is|this is)\s+(totally\s+|completely\s+|perfectly\s+)?"
            r"(safe|fine|ok|okay)\s+(for you|while pregnant|during pregnancy|while breastfeeding"
            r"|with your)"
            r"|\byou\s+(need|should get|should have|will need)\s+\d+\s*(units|syringes|ml|sessions)"
            r"|\b(stop|skip|pause)\s+(taking\s+)?your\s+(medication|meds|blood thinners?|accutane)"
            r"|\b(my|our)\s+diagnosis\b"
        ),
    },
    {
        "key": "med-spa-results-disclaimer",
        "name": "Results statements carry the 'results vary' disclaimer",
        "description": (
            "Any reply that talks about results, outcomes, before-and-after pictures or how "
            "long a treatment lasts must include the disclaimer; the engine appends it."
        ),
        "kind": "required_disclaimer",
        "severity": "rewrite",
        "pattern": (
            r"\b(results?|outcomes?|before[- ](and|&)[- ]after|how long (does it|do they|will it)"
            r" last)\b"
        ),
        "replacement": RESULTS_DISCLAIMER,
    },
]

WORKFLOWS = [
    {
        "key": "consultation-lead",
        "name": "New lead → consultation",
        "description": (
            "Greet the lead, learn the treatment of interest and timing, and book a "
            "consultation with a licensed provider. Quiet leads get a template follow-up the "
            "next day and a call task after two days."
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
                "rules": ["treatment-interest", "timing-soon"],
                "when": "replied",
            },
            {"action": "score_lead"},
            {
                "action": "offer_slots",
                "prompt": "booking-offer",
                "appointment_type": "Consultation",
            },
            {"action": "book_slot"},
            {
                "action": "create_task",
                "title": "Call the lead: no consultation booked yet",
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
            "Every message is answered by the agent through the decision API; anything "
            "clinical (conditions, medication, reactions after a treatment) is handed to the "
            "clinical team with the hand-off message."
        ),
        "trigger": "message.received",
        "n8n_workflow": "message-received-ai-reply",
        "steps": [
            {"action": "decide"},
            {"action": "hand_off", "prompt": "handoff-clinical", "when": "escalated"},
        ],
    },
    {
        "key": "consultation-reminder",
        "name": "Consultation reminder",
        "description": (
            "The day before a consultation: the reminder with preparation notes (arrive "
            "early, list of medications); the WhatsApp template is used outside the 24-hour "
            "window."
        ),
        "trigger": "booking.reminder_due",
        "n8n_workflow": "",
        "steps": [
            {"action": "send_prompt", "prompt": "reminder"},
        ],
    },
    {
        "key": "consultation-no-show",
        "name": "Missed consultation → rebook",
        "description": (
            "An hour after a missed consultation, a discreet message with new times; a "
            "template follow-up the next day and a task for the front desk if there is no "
            "answer."
        ),
        "trigger": "booking.no_show",
        "n8n_workflow": "no-show-follow-up",
        "steps": [
            {"action": "send_prompt", "prompt": "no-show", "delay": "PT1H"},
            {"action": "wait_for_reply", "timeout": "P1D"},
            {"action": "send_template", "template_purpose": "no_show", "when": "no_reply"},
            {
                "action": "create_task",
                "title": "Call to rebook the missed consultation",
                "delay": "P2D",
                "when": "not_booked",
                "due": "P1D",
            },
        ],
    },
]
