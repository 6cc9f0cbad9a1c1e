"""Content shared by every niche: the template vocabulary, workflow step actions, the rules
that apply to every niche (niche = NULL), the shipped n8n workflows and the WhatsApp
templates used outside the 24-hour customer-service window.
"""

# Every `{variable}` a prompt or objection template may use, and who supplies it. The
# decision engine fills these; a missing one renders as empty text (see `prompt_render`).
VARIABLES: dict[str, str] = {
    "first_name": "The contact's first name (empty when unknown; templates read well without it).",
    "business_name": "The organization's name.",
    "agent_name": "The assistant's name: the organization's agent pack `agent_name`.",
    "appointment_type": "Name of the appointment type offered or booked, e.g. 'Free trial class'.",
    "slots": "The offered start times, already formatted in the contact's time zone "
    "(a list renders as 'Tue 6:00 PM, Wed 7:00 AM').",
    "booking_date": "The booking's date in the contact's time zone, e.g. 'Tuesday, March 4'.",
    "booking_time": "The booking's start time in the contact's time zone, e.g. '6:00 PM'.",
}

# An organization override must keep these when the shared prompt has them: they carry the
# information the message exists for (the offered times, the appointment).
ESSENTIAL_VARIABLES = frozenset({"slots", "booking_date", "booking_time"})

# Workflow step actions and the parameters each takes (besides the common ones below).
# `delay`/`timeout`/`due` are ISO 8601 durations ("PT0S", "PT2H", "P1D").
STEP_COMMON_PARAMS = frozenset({"action", "delay", "when", "note"})
STEP_ACTIONS: dict[str, dict[str, frozenset[str]]] = {
    # Send one of the niche's prompts (rendered with the contact's variables).
    "send_prompt": {"required": frozenset({"prompt"}), "optional": frozenset()},
    # Ask a qualification question; the answer lands in the lead's qualification answers.
    "ask_qualification": {"required": frozenset({"prompt"}), "optional": frozenset({"rules"})},
    # Pause the sequence until the contact answers or `timeout` passes.
    "wait_for_reply": {"required": frozenset({"timeout"}), "optional": frozenset()},
    # Recompute the lead score from the niche's qualification rules.
    "score_lead": {"required": frozenset(), "optional": frozenset()},
    # Offer bookable slots of an appointment type with a prompt that has `{slots}`.
    "offer_slots": {
        "required": frozenset({"prompt", "appointment_type"}),
        "optional": frozenset(),
    },
    # Book the slot the contact picked (POST /api/v1/bookings/).
    "book_slot": {"required": frozenset(), "optional": frozenset()},
    # Ask the decision API what to do (POST /api/v1/decisions/) and carry out its actions.
    "decide": {"required": frozenset(), "optional": frozenset()},
    # Send the organization's approved WhatsApp template for a purpose (outside 24 hours).
    "send_template": {"required": frozenset({"template_purpose"}), "optional": frozenset()},
    # Create a task for the team (POST /api/v1/tasks/); `due` is relative to the step.
    "create_task": {"required": frozenset({"title"}), "optional": frozenset({"due"})},
    # Pass the conversation to a person (optionally telling the contact with a prompt).
    "hand_off": {"required": frozenset(), "optional": frozenset({"prompt"})},
    # Add a tag to the contact.
    "tag_contact": {"required": frozenset({"tag"}), "optional": frozenset()},
}

# Conditions a step may be guarded by (`when`): it runs only if the condition holds.
STEP_CONDITIONS = frozenset(
    {"no_reply", "replied", "qualified", "not_qualified", "not_booked", "escalated"}
)

QUIET_HOURS_CHANNELS = ["sms", "whatsapp"]

GLOBAL_COMPLIANCE_RULES = [
    {
        "key": "quiet-hours-sms-whatsapp",
        "name": "Quiet hours: no texts between 9 PM and 8 AM (contact's local time)",
        "description": (
            "TCPA and most state telemarketing laws limit texts to 8 AM to 9 PM in the "
            "recipient's time zone. Messages the business initiates (follow-ups, reminders, "
            "reactivation) during quiet hours are held until 8 AM local time. A direct reply to "
            "a message the contact sent within the last `reply_window_minutes` may go out "
            "immediately: they are waiting for it."
        ),
        "kind": "quiet_hours",
        "severity": "block",
        "channels": QUIET_HOURS_CHANNELS,
        "config": {"start": "21:00", "end": "08:00", "reply_window_minutes": 30},
    },
    {
        "key": "opt-out-keywords",
        "name": "STOP, START and HELP keywords",
        "description": (
            "CTIA and carrier rules: a message that is only one of these words opts the contact "
            "out of (STOP...), back into (START...) or asks for help (HELP...) on the channel it "
            "came in on. Opt-outs are honoured immediately and confirmed once; HELP is answered "
            "with the organization's help text. Note that a lone 'CANCEL' is an opt-out, so "
            "booking messages ask people to reply in their own words to reschedule."
        ),
        "kind": "opt_out_keywords",
        "severity": "block",
        "channels": [],
        "config": {
            "stop": [
                "STOP",
                "STOPALL",
                "UNSUBSCRIBE",
                "CANCEL",
                "END",
                "QUIT",
                "OPTOUT",
                "OPT OUT",
                "REVOKE",
            ],
            "start": ["START", "UNSTOP", "SUBSCRIBE"],
            "help": ["HELP", "INFO"],
        },
    },
    {
        "key": "consent-required-sms-whatsapp",
        "name": "Consent before texting",
        "description": (
            "Business-initiated SMS and WhatsApp messages need the contact's explicit opt-in on "
            "that channel (TCPA prior express consent; WhatsApp Business policy). A contact who "
            "wrote to us may be answered for `reply_window_hours` after their last message "
            "(inbound implies consent to a reply). An opt-out always wins: nothing is sent on "
            "an opted-out channel, replies included."
        ),
        "kind": "consent_required",
        "severity": "block",
        "channels": ["sms", "whatsapp"],
        "config": {
            "channels": ["sms", "whatsapp"],
            "requires": "opted_in",
            "reply_window_hours": 24,
        },
    },
    {
        "key": "no-claiming-to-be-human",
        "name": "Never claim to be a human",
        "description": (
            "The assistant is automated and must say so when asked (California B.O.T. Act, "
            "platform policies). Replies claiming to be a real person are blocked."
        ),
        "kind": "forbidden_phrase",
        "severity": "block",
        "pattern": (
            r"\b(i'?m|i am)\s+(a\s+)?(real|actual|live)\s+(person|human)"
            r"|\b(i'?m|i am)\s+(a\s+)?human\b"
            r"|\b(i'?m|i am)\s+not\s+(a\s+|an\s+)?(bot|robot|ai|machine|virtual assistant|automated)"
        ),
        "channels": [],
    },
]

