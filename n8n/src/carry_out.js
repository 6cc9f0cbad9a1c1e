// Carry out the actions: each action of the decision becomes a Core API call, made here in
// the decision's order (a booking before its confirmation), so that a failed booking is
// never confirmed to the contact.
//
//   send_message       POST /messages/  {contact_id, text: body, channel, purpose,
//                                        template: template.name, template_variables}
//                      (at send_at: the workflow waits until then)
//   book_appointment   POST /bookings/  {contact_id, appointment_type: appointment_type_id,
//                                        start, resource_id, source: "n8n"}
//                      or POST /bookings/<booking_id>/reschedule/ {start, resource_id}
//   update_contact     PATCH /contacts/<contact_id>/  {...fields, consent}
//   update_lead        PATCH /leads/<lead_id>/ {answers}; then POST .../qualify/ or
//                      .../disqualify/ {reason} when status says so
//   move_deal          POST /deals/<deal_id>/stage/ {stage_id}
//   create_task        POST /tasks/ {title, description, due_at, deal_id, contact_id, source}
//   escalate_to_human  POST /conversations/<conversation_id>/escalate/ {reason, priority}
//                      (a contact without a conversation yet: POST /tasks/, due now)
//   schedule_follow_up the workflow waits until `at`, then asks again (trigger follow_up_due)
//   offer_slots, no_action: nothing to call (the offered times are in the message)
//
// Every call carries `Authorization: Bearer $env.SWITCHBOARD_API_KEY`, the event's
// `traceparent`, and `Idempotency-Key: <event id>:<round>:<action index>:<type>`: an n8n retry
// or a redelivered event repeats nothing. 429 (after Retry-After), 5xx and network errors are
// retried; any other failure is reported and ends the execution with an error.
//
// Input: the decision (from "Ask Switchboard" / "Ask again"), or, after a wait, whatever the
// checks before it answered; the state this node left is read back from the Wait node. Before
// anything goes out after a wait, the workflow stops when the contact has booked (workflows
// that aim at a booking: "Booked since?") or written to us ("Replied since?") meanwhile.
// Output: the state, with `next`: `wait` (until `wait_until`), `ask` (a follow-up is due),
// `failed` or `done`.

const MAX_ROUNDS = 5; // follow-up decisions per event at most (the decision engine stops sooner)
// A decision replayed after this long was carried out back then: the Idempotency-Keys that
// would make doing it again harmless are kept 24 hours (IDEMPOTENCY_KEY_TTL_HOURS).
const REPLAY_HORIZON_HOURS = 23;
const MAX_TRIES = 4;
const MAX_RETRY_WAIT_MS = 20000;
const SOURCE = 'n8n';
const CONFIRMATIONS_OF_A_BOOKING = ['booking_confirmation'];

function scaledDue(iso, nowMs, scale) {
  const at = Date.parse(iso);
  if (!Number.isFinite(at) || at <= nowMs) return null;
  return new Date(nowMs + Math.round((at - nowMs) * scale)).toISOString();
}

function roundOf(decisionEventId) {
  const match = /:follow-up:(\d+)$/.exec(decisionEventId || '');
  return match ? Number(match[1]) : 0;
}

function dropNulls(object) {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== null && value !== undefined));
}

