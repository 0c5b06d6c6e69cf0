// Last values, history and resume (--history PATTERN=SIZE[/TTL], docs/HISTORY.md): the
// x-stream-offset and x-stream-epoch headers of MESSAGE, the x-stream-offset SUBSCRIBE values,
// x-stream-recovered on the RECEIPT, TTL expiry, a restart's new epoch, the HTTP API's offset,
// forged headers dropped, and one offset sequence per destination across --threads 2.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { brokerTest, runBroker, startBroker } from './lib/broker.mjs';
import { tcpStomp, uniq, wsStomp } from './lib/stomp.mjs';
import { StompJs } from './lib/stompjs.mjs';
import { apiKeyFile, apiPublishTo } from './lib/api.mjs';
import { httpCall } from './lib/http.mjs';

const history = (...specs) => ({ args: specs.flatMap((s) => ['--history', s]) });
const offsetOf = (m) => Number(m.headers['x-stream-offset']);

// Publishes n messages (bodies prefix-0, prefix-1, ...) and waits for the last one's RECEIPT.
async function publishN(client, destination, n, prefix = 'm') {
  for (let i = 0; i < n - 1; i++) client.send('SEND', { destination }, `${prefix}-${i}`);
  await client.sendWithReceipt('SEND', { destination }, `${prefix}-${n - 1}`);
}

// SUBSCRIBE with a receipt; returns the RECEIPT (or throws on ERROR).
const subscribeFrom = (client, destination, id, headers) => client.subscribe(destination, id, headers);

test('--history: a pattern outside /topic/ is a config error that names it', async () => {
  const r = await runBroker(['--check-config', '--history', '/queue/jobs=10']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /\/queue\/jobs.*not a \/topic\/ destination/);
  const bad = await runBroker(['--check-config', '--history', '/topic/x=10/5w']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /TTL/);
});

test('--history and [history] policy lines round-trip through --print-config', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-history-'));
  const file = path.join(dir, 'h.conf');
  fs.writeFileSync(file, '[history]\npolicy = /topic/stocks.*=1\npolicy = /topic/notify.#=100/90m\n');
  const printed = await runBroker(['--print-config', '--config', file, '--history', '/topic/x=5/2d']);
  assert.equal(printed.code, 0, printed.stderr);
  assert.match(printed.stdout, /\[history\]\npolicy = \/topic\/stocks\.\*=1\npolicy = \/topic\/notify\.#=100\/90m\npolicy = \/topic\/x=5\/2d\n/);
  fs.writeFileSync(file, printed.stdout);
  const again = await runBroker(['--print-config', '--config', file]);
  assert.equal(again.stdout, printed.stdout);
  fs.rmSync(dir, { recursive: true, force: true });
});

brokerTest('last value on an exact destination (stompjs) and on a wildcard', history('/topic/stocks.*=1'), async (broker) => {
  const pub = await tcpStomp(broker);
  await publishN(pub, '/topic/stocks.acme', 3, 'acme');
  await publishN(pub, '/topic/stocks.globex', 2, 'globex');

  const js = new StompJs(broker);
  await js.connect();
  await js.subscribe('/topic/stocks.acme', { 'x-stream-offset': 'last' });
  const m = await js.message();
  assert.equal(m.body, 'acme-2');
  assert.equal(m.headers['x-stream-offset'], '3');
  assert.match(m.headers['x-stream-epoch'], /^[0-9a-f]{8}$/);

  const c = await wsStomp(broker);
  const receipt = await subscribeFrom(c, '/topic/stocks.*', 'all', { 'x-stream-offset': 'last' });
  assert.equal(receipt.headers['x-stream-recovered'], 'true');
  const got = await c.messages(2, 'all');
  assert.deepEqual(got.map((f) => f.text).sort(), ['acme-2', 'globex-1']);
  // Then live, exactly once.
  pub.send('SEND', { destination: '/topic/stocks.acme' }, 'acme-3');
  const live = await c.message('all');
  assert.equal(live.text, 'acme-3');
  assert.equal(offsetOf(live), 4);
  await c.inbox.quiet(200, (f) => f.command === 'MESSAGE');
});

