// Runs the JavaScript of an n8n Code node outside n8n, the way n8n 2.x runs it: the code is
// the body of an async function (`return` gives the output items), `this.helpers` offers
// httpRequest and getBinaryDataBuffer, and $input, $env, $json and $('<node>') read the data.
// Reads {code, input, env, nodes} as JSON on stdin; prints {output} or {error} on stdout.
const fs = require('fs');

const spec = JSON.parse(fs.readFileSync(0, 'utf8'));
const items = spec.input || [];
const nodes = spec.nodes || {};

const $input = { first: () => items[0], last: () => items[items.length - 1], all: () => items };
const $ = (name) => {
  if (!(name in nodes)) throw new Error(`Node '${name}' hasn't been executed`);
  const out = nodes[name];
  return { first: () => out[0], last: () => out[out.length - 1], all: () => out };
};

// As n8n-core's helpers.httpRequest with {json: true, returnFullResponse: true,
// ignoreHttpStatusErrors: true}: a JSON body, the parsed JSON answer, lower-case headers.
async function httpRequest(options) {
  const headers = { ...(options.headers || {}) };
  let body;
  if (options.body !== undefined && options.method !== 'GET') {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  const response = await fetch(options.url, { method: options.method || 'GET', headers, body });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : '';
  } catch (error) {}
  if (!options.ignoreHttpStatusErrors && response.status >= 400) throw new Error(`HTTP ${response.status}`);
  const responseHeaders = {};
  response.headers.forEach((value, key) => (responseHeaders[key] = value));
  return options.returnFullResponse ? { statusCode: response.status, headers: responseHeaders, body: parsed } : parsed;
}

const helpers = {
  httpRequest,
  getBinaryDataBuffer: async (index, property) => Buffer.from(spec.binary_store[items[index].binary[property].id], 'base64'),
};

const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const run = new AsyncFunction('$input', '$env', '$', '$json', spec.code);
run
  .call({ helpers }, $input, spec.env || {}, $, items.length ? items[0].json : {})
  .then((output) => process.stdout.write(JSON.stringify({ output })))
  .catch((error) => process.stdout.write(JSON.stringify({ error: error.message })));
