"""End-to-end suite with a real n8n (`make e2e`).

Starts the Core App (gunicorn + a Celery worker + beat) on 127.0.0.1 with a fresh database,
a fake Twilio API (records what it is asked to send, answers like Twilio), and n8n with the
four shipped workflows imported and published; sets up an organization, API keys and a
Twilio channel with the operator CLI; subscribes n8n with `connect_n8n`; then drives real
flows and checks their outcome from the outside: the Core API, the CLI and admin, what the
fake Twilio received, and n8n's own execution table.

    python e2e/run.py [--n8n PATH] [--workdir DIR] [--keep-running]

Prints a summary (every check, and how long each flow took), keeps every process's log in
the work directory it prints, stops every process it started (also on failure or Ctrl-C),
and exits 1 when any check failed. Waits in the workflows are compressed with
SWITCHBOARD_WAIT_SCALE (E2E_WAIT_SCALE, default 0.0002: a day takes 17 s).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import requests
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from e2e.stack import Stack, node_output, wait_until  # noqa: E402
from tests.support.http import Receiver, Reply  # noqa: E402

SAMPLES = ROOT / "tests" / "providers" / "samples"
TWILIO = {
    "account_sid": "AC00000000000000000000000000000000",
    "auth_token": "e2e_auth_token_0123456789abcdef",
    "from_number": "+12028831111",
}
LEAD_PATH = "switchboard-lead-created"
MESSAGE_PATH = "switchboard-message-received"
NO_SHOW_PATH = "switchboard-booking-no_show"
DEAL_PATH = "switchboard-deal-won"
FINISHED = ("success", "error", "crashed", "canceled")


class Failure(Exception):
    pass


# --- reporting ---------------------------------------------------------------------------


@dataclass
class Flow:
    name: str
    checks: list[tuple[bool, str]] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


class Report:
    def __init__(self, log_path: Path):
        self.flows: list[Flow] = []
        self.current: Flow | None = None
        self.log_path = log_path

    def check(self, condition, text: str) -> None:
        self.current.checks.append((bool(condition), text))
        mark = "ok " if condition else "FAIL"
        print(f"    [{mark}] {text}", flush=True)
        if not condition:
            raise Failure(text)

    @contextmanager
    def flow(self, name: str):
        flow = Flow(name)
        self.flows.append(flow)
        self.current = flow
        print(f"\n== {name}", flush=True)
        started = time.monotonic()
        try:
            yield flow
        except Failure as exc:
            flow.error = str(exc)
        except KeyboardInterrupt:
            flow.error = "interrupted"
            raise
        except Exception as exc:  # a crash in a flow is a failed flow, not the end of the suite
            text = str(exc).strip().splitlines()
            flow.error = f"{type(exc).__name__}: {' / '.join(text[:1] + text[-2:])}"[:400]
            with self.log_path.open("a") as log:
                log.write(f"--- {name}\n{traceback.format_exc()}\n")
            print(f"    [FAIL] {flow.error} (traceback in {self.log_path})", flush=True)
        finally:
            flow.seconds = time.monotonic() - started

    @property
    def failed(self) -> bool:
        return any(flow.error for flow in self.flows)

    def summary(self) -> str:
        lines = ["", "=" * 78, "End-to-end summary (real n8n)", "=" * 78]
        for flow in self.flows:
            passed = sum(ok for ok, _ in flow.checks)
            status = "FAILED" if flow.error else "passed"
            lines.append(
                f"{status:7} {flow.seconds:6.1f} s  {flow.name}  ({passed} check(s) passed)"
            )
            for ok, text in flow.checks:
                lines.append(f"          {'✓' if ok else '✗'} {text}")
            if flow.error and not (flow.checks and not flow.checks[-1][0]):
                lines.append(f"          ✗ {flow.error}")
        total = sum(flow.seconds for flow in self.flows)
        lines.append(f"{'':7} {total:6.1f} s  total")
        return "\n".join(lines)


# --- clients -----------------------------------------------------------------------------


class Api:
    """The Core API as any client sees it."""

    def __init__(self, base_url: str, key: str):
        self.base = base_url.rstrip("/") + "/api/v1/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def call(self, method: str, path: str, body=None, params=None, expect=(200, 201, 202)):
        headers = {"Idempotency-Key": str(uuid.uuid4())} if method != "GET" else {}
        response = self.session.request(
            method, self.base + path, json=body, params=params, headers=headers, timeout=30
        )
        if expect and response.status_code not in expect:
            raise Failure(
                f"{method} /api/v1/{path} → {response.status_code}: {response.text[:400]}"
            )
        return response

    def get(self, path: str, **params):
        return self.call("GET", path, params=params).json()

    def post(self, path: str, body=None, **kwargs):
        return self.call("POST", path, body=body or {}, **kwargs).json()

    def events(self, type_: str | None = None, **params) -> list[dict]:
        if type_:
            params["type"] = type_
        return self.get("events/", **params)["results"]

    def event_for(self, type_: str, timeout: float = 30, **data) -> dict:
        """The newest event of a type whose data has these values (waits for it)."""

        def find():
            for event in self.events(type_):
                if all(event["data"].get(k) == v for k, v in data.items()):
                    return event
            return None

        return wait_until(find, timeout=timeout, what=f"a {type_} event with {data}")


class FakeTwilio:
    """Twilio's send API on 127.0.0.1 (answers like twilio_send_response_201.json, records
    every request), and signed Twilio webhooks to the Core App."""

    def __init__(self):
        self.receiver = Receiver()
        self.template = json.loads((SAMPLES / "twilio_send_response_201.json").read_text())
        self.receiver.respond(self._reply)
        self.validator = RequestValidator(TWILIO["auth_token"])
        self.channel: dict = {}

    def _reply(self, request):
        if request.method == "POST" and request.path.endswith("/Messages.json"):
            form = request.form()
            body = {
                **self.template,
                "sid": "SM" + uuid.uuid4().hex,
                "to": form.get("To"),
                "from": form.get("From", TWILIO["from_number"]),
                "body": form.get("Body", ""),
            }
            return Reply(status=201, body=body)
        return Reply(status=404, body={"code": 20404, "message": "not found"})

    def start(self):
        self.receiver.__enter__()
        return self

    def close(self):
        self.receiver.__exit__(None, None, None)

    @property
    def url(self) -> str:
        return self.receiver.url

    def sent_to(self, phone: str) -> list[dict]:
        out = []
        for request in list(self.receiver.requests):
            if request.path.endswith("/Messages.json"):
                form = request.form()
                if form.get("To") == phone:
                    out.append({"form": form, "headers": request.headers})
        return out

    def wait_sent_to(self, phone: str, count: int, timeout: float = 45) -> list[dict]:
        return wait_until(
            lambda: (sent := self.sent_to(phone)) and len(sent) >= count and sent,
            timeout=timeout,
            what=f"{count} message(s) sent to {phone} through the fake Twilio",
        )

    def _post(self, url: str, params: list[tuple[str, str]]):
        signature = self.validator.compute_signature(url, dict(params))
        return requests.post(
            url, data=params, headers={"X-Twilio-Signature": signature}, timeout=30
        )

    def inbound(self, phone: str, text: str) -> tuple[int, str]:
        sid = "SM" + uuid.uuid4().hex
        changes = {
            "From": phone,
            "To": TWILIO["from_number"],
            "Body": text,
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": TWILIO["account_sid"],
        }
        form = parse_qsl((SAMPLES / "twilio_inbound.form").read_text(), keep_blank_values=True)
        params = [(k, changes.pop(k) if k in changes else v) for k, v in form]
        response = self._post(self.channel["inbound_url"], params)
        return response.status_code, sid

    def status(self, sid: str, phone: str, status: str) -> int:
        changes = {
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": phone,
            "From": TWILIO["from_number"],
            "AccountSid": TWILIO["account_sid"],
        }
        form = parse_qsl(
            (SAMPLES / "twilio_status_delivered.form").read_text(), keep_blank_values=True
        )
        params = [(k, changes.pop(k) if k in changes else v) for k, v in form]
        return self._post(self.channel["status_url"], params).status_code


class Console:
    """The Django admin, as an operator uses it."""

    def __init__(self, base_url: str, email: str, password: str):
        self.base = base_url.rstrip("/")
        self.session = requests.Session()
        self._submit("/admin/login/", {"username": email, "password": password, "next": "/admin/"})

    def _token(self, path: str) -> str:
        page = self.session.get(self.base + path, timeout=30)
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        if page.status_code != 200 or not match:
            raise Failure(f"GET {path} → {page.status_code} without a form")
        return match.group(1)

    def _submit(self, path: str, data: dict) -> requests.Response:
        token = self._token(path)
        response = self.session.post(
            self.base + path,
            data={**data, "csrfmiddlewaretoken": token},
            headers={"Referer": self.base + path},
            allow_redirects=False,
            timeout=30,
        )
        if response.status_code != 302:
            errors = re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.text, re.S)
            raise Failure(f"POST {path} → {response.status_code} {errors[:3]}")
        return response

    def add_lead(self, organization_id: str, contact_id: str, **fields) -> None:
        self._submit(
            "/admin/crm/lead/add/",
            {
                "organization": organization_id,
                "contact": contact_id,
                "campaign": "",
                "owner": "",
                "_save": "Save",
                **fields,
            },
        )


# --- helpers -----------------------------------------------------------------------------


def daytime_zone(now: datetime) -> str:
    """A fixed-offset zone where it is about noon: business-initiated texts are not held
    for quiet hours (9 PM to 8 AM, the contact's local time)."""
    offset = 12 - now.hour
    if offset == 0:
        return "Etc/GMT"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    import hashlib
    import hmac

    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Suite:
    def __init__(self, stack: Stack, twilio: FakeTwilio, report: Report):
        self.stack = stack
        self.twilio = twilio
        self.report = report
        self.check = report.check
        self.workflow_ids = stack.workflow_ids()
        self.zone = daytime_zone(datetime.now(UTC))
        self.phones = (f"+1415555{n:04d}" for n in range(101, 200))

    # --- set-up ---------------------------------------------------------------------------
    def set_up(self) -> None:
        stack = self.stack
        org = stack.manage_json(
            "create_organization",
            "--name",
            "Pulse Fitness",
            "--niche",
            "fitness",
            "--slug",
            "pulse",
        )
        self.organization_id = org["id"]
        self.check(org["slug"] == "pulse", "create_organization: pulse (fitness)")
        self.n8n_key = stack.manage_json("create_api_key", "--org", "pulse", "--name", "n8n")["key"]
        runner_key = stack.manage_json("create_api_key", "--org", "pulse", "--name", "e2e")["key"]
        self.api = Api(stack.base_url, runner_key)
        channel = stack.manage_json(
            "create_channel",
            "--org",
            "pulse",
            "--provider",
            "twilio",
            "--config",
            json.dumps({**TWILIO, "api_base": self.twilio.url}),
        )
        self.twilio.channel = channel
        self.check(
            channel["inbound_url"].startswith(stack.base_url + "/hooks/twilio/"),
            "create_channel: Twilio channel whose API base is the fake Twilio",
        )
        self.secret = whsec()
        connected = stack.manage_json(
            "connect_n8n", "--org", "pulse", "--n8n-url", stack.n8n_url, "--secret", self.secret
        )
        urls = sorted(s["url"] for s in connected["subscriptions"])
        self.check(
            urls == sorted(f"{stack.n8n_url}/webhook/{p}" for p in self.workflow_ids),
            "connect_n8n: each shipped workflow's webhook subscribed to its event type",
        )
        self.operator_email, self.operator_password = "ops@pulse.test", uuid.uuid4().hex
        stack.manage(
            "create_operator",
            "--org",
            "pulse",
            "--email",
            self.operator_email,
            "--role",
            "operator",
            "--password",
            self.operator_password,
        )

    def start_n8n(self) -> None:
        self.stack.start_n8n(api_key=self.n8n_key, webhook_secret=self.secret)
        self.check(True, f"n8n up with {len(self.workflow_ids)} workflows published and active")

    # --- helpers --------------------------------------------------------------------------
    def contact(self, name: str) -> dict:
        phone = next(self.phones)
        contact = self.api.post(
            "contacts/",
            {
                "name": name,
                "phone": phone,
                "timezone": self.zone,
                "consent": {"sms": {"opted_in": True, "reason": "web form"}},
            },
        )
        return contact

    def executions_for(self, path: str, event_id: str) -> list[dict]:
        """n8n's executions of the workflow on `path` for one event, oldest first."""
        runs = []
        for execution in self.stack.n8n_executions(self.workflow_ids[path]):
            items = node_output(execution, "Switchboard event")
            if items and (items[0].get("body") or {}).get("id") == event_id:
                runs.append(execution)
        return runs

    def execution(self, path: str, event_id: str, timeout: float = 60, index: int = 0) -> dict:
        """The `index`-th execution for the event, once it has finished."""

        def find():
            runs = self.executions_for(path, event_id)
            if len(runs) > index and runs[index]["status"] in FINISHED:
                return runs[index]
            return None

        return wait_until(find, timeout=timeout, what=f"n8n to finish {path} for {event_id}")

    def decision_for(self, event_id: str, timeout: float = 30) -> dict:
        return self.api.event_for("decision.made", timeout=timeout, event_id=event_id)

    def inbound(self, phone: str, text: str) -> dict:
        status, sid = self.twilio.inbound(phone, text)
        self.check(status == 200, f"signed Twilio inbound SMS {text!r} → 200")
        return self.api.event_for("message.received", provider_message_id=sid)

    # --- flows ----------------------------------------------------------------------------
    def flow_inbound_reply(self) -> None:
        api, check = self.api, self.check
        phone = next(self.phones)
        received = self.inbound(phone, "Hi! Can I book a free trial class?")
        contact_id = received["data"]["contact_id"]
        [contact] = api.get("contacts/", search=phone[-7:])["results"]
        check(contact["id"] == contact_id, "a contact was created for the new number")
        [lead] = api.get("leads/", contact_id=contact_id)["results"]
        check(lead["source"] == "sms", "and a lead (source sms)")
        trace = received["trace_id"]
        execution = self.execution(MESSAGE_PATH, received["id"])
        check(execution["status"] == "success", f"workflow 2 execution {execution['id']}: success")
        [decision] = node_output(execution, "Ask Switchboard")
        check(
            decision["trigger"] == "message.received"
            and "send_message" in [a["type"] for a in decision["actions"]],
            f"workflow 2 asked the decision API: {[a['type'] for a in decision['actions']]}",
        )
        [state] = node_output(execution, "Carry out the actions")
        [send] = [r for r in state["results"] if r["type"] == "send_message"]
        check(send["status"] == "done", "and sent the reply through POST /messages/")
        message = wait_until(
            lambda: (m := api.get(f"messages/{send['id']}/"))["status"] == "sent" and m,
            timeout=30,
            what="the reply to be sent",
        )
        [request] = self.twilio.wait_sent_to(phone, 1)
        check(
            request["form"]["Body"] == message["text"] and message["provider_message_id"],
            f"the fake Twilio got the reply; the message is `sent` ({message['provider_message_id']})",
        )
        status = self.twilio.status(message["provider_message_id"], phone, "delivered")
        check(status == 200, "signed Twilio status callback (delivered) → 200")
        wait_until(
            lambda: api.get(f"messages/{send['id']}/")["status"] == "delivered",
            timeout=20,
            what="the reply to be delivered",
        )
        check(True, "the reply is `delivered`")
        lead_event = api.event_for("lead.created", contact_id=contact_id)
        first = self.execution(LEAD_PATH, lead_event["id"])
        [read] = node_output(first, "Read the event")
        check(
            first["status"] == "success"
            and "Ask Switchboard" not in first["run_data"]
            and "wrote first" in read["skip"],
            "workflow 1 left this lead to workflow 2 (one answer to one message)",
        )
        check(len(self.twilio.sent_to(phone)) == 1, "exactly one message was sent to the contact")
        # One trace id from the inbound webhook to the provider call.
        made = self.decision_for(received["id"])
        sent_event = api.event_for("message.sent", message_id=send["id"])
        rows = dict(
            self.stack.query(
                "SELECT direction, trace_id FROM conversations_message WHERE id = ANY(%s)",
                [[uuid.UUID(received["data"]["message_id"]), uuid.UUID(send["id"])]],
            )
        )
        traceparent = request["headers"].get("traceparent", "")
        places = {
            "inbound message (Message.trace_id)": rows.get("in"),
            "message.received event": trace,
            "n8n's call back: the decision (response and decision.made event)": (
                decision["trace_id"] if decision["trace_id"] == made["trace_id"] else "differs"
            ),
            "outbound message (Message.trace_id)": rows.get("out"),
            "message.sent event": sent_event["trace_id"],
            "Twilio send request (traceparent header)": traceparent.split("-")[1]
            if traceparent.count("-") == 3
            else "",
        }

        def deliver_logged():
            for line in self.stack.processes["worker"].log().splitlines():
                if "message_deliver" in line and send["id"] in line and "succeeded" in line:
                    try:
                        return json.loads(line)  # logged inside the task: it has its trace
                    except ValueError:
                        continue
            return None

        deliver = wait_until(deliver_logged, timeout=10, what="the worker's log of the send")
        places["worker's JSON log line of the send task"] = (deliver or {}).get("trace_id")
        for place, value in places.items():
            check(value == trace, f"trace {trace} on the {place}")

    def flow_lead_qualify_book(self) -> None:
        api, check = self.api, self.check
        contact = self.contact("Sam Rivera")
        phone = contact["phone"]
        console = Console(self.stack.base_url, self.operator_email, self.operator_password)
        console.add_lead(
            self.organization_id,
            contact["id"],
            source="web_form",
            answers=json.dumps({"goal": "strength"}),
        )
        lead_event = api.event_for("lead.created", contact_id=contact["id"])
        check(lead_event["data"]["source"] == "web_form", "an operator added a lead in the console")
        [question] = self.twilio.wait_sent_to(phone, 1)
        made = self.decision_for(lead_event["id"])
        types = [a["type"] for a in made["data"]["actions"]]
        check(
            made["data"]["trigger"] == "lead.created" and "schedule_follow_up" in types,
            f"workflow 1 asked the decision API (lead.created): {types}",
        )
        check(
            question["form"]["Body"]
            == next(a["body"] for a in made["data"]["actions"] if a["type"] == "send_message"),
            f"and sent its message: {question['form']['Body'][:70]!r}…",
        )
        answer = self.inbound(phone, "This week please")
        offer = self.decision_for(answer["id"])
        actions = {a["type"]: a for a in offer["data"]["actions"]}
        check(
            "update_lead" in actions and "offer_slots" in actions,
            f"the answer qualifies and gets slots: {list(actions)}",
        )
        offered = actions["offer_slots"]["slots"]
        now = datetime.now(UTC)
        listing = api.get(
            "bookings/slots/",
            appointment_type=actions["offer_slots"]["appointment_type"],
            start=now.isoformat(),
            end=(now + timedelta(days=30)).isoformat(),
        )
        free = {parse_time(s["start"]) for s in listing["slots"]}
        check(
            {parse_time(s["start"]) for s in offered} <= free,
            f"the {len(offered)} offered slots are free slots of GET /bookings/slots/",
        )
        self.twilio.wait_sent_to(phone, 2)
        lead = wait_until(
            lambda: (
                (lead := api.get(f"leads/{lead_event['data']['lead_id']}/"))["answers"].get(
                    "start_timing"
                )
                and lead
            ),
            timeout=20,
            what="the lead's answer to be recorded",
        )
        check(
            lead["answers"]["start_timing"] == "this week",
            f"n8n recorded the answer on the lead (PATCH /leads/): status {lead['status']}, "
            f"score {lead['score']}",
        )
        self.inbound(phone, "The first one")
        bookings = wait_until(
            lambda: api.get("bookings/", contact=contact["id"])["results"],
            timeout=30,
            what="the booking",
        )
        [booking] = bookings
        check(
            parse_time(booking["start"]) == parse_time(offered[0]["start"])
            and booking["source"] == "n8n",
            f"n8n booked the picked slot (POST /bookings/): {booking['start']}",
        )
        self.twilio.wait_sent_to(phone, 3)
        first = self.execution(LEAD_PATH, lead_event["id"], timeout=90)
        last = node_output(first, "Carry out the actions")[0]
        check(
            first["status"] == "success"
            and last.get("stopped")
            in ("the contact has booked since", "the contact has replied since"),
            f"workflow 1 waited for its follow-up, checked (GET /bookings/): "
            f"{last.get('stopped')}; stopped (execution {first['id']}: {first['status']})",
        )
        check(
            len(self.twilio.sent_to(phone)) == 3,
            "no follow-up was sent (3 messages: question, slots, confirmation)",
        )

    def flow_no_show(self) -> None:
        api, check = self.api, self.check
        contact = self.contact("Jo Park")
        phone = contact["phone"]
        booking_id = self.past_booking(contact["id"])
        response = api.call("POST", f"bookings/{booking_id}/no-show/", {}, expect=(200, 409))
        status = api.get(f"bookings/{booking_id}/")["status"]
        check(status == "no_show", f"POST /bookings/<id>/no-show/ → {response.status_code}")
        event = api.event_for("booking.no_show", booking_id=booking_id)
        made = self.decision_for(event["id"])
        actions = {a["type"]: a for a in made["data"]["actions"]}
        check(
            {"send_message", "offer_slots", "schedule_follow_up"} <= set(actions),
            f"workflow 3 asked the decision API (booking.no_show): {list(actions)}",
        )
        [first] = self.twilio.wait_sent_to(phone, 1, timeout=30)
        check(
            first["form"]["Body"] == actions["send_message"]["body"],
            f"workflow 3 sent the first follow-up: {first['form']['Body'][:70]!r}…",
        )
        thanks = self.inbound(phone, "Thanks!")
        answered = self.decision_for(thanks["id"])
        sends = [a for a in answered["data"]["actions"] if a["type"] == "send_message"]
        execution = self.execution(NO_SHOW_PATH, event["id"], timeout=90)
        last = node_output(execution, "Carry out the actions")[0]
        check(
            execution["status"] == "success"
            and last.get("stopped") == "the contact has replied since",
            f"the contact replied; before its next follow-up workflow 3 checked "
            f"(GET /conversations/<id>/) and stopped (execution {execution['id']})",
        )
        check(
            len(self.twilio.sent_to(phone)) == 1 + len(sends),
            "no second follow-up was sent",
        )

    def past_booking(self, contact_id: str) -> str:
        """A scheduled booking that started yesterday morning (the bookings API rightly
        refuses past times, so it is made with the service and a clock set back)."""
        script = f"""
from datetime import UTC, datetime, timedelta
from apps.bookings.models import AppointmentType
from apps.bookings.services import booking_create
from apps.crm.models import Contact
contact = Contact.objects.get(pk="{contact_id}")
kind = AppointmentType.objects.get(organization=contact.organization, slug="free-trial-class")
day = datetime.now(UTC) - timedelta(days=1)
while day.weekday() > 4:
    day -= timedelta(days=1)
start = day.replace(hour=10, minute=0, second=0, microsecond=0)
booking = booking_create(organization=contact.organization, contact=contact,
    appointment_type=kind, start=start, now=start - timedelta(hours=3), source="e2e")
print(booking.pk)
"""
        result = self.stack.manage("shell", "-c", script)
        return result.stdout.strip().splitlines()[-1]

    def flow_deal_won(self) -> None:
        api, check = self.api, self.check
        contact = self.contact("Alex Kim")
        self.deal_contact = contact
        deal = api.post("deals/", {"contact_id": contact["id"], "title": "Monthly membership"})
        [pipeline] = [
            p for p in api.get("pipelines/")["results"] if p["id"] == deal["pipeline"]["id"]
        ]
        [won] = [s for s in pipeline["stages"] if s["is_won"]]
        moved = api.post(f"deals/{deal['id']}/stage/", {"stage_id": won["id"]})
        check(moved["status"] == "won", f"POST /deals/<id>/stage/ → {won['name']} (won)")
        event = api.event_for("deal.won", deal_id=deal["id"])
        execution = self.execution(DEAL_PATH, event["id"])
        check(execution["status"] == "success", f"workflow 4 execution {execution['id']}: success")
        made = self.decision_for(event["id"])
        wanted = [a["title"] for a in made["data"]["actions"] if a["type"] == "create_task"]
        tasks = api.get("tasks/", contact_id=contact["id"])["results"]
        check(
            sorted(t["title"] for t in tasks) == sorted(wanted) and len(wanted) >= 1,
            f"onboarding tasks created (POST /tasks/): {[t['title'][:40] for t in tasks]}",
        )
        check({t["source"] for t in tasks} == {"n8n"}, "by n8n (source n8n)")
        [welcome] = self.twilio.wait_sent_to(contact["phone"], 1)
        check(welcome["form"]["Body"], f"welcome message sent: {welcome['form']['Body'][:60]!r}…")
        tags = api.get(f"contacts/{contact['id']}/")["tags"]
        check("member" in tags, f"contact tagged (PATCH /contacts/): {tags}")
        # The same event again (a redelivery, or an n8n retry): every call is replayed.
        api.post(f"events/{event['id']}/redeliver/", {})
        again = self.execution(DEAL_PATH, event["id"], index=1)
        [state] = node_output(again, "Carry out the actions")
        calls = [r for r in state["results"] if r["status"] == "done"]
        check(
            again["status"] == "success" and calls and all(r.get("replayed") for r in calls),
            f"a redelivered event repeats nothing: {len(calls)} call(s) answered "
            "Idempotent-Replayed",
        )
        check(
            len(api.get("tasks/", contact_id=contact["id"])["results"]) == len(tasks)
            and len(self.twilio.sent_to(contact["phone"])) == 1,
            "still the same tasks and one welcome message",
        )

    def flow_bad_signature(self) -> None:
        api, check = self.api, self.check
        contact = getattr(self, "deal_contact", None) or self.contact("Robin Lee")
        tasks_before = len(api.get("tasks/", contact_id=contact["id"])["results"])
        trace = uuid.uuid4().hex
        url = f"{self.stack.n8n_url}/webhook/{DEAL_PATH}"

        def forged(event_id):
            return {
                "id": event_id,
                "type": "deal.won",
                "version": 1,
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "organization": {"id": self.organization_id, "slug": "pulse"},
                "sequence": 999999,
                "trace_id": trace,
                "data": {
                    "deal_id": str(uuid.uuid4()),
                    "contact_id": contact["id"],
                    "stage": "Member",
                },
            }

        now = int(time.time())
        cases = {
            "signed with another secret": (whsec(), now, False),
            "body altered after signing": (self.secret, now, True),
            "timestamp 10 minutes old": (self.secret, now - 600, False),
        }
        for case, (secret, timestamp, alter) in cases.items():
            event_id = str(uuid.uuid4())
            body = json.dumps(forged(event_id), separators=(",", ":")).encode()
            signature = sign(secret, event_id, timestamp, body)
            if alter:
                body = body.replace(b'"Member"', b'"Lost"')
            response = requests.post(
                url,
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "webhook-id": event_id,
                    "webhook-timestamp": str(timestamp),
                    "webhook-signature": signature,
                    "traceparent": f"00-{trace}-{uuid.uuid4().hex[:16]}-01",
                },
                timeout=30,
            )
            execution = self.execution(DEAL_PATH, event_id)
            ran = set(execution["run_data"])
            check(
                response.status_code == 401
                and execution["status"] == "error"
                and ran
                == {
                    "Switchboard event",
                    "Verify signature",
                    "Signature valid?",
                    "Reject",
                    "Stop: bad signature",
                },
                f"{case}: 401 {response.json().get('error', '')!r}; execution "
                f"{execution['id']} ended in error before any call",
            )
        check(api.events(trace_id=trace) == [], "the Core App saw no call with that event's trace")
        check(
            len(api.get("tasks/", contact_id=contact["id"])["results"]) == tasks_before,
            "and nothing was created",
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="End-to-end suite with a real n8n.")
    parser.add_argument("--n8n", help="n8n binary (default: what scripts/install_n8n.sh prints)")
    parser.add_argument("--workdir", help="where logs and n8n's data go (default: a new temp dir)")
    parser.add_argument(
        "--keep-running", action="store_true", help="leave the stack up until Ctrl-C"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    n8n_bin = (
        args.n8n
        or subprocess.run(
            ["bash", str(ROOT / "scripts" / "install_n8n.sh")],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="switchboard-e2e-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"e2e work directory (logs): {workdir}", flush=True)
    scale = float(os.environ.get("E2E_WAIT_SCALE", "0.0002"))
    stack = Stack(workdir, n8n_bin=n8n_bin, wait_scale=scale)
    twilio = FakeTwilio().start()
    report = Report(workdir / "e2e.log")

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # also when inherited ignored
        signal.signal(signum, interrupted)
    try:
        suite = Suite(stack, twilio, report)
        with report.flow("Stack: database, Core App (gunicorn, worker, beat), CLI set-up, n8n"):
            stack.reset_database()
            stack.start_core()
            suite.set_up()
            suite.start_n8n()
        if not report.failed:
            with report.flow("1. Inbound SMS from a new number → AI reply → sent → delivered"):
                suite.flow_inbound_reply()
            with report.flow("2. Lead → qualify → book (workflows 1 and 2)"):
                suite.flow_lead_qualify_book()
            with report.flow("3. No-show → first follow-up → stops when the contact replies"):
                suite.flow_no_show()
            with report.flow("4. Deal won → onboarding (and a redelivery repeats nothing)"):
                suite.flow_deal_won()
            with report.flow("5. Deliveries with a bad signature are rejected, nothing called"):
                suite.flow_bad_signature()
        if args.keep_running:
            print(f"\nStack up: Core {stack.base_url}, n8n {stack.n8n_url}. Ctrl-C to stop.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process", flush=True)
        if not report.flows or not report.flows[-1].error:
            report.flows.append(Flow("interrupted", error="interrupted"))
    finally:
        stack.stop()
        twilio.close()
    print(report.summary())
    print(f"wall clock: {time.monotonic() - started:.1f} s; logs in {workdir}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
