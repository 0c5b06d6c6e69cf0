// Admission and rate limits: each one, when hit, answers with an error that names it, and the
// broker keeps serving everyone else.
import assert from 'node:assert/strict';
import { brokerTest, sleep } from './lib/broker.mjs';
import { httpExchange, httpRequest, upgradeRequest } from './lib/rawws.mjs';
import { encodeFrame, tcpClient, tcpStomp, wsStomp } from './lib/stomp.mjs';

// The whole response body: the server closes after it.
const body = (r) => r.reader.bodyAfterClose();

brokerTest('connection rate: upgrades over limits.connection_rate get 503 with Retry-After',
  { set: { 'limits.connection_rate': 1, 'limits.connection_burst': 2 } }, async (broker) => {
    const first = await httpRequest(broker.wsPort, upgradeRequest().text);
    const second = await httpRequest(broker.wsPort, upgradeRequest().text);
    const third = await httpRequest(broker.wsPort, upgradeRequest().text);
    for (const r of [first, second, third]) broker.track(r.socket);
    assert.equal(first.status, 101, first.statusLine);
    assert.equal(second.status, 101, second.statusLine);
    assert.equal(third.status, 503, third.statusLine);
    assert.equal(third.headers['retry-after'], '1');
    assert.match(await body(third), /limits\.connection_rate/);
    await sleep(1100); // one token back
    const later = await httpRequest(broker.wsPort, upgradeRequest().text);
    broker.track(later.socket);
    assert.equal(later.status, 101, later.statusLine);
  });

brokerTest('per-address limit: the next connection gets 429 (ws) or an ERROR (tcp)',
  { set: { 'limits.max_connections_per_address': 2 } }, async (broker) => {
    const a = await wsStomp(broker, { label: 'a' });
    await tcpStomp(broker, { label: 'b' });
    const r = await httpRequest(broker.wsPort, upgradeRequest().text);
    broker.track(r.socket);
    assert.equal(r.status, 429, r.statusLine);
    assert.match(await body(r), /limits\.max_connections_per_address/);
    const c = broker.track(await tcpClient(broker.tcpPort, 'c'));
    const err = await c.error();
    assert.match(err.headers.message, /limits\.max_connections_per_address/);
    await c.closed();
    // The admitted clients still work, and a slot frees when one leaves.
    await a.subscribe('/topic/still', 's');
    await a.disconnect();
    await sleep(100);
    await tcpStomp(broker, { label: 'd' });
  });

brokerTest('max_connections: over the total -> 503 naming limits.max_connections',
  { set: { 'limits.max_connections': 1 } }, async (broker) => {
    await tcpStomp(broker, { label: 'only' });
    const r = await httpRequest(broker.wsPort, upgradeRequest().text);
    broker.track(r.socket);
    assert.equal(r.status, 503, r.statusLine);
    assert.match(await body(r), /limits\.max_connections/);
  });

brokerTest('publish rate, action error: SENDs over limits.publish_rate -> ERROR naming it; others unaffected',
  { set: { 'limits.publish_rate': 5, 'limits.publish_burst': 5, 'limits.publish_rate_action': 'error' } }, async (broker) => {
    const sub = await tcpStomp(broker, { label: 'sub' });
    await sub.subscribe('/topic/rate', 's');
    const pub = await tcpStomp(broker, { label: 'pub' });
    for (let i = 0; i < 10; i++) pub.send('SEND', { destination: '/topic/rate' }, `m${i}`);
    const err = await pub.error();
    assert.match(err.headers.message, /publish rate exceeded \(limits\.publish_rate = 5/);
    await pub.closed();
    const got = await sub.messages(5, 's');
    assert.deepEqual(got.map((m) => m.body.toString()), ['m0', 'm1', 'm2', 'm3', 'm4']);
    // Another publisher still gets through.
    const other = await tcpStomp(broker, { label: 'other' });
    await other.sendWithReceipt('SEND', { destination: '/topic/rate' }, 'ok');
    assert.equal((await sub.message('s')).body.toString(), 'ok');
  });

brokerTest('max_unacked: a connection holds at most limits.max_unacked queue messages until it ACKs',
  { set: { 'limits.max_unacked': 3, 'queue.prefetch': 0 } }, async (broker) => {
    const c = await tcpStomp(broker, { label: 'consumer' });
    await c.subscribe('/queue/ua', 'a', { ack: 'client-individual' });
    await c.subscribe('/queue/ub', 'b', { ack: 'client-individual' });
    const p = await tcpStomp(broker, { label: 'producer' });
    for (let i = 0; i < 4; i++) {
      await p.sendWithReceipt('SEND', { destination: '/queue/ua' }, `a${i}`);
      await p.sendWithReceipt('SEND', { destination: '/queue/ub' }, `b${i}`);
    }
    const first = await c.messages(3);
    assert.equal(await c.inbox.quiet(300, (f) => f.command === 'MESSAGE'), null, 'no fourth before an ACK');
    c.send('ACK', { id: first[0].headers.ack });
    const next = await c.message();
    assert.notEqual(next.headers['message-id'], first[0].headers['message-id']);
    assert.equal(await c.inbox.quiet(300, (f) => f.command === 'MESSAGE'), null, 'one ACK, one more');
  });

// ---- limits.publish_rate_action = throttle (the default) ----

// Waits (bounded) until client holds n MESSAGE frames, without taking them one by one: takeN
// is quadratic in what is queued. Returns their bodies in arrival order.
async function bodiesWhenAll(client, n, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = client.inbox.items.filter((f) => f.command === 'MESSAGE');
    if (got.length >= n) return got.map((f) => f.body.toString());
    if (client.inbox.closedInfo) throw new Error(`${client.inbox.label} closed after ${got.length} of ${n} messages`);
    if (Date.now() > deadline) throw new Error(`${got.length} of ${n} messages within ${timeoutMs} ms`);
    await sleep(100);
  }
}

