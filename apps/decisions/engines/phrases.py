"""Language data of the rules engine: intent phrases, answer synonyms, and the default
message templates used when a niche has no prompt for a purpose.

Templates use the niche template syntax (`{first_name}`, rendered with `prompt_render`) and
the same variables, and are plain ASCII (no emoji or curly quotes: SMS would switch to
UCS-2). They are written to pass every niche's compliance rules (a test checks that).
"""

from __future__ import annotations

# --- intents: phrases matched as whole words, case-insensitively ---------------------------

OPT_OUT = (
    "stop texting",
    "stop messaging",
    "stop contacting",
    "stop sending",
    "stop emailing",
    "unsubscribe",
    "opt me out",
    "opt out",
    "remove me",
    "take me off",
    "don't text me",
    "do not text me",
    "dont text me",
    "don't contact me",
    "do not contact me",
    "dont contact me",
    "don't message me",
    "do not message me",
    "leave me alone",
    "no more messages",
    "no more texts",
)
NOT_INTERESTED = (
    "not interested",
    "no longer interested",
    "no thanks",
    "no thank you",
    "found another",
    "went with someone else",
    "went with another",
    "already found",
)
HUMAN_REQUEST = (
    "speak to a human",
    "talk to a human",
    "speak with a human",
    "real person",
    "speak to someone",
    "talk to someone",
    "speak with someone",
    "talk with someone",
    "talk to a person",
    "speak to a person",
    "speak with a person",
    "human please",
    "a manager",
    "the manager",
    "the owner",
    "call me",
    "give me a call",
    "phone me",
    "ring me",
)
BOT_QUESTION = (
    "are you a bot",
    "are you a robot",
    "is this a bot",
    "is this a robot",
    "are you real",
    "are you human",
    "are you a human",
    "are you a person",
    "are you ai",
    "are you an ai",
    "is this automated",
)
COMPLAINT = (
    "complaint",
    "complain",
    "terrible",
    "awful",
    "rude",
    "refund",
    "furious",
    "disappointed",
    "unacceptable",
    "worst",
)
CANCEL = (
    "cancel my",
    "cancel the",
    "cancel it",
    "cancel our",
    "cancel appointment",
    "cancel booking",
    "need to cancel",
    "want to cancel",
    "have to cancel",
    "won't be able to come",
    "will not be able to come",
)
RESCHEDULE = (
    "reschedule",
    "re-schedule",
    "move my",
    "move the appointment",
    "move it",
    "change my appointment",
    "change the appointment",
    "change the time",
    "different time",
    "another time",
    "another day",
    "different day",
    "later time",
    "earlier time",
    "can't make it",
    "cannot make it",
    "can not make it",
    "running late",
)
BOOK = (
    "book",
    "booking",
    "schedule",
    "sign me up",
    "sign up",
    "appointment",
    "available",
    "availability",
    "when can i come",
    "come in",
    "try a class",
    "trial",
    "free class",
    "reserve",
    "set up a",
    "viewing",
    "see the property",
    "see the house",
    "see it",
    "consultation",
    "consult",
    "discovery call",
    "estimate",
    "come out",
    "send someone",
    "visit",
    "get started",
    "openings",
    "what times",
    "any times",
    "slot",
    "slots",
)
PRICE = (
    "how much",
    "price",
    "prices",
    "pricing",
    "cost",
    "costs",
    "fee",
    "fees",
    "rate",
    "rates",
    "charge",
    "quote",
    "expensive",
    "membership options",
)
GREETING = (
    "hi",
    "hello",
    "hey",
    "hiya",
    "howdy",
    "yo",
    "good morning",
    "good afternoon",
    "good evening",
    "greetings",
)
THANKS = ("thanks", "thank you", "thx", "cheers", "ty", "much appreciated", "great thanks")
AFFIRM = (
    "yes",
    "yeah",
    "yep",
    "yup",
    "sure",
    "ok",
    "okay",
    "sounds good",
    "perfect",
    "great",
    "that works",
    "works for me",
    "book it",
    "lets do it",
    "let's do it",
    "please do",
    "go ahead",
)
ANY_SLOT = ("any", "anytime", "any time", "whichever", "either", "either one", "first available")

