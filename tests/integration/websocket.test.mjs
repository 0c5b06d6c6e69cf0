// The WebSocket layer: inbound batching and splitting, fragmentation, ping/pong, close
// handshake, RFC 6455 violations (unmasked, bad UTF-8, too big, reserved bits/opcodes), and
// outbound framing (one STOMP frame per message, text vs binary, outbound_frames=binary).
import assert from 'node:assert/strict';
import { brokerTest, sleep } from './lib/broker.mjs';
import { wsStomp, tcpStomp, wsOpen, encodeFrame } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';
import { rawWsConnect, OP } from './lib/rawws.mjs';

const CONNECT12 = encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'x' });

brokerTest('several STOMP frames in one WebSocket message', {}, async (broker) => {
  const c = await wsOpen(broker);
  c.ws.send(Buffer.concat([
    CONNECT12,
    encodeFrame('SUBSCRIBE', { id: 's', destination: '/topic/batch', receipt: 'sub' }),
    encodeFrame('SEND', { destination: '/topic/batch' }, 'one'),
    Buffer.from('\n'), // a heart-beat EOL between frames
    encodeFrame('SEND', { destination: '/topic/batch', 'content-length': 3 }, 'two'),
    encodeFrame('SEND', { destination: '/topic/batch', receipt: 'last' }, 'three'),
  ]).toString('utf8'));
  await c.inbox.take('CONNECTED');
  assert.equal((await c.inbox.take('RECEIPT')).headers['receipt-id'], 'sub');
  const ms = await c.messages(3);
  assert.deepEqual(ms.map((m) => m.text), ['one', 'two', 'three']);
  assert.equal((await c.inbox.take('RECEIPT')).headers['receipt-id'], 'last');
});

brokerTest('one STOMP frame split across several WebSocket messages', {}, async (broker) => {
  const c = await wsStomp(broker);
  await c.subscribe('/topic/split', 's');
  const frame = encodeFrame('SEND', { destination: '/topic/split', 'x-k': 'value', receipt: 'split' }, 'the body of a split frame');
  // Split inside the command, inside a header, at the blank line, and inside the body.
  const cuts = [2, 20, frame.indexOf('\n\n') + 1, frame.length - 8, frame.length];
  let prev = 0;
  for (const cut of cuts) {
    c.ws.send(frame.subarray(prev, cut).toString('utf8'));
    prev = cut;
  }
  await c.inbox.take('RECEIPT');
  const m = await c.message();
  assert.equal(m.text, 'the body of a split frame');
  assert.equal(m.headers['x-k'], 'value');
});

brokerTest('a STOMP frame sent one byte per WebSocket message', {}, async (broker) => {
  const c = await wsStomp(broker);
  await c.subscribe('/topic/bytes', 's');
  const frame = encodeFrame('SEND', { destination: '/topic/bytes', 'content-length': 5, receipt: 'b' }, Buffer.from('a\0b\0c'));
  for (const byte of frame) c.ws.send(Buffer.from([byte]), { binary: true });
  await c.inbox.take('RECEIPT', 10000);
  const m = await c.message();
  assert.ok(m.body.equals(Buffer.from('a\0b\0c')));
});

brokerTest('stompjs splitLargeFrames with 1 KiB chunks and a large body', {}, async (broker) => {
  const sub = await stompjs(broker);
  const handle = await sub.subscribe('/topic/chunks');
  const pub = await stompjs(broker, { splitLargeFrames: true, maxWebSocketChunkSize: 1024 });
  let body = '';
  for (let i = 0; body.length < 100 * 1024; i++) body += `line ${i} of a large frame\n`;
  await pub.publishWithReceipt({ destination: '/topic/chunks', body }, 10000);
  const m = await sub.message(handle, 10000);
  assert.equal(m.body.length, body.length);
  assert.equal(m.body, body);
});

brokerTest('WebSocket fragmentation (continuation frames) is reassembled', {}, async (broker) => {
  const c = await wsStomp(broker);
  await c.subscribe('/topic/frag', 's');
  const frame = encodeFrame('SEND', { destination: '/topic/frag', receipt: 'f' }, 'fragmented message body');
  c.ws.send(frame.subarray(0, 10), { binary: false, fin: false });
  c.ws.send(frame.subarray(10, 30), { binary: false, fin: false });
  c.ws.send(frame.subarray(30), { binary: false, fin: true });
  await c.inbox.take('RECEIPT');
  assert.equal((await c.message()).text, 'fragmented message body');
});

