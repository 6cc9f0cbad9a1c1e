// Verify signature: is this delivery really from Switchboard? (Standard Webhooks)
//
// Switchboard signs every event it delivers:
//   webhook-signature: v1,<base64 HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{raw body}")>
// where key = the base64-decoded part of the whsec_ secret after "whsec_". After a secret
// rotation two signatures arrive, space separated: either may match. The timestamp must be
// within 5 minutes of our clock. The HMAC is over the RAW body bytes, which the Webhook node
// hands over as binary data (its "Raw Body" option); the parsed JSON is never re-serialized.
//
// Output: {valid: true, event} or {valid: false, reason}. Never throws: a rejected delivery
// is answered 401 and the execution stops with an error, without calling anything.
// n8n's Code node has no `crypto` module by default, so SHA-256 and HMAC are written out here
// (FIPS 180-4; checked against Python's hmac in tests/n8n).

const TOLERANCE_SECONDS = 5 * 60;
const SECRET_PREFIX = 'whsec_';

const K = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

function rotr(x, n) {
  return (x >>> n) | (x << (32 - n));
}

function sha256(bytes) {
  const length = bytes.length;
  const total = Math.ceil((length + 9) / 64) * 64;
  const padded = new Uint8Array(total);
  padded.set(bytes);
  padded[length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(total - 8, Math.floor(length / 0x20000000));
  view.setUint32(total - 4, (length * 8) >>> 0);
  const h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
  const w = new Array(64);
  for (let offset = 0; offset < total; offset += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(offset + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0;
    h[1] = (h[1] + b) | 0;
    h[2] = (h[2] + c) | 0;
    h[3] = (h[3] + d) | 0;
    h[4] = (h[4] + e) | 0;
    h[5] = (h[5] + f) | 0;
    h[6] = (h[6] + g) | 0;
    h[7] = (h[7] + hh) | 0;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  h.forEach((word, i) => outView.setUint32(i * 4, word >>> 0));
  return out;
}

function hmacSha256(key, message) {
  let block = key.length > 64 ? sha256(key) : key;
  const padded = new Uint8Array(64);
  padded.set(block);
  const inner = new Uint8Array(64 + message.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    inner[i] = padded[i] ^ 0x36;
    outer[i] = padded[i] ^ 0x5c;
  }
  inner.set(message, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

function constantTimeEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function header(headers, name) {
  const value = headers[name];
  return Array.isArray(value) ? value.join(' ') : value === undefined || value === null ? '' : String(value);
}

function secretKey(secret) {
  if (typeof secret !== 'string' || !secret.startsWith(SECRET_PREFIX)) return null;
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) return null;
  const key = Buffer.from(encoded, 'base64');
  return key.length >= 24 && key.length <= 64 ? new Uint8Array(key) : null;
}

// The whole check, without n8n: {valid, reason, event}.
function verifyDelivery({ headers, body, secret, nowSeconds }) {
  const key = secretKey(secret);
  if (!key) return { valid: false, reason: 'SWITCHBOARD_WEBHOOK_SECRET is missing or not a whsec_ secret' };
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) return { valid: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature' };
  if (!/^\d{1,12}$/.test(timestamp)) return { valid: false, reason: 'malformed webhook-timestamp' };
  if (Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) {
    return { valid: false, reason: 'webhook-timestamp is more than 5 minutes away from our clock' };
  }
  if (!body) return { valid: false, reason: 'no raw body (enable the Webhook node option "Raw Body")' };
  const signed = new Uint8Array(Buffer.concat([Buffer.from(`${id}.${timestamp}.`, 'utf8'), Buffer.from(body)]));
  const expected = Buffer.from(hmacSha256(key, signed)).toString('base64');
  const matched = signatures
    .split(' ')
    .filter((entry) => entry.startsWith('v1,'))
    .some((entry) => constantTimeEqual(entry.slice(3), expected));
  if (!matched) return { valid: false, reason: 'no webhook-signature matches (wrong secret or altered body)' };
  let event;
  try {
    event = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch (error) {
    return { valid: false, reason: 'the signed body is not JSON' };
  }
  if (!event || typeof event !== 'object' || event.id !== id) {
    return { valid: false, reason: 'the body id differs from webhook-id' };
  }
  return { valid: true, reason: '', event };
}

// --- n8n ---------------------------------------------------------------------------------
const delivery = $input.first();
let result;
try {
  let raw = null;
  if (delivery.binary && delivery.binary.data) {
    raw = delivery.binary.data.id
      ? await this.helpers.getBinaryDataBuffer(0, 'data')
      : Buffer.from(delivery.binary.data.data || '', 'base64');
  }
  result = verifyDelivery({
    headers: delivery.json.headers || {},
    body: raw,
    secret: $env.SWITCHBOARD_WEBHOOK_SECRET,
    nowSeconds: Math.floor(Date.now() / 1000),
  });
} catch (error) {
  result = { valid: false, reason: `verification failed: ${error.message}` };
}
const traceparent = header(delivery.json.headers || {}, 'traceparent');
return [{ json: { ...result, traceparent } }];
