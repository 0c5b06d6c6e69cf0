// The HTTP/1.1 upgrade: status codes for bad requests, subprotocol negotiation, accept key,
// handshake and CONNECT timeouts.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { brokerTest } from './lib/broker.mjs';
import { httpRequest, upgradeRequest, acceptKey, connectTcp, ByteReader, RawWs } from './lib/rawws.mjs';
import { wsOpen } from './lib/stomp.mjs';

brokerTest('GET on a path other than ws_path -> 404', {}, async (broker) => {
  const r = await httpRequest(broker.wsPort, 'GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  broker.track(r.socket);
  assert.equal(r.status, 404, r.statusLine);
});

brokerTest('upgrade on another path -> 404', {}, async (broker) => {
  const r = await httpRequest(broker.wsPort, upgradeRequest({ path: '/other' }).text);
  broker.track(r.socket);
  assert.equal(r.status, 404, r.statusLine);
});

brokerTest('upgrade without Sec-WebSocket-Key -> 400', {}, async (broker) => {
  const r = await httpRequest(broker.wsPort, upgradeRequest({ key: null }).text);
  broker.track(r.socket);
  assert.equal(r.status, 400, r.statusLine);
});

brokerTest('Sec-WebSocket-Version 8 -> 426 with Sec-WebSocket-Version: 13', {}, async (broker) => {
  const r = await httpRequest(broker.wsPort, upgradeRequest({ version: '8' }).text);
  broker.track(r.socket);
  assert.equal(r.status, 426, r.statusLine);
  assert.equal(r.headers['sec-websocket-version'], '13');
});

brokerTest('request head over limits.max_http_header_bytes -> 431', {}, async (broker) => {
  const big = `X-Filler: ${'a'.repeat(10000)}`;
  const r = await httpRequest(broker.wsPort, upgradeRequest({ extra: [big] }).text);
  broker.track(r.socket);
  assert.equal(r.status, 431, r.statusLine);
});

brokerTest('a smaller max_http_header_bytes is honoured', { set: { 'limits.max_http_header_bytes': 1024 } }, async (broker) => {
  const ok = await httpRequest(broker.wsPort, upgradeRequest({ extra: [`X-Filler: ${'a'.repeat(300)}`] }).text);
  broker.track(ok.socket);
  assert.equal(ok.status, 101, ok.statusLine);
  const r = await httpRequest(broker.wsPort, upgradeRequest({ extra: [`X-Filler: ${'a'.repeat(2000)}`] }).text);
  broker.track(r.socket);
  assert.equal(r.status, 431, r.statusLine);
});

brokerTest('101 carries the RFC 6455 accept key', {}, async (broker) => {
  const key = crypto.randomBytes(16).toString('base64');
  const r = await httpRequest(broker.wsPort, upgradeRequest({ key }).text);
  broker.track(r.socket);
  assert.equal(r.status, 101, r.statusLine);
  assert.equal(r.headers['sec-websocket-accept'], acceptKey(key));
  assert.match(r.headers.upgrade ?? '', /^websocket$/i);
  assert.match(r.headers.connection ?? '', /upgrade/i);
});

brokerTest('subprotocol: v12.stomp preferred among all three', {}, async (broker) => {
  const r = await httpRequest(broker.wsPort, upgradeRequest({ protocols: ['v10.stomp', 'v11.stomp', 'v12.stomp'] }).text);
  broker.track(r.socket);
  assert.equal(r.status, 101, r.statusLine);
  assert.equal(r.headers['sec-websocket-protocol'], 'v12.stomp');
});

brokerTest('subprotocol: an unknown one next to v11.stomp picks v11.stomp', {}, async (broker) => {
  const r = await httpRequest(broker.wsPort, upgradeRequest({ protocols: ['mqtt', 'v11.stomp'] }).text);
  broker.track(r.socket);
  assert.equal(r.status, 101, r.statusLine);
  assert.equal(r.headers['sec-websocket-protocol'], 'v11.stomp');
});

brokerTest('subprotocol: none offered -> accepted without the header', {}, async (broker) => {
  const r = await httpRequest(broker.wsPort, upgradeRequest({ protocols: [] }).text);
  broker.track(r.socket);
  assert.equal(r.status, 101, r.statusLine);
  assert.equal(r.headers['sec-websocket-protocol'], undefined);
});

brokerTest('subprotocol: only unknown ones -> 400', {}, async (broker) => {
  const r = await httpRequest(broker.wsPort, upgradeRequest({ protocols: ['mqtt', 'wamp.2.json'] }).text);
  broker.track(r.socket);
  assert.equal(r.status, 400, r.statusLine);
});

brokerTest('the ws client sees the negotiated subprotocol', {}, async (broker) => {
  const c = await wsOpen(broker, { protocols: ['v10.stomp', 'v11.stomp', 'v12.stomp'] });
  assert.equal(c.protocol, 'v12.stomp');
  const c11 = await wsOpen(broker, { protocols: ['v11.stomp'] });
  assert.equal(c11.protocol, 'v11.stomp');
});

brokerTest('a silent connection is closed after handshake_timeout_ms', {
  set: { 'limits.handshake_timeout_ms': 500 },
}, async (broker) => {
  const socket = broker.track(await connectTcp(broker.wsPort));
  const reader = new ByteReader(socket);
  const start = Date.now();
  await reader.waitClosed(4000);
  const elapsed = reader.closedAt - start;
  assert.ok(elapsed >= 400, `closed after ${elapsed} ms, before the 500 ms timeout`);
});

brokerTest('a partial request head times out with 408', {
  set: { 'limits.handshake_timeout_ms': 500 },
}, async (broker) => {
  const socket = broker.track(await connectTcp(broker.wsPort));
  const reader = new ByteReader(socket);
  socket.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const start = Date.now();
  const head = await reader.httpHead(4000);
  assert.equal(head.status, 408, head.statusLine);
  assert.ok(Date.now() - start >= 400, 'not before the timeout');
  await reader.waitClosed(3000);
});

brokerTest('no CONNECT within connect_timeout_ms after the upgrade -> closed', {
  set: { 'limits.connect_timeout_ms': 500 },
}, async (broker) => {
  // The broker arms the timer when it reads the upgrade request, before the client has the 101
  // (which, under valgrind, arrives 150 ms and more later): count from before the request.
  const start = Date.now();
  const c = await wsOpen(broker);
  const info = await c.closed(4000);
  assert.ok(info.at - start >= 450, `closed after ${info.at - start} ms, before the 500 ms timeout`);
});

brokerTest('no CONNECT within connect_timeout_ms over plain TCP -> closed', {
  set: { 'limits.connect_timeout_ms': 500 },
}, async (broker) => {
  const socket = broker.track(await connectTcp(broker.tcpPort));
  const reader = new ByteReader(socket);
  const start = Date.now();
  await reader.waitClosed(4000);
  assert.ok(reader.closedAt - start >= 400, `closed after ${reader.closedAt - start} ms`);
});

brokerTest('a connection that sent CONNECT in time is not closed by the timeouts', {
  set: { 'limits.connect_timeout_ms': 500, 'limits.handshake_timeout_ms': 500 },
}, async (broker) => {
  const c = await wsOpen(broker);
  await c.connect();
  assert.equal(await c.inbox.quiet(1200, () => true), null, 'nothing arrives');
  assert.equal(c.inbox.closedInfo, null, 'still open after 1.2 s');
  await c.sendWithReceipt('SEND', { destination: '/topic/alive' }, 'x');
});

brokerTest('an HTTP request split into single bytes still upgrades', {}, async (broker) => {
  const socket = broker.track(await connectTcp(broker.wsPort));
  const reader = new ByteReader(socket);
  const req = upgradeRequest();
  for (const ch of req.text) {
    socket.write(ch);
    await new Promise((r) => setImmediate(r));
  }
  const head = await reader.httpHead(5000);
  assert.equal(head.status, 101, head.statusLine);
  const ws = new RawWs(socket, reader, head);
  ws.sendText('CONNECT\naccept-version:1.2\nhost:x\n\n\0');
  const f = await ws.stomp.take('CONNECTED', 5000);
  assert.equal(f.headers.version, '1.2');
});