# Per niche: messages that a person must handle (clinical, legal, safety), and how urgently.
ESCALATE = {
    "med_spa": (
        "high",
        (
            "pregnant",
            "pregnancy",
            "breastfeeding",
            "allergic",
            "allergy",
            "reaction",
            "swelling",
            "swollen",
            "bruising",
            "infection",
            "infected",
            "rash",
            "blister",
            "medication",
            "medications",
            "blood thinner",
            "blood thinners",
            "accutane",
            "lump",
            "numbness",
            "side effect",
            "side effects",
            "my doctor",
        ),
    ),
    "real_estate": (
        "normal",
        (
            "make an offer",
            "submit an offer",
            "counter offer",
            "contract",
            "lawyer",
            "attorney",
            "negotiate",
            "negotiation",
            "appraisal",
            "closing costs",
            "earnest money",
        ),
    ),
    "consultant": (
        "normal",
        (
            "proposal",
            "contract",
            "invoice",
            "discount",
            "negotiate",
            "retainer terms",
            "nda",
        ),
    ),
    "local_service": (
        "urgent",
        (
            "smell gas",
            "gas smell",
            "gas leak",
            "sparking",
            "sparks",
            "smoke",
            "burning smell",
            "flooding",
            "flooded",
            "burst pipe",
            "electric shock",
            "carbon monoxide",
        ),
    ),
}
# Fitness: a health mention is answered safely and flagged to a coach, not escalated.
HEALTH_CONCERN = {
    "fitness": (
        "injury",
        "injured",
        "pregnant",
        "pregnancy",
        "heart",
        "blood pressure",
        "diabetes",
        "diabetic",
        "surgery",
        "physio",
        "back pain",
        "knee pain",
        "chest pain",
        "asthma",
        "medication",
        "medical condition",
    ),
}
# Real estate: questions that invite steering are answered with official sources.
FAIR_HOUSING_QUESTIONS = {
    "real_estate": (
        "is it safe",
        "safe area",
        "safe neighborhood",
        "safe neighbourhood",
        "crime",
        "schools",
        "school district",
        "what kind of people",
        "who lives",
        "the neighbors",
        "the neighbours",
        "demographics",
        "good area",
        "family friendly",
        "family-friendly",
    ),
}

# The reply to each niche's greeting is recorded under this lead answer (the greeting asks it).
GREETING_ANSWER_FIELD = {
    "fitness": "goal",
    "med_spa": "treatment",
    "real_estate": "buy_or_sell",
    "consultant": "challenge",
    "local_service": "job",
}

# Objections after which a later follow-up makes sense (by key fragment).
FOLLOW_UP_OBJECTIONS = ("think", "later", "not-urgent", "just-looking", "waiting", "check-with")

# --- answers: canonical condition values and how people say them ---------------------------

ANSWER_SYNONYMS = {
    "asap": (
        "as soon as possible",
        "right away",
        "right now",
        "immediately",
        "straight away",
        "urgently",
        "urgent",
    ),
    "this week": ("in a few days", "in the next few days", "in a couple of days", "this weekend"),
    "within two weeks": ("two weeks", "2 weeks", "fortnight", "next couple of weeks"),
    "0-3 months": (
        "three months",
        "3 months",
        "next few months",
        "couple of months",
        "two months",
        "2 months",
        "next month or two",
    ),
    "pre-approved": (
        "pre approved",
        "preapproved",
        "pre-approval",
        "preapproval",
        "approved for a mortgage",
        "mortgage approved",
    ),
    "cash": ("paying cash", "cash buyer", "in cash", "all cash"),
    "yes": (
        "i decide",
        "i'm the decision maker",
        "i am the decision maker",
        "it's my decision",
        "its my decision",
        "i make the decision",
        "i make the decisions",
        "i'm the owner",
        "i am the owner",
        "just me",
        "only me",
        "it's me",
    ),
    "shared": (
        "my partner and i",
        "both of us",
        "with my partner",
        "with my business partner",
        "my co-founder",
        "my cofounder",
        "we decide together",
        "together",
        "jointly",
    ),
    "emergency": ("emergency", "no heat", "no hot water", "leaking"),
    "dermal filler": ("filler", "fillers", "lip filler", "lip fillers", "cheek filler"),
    "injectables": ("injectable", "injections", "anti-wrinkle", "wrinkle", "wrinkles", "dysport"),
    "laser hair removal": ("hair removal",),
    "laser resurfacing": ("resurfacing", "skin resurfacing"),
    "chemical peel": ("peel", "peels"),
    "microneedling": ("micro needling", "micro-needling"),
    "hydrafacial": ("hydra facial",),
}
# Short canonical values ("yes", "no") only count as the answer to the question just asked.
SHORT_VALUE_LENGTH = 3

# --- default templates when the niche has no prompt for a purpose --------------------------

