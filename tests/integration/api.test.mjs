// The HTTP publish API (POST /api/publish, docs/API.md) and static files (--static DIR), end to
// end: a real broker, backends publishing with node's HTTP client or raw sockets, and stompjs
// over WebSocket and raw STOMP over TCP receiving what they published.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { brokerTest, runBroker, startBroker, sleep } from './lib/broker.mjs';
import { httpExchange, connectTcp, ByteReader } from './lib/rawws.mjs';
import { httpCall } from './lib/http.mjs';
import { tcpStomp } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';
import { sample } from './lib/proc.mjs';

// Files every test here shares.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-api-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const newKey = () => crypto.randomBytes(24).toString('base64url');
const KEY = newKey();
const KEY2 = newKey();
const keyFile = path.join(dir, 'api-keys');
fs.writeFileSync(keyFile, `# backends\n\n${KEY}\n  ${KEY2}  \r\n`);
const apiArgs = ['--api-key-file', keyFile];

// A static site with one file of each type, a sub-directory, a dotfile, a file outside it and
// a symlink pointing there.
const site = path.join(dir, 'site');
const files = {
  'index.html': '<!doctype html><title>dash</title>',
  'app.js': 'console.log(1);',
  'stomp.umd.min.mjs': 'export const x = 1;',
  'style.css': 'body{}',
  'data.json': '{"a":1}',
  'icon.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>',
  'pic.png': Buffer.from('89504e470d0a1a0a', 'hex'),
  'favicon.ico': Buffer.from([0, 0, 1, 0]),
  'notes.txt': 'notes',
  'app.js.map': '{"version":3}',
  'blob.bin': Buffer.from([1, 2, 3]),
  'sub/index.html': 'sub index',
  'sub/page one.html': 'spaced',
  '.env': 'SECRET=1',
};
for (const [name, content] of Object.entries(files)) {
  fs.mkdirSync(path.dirname(path.join(site, name)), { recursive: true });
  fs.writeFileSync(path.join(site, name), content);
}
fs.writeFileSync(path.join(dir, 'secret.txt'), 'outside the static dir');
fs.symlinkSync(path.join(dir, 'secret.txt'), path.join(site, 'link.txt'));
const staticArgs = ['--static', site];

// One request with node's HTTP client, a publish with KEY unless told otherwise.
const request = (port, { method = 'POST', path: p = '/api/publish', key = KEY, ...options } = {}) =>
  httpCall(port, method, p, { key, ...options });

const publish = (broker, destination, body, opts = {}) => request(broker.wsPort, {
  path: `/api/publish?destination=${encodeURIComponent(destination)}`, body, ...opts,
});

const batch = (broker, doc, opts = {}) => request(broker.wsPort, {
  headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(doc), ...opts,
});

// Raw request bytes; resolves the response { status, headers, body } once the server closes.
const raw = (broker, port, text) => httpExchange(broker, port, text);

function assertError(r, status, pattern) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers['content-type'], /^application\/json/);
  assert.equal(typeof r.json?.error, 'string', r.text);
  if (pattern) assert.match(r.json.error, pattern);
}

// The value of one sample in Prometheus text.
// The port of a listener startBroker does not wait for (its line may still be on the way).
async function listenPort(broker, kind, timeout = 5000) {
  const re = new RegExp(`^listening ${kind} 127\\.0\\.0\\.1:(\\d+)$`, 'm');
  const deadline = Date.now() + timeout;
  for (;;) {
    const m = re.exec(broker.stdout);
    if (m) return Number(m[1]);
    if (Date.now() > deadline) throw new Error(`no "listening ${kind}" line within ${timeout} ms`);
    await sleep(20);
  }
}

async function waitLog(broker, pattern, timeout = 5000) {
  const deadline = Date.now() + timeout;
  while (!pattern.test(broker.stderr)) {
    if (Date.now() > deadline) throw new Error(`no log line matching ${pattern} within ${timeout} ms`);
    await sleep(20);
  }
}

// ---- publishing -------------------------------------------------------------------------------