brokerTest('first, offset=N, timestamp=T and the recovered flag', history('/topic/n.#=5'), async (broker) => {
  const pub = await tcpStomp(broker);
  const before = Math.floor(Date.now() / 1000);
  await publishN(pub, '/topic/n.a', 3);
  const c = await tcpStomp(broker);

  let r = await subscribeFrom(c, '/topic/n.a', 'f', { 'x-stream-offset': 'first' });
  assert.equal(r.headers['x-stream-recovered'], 'true');
  assert.deepEqual((await c.messages(3, 'f')).map(offsetOf), [1, 2, 3]);

  r = await subscribeFrom(c, '/topic/n.a', 'o', { 'x-stream-offset': 'offset=2' });
  assert.equal(r.headers['x-stream-recovered'], 'true');
  assert.deepEqual((await c.messages(2, 'o')).map(offsetOf), [2, 3]);

  r = await subscribeFrom(c, '/topic/n.a', 't', { 'x-stream-offset': `timestamp=${before}` });
  assert.equal(r.headers['x-stream-recovered'], 'true');
  assert.deepEqual((await c.messages(3, 't')).map(offsetOf), [1, 2, 3]);

  // Past SIZE: offsets 1..3 are gone, so offset=1 and first cannot be recovered.
  await publishN(pub, '/topic/n.a', 5, 'more');
  r = await subscribeFrom(c, '/topic/n.a', 'gone', { 'x-stream-offset': 'offset=1' });
  assert.equal(r.headers['x-stream-recovered'], 'false');
  assert.deepEqual((await c.messages(5, 'gone')).map(offsetOf), [4, 5, 6, 7, 8]);
  r = await subscribeFrom(c, '/topic/n.a', 'first2', { 'x-stream-offset': 'first' });
  assert.equal(r.headers['x-stream-recovered'], 'false');
  await c.messages(5, 'first2');

  // The next offset: nothing missed, nothing replayed.
  r = await subscribeFrom(c, '/topic/n.a', 'next', { 'x-stream-offset': 'offset=9' });
  assert.equal(r.headers['x-stream-recovered'], 'true');

  // The wrong epoch: not recovered, and everything retained is new to that client.
  r = await subscribeFrom(c, '/topic/n.a', 'ep', { 'x-stream-offset': 'offset=7', 'x-stream-epoch': '0123456789abcdef' });
  assert.equal(r.headers['x-stream-recovered'], 'false');
  assert.deepEqual((await c.messages(5, 'ep')).map(offsetOf), [4, 5, 6, 7, 8]);

  // next (the default) asks for nothing: no header on the RECEIPT.
  r = await subscribeFrom(c, '/topic/n.a', 'live', { 'x-stream-offset': 'next' });
  assert.equal(r.headers['x-stream-recovered'], undefined);
  await c.inbox.quiet(200, (f) => f.command === 'MESSAGE');
});

brokerTest('no policy: empty replay, offset=N answered recovered:false, no x-stream headers; queues untouched',
  history('/topic/kept=3'), async (broker) => {
    const pub = await tcpStomp(broker);
    await publishN(pub, '/topic/plain', 2);
    const c = await tcpStomp(broker);
    let r = await subscribeFrom(c, '/topic/plain', 'p', { 'x-stream-offset': 'offset=1' });
    assert.equal(r.headers['x-stream-recovered'], 'false');
    r = await subscribeFrom(c, '/topic/plain', 'l', { 'x-stream-offset': 'last' });
    assert.equal(r.headers['x-stream-recovered'], 'false');
    await c.inbox.quiet(200, (f) => f.command === 'MESSAGE');
    pub.send('SEND', { destination: '/topic/plain' }, 'live');
    const m = await c.message('p');
    assert.equal(m.headers['x-stream-offset'], undefined);
    assert.equal(m.headers['x-stream-epoch'], undefined);

    const q = `/queue/${uniq('q')}`;
    await pub.sendWithReceipt('SEND', { destination: q }, 'job');
    r = await subscribeFrom(c, q, 'q', { 'x-stream-offset': 'last' });
    assert.equal(r.headers['x-stream-recovered'], undefined);
    const job = await c.message('q');
    assert.equal(job.text, 'job');
    assert.equal(job.headers['x-stream-offset'], undefined);
  });

for (const [value, header] of [['offset=-1', 'x-stream-offset'], ['later', 'x-stream-offset'],
  ['timestamp=', 'x-stream-offset'], ['offset=99999999999999999999', 'x-stream-offset']]) {
  brokerTest(`a bad x-stream-offset value (${value}) gets an ERROR naming the header`, history('/topic/a=1'), async (broker) => {
    const c = await tcpStomp(broker);
    c.send('SUBSCRIBE', { id: 's', destination: '/topic/a', 'x-stream-offset': value });
    const e = await c.error();
    assert.match(e.headers.message, new RegExp(header));
    await c.closed();
  });
}

brokerTest('a bad x-stream-epoch and offset=N on a wildcard get an ERROR naming the header', history('/topic/a.*=1'), async (broker) => {
  const c = await tcpStomp(broker);
  c.send('SUBSCRIBE', { id: 's', destination: '/topic/a.b', 'x-stream-offset': 'last', 'x-stream-epoch': 'not-hex' });
  assert.match((await c.error()).headers.message, /x-stream-epoch/);
  const w = await tcpStomp(broker);
  w.send('SUBSCRIBE', { id: 's', destination: '/topic/a.*', 'x-stream-offset': 'offset=3' });
  assert.match((await w.error()).headers.message, /x-stream-offset.*wildcard/);
});

