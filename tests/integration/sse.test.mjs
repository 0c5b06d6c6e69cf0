// GET /sse, the Server-Sent Events fallback (README "No WebSocket? Use SSE"): headers and
// framing (JSON and raw data, base64 for bodies that are not UTF-8, wildcards, no `event:`
// field), the resume token and Last-Event-ID, the keepalive comment, errors as JSON (400, 405,
// 401, 403), the Origin allow-list and CORS headers, and readers on /metrics.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { brokerTest, sleep, writeUsersFile } from './lib/broker.mjs';
import { httpCall } from './lib/http.mjs';
import { sseOpen } from './lib/sse.mjs';
import { tcpStomp } from './lib/stomp.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-sse-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const users = writeUsersFile(path.join(dir, 'users'), { alice: 'alice-pw', bob: 'bob-pw' });
const acl = path.join(dir, 'acl');
fs.writeFileSync(acl, 'alice read /topic/stocks.*\nbob write /topic/stocks.#\n');
const secretFile = path.join(dir, 'hs256');
const secret = crypto.randomBytes(32).toString('hex');
fs.writeFileSync(secretFile, `${secret}\n`);

const b64url = (x) => Buffer.from(x).toString('base64url');
function jwt(claims) {
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(crypto.createHmac('sha256', secret).update(input).digest())}`;
}
const basic = (user, pw) => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;
const history = (...specs) => specs.flatMap((s) => ['--history', s]);
const q = (...dests) => dests.map((d) => `destination=${encodeURIComponent(d)}`).join('&');

// Opens a reader and checks that it is a stream; the broker tracks it for the test's end.
async function reader(broker, query, options = {}) {
  const r = await sseOpen(options.port ?? broker.wsPort, `/sse?${query}`, options);
  broker.track({ close: () => r.close() });
  assert.equal(r.status, 200, r.raw);
  return r;
}

async function publish(pub, destination, body, headers = {}) {
  await pub.sendWithReceipt('SEND', { destination, ...headers }, body);
}

brokerTest('JSON events: headers, framing, wildcards, base64 for bodies that are not UTF-8', {}, async (broker) => {
  const r = await reader(broker, q('/topic/a', '/topic/w.*'));
  assert.equal(r.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.equal(r.headers['cache-control'], 'no-store');
  assert.equal(r.headers['content-length'], undefined);
  const pub = await tcpStomp(broker);
  await publish(pub, '/topic/a', 'hello "you"\nsecond line', { 'content-type': 'text/plain', 'x-app': 'ä' });
  await publish(pub, '/topic/w.one', 'from a wildcard');
  await publish(pub, '/topic/a', Buffer.from([0xff, 0x00, 0xfe]), { 'content-length': 3 });
  const [e1, e2, e3] = await r.eventsN(3);
  for (const e of [e1, e2, e3]) assert.deepEqual(e.fields, ['data'], 'no event: field, no id: without history');
  const m1 = JSON.parse(e1.data);
  assert.equal(m1.destination, '/topic/a');
  assert.equal(m1.body, 'hello "you"\nsecond line');
  assert.equal(m1.headers['content-type'], 'text/plain');
  assert.equal(m1.headers['x-app'], 'ä');
  assert.match(m1.headers['message-id'], /^m-/);
  assert.equal(m1.encoding, undefined);
  assert.equal(JSON.parse(e2.data).destination, '/topic/w.one');
  assert.equal(JSON.parse(e2.data).body, 'from a wildcard');
  const m3 = JSON.parse(e3.data);
  assert.equal(m3.encoding, 'base64');
  assert.deepEqual([...Buffer.from(m3.body, 'base64')], [0xff, 0x00, 0xfe]);
  // One data: line per event in JSON (the SSE line rules would split anything else).
  assert.doesNotMatch(r.raw.replace(/^retry: \d+\n\n/m, ''), /\ndata: [^\n]*\ndata:/);
});

brokerTest('format=raw: the body itself, a multi-line body over several data: lines', {}, async (broker) => {
  const r = await reader(broker, `${q('/topic/raw')}&format=raw`);
  const pub = await tcpStomp(broker);
  await publish(pub, '/topic/raw', 'one\ntwo\r\nthree\rfour');
  await publish(pub, '/topic/raw', '{"price":1}');
  const e1 = await r.event();
  assert.equal(e1.data, 'one\ntwo\nthree\nfour');
  assert.deepEqual(e1.fields, ['data', 'data', 'data', 'data']);
  assert.match(r.raw, /data: one\ndata: two\ndata: three\ndata: four\n\n/);
  assert.equal((await r.event()).data, '{"price":1}');
});

brokerTest('bad requests: 400 with a JSON body; POST is 405', {}, async (broker) => {
  const cases = [
    ['', /destination query parameter is required/],
    [q('/nowhere'), /must start with \/topic\/ or \/queue\//],
    [`${q('/topic/a.*')}&format=raw`, /format=raw needs exactly one destination/],
    [`${q('/topic/a', '/topic/b')}&format=raw`, /format=raw needs exactly one destination/],
    [`${q('/topic/a')}&format=xml`, /format must be json or raw/],
    ['destination=%2Ftopic%2', /percent-escape/],
    [`${q('/topic/a')}&x-stream-offset=soon`, /x-stream-offset must be/],
    [`${q('/topic/a.*')}&x-stream-offset=offset%3D3`, /needs exact destinations/],
  ];
  for (const [query, re] of cases) {
    const r = await sseOpen(broker.wsPort, `/sse?${query}`);
    assert.equal(r.status, 400, query);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.match(JSON.parse(await r.body()).error, re, query);
  }
  const bad = await sseOpen(broker.wsPort, `/sse?${q('/topic/a')}`, { headers: { 'Last-Event-ID': 'not a token!' } });
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(await bad.body()).error, /Last-Event-ID/);
  const post = await sseOpen(broker.wsPort, `/sse?${q('/topic/a')}`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET');
});

brokerTest('resume: Last-Event-ID gives every destination, wildcards too, what was missed, once',
  { args: history('/topic/h.#=100') }, async (broker) => {
    const query = q('/topic/h.exact', '/topic/h.w.*');
    const r = await reader(broker, query);
    const pub = await tcpStomp(broker);
    await publish(pub, '/topic/h.exact', 'e1');
    await publish(pub, '/topic/h.w.a', 'a1');
    const seen = await r.eventsN(2);
    const token = seen[1].id;
    assert.ok(token.length > 0 && token.length <= 2048);
    assert.match(token, /^[A-Za-z0-9_-]+$/);
    assert.equal(JSON.parse(seen[0].data).headers['x-stream-offset'], '1');
    r.close();
    // While nobody reads: more on both, and on a destination of the wildcard not seen before.
    await publish(pub, '/topic/h.exact', 'e2');
    await publish(pub, '/topic/h.w.a', 'a2');
    await publish(pub, '/topic/h.w.b', 'b1');
    await publish(pub, '/topic/h.other', 'not asked for');
    const back = await reader(broker, query, { headers: { 'Last-Event-ID': token } });
    const missed = await back.eventsN(3);
    assert.deepEqual(missed.map((e) => JSON.parse(e.data).body).sort(), ['a2', 'b1', 'e2']);
    await publish(pub, '/topic/h.w.b', 'b2');
    assert.equal(JSON.parse((await back.event()).data).body, 'b2');
    await sleep(200);
    assert.equal(back.events.length, 0, 'nothing twice');
  });

brokerTest('a destination matched by two of the request\'s subscriptions is sent once (history)',
  { args: history('/topic/d.#=10') }, async (broker) => {
    const r = await reader(broker, q('/topic/d.x', '/topic/d.*'));
    const pub = await tcpStomp(broker);
    await publish(pub, '/topic/d.x', 'only once');
    await publish(pub, '/topic/d.y', 'then this');
    const [a, b] = await r.eventsN(2);
    assert.equal(JSON.parse(a.data).body, 'only once');
    assert.equal(JSON.parse(b.data).body, 'then this');
  });

brokerTest('x-stream-offset=last as a query parameter', { args: history('/topic/l=5') }, async (broker) => {
  const pub = await tcpStomp(broker);
  for (const b of ['1', '2', '3']) await publish(pub, '/topic/l', b);
  const r = await reader(broker, `${q('/topic/l')}&x-stream-offset=last&format=raw`);
  assert.equal((await r.event()).data, '3');
});

brokerTest('keepalive comment every sse.keepalive_s', { set: { 'sse.keepalive_s': 1 } }, async (broker) => {
  const r = await reader(broker, q('/topic/quiet'));
  await r.until(() => r.comments.length >= 1, 3000, 'a keepalive comment');
  assert.match(r.raw, /\n:\n/);
});

brokerTest('users file and ACL: 401 without or with bad credentials, 403 for a destination not readable, Basic works',
  { args: ['--users', users, '--acl', acl] }, async (broker) => {
    const none = await sseOpen(broker.wsPort, `/sse?${q('/topic/stocks.a')}`);
    assert.equal(none.status, 401);
    assert.equal(JSON.parse(await none.body()).error, 'authentication failed');
    assert.match(none.headers['www-authenticate'], /Bearer/);
    const wrong = await sseOpen(broker.wsPort, `/sse?${q('/topic/stocks.a')}`, { headers: { Authorization: basic('alice', 'nope') } });
    assert.equal(wrong.status, 401);
    assert.equal(JSON.parse(await wrong.body()).error, 'authentication failed');
    const denied = await sseOpen(broker.wsPort, `/sse?${q('/topic/stocks.a', '/topic/secret')}`, { headers: { Authorization: basic('alice', 'alice-pw') } });
    assert.equal(denied.status, 403);
    assert.match(JSON.parse(await denied.body()).error, /permission denied: cannot read \/topic\/secret/);
    const r = await reader(broker, q('/topic/stocks.*'), { headers: { Authorization: basic('alice', 'alice-pw') } });
    const pub = await tcpStomp(broker, { headers: { login: 'bob', passcode: 'bob-pw' } });
    await publish(pub, '/topic/stocks.acme', '42');
    assert.equal(JSON.parse((await r.event()).data).body, '42');
  });

brokerTest('JWT: Authorization: Bearer and ?access_token=; grants checked',
  { args: ['--jwt-hs256-secret-file', secretFile] }, async (broker) => {
    const token = jwt({ sub: 'carol', exp: Math.floor(Date.now() / 1000) + 60, stomp: { read: ['/topic/tok.*'] } });
    const r1 = await reader(broker, q('/topic/tok.a'), { headers: { Authorization: `Bearer ${token}` } });
    const r2 = await reader(broker, `${q('/topic/tok.a')}&access_token=${token}`);
    const no = await sseOpen(broker.wsPort, `/sse?${q('/topic/other')}&access_token=${token}`);
    assert.equal(no.status, 403);
    const forged = await sseOpen(broker.wsPort, `/sse?${q('/topic/tok.a')}&access_token=${token}x`);
    assert.equal(forged.status, 401);
    const pub = await tcpStomp(broker, { headers: { passcode: jwt({ sub: 'p', exp: Math.floor(Date.now() / 1000) + 60, stomp: { write: ['/topic/tok.a'] } }) } });
    await publish(pub, '/topic/tok.a', 'for both');
    assert.equal(JSON.parse((await r1.event()).data).body, 'for both');
    assert.equal(JSON.parse((await r2.event()).data).body, 'for both');
  });

brokerTest('Origin allow-list: refused origin 403; allowed origin gets CORS headers',
  { set: { 'auth.allow_origin': 'https://app.example' } }, async (broker) => {
    const bad = await sseOpen(broker.wsPort, `/sse?${q('/topic/a')}`, { headers: { Origin: 'https://evil.example' } });
    assert.equal(bad.status, 403);
    assert.equal(bad.headers['access-control-allow-origin'], undefined);
    assert.match(JSON.parse(await bad.body()).error, /origin not allowed/);
    const r = await reader(broker, q('/topic/a'), { headers: { Origin: 'https://app.example' } });
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
    assert.equal(r.headers.vary, 'Origin');
    const err = await sseOpen(broker.wsPort, '/sse', { headers: { Origin: 'https://app.example' } });
    assert.equal(err.status, 400);
    assert.equal(err.headers['access-control-allow-origin'], 'https://app.example', 'errors readable by the page');
  });

brokerTest('the --http port serves /sse too; /metrics counts readers as transport sse',
  { args: ['--http', '127.0.0.1:0'] }, async (broker) => {
    const r = await reader(broker, q('/topic/m'), { port: broker.httpPort });
    // With several loops another loop's figures are up to one lag tick (250 ms) old: poll.
    const gauge = async (n) => {
      for (let i = 0; i < 50; i++) {
        if (new RegExp(`stompws_connections\\{transport="sse"\\} ${n}\\n`).test((await httpCall(broker.wsPort, 'GET', '/metrics')).text)) return;
        await sleep(50);
      }
      assert.fail(`stompws_connections{transport="sse"} never read ${n}`);
    };
    await gauge(1);
    const pub = await tcpStomp(broker);
    await publish(pub, '/topic/m', 'x');
    assert.equal(JSON.parse((await r.event()).data).body, 'x');
    r.close();
    await gauge(0);
  });

// A reader that stops reading is a slow consumer like any other: over the high-water mark its
// messages are dropped, then it is closed, with a comment saying why; what was queued before is
// cut between two events, never inside one.
brokerTest('a reader that stops reading is dropped then closed as a slow consumer, events whole',
  { set: { 'limits.outbound_high_water': 65536, 'limits.slow_consumer_max_drops': 50 }, timeout: 60000 }, async (broker) => {
    const r = await reader(broker, `${q('/topic/slow')}&format=raw`);
    r.res.pause(); // the socket's buffers fill, then the broker's output
    const pub = await tcpStomp(broker);
    const pad = 'p'.repeat(1000);
    const frames = [];
    for (let i = 0; i < 20000; i++) frames.push(`SEND\ndestination:/topic/slow\n\n${String(i).padStart(6, '0')}:${pad}\0`);
    for (let i = 0; i < frames.length; i += 200) {
      pub.sendBytes(Buffer.from(frames.slice(i, i + 200).join('')));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await pub.sendWithReceipt('SEND', { destination: '/topic/other' }, 'fence', 30000);
    r.res.resume();
    await r.closed(30000);
    assert.match(r.raw, /\n: error: slow consumer: \d+ messages dropped in a row/);
    assert.ok(r.events.length > 0 && r.events.length < 20000, `${r.events.length} events`);
    let last = -1;
    for (const e of r.events) {
      assert.match(e.data, /^\d{6}:p{1000}$/, 'every event whole');
      const seq = Number(e.data.slice(0, 6));
      assert.ok(seq > last, 'in order');
      last = seq;
    }
    const m = await httpCall(broker.wsPort, 'GET', '/metrics');
    assert.match(m.text, /stompws_limit_hits_total\{limit="limits.slow_consumer_max_drops"\} 1\n/);
  });