# The four shipped n8n workflows (the JSON files live in n8n/workflows/).
WORKFLOW_TEMPLATES = [
    {
        "key": "lead-qualify-book",
        "name": "Lead → Qualify → Book",
        "description": (
            "Greets a new lead, asks the niche's qualification questions, scores the lead, "
            "offers open slots and books the one the contact picks; creates a follow-up task "
            "when the lead goes quiet."
        ),
        "trigger_event": "lead.created",
        "file": "n8n/workflows/lead-qualify-book.json",
    },
    {
        "key": "message-received-ai-reply",
        "name": "Message received → AI reply → send",
        "description": (
            "On every inbound message, asks the decision API what to do and carries out its "
            "actions: send the reply, book, hand off to a person."
        ),
        "trigger_event": "message.received",
        "file": "n8n/workflows/message-received-ai-reply.json",
    },
    {
        "key": "no-show-follow-up",
        "name": "No-show → follow-up sequence",
        "description": (
            "After a missed booking: a friendly rebooking message with new slots, a template "
            "follow-up if the contact stays quiet, then a task for the team."
        ),
        "trigger_event": "booking.no_show",
        "file": "n8n/workflows/no-show-follow-up.json",
    },
    {
        "key": "deal-won-onboarding",
        "name": "Deal won → onboarding",
        "description": (
            "Welcomes the new client with the niche's onboarding message, tags them and "
            "creates the team's onboarding tasks."
        ),
        "trigger_event": "deal.won",
        "file": "n8n/workflows/deal-won-onboarding.json",
    },
]

# WhatsApp message templates for sends outside the 24-hour window. Each organization submits
# these bodies under the same names to Meta from its WhatsApp Business Account (approval is
# per account); the shared rows are the defaults the send service falls back to.
PLATFORM_TEMPLATES = [
    {
        "channel": "whatsapp",
        "purpose": "follow_up",
        "name": "sb_follow_up",
        "language": "en_US",
        "category": "marketing",
        "body": (
            "Hi {{1}}, it's {{2}}. Just following up on your enquiry: are you still interested? "
            "Reply here and we'll pick up where we left off. Reply STOP to opt out."
        ),
        "variables": ["first_name", "business_name"],
    },
    {
        "channel": "whatsapp",
        "purpose": "reminder",
        "name": "sb_appointment_reminder",
        "language": "en_US",
        "category": "utility",
        "body": (
            "Hi {{1}}, this is a reminder of your {{2}} with {{3}} on {{4}} at {{5}}. "
            "If you need to reschedule, reply here and we'll find a new time."
        ),
        "variables": [
            "first_name",
            "appointment_type",
            "business_name",
            "booking_date",
            "booking_time",
        ],
    },
    {
        "channel": "whatsapp",
        "purpose": "no_show",
        "name": "sb_missed_appointment",
        "language": "en_US",
        "category": "utility",
        "body": (
            "Hi {{1}}, we missed you at your {{2}} with {{3}}. No problem: reply here and "
            "we'll find you a new time."
        ),
        "variables": ["first_name", "appointment_type", "business_name"],
    },
    {
        "channel": "whatsapp",
        "purpose": "reactivation",
        "name": "sb_reactivation",
        "language": "en_US",
        "category": "marketing",
        "body": (
            "Hi {{1}}, it's been a while! Everyone at {{2}} would love to see you again. "
            "Reply here if you'd like us to find a time that suits you. Reply STOP to opt out."
        ),
        "variables": ["first_name", "business_name"],
    },
    {
        "channel": "whatsapp",
        "purpose": "booking_confirmation",
        "name": "sb_booking_confirmation",
        "language": "en_US",
        "category": "utility",
        "body": (
            "Hi {{1}}, your {{2}} with {{3}} is confirmed for {{4}} at {{5}}. "
            "Reply here if you have any questions."
        ),
        "variables": [
            "first_name",
            "appointment_type",
            "business_name",
            "booking_date",
            "booking_time",
        ],
    },
]