brokerTest('a publish reaches stompjs over WebSocket and STOMP over TCP with its headers and id',
  { args: apiArgs }, async (broker) => {
    const js = await stompjs(broker, { label: 'stompjs' });
    const jsSub = await js.subscribe('/topic/prices');
    const tcp = await tcpStomp(broker, { label: 'tcp' });
    await tcp.subscribe('/topic/prices', 't1');

    const r = await publish(broker, '/topic/prices', '{"IBM":142.1}', {
      headers: { 'Content-Type': 'application/json; charset=utf-8', 'X-Stomp-Priority': '7', 'X-Stomp-Trace-Id': 'abc:def' },
    });
    assert.equal(r.status, 202, r.text);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.match(r.json.id, /\S/);

    const m = await js.message(jsSub);
    assert.equal(m.body, '{"IBM":142.1}');
    assert.equal(m.headers['message-id'], r.json.id);
    assert.equal(m.headers.destination, '/topic/prices');
    assert.equal(m.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(m.headers.priority, '7');
    assert.equal(m.headers['trace-id'], 'abc:def');

    const f = await tcp.message('t1');
    assert.equal(f.text, '{"IBM":142.1}');
    assert.equal(f.headers['message-id'], r.json.id);
    assert.equal(f.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(f.headers.priority, '7');
    assert.equal(f.headers['trace-id'], 'abc:def');
  });

brokerTest('binary and empty bodies arrive byte for byte', { args: apiArgs }, async (broker) => {
  const tcp = await tcpStomp(broker);
  await tcp.subscribe('/topic/bin', 's');
  const bytes = Buffer.from([0, 1, 2, 255, 0, 10]);
  const r = await publish(broker, '/topic/bin', bytes, { headers: { 'Content-Type': 'application/octet-stream' } });
  assert.equal(r.status, 202, r.text);
  const f = await tcp.message('s');
  assert.deepEqual(f.body, bytes);
  assert.equal(f.headers['content-length'], '6');
  const empty = await publish(broker, '/topic/bin', '');
  assert.equal(empty.status, 202, empty.text);
  const e = await tcp.message('s');
  assert.equal(e.body.length, 0);
  assert.equal(e.headers['message-id'], empty.json.id);
  assert.equal(e.headers['content-type'], undefined, 'no Content-Type, no content-type header');
});

brokerTest('a JSON batch publishes every message in order and returns their ids', { args: apiArgs }, async (broker) => {
  const js = await stompjs(broker);
  const a = await js.subscribe('/topic/a');
  const tcp = await tcpStomp(broker);
  await tcp.subscribe('/topic/b', 'b');
  const r = await batch(broker, {
    messages: [
      { destination: '/topic/a', body: 'one', headers: { k: 'v1' }, content_type: 'text/plain' },
      { destination: '/topic/b', body: 'two' },
      { destination: '/topic/a', body: 'três €', headers: { k: 'v3', 'Mixed-Case': 'kept' } },
    ],
  });
  assert.equal(r.status, 202, r.text);
  assert.equal(r.json.ids.length, 3);
  assert.equal(new Set(r.json.ids).size, 3);

  const [m1, m3] = await js.messages(2, a);
  assert.equal(m1.body, 'one');
  assert.equal(m1.headers['message-id'], r.json.ids[0]);
  assert.equal(m1.headers.k, 'v1');
  assert.equal(m1.headers['content-type'], 'text/plain');
  assert.equal(m3.body, 'três €');
  assert.equal(m3.headers['message-id'], r.json.ids[2]);
  assert.equal(m3.headers['Mixed-Case'], 'kept');
  const f = await tcp.message('b');
  assert.equal(f.text, 'two');
  assert.equal(f.headers['message-id'], r.json.ids[1]);
});

brokerTest('an invalid entry rejects the whole batch before anything is published', { args: apiArgs }, async (broker) => {
  const tcp = await tcpStomp(broker);
  await tcp.subscribe('/topic/all', 's');
  const r = await batch(broker, {
    messages: [
      { destination: '/topic/all', body: 'fine' },
      { destination: '/nowhere/x', body: 'bad' },
    ],
  });
  assertError(r, 400, /^messages\[1\]: unknown destination '\/nowhere\/x'/);
  for (const [doc, pattern] of [
    [{ messages: [] }, /"messages" is empty/],
    [{ msgs: [] }, /expected a JSON object \{"messages"/],
    [{ messages: [{ body: 'x' }] }, /messages\[0\]: "destination" must be a string/],
    [{ messages: [{ destination: '/topic/all', body: 3 }] }, /"body" must be a string/],
    [{ messages: [{ destination: '/topic/all', headers: { a: 1 } }] }, /header 'a' must be a string/],
    [{ messages: [{ destination: '/topic/all', headers: { 'message-id': 'x' } }] }, /header 'message-id' cannot be set/],
    [{ messages: [{ destination: '/topic/all', destnation: 'x' }] }, /unknown field 'destnation'/],
    [{ messages: [{ destination: '/topic/all.*' }] }, /wildcard/],
  ]) {
    assertError(await batch(broker, doc), 400, pattern);
  }
  assert.equal(await tcp.inbox.quiet(300, 'MESSAGE'), null, 'nothing was published');
});

brokerTest('a queue destination gives each message to one consumer', { args: apiArgs }, async (broker) => {
  const c1 = await tcpStomp(broker, { label: 'c1' });
  const c2 = await tcpStomp(broker, { label: 'c2' });
  await c1.subscribe('/queue/jobs', 'q');
  await c2.subscribe('/queue/jobs', 'q');
  const ids = [];
  for (let i = 0; i < 4; i++) ids.push((await publish(broker, '/queue/jobs', `job ${i}`)).json.id);
  const got = [...await c1.messages(2, 'q'), ...await c2.messages(2, 'q')];
  assert.deepEqual(got.map((f) => f.headers['message-id']).sort(), [...ids].sort());
  assert.equal(await c1.inbox.quiet(200, 'MESSAGE'), null);
  assert.equal(await c2.inbox.quiet(0, 'MESSAGE'), null);
  // Published with nobody consuming: it waits in the queue like a SEND.
  const waiting = await publish(broker, '/queue/later', 'kept');
  const late = await tcpStomp(broker, { label: 'late' });
  await late.subscribe('/queue/later', 'l');
  assert.equal((await late.message('l')).headers['message-id'], waiting.json.id);
});

brokerTest('the --http listener serves the API too, and /metrics counts API publishes',
  { args: [...apiArgs, '--http', '127.0.0.1:0'] }, async (broker) => {
    const httpPort = await listenPort(broker, 'http');
    const tcp = await tcpStomp(broker);
    await tcp.subscribe('/topic/h', 's');
    const r = await request(httpPort, { path: '/api/publish?destination=%2Ftopic%2Fh', body: 'via http' });
    assert.equal(r.status, 202, r.text);
    assert.equal((await tcp.message('s')).headers['message-id'], r.json.id);
    await batch(broker, { messages: [{ destination: '/topic/h', body: '1' }, { destination: '/topic/h', body: '2' }] });
    await tcp.messages(2, 's');
    assertError(await publish(broker, '/topic/h', 'x', { key: 'not-a-key-at-all-0000' }), 401);
    const m = await request(broker.wsPort, { method: 'GET', path: '/metrics', key: null });
    assert.equal(sample(m.text, 'stompws_messages_in_total'), 3);
    assert.equal(sample(m.text, 'stompws_errors_total{kind="authentication"}'), 1);
  });

// ---- errors -----------------------------------------------------------------------------------

brokerTest('without --api-key-file the API answers 404 saying it is disabled', {}, async (broker) => {
  const r = await publish(broker, '/topic/x', 'x');
  assertError(r, 404, /publish API is disabled.*--api-key-file/);
});

brokerTest('missing or wrong key -> 401 with WWW-Authenticate: Bearer', { args: apiArgs }, async (broker) => {
  const tcp = await tcpStomp(broker);
  await tcp.subscribe('/topic/x', 's');
  const missing = await publish(broker, '/topic/x', 'x', { key: null });
  assertError(missing, 401, /missing API key/);
  assert.match(missing.headers['www-authenticate'], /^Bearer realm="stompws"$/);
  const wrong = await publish(broker, '/topic/x', 'x', { key: `${KEY}x` });
  assertError(wrong, 401, /invalid API key/);
  assert.match(wrong.headers['www-authenticate'], /^Bearer .*error="invalid_token"/);
  const basic = await publish(broker, '/topic/x', 'x', { key: null, headers: { Authorization: 'Basic dXNlcjpwYXNz' } });
  assertError(basic, 401, /missing API key/);
  assert.equal(await tcp.inbox.quiet(200, 'MESSAGE'), null);
  assert.equal((await publish(broker, '/topic/x', 'x', { key: KEY2 })).status, 202, 'the second key works');
  await tcp.message('s');
});

brokerTest('bad destinations and headers -> 400 naming the problem', { args: apiArgs }, async (broker) => {
  const cases = [
    ['/api/publish?destination=%2Ffoo%2Fx', {}, /unknown destination '\/foo\/x'.*\/topic\//],
    ['/api/publish?destination=', {}, /missing destination/],
    ['/api/publish', {}, /missing destination: publish one message with \?destination=/],
    ['/api/publish?destination=/topic/a.%2A', {}, /wildcard destination: \/topic\/a\.\*/],
    ['/api/publish?destination=/temp-queue/x', {}, /\/temp-queue\/ names are private/],
    ['/api/publish?destination=/topic/a&destination=/topic/b', {}, /destination given more than once/],
    ['/api/publish?destination=%2', {}, /percent-encoded/],
    ['/api/publish?destination=/topic/%0A', {}, /control character/],
    ['/api/publish?destination=/topic/x', { 'X-Stomp-Message-Id': 'mine' }, /header 'message-id' cannot be set/],
    ['/api/publish?destination=/topic/x', { 'X-Stomp-Content-Type': 'a/b' }, /header 'content-type' cannot be set/],
  ];
  for (const [p, headers, pattern] of cases) {
    const r = await request(broker.wsPort, { path: p, headers, body: 'x' });
    assertError(r, 400, pattern);
  }
  const dup = await raw(broker, broker.wsPort, 'POST /api/publish?destination=/topic/x HTTP/1.1\r\nHost: 127.0.0.1\r\n'
    + `Authorization: Bearer ${KEY}\r\nX-Stomp-Dup: 1\r\nx-stomp-dup: 2\r\nContent-Length: 1\r\n\r\nx`);
  assert.equal(dup.status, 400);
  assert.match(JSON.parse(dup.body).error, /header 'dup' given twice/);
  assertError(await batch(broker, null, { body: '{"messages": [' }), 400, /^invalid JSON at line 1/);
  assertError(await batch(broker, null, { body: '{"messages": [], "messages": []}' }), 400, /invalid JSON.*duplicate/);
});

brokerTest('a body over limits.max_body -> 413 naming the limit, before the body is read',
  { args: apiArgs, set: { 'limits.max_body': '1k' } }, async (broker) => {
    const r = await publish(broker, '/topic/x', 'x'.repeat(1025));
    assertError(r, 413, /1025 bytes exceeds limits\.max_body \(1024 bytes\)/);
    assert.equal((await publish(broker, '/topic/x', 'x'.repeat(1024))).status, 202);
    const b = await batch(broker, { messages: [{ destination: '/topic/x', body: 'y'.repeat(1100) }] });
    assertError(b, 413, /limits\.max_body/);
  });

brokerTest('wrong method -> 405 with Allow: POST; unknown /api/ path -> 404', { args: apiArgs }, async (broker) => {
  const get = await request(broker.wsPort, { method: 'GET' });
  assertError(get, 405, /use POST \/api\/publish/);
  assert.equal(get.headers.allow, 'POST');
  const put = await request(broker.wsPort, { method: 'PUT', body: 'x' });
  assertError(put, 405);
  const unknown = await request(broker.wsPort, { path: '/api/x', body: 'x' });
  assertError(unknown, 404, /no API at \/api\/x/);
});

brokerTest('chunked bodies -> 501, no Content-Length -> 411', { args: apiArgs }, async (broker) => {
  const head = `POST /api/publish?destination=/topic/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\n`;
  const chunked = await raw(broker, broker.wsPort, `${head}Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n`);
  assert.equal(chunked.status, 501);
  assert.match(JSON.parse(chunked.body).error, /Transfer-Encoding.*Content-Length/);
  const none = await raw(broker, broker.wsPort, `${head}\r\n`);
  assert.equal(none.status, 411);
  assert.match(JSON.parse(none.body).error, /Content-Length required/);
});

brokerTest('a body sent in pieces, and after "Expect: 100-continue", is read whole', { args: apiArgs }, async (broker) => {
  const tcp = await tcpStomp(broker);
  await tcp.subscribe('/topic/slow', 's');
  const head = `POST /api/publish?destination=/topic/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\n`;

  const socket = broker.track(await connectTcp(broker.wsPort));
  const reader = new ByteReader(socket);
  socket.write(`${head}Content-Length: 11\r\n\r\nhello`);
  await sleep(100);
  socket.write(' worl');
  await sleep(100);
  socket.write('d');
  const res = await reader.httpHead();
  assert.equal(res.status, 202);
  assert.equal((await tcp.message('s')).text, 'hello world');

  const s2 = broker.track(await connectTcp(broker.wsPort));
  const r2 = new ByteReader(s2);
  s2.write(`${head}Content-Length: 5\r\nExpect: 100-continue\r\n\r\n`);
  const cont = await r2.httpHead();
  assert.equal(cont.status, 100);
  s2.write('later');
  await r2.waitClosed();
  assert.match(r2.buf.toString('latin1'), /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 /);
  assert.equal((await tcp.message('s')).text, 'later');
});

brokerTest('a body that does not arrive within limits.handshake_timeout_ms -> 408',
  { args: apiArgs, set: { 'limits.handshake_timeout_ms': 500 } }, async (broker) => {
    const socket = broker.track(await connectTcp(broker.wsPort));
    const reader = new ByteReader(socket);
    socket.write(`POST /api/publish?destination=/topic/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 10\r\n\r\nabc`);
    const head = await reader.httpHead(4000);
    assert.equal(head.status, 408);
  });

brokerTest('limits.publish_rate applies per API key -> 429 with Retry-After; a refused batch publishes nothing',
  { args: apiArgs, set: { 'limits.publish_rate': 1, 'limits.publish_burst': 2 } }, async (broker) => {
    const tcp = await tcpStomp(broker);
    await tcp.subscribe('/topic/r', 's');
    assert.equal((await publish(broker, '/topic/r', '1')).status, 202);
    assert.equal((await publish(broker, '/topic/r', '2')).status, 202);
    const over = await publish(broker, '/topic/r', '3');
    assertError(over, 429, /limits\.publish_rate = 1 per second, limits\.publish_burst = 2/);
    assert.equal(over.headers['retry-after'], '1');
    await tcp.messages(2, 's');
    const big = await batch(broker, { messages: [1, 2, 3].map((i) => ({ destination: '/topic/r', body: `${i}` })) }, { key: KEY2 });
    assertError(big, 429, /nothing was published/);
    assert.equal(await tcp.inbox.quiet(300, 'MESSAGE'), null);
    const m = await request(broker.wsPort, { method: 'GET', path: '/metrics', key: null });
    assert.equal(sample(m.text, 'stompws_limit_hits_total{limit="limits.publish_rate"}'), 2);
  });

brokerTest('a full queue -> 503 naming queue.max_messages; a batch reports what went out',
  { args: apiArgs, set: { 'queue.max_messages': 2 } }, async (broker) => {
    const r = await batch(broker, { messages: [1, 2, 3].map((i) => ({ destination: '/queue/full', body: `${i}` })) });
    assertError(r, 503, /queue \/queue\/full is full \(queue\.max_messages = 2\)/);
    assert.equal(r.json.ids.length, 2);
    const single = await publish(broker, '/queue/full', 'more');
    assertError(single, 503, /queue\.max_messages/);
    const c = await tcpStomp(broker);
    await c.subscribe('/queue/full', 'q');
    const got = await c.messages(2, 'q');
    assert.deepEqual(got.map((f) => f.headers['message-id']), r.json.ids);
  });

test('SIGHUP reloads the key file; a broken one keeps the previous keys', async () => {
  const file = path.join(dir, 'reload-keys');
  const [a, b] = [newKey(), newKey()];
  fs.writeFileSync(file, `${a}\n`);
  const node = await startBroker({ args: ['--api-key-file', file] });
  try {
    assert.equal((await publish(node, '/topic/k', 'x', { key: a })).status, 202);
    assert.equal((await publish(node, '/topic/k', 'x', { key: b })).status, 401);
    fs.writeFileSync(file, `# rotated\n${b}\n`);
    node.child.kill('SIGHUP');
    await waitLog(node, /API keys reloaded: 1 from/);
    await waitLog(node, /received SIGHUP/); // broker.c's own SIGHUP handler still runs
    assert.equal((await publish(node, '/topic/k', 'x', { key: a })).status, 401);
    assert.equal((await publish(node, '/topic/k', 'x', { key: b })).status, 202);
    fs.writeFileSync(file, `${b}\nshort\n`);
    node.child.kill('SIGHUP');
    await waitLog(node, /API keys not reloaded \(keeping the previous ones\): .*reload-keys:2: API key shorter than 16/);
    assert.equal((await publish(node, '/topic/k', 'x', { key: b })).status, 202);
  } finally {
    await node.closeClients();
    const exit = await node.stop();
    assert.equal(exit.code, 0, node.logTail());
  }
});

test('an unusable key file or static dir stops the broker at start-up', async () => {
  const bad = path.join(dir, 'bad-keys');
  fs.writeFileSync(bad, `${KEY}\nhas space in it 0123456789\n`);
  const base = ['--ws', '127.0.0.1:0', '--tcp', '127.0.0.1:0'];
  const r1 = await runBroker([...base, '--api-key-file', bad]);
  assert.equal(r1.code, 1, r1.stderr);
  assert.match(r1.stderr, /server\.api_key_file: .*bad-keys:2: API key with a character other than/);
  const r2 = await runBroker([...base, '--api-key-file', path.join(dir, 'missing')]);
  assert.equal(r2.code, 1, r2.stderr);
  assert.match(r2.stderr, /missing: cannot open: No such file/);
  const r3 = await runBroker([...base, '--static', path.join(site, 'index.html')]);
  assert.equal(r3.code, 1, r3.stderr);
  assert.match(r3.stderr, /server\.static_dir: .*index\.html: not a directory/);
});

// ---- static files -----------------------------------------------------------------------------

brokerTest('static files: / is index.html, types by extension, HEAD, GET only', { args: staticArgs }, async (broker) => {
  const get = (p, method = 'GET') => request(broker.wsPort, { method, path: p, key: null });
  const index = await get('/');
  assert.equal(index.status, 200);
  assert.equal(index.text, files['index.html']);
  assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(index.headers['x-content-type-options'], 'nosniff');
  const types = {
    '/index.html': 'text/html; charset=utf-8',
    '/app.js': 'text/javascript; charset=utf-8',
    '/stomp.umd.min.mjs': 'text/javascript; charset=utf-8',
    '/style.css': 'text/css; charset=utf-8',
    '/data.json': 'application/json',
    '/icon.svg': 'image/svg+xml',
    '/pic.png': 'image/png',
    '/favicon.ico': 'image/x-icon',
    '/notes.txt': 'text/plain; charset=utf-8',
    '/app.js.map': 'application/json',
    '/blob.bin': 'application/octet-stream',
  };
  for (const [p, type] of Object.entries(types)) {
    const r = await get(p);
    assert.equal(r.status, 200, p);
    assert.equal(r.headers['content-type'], type, p);
    assert.deepEqual(r.raw, Buffer.from(files[p.slice(1)]), p);
  }
  assert.equal((await get('/sub/')).text, 'sub index');
  assert.equal((await get('/sub/page%20one.html')).text, 'spaced');
  assert.equal((await get('/app.js?v=2')).text, files['app.js']);
  const head = await get('/app.js', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(files['app.js'].length));
  assert.equal(head.raw.length, 0);
  const post = await get('/app.js', 'POST');
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
  // The other routes keep their answers.
  assert.equal((await get('/healthz')).text, 'ok\n');
  assert.equal((await get('/api/publish')).status, 404);
});

brokerTest('static files: traversal, symlinks out, dotfiles, directories and missing files -> 404',
  { args: staticArgs }, async (broker) => {
    for (const p of ['/../secret.txt', '/sub/../../secret.txt', '/%2e%2e/secret.txt', '/sub/..%2f..%2fsecret.txt',
      '/link.txt', '/.env', '/sub', '/nope.html', '/sub/nope/', '/%00', '/%zz']) {
      const r = await raw(broker, broker.wsPort, `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      assert.equal(r.status, 404, p);
      assert.doesNotMatch(r.body, /outside the static dir/, p);
    }
  });

brokerTest('static files off: other paths stay 404', {}, async (broker) => {
  const r = await request(broker.wsPort, { method: 'GET', path: '/index.html', key: null });
  assert.equal(r.status, 404);
  assert.equal((await request(broker.wsPort, { method: 'GET', path: '/', key: null })).status, 404);
});
