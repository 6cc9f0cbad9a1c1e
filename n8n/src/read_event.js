// Read the event: what this workflow takes from it, and whether there is anything to do.
//
// `WORKFLOW` (above, written by n8n/build.py) says which event type this workflow handles,
// which decision trigger it asks for, and whether what it has left to send (held messages,
// follow-ups) is dropped once the contact has booked or written to us. The context (`ctx`)
// built here travels with every later item:
//   event_id     the event id (= webhook-id): decision event ids and Idempotency-Keys derive
//                from it, so a redelivered event or a retried execution repeats nothing;
//   trace_id     the event's trace; `traceparent` continues it on every call to the Core API;
//   contact_id   whom the decision is about;
//   wait_scale   SWITCHBOARD_WAIT_SCALE (default 1): every wait is multiplied by it.

// Channels a lead can come from by writing to us: such a lead's first message is answered
// by the message workflow (message.received); greeting it here as well would say hello twice.
const MESSAGE_SOURCES = ['sms', 'whatsapp', 'email', 'manychat', 'api'];
const MAX_MESSAGE = 4000;
// Older events are not acted on: a backfill or a replay of old dead letters must not answer
// week-old messages. (Switchboard retries a delivery for about two days.)
const MAX_EVENT_AGE_HOURS = 72;

function randomHex(length) {
  let out = '';
  while (out.length < length) out += Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return out.slice(0, length);
}

function traceIdOf(event, traceparent) {
  if (typeof event.trace_id === 'string' && /^[0-9a-f]{32}$/.test(event.trace_id)) return event.trace_id;
  const match = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(traceparent || '');
  return match ? match[1] : randomHex(32);
}

function waitScale(value) {
  if (value === undefined || value === null || String(value).trim() === '') return 1;
  const scale = Number(value);
  return Number.isFinite(scale) && scale >= 0 ? scale : 1;
}

// Without n8n: {ctx, skip} where skip is '' or why nothing is done.
function readEvent(event, { workflow, traceparent, waitScaleSetting, nowMs = Date.now() }) {
  const data = (event && event.data) || {};
  const traceId = traceIdOf(event, traceparent);
  const ctx = {
    workflow: workflow.name,
    event_id: event.id,
    event_type: event.type,
    organization: (event.organization && event.organization.slug) || null,
    sequence: event.sequence,
    trace_id: traceId,
    traceparent: `00-${traceId}-${randomHex(16)}-01`,
    contact_id: data.contact_id || null,
    conversation_id: data.conversation_id || null,
    stop_when_booked: Boolean(workflow.stop_when_booked),
    stop_when_replied: Boolean(workflow.stop_when_replied),
    wait_scale: waitScale(waitScaleSetting),
  };
  let skip = '';
  const age = (nowMs - Date.parse(event.timestamp)) / 3600000;
  if (event.type !== workflow.event_type) {
    skip = `not a ${workflow.event_type} event but ${event.type}: subscribe this webhook to ${workflow.event_type} only`;
  } else if (age > MAX_EVENT_AGE_HOURS) {
    skip = `the event is ${Math.floor(age)} hours old (a backfill or an old replay): not acted on`;
  } else if (!ctx.contact_id) {
    skip = 'the event names no contact';
  } else if (workflow.event_type === 'lead.created' && MESSAGE_SOURCES.includes(data.source)) {
    skip = `the lead wrote first (source ${data.source}): the message workflow answers that message`;
  } else if (workflow.event_type === 'message.received' && data.direction && data.direction !== 'in') {
    skip = 'not an inbound message';
  }
  const request = { contact_id: ctx.contact_id, trigger: workflow.trigger, event_id: ctx.event_id };
  if (workflow.event_type === 'message.received' && typeof data.text === 'string' && data.text.trim()) {
    // Answer this message, not whichever arrived last.
    request.message = data.text.replace(/\u0000/g, '').slice(0, MAX_MESSAGE);
  }
  return { ctx, skip, decision_request: request };
}

// --- n8n ---------------------------------------------------------------------------------
const checked = $input.first().json;
return [
  {
    json: readEvent(checked.event, {
      workflow: WORKFLOW,
      traceparent: checked.traceparent,
      waitScaleSetting: $env.SWITCHBOARD_WAIT_SCALE,
    }),
  },
];
