// CONNECT / STOMP: CONNECTED headers, version negotiation (WebSocket subprotocol and
// accept-version), heart-beats in both directions with clamping.
import assert from 'node:assert/strict';
import { brokerTest, sleep } from './lib/broker.mjs';
import { wsOpen, wsStomp, tcpClient, tcpStomp } from './lib/stomp.mjs';
import { StompJs, stompjs } from './lib/stompjs.mjs';

brokerTest('stompjs connects: CONNECTED has version, server, session, heart-beat', {}, async (broker) => {
  const c = await stompjs(broker);
  const h = c.connected.headers;
  assert.equal(h.version, '1.2');
  assert.match(h.server ?? '', /^stompws\/\d+\.\d+\.\d+/);
  assert.ok(h.session && h.session.length > 0, 'session header');
  assert.match(h['heart-beat'] ?? '', /^\d+,\d+$/);
});

brokerTest('session ids are unique per connection', {}, async (broker) => {
  const a = await wsStomp(broker);
  const b = await wsStomp(broker);
  const c = await tcpStomp(broker);
  const ids = [a, b, c].map((x) => x.connected.headers.session);
  assert.equal(new Set(ids).size, 3, `sessions: ${ids}`);
});

brokerTest('the STOMP command is accepted like CONNECT', {}, async (broker) => {
  const c = await wsOpen(broker);
  const f = await c.connect({ 'accept-version': '1.2', host: 'localhost' }, { command: 'STOMP' });
  assert.equal(f.headers.version, '1.2');
});

brokerTest('subprotocol v11.stomp fixes the version to 1.1', {}, async (broker) => {
  const c = await wsOpen(broker, { protocols: ['v11.stomp'] });
  const f = await c.connect({ 'accept-version': '1.0,1.1,1.2', host: 'localhost' });
  assert.equal(f.headers.version, '1.1');
});

brokerTest('subprotocol v10.stomp fixes the version to 1.0', {}, async (broker) => {
  const c = await wsOpen(broker, { protocols: ['v10.stomp'] });
  const f = await c.connect({ 'accept-version': '1.0,1.1,1.2', host: 'localhost' });
  assert.equal(f.headers.version, '1.0');
});

brokerTest('subprotocol v11.stomp + accept-version 1.2 only -> ERROR and close', {}, async (broker) => {
  const c = await wsOpen(broker, { protocols: ['v11.stomp'] });
  c.send('CONNECT', { 'accept-version': '1.2', host: 'localhost' });
  const e = await c.error();
  assert.ok(e.headers.message, 'ERROR has a message header');
  await c.closed();
  assert.equal(c.inbox.all.filter((f) => f.command === 'CONNECTED').length, 0);
});

brokerTest('stompjs limited to 1.1 negotiates 1.1 end to end', {}, async (broker) => {
  const { Versions } = await import('./lib/stompjs.mjs');
  const c = await stompjs(broker, { stompVersions: new Versions(['1.1']) });
  assert.equal(c.connected.headers.version, '1.1');
});

brokerTest('no common version -> ERROR with version:1.0,1.1,1.2 and close', {}, async (broker) => {
  const c = broker.track(await tcpClient(broker.tcpPort));
  c.send('CONNECT', { 'accept-version': '2.0,3.1', host: 'localhost' });
  const e = await c.error();
  assert.equal(e.headers.version, '1.0,1.1,1.2');
  assert.ok(e.headers.message, 'ERROR has a message header');
  await c.closed();
});

brokerTest('no common version over WebSocket without subprotocol -> ERROR and close', {}, async (broker) => {
  const c = await wsOpen(broker, { protocols: [] });
  c.send('CONNECT', { 'accept-version': '9.9', host: 'localhost' });
  const e = await c.error();
  assert.equal(e.headers.version, '1.0,1.1,1.2');
  await c.closed();
});

brokerTest('TCP: no accept-version -> STOMP 1.0', {}, async (broker) => {
  const c = broker.track(await tcpClient(broker.tcpPort));
  const f = await c.connect({ host: 'localhost' });
  assert.equal(f.headers.version, '1.0');
});