brokerTest('a multi-byte UTF-8 character split across fragments is valid', {}, async (broker) => {
  const ws = await rawWsConnect(broker);
  ws.sendText('CONNECT\naccept-version:1.2\nhost:x\n\n\0');
  await ws.stomp.take('CONNECTED');
  ws.sendText('SUBSCRIBE\nid:s\ndestination:/topic/u\nreceipt:r\n\n\0');
  await ws.stomp.take('RECEIPT');
  const frame = Buffer.from('SEND\ndestination:/topic/u\n\ncafé\0', 'utf8');
  const cut = frame.indexOf(0xc3) + 1; // between the two bytes of é
  ws.sendFrame(OP.TEXT, frame.subarray(0, cut), { fin: false });
  ws.sendFrame(OP.CONT, frame.subarray(cut), { fin: true });
  const m = await ws.stomp.take('MESSAGE');
  assert.equal(m.text, 'café');
});

brokerTest('ping during traffic -> pong with the same payload', {}, async (broker) => {
  const sub = await wsStomp(broker);
  await sub.subscribe('/topic/ping', 's');
  const pub = await wsStomp(broker);
  const payloads = ['p-1', 'p-2-longer', ''];
  for (let i = 0; i < 200; i++) {
    pub.send('SEND', { destination: '/topic/ping' }, `m${i}`);
    if (i % 70 === 0) sub.ws.ping(Buffer.from(payloads[i / 70]));
  }
  await sub.messages(200, 's', 10000);
  const deadline = Date.now() + 3000;
  while (sub.pongs.length < 3 && Date.now() < deadline) await sleep(20);
  assert.deepEqual(sub.pongs.map((p) => p.toString()), payloads);
});

brokerTest('raw ping with a 125-byte payload -> pong echoes it', {}, async (broker) => {
  const ws = await rawWsConnect(broker);
  const payload = Buffer.alloc(125, 7);
  ws.sendFrame(OP.PING, payload);
  const f = await ws.inbox.take((x) => x.frame.opcode === OP.PONG, 3000, 'a pong');
  assert.ok(f.frame.payload.equals(payload));
  assert.equal(f.frame.masked, false, 'server frames are not masked');
});

brokerTest('client close 1000 -> server echoes close and closes the connection', {}, async (broker) => {
  const ws = await rawWsConnect(broker);
  ws.sendText('CONNECT\naccept-version:1.2\nhost:x\n\n\0');
  await ws.stomp.take('CONNECTED');
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(1000);
  ws.sendFrame(OP.CLOSE, Buffer.concat([payload, Buffer.from('bye')]));
  const close = await ws.closeCode();
  assert.equal(close.code, 1000);
  await ws.waitClosed(3000);
});

brokerTest('ws library close(1000) completes the closing handshake', {}, async (broker) => {
  const c = await wsStomp(broker);
  c.ws.close(1000, 'done');
  const info = await c.closed(3000);
  assert.equal(info.code, 1000);
});

brokerTest('an unmasked client frame -> close 1002', {}, async (broker) => {
  const ws = await rawWsConnect(broker);
  ws.sendFrame(OP.TEXT, Buffer.from('CONNECT\naccept-version:1.2\nhost:x\n\n\0'), { mask: false });
  assert.equal((await ws.closeCode()).code, 1002);
  await ws.waitClosed(3000);
});

brokerTest('invalid UTF-8 in a text frame -> close 1007', {}, async (broker) => {
  const ws = await rawWsConnect(broker);
  ws.sendText('CONNECT\naccept-version:1.2\nhost:x\n\n\0');
  await ws.stomp.take('CONNECTED');
  ws.sendFrame(OP.TEXT, Buffer.concat([Buffer.from('SEND\ndestination:/topic/x\n\n'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from([0])]));
  assert.equal((await ws.closeCode()).code, 1007);
  await ws.waitClosed(3000);
});

brokerTest('non-UTF-8 bytes in a binary frame are fine', {}, async (broker) => {
  const sub = await wsStomp(broker);
  await sub.subscribe('/topic/binin', 's');
  const c = await wsStomp(broker);
  const body = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28]);
  c.send('SEND', { destination: '/topic/binin', 'content-length': body.length, receipt: 'r' }, body, { binary: true });
  await c.inbox.take('RECEIPT');
  const m = await sub.message();
  assert.ok(m.body.equals(body));
});

brokerTest('a WebSocket message over limits.max_ws_message -> close 1009', { set: { 'limits.max_ws_message': 4096 } }, async (broker) => {
  const c = await wsStomp(broker);
  await c.sendWithReceipt('SEND', { destination: '/topic/x' }, 'a'.repeat(3000));
  c.send('SEND', { destination: '/topic/x' }, 'a'.repeat(8192));
  assert.equal((await c.closed()).code, 1009);
});

brokerTest('a fragmented message growing past max_ws_message -> close 1009', { set: { 'limits.max_ws_message': 4096 } }, async (broker) => {
  const ws = await rawWsConnect(broker);
  ws.sendText('CONNECT\naccept-version:1.2\nhost:x\n\n\0');
  await ws.stomp.take('CONNECTED');
  ws.sendFrame(OP.TEXT, Buffer.from(`SEND\ndestination:/topic/x\n\n${'a'.repeat(2000)}`), { fin: false });
  ws.sendFrame(OP.CONT, Buffer.alloc(2000, 98), { fin: false });
  ws.sendFrame(OP.CONT, Buffer.alloc(2000, 98), { fin: false });
  assert.equal((await ws.closeCode()).code, 1009);
});