brokerTest('forged x-stream-* headers of a SEND are dropped', history('/topic/f=2'), async (broker) => {
  const c = await tcpStomp(broker);
  await c.subscribe('/topic/f', 's');
  await c.subscribe('/topic/nf', 'n');
  c.send('SEND', [['destination', '/topic/f'], ['x-stream-offset', '999'], ['x-stream-epoch', 'ffff'], ['x-stream-recovered', 'true']], 'a');
  c.send('SEND', [['destination', '/topic/nf'], ['x-stream-offset', '999']], 'b');
  const m = await c.message('s');
  assert.deepEqual(m.headerList.filter(([k]) => k.startsWith('x-stream-')).map(([k, v]) => k + (k === 'x-stream-offset' ? `=${v}` : '')),
    ['x-stream-offset=1', 'x-stream-epoch']);
  const n = await c.message('n');
  assert.deepEqual(n.headerList.filter(([k]) => k.startsWith('x-stream-')), []);
});

brokerTest('TTL: a retained message expires', history('/topic/ttl=10/1s'), async (broker) => {
  const c = await tcpStomp(broker);
  await publishN(c, '/topic/ttl', 2);
  let r = await subscribeFrom(c, '/topic/ttl', 'a', { 'x-stream-offset': 'first' });
  assert.equal(r.headers['x-stream-recovered'], 'true');
  await c.messages(2, 'a');
  await new Promise((resolve) => setTimeout(resolve, 1300));
  r = await subscribeFrom(c, '/topic/ttl', 'b', { 'x-stream-offset': 'first' });
  assert.equal(r.headers['x-stream-recovered'], 'false', 'the expired ones are missing');
  await c.inbox.quiet(300, (f) => f.command === 'MESSAGE' && f.headers.subscription === 'b');
});

brokerTest('limits.history_bytes evicts the oldest and counts the limit on /metrics',
  { args: ['--history', '/topic/big=1000', '--http', '127.0.0.1:0'], set: { 'limits.history_bytes': '4096' } }, async (broker) => {
    const c = await tcpStomp(broker);
    await publishN(c, '/topic/big', 20, 'x'.repeat(500));
    const r = await subscribeFrom(c, '/topic/big', 's', { 'x-stream-offset': 'first' });
    assert.equal(r.headers['x-stream-recovered'], 'false');
    const got = [];
    for (;;) {
      const m = await c.message('s', 2000);
      got.push(offsetOf(m));
      if (offsetOf(m) === 20) break;
    }
    assert.ok(got.length < 20 && got.length >= 2, `kept ${got.length}`);
    const { text } = await httpCall(broker.httpPort, 'GET', '/metrics');
    assert.match(text, /stompws_limit_hits_total\{limit="limits.history_bytes"\} [1-9]/);
  });

brokerTest('resume by offset while a publisher runs flat out: no loss, no duplicate', history('/topic/feed=100000'), async (broker) => {
  const TOTAL = 3000;
  const pub = await tcpStomp(broker, { label: 'pub' });
  const first = await tcpStomp(broker, { label: 'first' });
  await first.subscribe('/topic/feed', 's');
  const running = publishN(pub, '/topic/feed', TOTAL, 'p');
  const seen = [];
  let epoch = null;
  while (seen.length < 200) {
    const m = await first.message('s');
    seen.push(offsetOf(m));
    epoch = m.headers['x-stream-epoch'];
  }
  first.destroy(); // the train enters a tunnel
  const again = await tcpStomp(broker, { label: 'again' });
  const next = seen[seen.length - 1] + 1;
  const r = await subscribeFrom(again, '/topic/feed', 's', { 'x-stream-offset': `offset=${next}`, 'x-stream-epoch': epoch });
  assert.equal(r.headers['x-stream-recovered'], 'true');
  await running;
  for (;;) {
    const m = await again.message('s', 10000);
    seen.push(offsetOf(m));
    if (offsetOf(m) === TOTAL) break;
  }
  assert.deepEqual(seen, Array.from({ length: TOTAL }, (_, i) => i + 1), 'every offset once, in order');
  await again.inbox.quiet(200, (f) => f.command === 'MESSAGE');
});