brokerTest('TCP: accept-version 1.0,1.1 -> 1.1; 1.1,1.2 -> 1.2', {}, async (broker) => {
  const a = broker.track(await tcpClient(broker.tcpPort));
  assert.equal((await a.connect({ 'accept-version': '1.0,1.1', host: 'x' })).headers.version, '1.1');
  const b = broker.track(await tcpClient(broker.tcpPort));
  assert.equal((await b.connect({ 'accept-version': '1.1,1.2', host: 'x' })).headers.version, '1.2');
  const c = broker.track(await tcpClient(broker.tcpPort));
  assert.equal((await c.connect({ 'accept-version': '1.0', host: 'x' })).headers.version, '1.0');
});

brokerTest('a second CONNECT on a connected session -> ERROR', {}, async (broker) => {
  // Not spelled out in the spec; STOMP allows one CONNECT per connection and RabbitMQ
  // answers a second one with an ERROR.
  const c = await tcpStomp(broker);
  c.send('CONNECT', { 'accept-version': '1.2', host: 'x' });
  await c.error();
  await c.closed();
});

// ---- heart-beats ----

const HB = { 'heartbeat.min_ms': 500, 'heartbeat.send_ms': 500, 'heartbeat.receive_ms': 500 };

function countIn(times, from, to) {
  return times.filter((t) => t >= from && t <= to).length;
}

brokerTest('WS: heart-beat:0,1000 -> server EOLs about every 1000 ms', { set: HB }, async (broker) => {
  const c = await wsOpen(broker);
  const f = await c.connect({ 'accept-version': '1.2', host: 'x', 'heart-beat': '0,1000' });
  assert.match(f.headers['heart-beat'], /^\d+,\d+$/);
  const [sx] = f.headers['heart-beat'].split(',').map(Number);
  assert.ok(sx > 0 && sx <= 1000, `server offers to send (${sx}) at most every 1000 ms`);
  const start = Date.now();
  await sleep(3500);
  const n = countIn(c.heartbeats, start, start + 3500);
  // "About every 1000 ms": at least every second; sending more often (e.g. at half the
  // interval, as a safety margin) is allowed, but not at a wildly higher rate.
  assert.ok(n >= 2 && n <= 8, `${n} heart-beats in 3.5 s (expected 3 to 7)`);
  assert.equal(c.inbox.closedInfo, null, 'the connection stays open');
});

// With the defaults, a client asking for 1 s heart-beats gets them every second (the broker's
// offer is heartbeat.send_ms = 1000, not a fixed 10 s): the upstream @stomp/stompjs heart-beat
// specs rely on it.
brokerTest('defaults: heart-beat:0,1000 -> CONNECTED offers 1000 and EOLs come every second', {},
  async (broker) => {
    const c = await wsOpen(broker);
    const f = await c.connect({ 'accept-version': '1.2', host: 'x', 'heart-beat': '0,1000' });
    assert.equal(f.headers['heart-beat'].split(',')[0], '1000');
    const start = Date.now();
    await sleep(3500);
    const n = countIn(c.heartbeats, start, start + 3500);
    assert.ok(n >= 3 && n <= 8, `${n} heart-beats in 3.5 s (expected 3 to 7)`);
    assert.equal(c.inbox.closedInfo, null, 'the connection stays open');
  });

brokerTest('defaults: @stomp/stompjs with heartbeatIncoming 1000 hears a heart-beat every second', {},
  async (broker) => {
    let beats = 0;
    const sj = new StompJs(broker, { label: 'stompjs-hb', heartbeatIncoming: 1000 });
    sj.client.onHeartbeatReceived = () => { beats++; };
    const connected = await sj.connect();
    assert.equal(connected.headers['heart-beat'].split(',')[0], '1000');
    const before = beats;
    await sleep(3500);
    assert.ok(beats - before >= 3, `${beats - before} heart-beats in 3.5 s (expected at least 3)`);
    assert.equal(sj.closes.length, 0, 'stompjs kept the connection');
  });

brokerTest('TCP: heart-beat:0,1000 -> server EOLs about every 1000 ms', { set: HB }, async (broker) => {
  const c = broker.track(await tcpClient(broker.tcpPort));
  await c.connect({ 'accept-version': '1.2', host: 'x', 'heart-beat': '0,1000' });
  const start = Date.now();
  await sleep(3500);
  const n = countIn(c.heartbeats, start, start + 3500);
  assert.ok(n >= 2 && n <= 8, `${n} heart-beats in 3.5 s (expected 3 to 7)`);
});

