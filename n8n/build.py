"""Build the shipped n8n workflows (`n8n/workflows/*.json`) from one description.

The four workflows share their shape; only the event they handle, the decision trigger they
ask for and whether their waits end once the contact has booked differ. The JavaScript of
their Code nodes lives in `n8n/src/*.js` (tested on its own in `tests/n8n/`).

    python n8n/build.py           # write n8n/workflows/*.json
    python n8n/build.py --check   # exit 1 when a file is not what this script writes

Shape (node names as they appear in n8n):

    Switchboard event (Webhook, POST, raw body) → Verify signature (Code) → Signature valid? (IF)
      ├ no  → Reject (401) → Stop: bad signature (Code, throws: the execution ends in error)
      └ yes → Accept (202) → Read the event (Code) → Anything to do? (IF) → Ask Switchboard
              (HTTP POST /decisions/) → Carry out the actions (Code) → What next? (Switch)
                ├ wait   → Wait until it is time → [Booked since? (HTTP GET /bookings/)]
                │          → [Replied since? (HTTP GET /conversations/<id>/)] → Carry out…
                ├ ask    → Ask again: follow-up due (HTTP POST /decisions/) → Carry out…
                ├ failed → Stop: an action failed (Code, throws)
                └ done
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SRC = ROOT / "src"
OUT = ROOT / "workflows"
NAMESPACE = uuid.UUID("6f1d7c52-3b0e-4a57-9a39-8a2a5e8d0c11")

WEBHOOK = "Switchboard event"
VERIFY = "Verify signature"
VALID = "Signature valid?"
REJECT = "Reject"
STOP_BAD = "Stop: bad signature"
ACCEPT = "Accept"
READ = "Read the event"
ANYTHING = "Anything to do?"
ASK = "Ask Switchboard"
CARRY_OUT = "Carry out the actions"
NEXT = "What next?"
WAIT = "Wait until it is time"
BOOKED = "Booked since?"
REPLIED = "Replied since?"
ASK_AGAIN = "Ask again: follow-up due"
STOP_FAILED = "Stop: an action failed"

BASE_URL = "{{ $env.SWITCHBOARD_URL.replace(/\\/+$/, '') }}/api/v1"
AUTH_HEADER = {"name": "Authorization", "value": "=Bearer {{ $env.SWITCHBOARD_API_KEY }}"}
TRACE_HEADER = {"name": "traceparent", "value": "={{ $json.ctx.traceparent }}"}
# The checks after a wait read the state the Wait node passed on (their input may be the
# previous check's answer).
WAITED = f"$('{WAIT}').last().json.ctx"
NEXT_OUTPUTS = ("wait", "ask", "failed", "done")


@dataclass(frozen=True)
class Workflow:
    key: str  # file name and the niches' WorkflowTemplate key
    id: str  # fixed n8n workflow id (import + publish by id)
    name: str
    event_type: str
    trigger: str  # the decision API trigger
    stop_when_booked: bool  # after a wait nothing more is sent once the contact has booked
    stop_when_replied: bool  # … or once the contact has written to us

    @property
    def path(self) -> str:
        return "switchboard-" + self.event_type.replace(".", "-")


WORKFLOWS = (
    Workflow(
        "lead-qualify-book",
        "swbLeadQualify01",
        "Switchboard: Lead → Qualify → Book",
        "lead.created",
        "lead.created",
        stop_when_booked=True,
        stop_when_replied=True,
    ),
    Workflow(
        "message-received-ai-reply",
        "swbMessageReply1",
        "Switchboard: Message received → AI reply → send",
        "message.received",
        "message.received",
        stop_when_booked=False,
        stop_when_replied=True,
    ),
    Workflow(
        "no-show-follow-up",
        "swbNoShowFollow1",
        "Switchboard: No-show → follow-up sequence",
        "booking.no_show",
        "booking.no_show",
        stop_when_booked=True,
        stop_when_replied=True,
    ),
    Workflow(
        "deal-won-onboarding",
        "swbDealWonOnbrd1",
        "Switchboard: Deal won → onboarding",
        "deal.won",
        "deal.won",
        stop_when_booked=False,
        stop_when_replied=False,
    ),
)


def _source(name: str) -> str:
    return (SRC / name).read_text()


def _node(workflow: Workflow, name: str, type_: str, version: float, position, parameters, **extra):
    return {
        "id": str(uuid.uuid5(NAMESPACE, f"{workflow.key}/{name}")),
        "name": name,
        "type": f"n8n-nodes-base.{type_}",
        "typeVersion": version,
        "position": list(position),
        "parameters": parameters,
        **extra,
    }


def _code(workflow, name, position, code: str):
    return _node(workflow, name, "code", 2, position, {"jsCode": code})


def _if(workflow, name, position, left: str, operator: dict):
    return _node(
        workflow,
        name,
        "if",
        2.2,
        position,
        {
            "conditions": {
                "options": {
                    "caseSensitive": True,
                    "leftValue": "",
                    "typeValidation": "strict",
                    "version": 2,
                },
                "conditions": [
                    {
                        "id": str(uuid.uuid5(NAMESPACE, f"{workflow.key}/{name}/condition")),
                        "leftValue": left,
                        "rightValue": "",
                        "operator": operator,
                    }
                ],
                "combinator": "and",
            },
            "options": {},
        },
    )


def _respond(workflow, name, position, status: int, body: str):
    return _node(
        workflow,
        name,
        "respondToWebhook",
        1.1,
        position,
        {"respondWith": "json", "responseBody": body, "options": {"responseCode": status}},
    )


def _api(
    workflow,
    name,
    position,
    *,
    method: str,
    path: str,
    headers=(),
    query=(),
    body=None,
    trace=TRACE_HEADER,
    never_error=False,
):
    options = {"timeout": 30000}
    if never_error:  # an answer other than 2xx is data for the next node, not a failure
        options["response"] = {"response": {"neverError": True}}
    parameters = {
        "method": method,
        "url": f"={BASE_URL}/{path}",
        "sendQuery": bool(query),
        "queryParameters": {"parameters": list(query)},
        "sendHeaders": True,
        "headerParameters": {"parameters": [AUTH_HEADER, *headers, trace]},
        "sendBody": body is not None,
        "options": options,
    }
    if body is not None:
        parameters.update(specifyBody="json", jsonBody=body)
    if not query:
        del parameters["queryParameters"]
    return _node(
        workflow,
        name,
        "httpRequest",
        4.2,
        position,
        parameters,
        retryOnFail=True,
        maxTries=3,
        waitBetweenTries=2000,
    )


def build(workflow: Workflow) -> dict:
    config = {
        "name": workflow.key,
        "event_type": workflow.event_type,
        "trigger": workflow.trigger,
        "stop_when_booked": workflow.stop_when_booked,
        "stop_when_replied": workflow.stop_when_replied,
    }
    checks = {
        "read": READ,
        "wait": WAIT,
        "booked": BOOKED if workflow.stop_when_booked else None,
        "replied": REPLIED if workflow.stop_when_replied else None,
    }
    nodes = [
        _node(
            workflow,
            WEBHOOK,
            "webhook",
            2.1,
            (0, 300),
            {
                "httpMethod": "POST",
                "path": workflow.path,
                "responseMode": "responseNode",
                "options": {"rawBody": True},
            },
            webhookId=str(uuid.uuid5(NAMESPACE, f"{workflow.key}/webhook")),
        ),
        _code(workflow, VERIFY, (220, 300), _source("verify_signature.js")),
        _if(
            workflow,
            VALID,
            (440, 300),
            "={{ $json.valid }}",
            {"type": "boolean", "operation": "true", "singleValue": True},
        ),
        _respond(
            workflow, REJECT, (660, 480), 401, "={{ JSON.stringify({ error: $json.reason }) }}"
        ),
        _code(
            workflow,
            STOP_BAD,
            (880, 480),
            "// A delivery that is not signed by Switchboard: nothing was called.\n"
            "throw new Error(`Rejected delivery: ${$json.reason}`);\n",
        ),
        _respond(
            workflow, ACCEPT, (660, 200), 202, "={{ JSON.stringify({ received: $json.event.id }) }}"
        ),
        _code(
            workflow,
            READ,
            (880, 200),
            f"const WORKFLOW = {json.dumps(config)};\n\n" + _source("read_event.js"),
        ),
        _if(
            workflow,
            ANYTHING,
            (1100, 200),
            "={{ $json.skip }}",
            {"type": "string", "operation": "empty", "singleValue": True},
        ),
        _api(
            workflow,
            ASK,
            (1320, 180),
            method="POST",
            path="decisions/",
            headers=[{"name": "Idempotency-Key", "value": "={{ $json.ctx.event_id }}:decision"}],
            body="={{ JSON.stringify($json.decision_request) }}",
        ),
        _code(
            workflow,
            CARRY_OUT,
            (1540, 200),
            f"const NODES = {json.dumps(checks)};\n\n" + _source("carry_out.js"),
        ),
        _node(
            workflow,
            NEXT,
            "switch",
            3.2,
            (1760, 200),
            {
                "mode": "expression",
                "numberOutputs": len(NEXT_OUTPUTS),
                "output": "={{ " + json.dumps(list(NEXT_OUTPUTS)) + ".indexOf($json.next) }}",
            },
        ),
        _node(
            workflow,
            WAIT,
            "wait",
            1.1,
            (1980, 0),
            {"resume": "specificTime", "dateTime": "={{ $json.wait_until }}"},
            webhookId=str(uuid.uuid5(NAMESPACE, f"{workflow.key}/wait")),
        ),
        _api(
            workflow,
            ASK_AGAIN,
            (1980, 200),
            method="POST",
            path="decisions/",
            headers=[
                {
                    "name": "Idempotency-Key",
                    "value": "={{ $json.follow_up_request.event_id }}:decision",
                }
            ],
            body="={{ JSON.stringify($json.follow_up_request) }}",
        ),
        _code(
            workflow,
            STOP_FAILED,
            (1980, 400),
            "// Some actions could not be carried out (see the previous node's results).\n"
            "throw new Error($json.summary);\n",
        ),
    ]
    chain = [WAIT]  # what runs after a wait, in order, before carrying out again
    trace_after_wait = {"name": "traceparent", "value": f"={{{{ {WAITED}.traceparent }}}}"}
    if workflow.stop_when_booked:
        nodes.append(
            _api(
                workflow,
                BOOKED,
                (2200, 0),
                method="GET",
                path="bookings/",
                query=[
                    {"name": "contact", "value": f"={{{{ {WAITED}.contact_id }}}}"},
                    {"name": "status", "value": "scheduled,confirmed"},
                    {"name": "from", "value": "={{ $now.toUTC().toISO() }}"},
                ],
                trace=trace_after_wait,
            )
        )
        chain.append(BOOKED)
    if workflow.stop_when_replied:
        nodes.append(
            _api(
                workflow,
                REPLIED,
                (2420, 0),
                method="GET",
                # Unknown conversation (nothing sent yet): a 404 the next node ignores.
                path=f"conversations/{{{{ {WAITED}.conversation_id || 'none' }}}}/",
                trace=trace_after_wait,
                never_error=True,
            )
        )
        chain.append(REPLIED)
    chain.append(CARRY_OUT)

    def to(*names):
        return [{"node": name, "type": "main", "index": 0} for name in names]

    connections = {
        WEBHOOK: {"main": [to(VERIFY)]},
        VERIFY: {"main": [to(VALID)]},
        VALID: {"main": [to(ACCEPT), to(REJECT)]},
        REJECT: {"main": [to(STOP_BAD)]},
        ACCEPT: {"main": [to(READ)]},
        READ: {"main": [to(ANYTHING)]},
        ANYTHING: {"main": [to(ASK), []]},
        ASK: {"main": [to(CARRY_OUT)]},
        CARRY_OUT: {"main": [to(NEXT)]},
        NEXT: {"main": [to(WAIT), to(ASK_AGAIN), to(STOP_FAILED), []]},
        ASK_AGAIN: {"main": [to(CARRY_OUT)]},
    }
    for source, target in itertools.pairwise(chain):
        connections[source] = {"main": [to(target)]}
    return {
        "id": workflow.id,
        "name": workflow.name,
        "nodes": nodes,
        "connections": connections,
        "settings": {"executionOrder": "v1"},
        "pinData": {},
        "active": False,
        "meta": {"switchboard": {"event_type": workflow.event_type, "built_by": "n8n/build.py"}},
    }


def render(workflow: Workflow) -> str:
    return json.dumps(build(workflow), indent=2, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a file is stale")
    args = parser.parse_args(argv)
    stale = []
    OUT.mkdir(exist_ok=True)
    for workflow in WORKFLOWS:
        path = OUT / f"{workflow.key}.json"
        text = render(workflow)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        print("stale: " + ", ".join(str(p) for p in stale) + " (run python n8n/build.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