test('a restart draws a new epoch: the old offset is answered recovered:false', { timeout: 40000 }, async () => {
  const brokers = [];
  try {
    const a = await startBroker(history('/topic/r=10'));
    brokers.push(a);
    const c = await tcpStomp(a);
    await c.subscribe('/topic/r', 's');
    await publishN(c, '/topic/r', 2);
    const m = await c.message('s');
    const oldEpoch = m.headers['x-stream-epoch'];
    await a.closeClients();
    assert.deepEqual(await a.stop(), { code: 0, signal: null });

    const b = await startBroker(history('/topic/r=10'));
    brokers.push(b);
    const d = await tcpStomp(b);
    await publishN(d, '/topic/r', 1, 'after');
    const r = await subscribeFrom(d, '/topic/r', 's', { 'x-stream-offset': 'offset=3', 'x-stream-epoch': oldEpoch });
    assert.equal(r.headers['x-stream-recovered'], 'false');
    const got = await d.message('s');
    assert.equal(got.text, 'after-0');
    assert.notEqual(got.headers['x-stream-epoch'], oldEpoch);
    await b.closeClients();
    assert.deepEqual(await b.stop(), { code: 0, signal: null });
  } finally {
    for (const b of brokers) if (b.child.exitCode === null) b.child.kill('SIGKILL');
  }
});

const { key: KEY, file: keyFile } = apiKeyFile();
const apiPublish = (port, destination, body, headers = {}) =>
  apiPublishTo(port, KEY, destination, body, { headers });

brokerTest('the HTTP publish API retains and answers the offset', { args: ['--history', '/topic/h=5', '--api-key-file', keyFile] }, async (broker) => {
  let r = await apiPublish(broker.wsPort, '/topic/h', 'one', { 'X-Stomp-X-Stream-Offset': '77' });
  assert.equal(r.status, 202);
  assert.equal(r.json.offset, 1);
  r = await apiPublish(broker.wsPort, '/topic/h', 'two');
  assert.equal(r.json.offset, 2);
  r = await apiPublish(broker.wsPort, '/topic/other', 'x');
  assert.equal(r.json.offset, undefined);
  const c = await tcpStomp(broker);
  await subscribeFrom(c, '/topic/h', 's', { 'x-stream-offset': 'first' });
  const got = await c.messages(2, 's');
  assert.deepEqual(got.map((m) => [m.text, offsetOf(m)]), [['one', 1], ['two', 2]]);
  assert.equal(got[0].headerList.filter(([k]) => k === 'x-stream-offset').length, 1);
});

// --threads 2: a connection id modulo 2 is its loop (threads.test.mjs).
const loopOf = (client) => Number(/^sess-(\d+)-/.exec(client.connected.headers.session)[1]) % 2;

async function clientsOnBothLoops(broker, perLoop) {
  const byLoop = [[], []];
  for (let i = 0; byLoop.some((l) => l.length < perLoop); i++) {
    assert.ok(i < perLoop * 40, 'the kernel put every connection on one loop');
    const c = await tcpStomp(broker, { label: `t${i}` });
    byLoop[loopOf(c)].push(c);
  }
  return byLoop;
}

brokerTest('--threads 2: one offset sequence per destination, replay racing live publishes on both loops',
  { args: ['--threads', '2', '--history', '/topic/t.#=100000'], timeout: 60000 }, async (broker) => {
    const PER = 1500;
    const [[pubA, subA, lateA], [pubB, subB, lateB]] = await clientsOnBothLoops(broker, 3);
    await subA.subscribe('/topic/t.x', 's');
    await subB.subscribe('/topic/t.#', 's');
    const running = Promise.all([publishN(pubA, '/topic/t.x', PER, 'a'), publishN(pubB, '/topic/t.x', PER, 'b')]);
    // Late subscribers on both loops replay from the start while both publishers run.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const r1 = await lateA.subscribe('/topic/t.x', 's', { 'x-stream-offset': 'first' });
    const r2 = await lateB.subscribe('/topic/t.*', 's', { 'x-stream-offset': 'first' });
    assert.equal(r1.headers['x-stream-recovered'], 'true');
    assert.equal(r2.headers['x-stream-recovered'], 'true');
    await running;
    const want = Array.from({ length: 2 * PER }, (_, i) => i + 1);
    for (const [name, c] of [['subA', subA], ['subB', subB], ['lateA', lateA], ['lateB', lateB]]) {
      const offsets = [];
      const bodies = new Set();
      while (offsets.length < 2 * PER) {
        const m = await c.message('s', 10000);
        offsets.push(offsetOf(m));
        bodies.add(m.text);
      }
      assert.deepEqual(offsets, want, `${name}: 1..${2 * PER} once each, in order`);
      assert.equal(bodies.size, 2 * PER, `${name}: every message once`);
      await c.inbox.quiet(100, (f) => f.command === 'MESSAGE');
    }
  });