const inOrder = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

brokerTest('publish rate, throttle: publishers over limits.publish_rate are slowed to it, not cut off; every SEND arrives, in order',
  { set: { 'limits.publish_rate': 2000, 'limits.publish_burst': 2000 }, timeout: 60000 }, async (broker) => {
    const sub = await tcpStomp(broker, { label: 'sub' });
    await sub.subscribe('/topic/throttle', 's');
    const tcp = await tcpStomp(broker, { label: 'tcp-pub' });
    const ws = await wsStomp(broker, { label: 'ws-pub' });
    const N = 6000;
    const start = Date.now();
    for (let i = 0; i < N; i++) {
      tcp.send('SEND', { destination: '/topic/throttle' }, `t${i}`);
      ws.send('SEND', { destination: '/topic/throttle' }, `w${i}`);
    }
    const bodies = await bodiesWhenAll(sub, 2 * N, 30000);
    const ms = Date.now() - start;
    assert.deepEqual(bodies.filter((b) => b[0] === 't'), inOrder('t', N));
    assert.deepEqual(bodies.filter((b) => b[0] === 'w'), inOrder('w', N));
    // Each publisher: 2,000 at once (the burst), the other 4,000 at 2,000/s: about 2 s.
    assert.ok(ms >= 1500, `${2 * N} SENDs in ${ms} ms: slowed to limits.publish_rate`);
    for (const c of [tcp, ws]) {
      assert.equal(c.inbox.items.filter((f) => f.command === 'ERROR').length, 0, `${c.inbox.label}: no ERROR`);
      await c.sendWithReceipt('SEND', { destination: '/topic/other' }, 'still connected');
    }
    const text = (await httpExchange(broker, broker.wsPort, 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')).body;
    const hits = Number(/stompws_limit_hits_total\{limit="limits\.publish_rate"\} (\d+)/.exec(text)[1]);
    assert.ok(hits >= 2, `throttled SENDs counted on /metrics (${hits})`);
  });

brokerTest('publish rate, defaults: a TCP publisher at 30,000 SEND/s for 5 s is slowed, not disconnected, and every message arrives',
  { timeout: 90000 }, async (broker) => {
    const sub = await tcpStomp(broker, { label: 'sub' });
    await sub.subscribe('/topic/fast', 's');
    const pub = await tcpStomp(broker, { label: 'fast-pub' });
    let sent = 0;
    for (let tick = 0; tick < 50; tick++) { // 3,000 SENDs every 100 ms for 5 s
      const batch = [];
      for (let i = 0; i < 3000; i++) batch.push(encodeFrame('SEND', { destination: '/topic/fast' }, `f${sent++}`));
      pub.sendBytes(Buffer.concat(batch));
      await sleep(100);
    }
    const bodies = await bodiesWhenAll(sub, sent, 60000);
    assert.equal(bodies.length, sent);
    assert.ok(bodies.every((b, i) => b === `f${i}`), 'every message, in order');
    assert.equal(pub.inbox.items.filter((f) => f.command === 'ERROR').length, 0, 'no ERROR');
    await pub.sendWithReceipt('SEND', { destination: '/topic/fast' }, 'still connected', 10000);
  });