brokerTest('RFC 6455: a reserved opcode -> close 1002', {}, async (broker) => {
  const ws = await rawWsConnect(broker);
  ws.sendFrame(3, Buffer.from('x'));
  assert.equal((await ws.closeCode()).code, 1002);
});

brokerTest('RFC 6455: RSV1 without a negotiated extension -> close 1002', {}, async (broker) => {
  const ws = await rawWsConnect(broker);
  ws.sendFrame(OP.TEXT, Buffer.from('CONNECT\n\n\0'), { rsv: 4 });
  assert.equal((await ws.closeCode()).code, 1002);
});

brokerTest('RFC 6455: a fragmented ping (control frame without FIN) -> close 1002', {}, async (broker) => {
  const ws = await rawWsConnect(broker);
  ws.sendFrame(OP.PING, Buffer.from('x'), { fin: false });
  assert.equal((await ws.closeCode()).code, 1002);
});

brokerTest('RFC 6455: a continuation frame with no message started -> close 1002', {}, async (broker) => {
  const ws = await rawWsConnect(broker);
  ws.sendFrame(OP.CONT, Buffer.from('x'));
  assert.equal((await ws.closeCode()).code, 1002);
});

// ---- outbound framing ----

brokerTest('outbound: exactly one STOMP frame per WebSocket message', {}, async (broker) => {
  const c = await wsStomp(broker);
  await c.subscribe('/topic/one', 'a');
  await c.subscribe('/topic/one', 'b');
  const pub = await tcpStomp(broker);
  const frames = [];
  for (let i = 0; i < 100; i++) frames.push(encodeFrame('SEND', { destination: '/topic/one', receipt: `r${i}` }, `msg ${i}`));
  pub.sendBytes(Buffer.concat(frames));
  await c.messages(200, null, 10000);
  await pub.inbox.takeN(100, 'RECEIPT', 10000);
  const data = c.wsMessages.filter((m) => m.heartbeats === 0 || m.frames.length > 0);
  assert.ok(data.length >= 203, `${data.length} data messages`);
  for (const m of data) {
    assert.equal(m.frames.length, 1, `one frame per message, got ${m.frames.length}: ${JSON.stringify(m.data.subarray(0, 120).toString())}`);
    assert.equal(m.leftover, 0, 'no trailing partial frame');
  }
});

brokerTest('outbound: text frames for UTF-8 frames, binary frames for non-UTF-8 bodies', {}, async (broker) => {
  const c = await wsStomp(broker);
  const connectedMsg = c.wsMessages.find((m) => m.frames.some((f) => f.command === 'CONNECTED'));
  assert.equal(connectedMsg.isBinary, false, 'CONNECTED is a text frame');
  await c.subscribe('/topic/kinds', 's');
  const pub = await tcpStomp(broker);
  await pub.sendWithReceipt('SEND', { destination: '/topic/kinds' }, 'plain ascii');
  await pub.sendWithReceipt('SEND', { destination: '/topic/kinds' }, 'ünïcödé ✓');
  const bin = Buffer.from([0x80, 0x81, 0xff, 0x00, 0x41]);
  await pub.sendWithReceipt('SEND', { destination: '/topic/kinds', 'content-length': bin.length }, bin);
  const ms = await c.messages(3);
  const kind = (f) => c.wsMessages.find((m) => m.frames.includes(f)).isBinary;
  assert.equal(kind(ms[0]), false, 'ASCII body -> text');
  assert.equal(kind(ms[1]), false, 'UTF-8 body -> text');
  assert.equal(kind(ms[2]), true, 'non-UTF-8 body -> binary');
  assert.ok(ms[2].body.equals(bin));
});

brokerTest('server.outbound_frames=binary sends every frame as binary', { set: { 'server.outbound_frames': 'binary' } }, async (broker) => {
  const c = await wsStomp(broker);
  await c.subscribe('/topic/allbin', 's');
  await c.sendWithReceipt('SEND', { destination: '/topic/allbin' }, 'text body');
  await c.message();
  const data = c.wsMessages.filter((m) => m.frames.length > 0);
  assert.ok(data.length >= 4, 'CONNECTED, RECEIPTs, MESSAGE');
  for (const m of data) assert.equal(m.isBinary, true, `${m.frames[0].command} is binary`);
});

brokerTest('server.outbound_frames=binary works with stompjs (binaryBody decoded)', { set: { 'server.outbound_frames': 'binary' } }, async (broker) => {
  const c = await stompjs(broker);
  const sub = await c.subscribe('/topic/sjbin');
  await c.publishWithReceipt({ destination: '/topic/sjbin', body: 'hello binary' });
  const m = await c.message(sub);
  assert.equal(m.body, 'hello binary');
});