// The decision's actions as calls, plus what is not a call (notes) and the follow-up.
function planActions(decision, ctx, round) {
  const calls = [];
  const notes = [];
  let followUp = null;
  (decision.actions || []).forEach((action, index) => {
    const key = `${ctx.event_id}:${round}:${index}:${action.type}`;
    const call = (method, path, body, extra = {}) =>
      calls.push({ index, type: action.type, key, method, path, body, send_at: null, ...extra });
    switch (action.type) {
      case 'send_message': {
        const body = dropNulls({
          contact_id: ctx.contact_id,
          text: action.body,
          channel: action.channel,
          purpose: action.purpose,
        });
        if (action.template) {
          body.template = action.template.name;
          body.template_variables = action.template.variables || [];
        }
        call('POST', 'messages/', body, { purpose: action.purpose, send_at: action.send_at || null });
        break;
      }
      case 'book_appointment':
        if (action.booking_id) {
          call('POST', `bookings/${action.booking_id}/reschedule/`, dropNulls({ start: action.start, resource_id: action.resource_id }));
        } else {
          call(
            'POST',
            'bookings/',
            dropNulls({
              contact_id: ctx.contact_id,
              appointment_type: action.appointment_type_id || action.appointment_type,
              start: action.start,
              resource_id: action.resource_id,
              source: SOURCE,
            }),
          );
        }
        break;
      case 'update_contact': {
        const body = { ...(action.fields || {}) };
        if (action.consent && Object.keys(action.consent).length) body.consent = action.consent;
        call('PATCH', `contacts/${ctx.contact_id}/`, body);
        break;
      }
      case 'update_lead':
        if (action.answers && Object.keys(action.answers).length) {
          call('PATCH', `leads/${action.lead_id}/`, { answers: action.answers }, { key: `${key}:answers` });
        }
        if (action.status === 'qualified') {
          call('POST', `leads/${action.lead_id}/qualify/`, { reason: (action.reason || '').slice(0, 200) }, { key: `${key}:qualify` });
        } else if (action.status === 'disqualified') {
          call('POST', `leads/${action.lead_id}/disqualify/`, { reason: (action.reason || 'Disqualified by the agent.').slice(0, 200) }, { key: `${key}:disqualify` });
        }
        break;
      case 'move_deal':
        call('POST', `deals/${action.deal_id}/stage/`, { stage_id: action.stage_id });
        break;
      case 'create_task':
        call(
          'POST',
          'tasks/',
          dropNulls({
            title: action.title,
            description: action.description || '',
            due_at: action.due_at,
            deal_id: action.deal_id,
            contact_id: ctx.contact_id,
            source: SOURCE,
          }),
        );
        break;
      case 'escalate_to_human':
        // Where to depends on the conversation, which a message sent just before may open.
        call('POST', null, null, { escalation: { reason: action.reason, priority: action.priority } });
        break;
      case 'schedule_follow_up':
        followUp = { at: action.at, purpose: action.purpose, note: action.note };
        notes.push({ index, type: action.type, status: 'scheduled', detail: `follow-up at ${action.at}: ${action.note}` });
        break;
      case 'offer_slots':
        notes.push({ index, type: action.type, status: 'skipped', detail: 'the offered times are in the message' });
        break;
      case 'no_action':
        notes.push({ index, type: action.type, status: 'skipped', detail: action.reason || '' });
        break;
      default:
        notes.push({ index, type: action.type, status: 'skipped', detail: 'unknown action type' });
    }
  });
  return { calls, notes, followUp };
}