brokerTest('heart-beat:0,0 -> the server sends no heart-beats', { set: HB }, async (broker) => {
  const c = await wsOpen(broker);
  await c.connect({ 'accept-version': '1.2', host: 'x', 'heart-beat': '0,0' });
  await sleep(2000);
  assert.equal(c.heartbeats.length, 0, 'no EOLs');
});

brokerTest('server heart-beat interval is clamped up to heartbeat.min_ms', {
  set: { 'heartbeat.min_ms': 500, 'heartbeat.send_ms': 100, 'heartbeat.receive_ms': 100 },
}, async (broker) => {
  const c = await wsOpen(broker);
  await c.connect({ 'accept-version': '1.2', host: 'x', 'heart-beat': '0,100' });
  const start = Date.now();
  await sleep(2200);
  const n = countIn(c.heartbeats, start, start + 2200);
  assert.ok(n >= 2 && n <= 12, `${n} heart-beats in 2.2 s (500 ms clamp -> 4 to 9; unclamped 100 ms -> 22 to 44)`);
});

brokerTest('server heart-beat interval is clamped down to heartbeat.max_ms', {
  set: { 'heartbeat.min_ms': 500, 'heartbeat.max_ms': 1000, 'heartbeat.send_ms': 500, 'heartbeat.receive_ms': 500 },
}, async (broker) => {
  const c = await wsOpen(broker);
  await c.connect({ 'accept-version': '1.2', host: 'x', 'heart-beat': '0,120000' });
  const start = Date.now();
  await sleep(3500);
  const n = countIn(c.heartbeats, start, start + 3500);
  assert.ok(n >= 2 && n <= 8, `${n} heart-beats in 3.5 s (1000 ms clamp -> 3 to 7; unclamped: none)`);
});

brokerTest('client promising heart-beat:500,0 then silent -> closed after 2x grace', { set: HB }, async (broker) => {
  const c = await wsOpen(broker);
  await c.connect({ 'accept-version': '1.2', host: 'x', 'heart-beat': '500,0' });
  const start = Date.now();
  const info = await c.closed(5000);
  const elapsed = info.at - start;
  assert.ok(elapsed >= 900, `closed after ${elapsed} ms: before twice the 500 ms interval`);
  assert.ok(elapsed <= 3000, `closed after ${elapsed} ms: later than expected`);
});

brokerTest('TCP client promising heart-beat:500,0 then silent -> closed after 2x grace', { set: HB }, async (broker) => {
  const c = broker.track(await tcpClient(broker.tcpPort));
  await c.connect({ 'accept-version': '1.2', host: 'x', 'heart-beat': '500,0' });
  const start = Date.now();
  const info = await c.closed(5000);
  const elapsed = info.at - start;
  assert.ok(elapsed >= 900 && elapsed <= 3000, `closed after ${elapsed} ms`);
});

brokerTest('client sending EOL heart-beats every 500 ms stays connected', { set: HB }, async (broker) => {
  const c = await wsOpen(broker);
  await c.connect({ 'accept-version': '1.2', host: 'x', 'heart-beat': '500,0' });
  for (let i = 0; i < 8; i++) { // 3.2 s, well past the 1 s grace
    await sleep(400);
    c.ws.send('\n');
  }
  assert.equal(c.inbox.closedInfo, null, 'still open');
  await c.sendWithReceipt('SEND', { destination: '/topic/hb' }, 'alive');
});

brokerTest('stompjs heartbeatIncoming/Outgoing keep an idle connection alive', { set: HB }, async (broker) => {
  const a = await stompjs(broker, { heartbeatIncoming: 500, heartbeatOutgoing: 500 });
  const b = await stompjs(broker, { heartbeatIncoming: 500, heartbeatOutgoing: 500 });
  const sub = await b.subscribe('/topic/idle');
  await sleep(3000);
  assert.equal(a.closes.length, 0, `a closed: ${JSON.stringify(a.closes)}`);
  assert.equal(b.closes.length, 0, `b closed: ${JSON.stringify(b.closes)}`);
  assert.ok(a.client.connected && b.client.connected);
  await a.publishWithReceipt({ destination: '/topic/idle', body: 'after idle' });
  assert.equal((await b.message(sub)).body, 'after idle');
});