DEFAULT_TEMPLATES = {
    "greeting": (
        "Hi {first_name}, it's {agent_name} from {business_name}. Thanks for reaching out! "
        "How can I help?"
    ),
    "greeting_prefix": "Hi {first_name}, it's {agent_name} from {business_name}.",
    "booking": "I have {slots} for a {appointment_type}. Which works best for you?",
    "booking_none": (
        "Let me check the schedule for a {appointment_type}: a member of the team will "
        "send you some times shortly."
    ),
    "booking_confirmation": (
        "You're booked, {first_name}: {appointment_type} on {booking_date} at {booking_time}. "
        "If anything changes, just reply here."
    ),
    "already_booked": (
        "You're already booked for a {appointment_type} on {booking_date} at {booking_time}. "
        "Would you like to move it to another time?"
    ),
    "slot_taken": (
        "Sorry, {first_name}, that time was just taken. I still have {slots}. Would one of "
        "those work?"
    ),
    "slot_which": "Happy to book you in. Which time suits you best: {slots}?",
    "reschedule": (
        "No problem, {first_name}. I can move your {appointment_type}: I have {slots}. Which "
        "works best?"
    ),
    "cancel": (
        "Thanks for letting us know, {first_name}. I've passed your cancellation of the "
        "{appointment_type} on {booking_date} to the team. If you'd like a new time instead, "
        "I have {slots}."
    ),
    "cancel_none": (
        "Thanks, {first_name}. I can't see an upcoming appointment for you, so I've asked the "
        "team to check and get back to you."
    ),
    "price": (
        "Good question, {first_name}. The best first step is a {appointment_type}{price_text}, "
        "where the team will go through the options and prices with you. Would you like me "
        "to find you a time?"
    ),
    "handoff": (
        "Thanks, {first_name}. I've asked a member of the {business_name} team to pick this "
        "up; they'll get back to you shortly."
    ),
    "complaint": (
        "I'm sorry to hear that, {first_name}. I've passed your message to the {business_name} "
        "team and someone will get back to you as soon as possible."
    ),
    "bot": (
        "I'm {agent_name}, the virtual assistant of {business_name}. I can answer questions and "
        "book you in, and a member of the team is always happy to take over: just ask."
    ),
    "fallback": (
        "Sorry, {first_name}, I didn't quite catch that. Could you tell me a little more about "
        "what you're looking for?"
    ),
    "not_interested": (
        "No problem at all, {first_name}. Thanks for letting us know. If anything changes, "
        "just reply here."
    ),
    "follow_up": (
        "Hi {first_name}, it's {agent_name} from {business_name}. Just checking in: are you "
        "still interested? Reply here and we'll pick up where we left off."
    ),
    "no_show": (
        "Hi {first_name}, we missed you at your {appointment_type}. No problem: reply here "
        "and we'll find you a new time."
    ),
    "no_show_slots": (
        "Hi {first_name}, we missed you at your {appointment_type}. No problem: would another "
        "time work? I have {slots}."
    ),
    "cancel_noslots": (
        "Thanks for letting us know, {first_name}. I've passed your cancellation of the "
        "{appointment_type} on {booking_date} to the team. Reply here whenever you'd like a "
        "new time."
    ),
    "onboarding": (
        "Welcome to {business_name}, {first_name}, and thank you for choosing us! The team "
        "will be in touch shortly with the next steps. Questions? Just reply here."
    ),
    "soft_close": (
        "Thanks, {first_name}, that's really helpful. A member of the team will look at your "
        "details and get back to you with the best next step."
    ),
    "health_concern": (
        "Thanks for telling me, {first_name}. I can't give medical advice, so please check "
        "with your doctor before starting; our coaches will adapt every class to you. Would "
        "you like me to find you a time for a free trial class?"
    ),
    "emergency": (
        "{first_name}, if there is any danger, please get everyone to safety now and call "
        "emergency services or your utility company first. I've alerted the {business_name} "
        "team, and someone will call you back as soon as possible."
    ),
    "fair_housing": (
        "Good question. For schools, crime and area statistics the best sources are official "
        "ones, such as the school district's website, local police crime maps or census data. "
        "I'm happy to tell you all about the home itself or set up a viewing."
    ),
    "ask": "{question}",
}

# What replaces a reply the compliance guard blocked, per niche (else the hand-off text).
SAFE_REPLIES = {
    "fitness": DEFAULT_TEMPLATES["health_concern"],
    "med_spa": (
        "Thank you, {first_name}. Your provider will explain at your consultation what's "
        "realistic for you, and a member of our team will get back to you shortly."
    ),
    "real_estate": (
        "I can tell you all about the home itself, and for schools, crime or area statistics "
        "the best sources are official ones, such as the school district's website, local "
        "police crime maps or census data. Would you like to set up a viewing?"
    ),
    "consultant": (
        "Every situation is different, so the consultant will look at what's realistic for "
        "you on a short discovery call. Would you like me to find you a time?"
    ),
    "local_service": (
        "The exact price depends on the job, so a technician will confirm it once they've "
        "seen it. Would you like us to book a visit?"
    ),
}