// An escalation goes to the conversation; a contact without one yet gets a task, due now.
function resolveEscalation(call, ctx) {
  const { reason, priority } = call.escalation;
  if (ctx.conversation_id) {
    return {
      ...call,
      path: `conversations/${ctx.conversation_id}/escalate/`,
      body: { reason: (reason || 'The agent asked for a person.').slice(0, 300), priority: priority || 'high' },
    };
  }
  return {
    ...call,
    path: 'tasks/',
    body: {
      title: `Take over (${priority}): ${reason}`.slice(0, 200),
      description: `The agent handed this contact to a person. Reason: ${reason}`,
      due_at: new Date().toISOString(),
      contact_id: ctx.contact_id,
      source: SOURCE,
    },
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One call to the Core API, retried when that is safe and useful: {status, body, error}.
async function apiCall(helpers, settings, ctx, call) {
  if (!settings.url || !settings.apiKey) {
    return { status: 0, body: null, error: 'SWITCHBOARD_URL or SWITCHBOARD_API_KEY is not set in n8n' };
  }
  let last = { status: 0, body: null, headers: {}, error: '' };
  for (let attempt = 1; attempt <= MAX_TRIES; attempt++) {
    let waitMs = Math.min(MAX_RETRY_WAIT_MS, 500 * 2 ** attempt + Math.floor(Math.random() * 250));
    try {
      const response = await helpers.httpRequest({
        method: call.method,
        url: `${settings.url.replace(/\/+$/, '')}/api/v1/${call.path}`,
        headers: {
          Authorization: `Bearer ${settings.apiKey}`,
          'Idempotency-Key': call.key,
          traceparent: ctx.traceparent,
          Accept: 'application/json',
        },
        body: call.body,
        json: true,
        returnFullResponse: true,
        ignoreHttpStatusErrors: true,
        timeout: 30000,
      });
      last = { status: response.statusCode, body: response.body, headers: response.headers || {}, error: '' };
      if (response.statusCode !== 429 && response.statusCode < 500) return last;
      const retryAfter = Number((response.headers || {})['retry-after']);
      if (Number.isFinite(retryAfter) && retryAfter > 0) waitMs = Math.min(MAX_RETRY_WAIT_MS, retryAfter * 1000);
    } catch (error) {
      last = { status: 0, body: null, headers: {}, error: error.message };
    }
    if (attempt < MAX_TRIES) await sleep(waitMs);
  }
  return last;
}

function describeFailure(response) {
  const error = response.body && response.body.error;
  if (error) return { code: error.code, detail: `${response.status} ${error.code}: ${error.message}` };
  return { code: response.status ? `http_${response.status}` : 'unreachable', detail: response.error || `HTTP ${response.status}` };
}

// Make `calls` in order; a failed booking skips what depends on it.
async function makeCalls(helpers, settings, ctx, calls) {
  const results = [];
  let bookingFailed = false;
  for (let call of calls) {
    if (call.escalation) call = resolveEscalation(call, ctx);
    const dependsOnBooking = call.type === 'move_deal' || (call.type === 'send_message' && CONFIRMATIONS_OF_A_BOOKING.includes(call.purpose));
    if (bookingFailed && dependsOnBooking) {
      results.push({ index: call.index, type: call.type, status: 'skipped', detail: 'the booking failed' });
      continue;
    }
    let response = await apiCall(helpers, settings, ctx, call);
    const code = response.body && response.body.error && response.body.error.code;
    if (call.type === 'book_appointment' && response.status === 409 && code === 'slot_taken' && call.body.resource_id) {
      // The suggested resource was taken meanwhile: any free one will do.
      const anyResource = { ...call, key: `${call.key}:any-resource`, body: { ...call.body } };
      delete anyResource.body.resource_id;
      response = await apiCall(helpers, settings, ctx, anyResource);
    }
    const ok = response.status >= 200 && response.status < 300;
    const result = { index: call.index, type: call.type, status: ok ? 'done' : 'failed', http_status: response.status };
    if (ok) {
      result.id = (response.body && response.body.id) || null;
      if (response.body && response.body.conversation_id && !ctx.conversation_id) {
        ctx.conversation_id = response.body.conversation_id; // a first message opens one
      }
      if (response.headers['idempotent-replayed'] === 'true') result.replayed = true;
    } else {
      Object.assign(result, describeFailure(response));
      if (call.type === 'book_appointment') bookingFailed = true;
    }
    results.push(result);
  }
  return results;
}

function nextStep(state) {
  state.wait_until = null;
  state.after_wait = null;
  if (state.results.some((result) => result.status === 'failed')) {
    state.next = 'failed';
  } else if (state.pending.length) {
    state.next = 'wait';
    state.after_wait = 'send';
    state.wait_until = state.pending.map((call) => call.due_at).sort()[0];
  } else if (state.follow_up && state.round < MAX_ROUNDS) {
    state.next = 'wait';
    state.after_wait = 'ask';
    state.wait_until = state.follow_up.due_at || new Date().toISOString();
  } else {
    state.next = 'done';
  }
  const failed = state.results.filter((result) => result.status === 'failed');
  state.summary = failed.length
    ? `${failed.length} action(s) failed: ${failed.map((result) => `${result.type} (${result.detail})`).join('; ')}`
    : `${state.next}: ${state.results.map((result) => `${result.type} ${result.status}`).join(', ') || 'nothing to do'}`;
  return state;
}

function stop(state, why) {
  state.pending = [];
  state.follow_up = null;
  state.stopped = why;
  return nextStep(state);
}

function repliedSince(conversation, since) {
  if (!conversation || !conversation.last_inbound_at || !since) return false;
  return Date.parse(conversation.last_inbound_at) > Date.parse(since);
}

// One pass of the node, without n8n. `input` is the node's input item json; `checks()`
// gives what the checks after a wait answered: {bookings, conversation} (null: not checked).
async function carryOut({ input, readCtx, waitState, checks, helpers, settings, nowMs }) {
  let state;
  if (input && input.decision_id && Array.isArray(input.actions)) {
    let previous = null; // a follow-up: what the workflow learned before waiting for it
    if (roundOf(input.event_id) > 0) {
      try {
        previous = waitState();
      } catch (error) {
        previous = null;
      }
    }
    const ctx = { ...(previous ? previous.ctx : readCtx()) };
    if (input.conversation_id) ctx.conversation_id = input.conversation_id;
    const round = roundOf(input.event_id);
    const decidedHoursAgo = (nowMs - Date.parse(input.created_at)) / 3600000;
    if (input.replayed && decidedHoursAgo > REPLAY_HORIZON_HOURS) {
      const old = { ctx, round, decision_id: input.decision_id, pending: [], follow_up: null, results: [] };
      return stop(old, `decided ${Math.floor(decidedHoursAgo)} hours ago and carried out then; not repeated`);
    }
    const { calls, notes, followUp } = planActions(input, ctx, round);
    calls.forEach((call) => (call.due_at = call.send_at ? scaledDue(call.send_at, nowMs, ctx.wait_scale) : null));
    state = {
      ctx,
      round,
      decision_id: input.decision_id,
      since: new Date(nowMs).toISOString(),
      pending: calls,
      follow_up: followUp ? { ...followUp, due_at: scaledDue(followUp.at, nowMs, ctx.wait_scale) } : null,
      results: notes,
    };
  } else {
    state = { ...waitState(), results: [] };
    const { bookings, conversation } = checks();
    if (state.ctx.stop_when_booked && bookings && bookings.count > 0) {
      return stop(state, 'the contact has booked since');
    }
    if (state.ctx.stop_when_replied && repliedSince(conversation, state.since)) {
      return stop(state, 'the contact has replied since');
    }
    if (state.after_wait === 'ask') {
      state.round += 1;
      state.follow_up_request = dropNulls({
        contact_id: state.ctx.contact_id,
        trigger: 'follow_up_due',
        event_id: `${state.ctx.event_id}:follow-up:${state.round}`,
        purpose: state.follow_up.purpose,
      });
      state.follow_up = null;
      state.next = 'ask';
      state.wait_until = null;
      state.after_wait = null;
      state.summary = `follow-up ${state.round} due`;
      return state;
    }
  }
  const due = state.pending.filter((call) => !call.due_at || Date.parse(call.due_at) <= nowMs + 100);
  state.pending = state.pending.filter((call) => !due.includes(call));
  state.results = state.results.concat(await makeCalls(helpers, settings, state.ctx, due));
  state.results.sort((a, b) => a.index - b.index);
  return nextStep(state);
}

// --- n8n ---------------------------------------------------------------------------------
const state = await carryOut({
  input: $input.first().json,
  readCtx: () => $(NODES.read).first().json.ctx,
  waitState: () => $(NODES.wait).last().json,
  checks: () => ({
    bookings: NODES.booked ? $(NODES.booked).last().json : null,
    conversation: NODES.replied ? $(NODES.replied).last().json : null,
  }),
  helpers: this.helpers,
  settings: { url: $env.SWITCHBOARD_URL, apiKey: $env.SWITCHBOARD_API_KEY },
  nowMs: Date.now(),
});
return [{ json: state }];
