// permessage-deflate (RFC 7692): what the broker answers to each kind of offer, the ws package
// with perMessageDeflate in every parameter combination, and raw frames built with node's zlib:
// compressed messages split over frames, RSV1 where it may not be (1002), bad deflate data
// (1007) and a deflate bomb (1009 naming limits.max_ws_message).
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { brokerTest } from './lib/broker.mjs';
import { wsStomp, tcpStomp, encodeFrame } from './lib/stomp.mjs';
import { rawWsConnect, OP } from './lib/rawws.mjs';

const OFFER = 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits';
const ANSWER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
const CONNECT12 = encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'x' });

// One message deflated as RFC 7692 7.2.1 says: sync flush, the 00 00 FF FF tail removed.
function deflateMessage(buf) {
  const out = zlib.deflateRawSync(buf, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.deepEqual([...out.subarray(-4)], [0, 0, 0xff, 0xff]);
  return out.subarray(0, -4);
}

// A JSON body of about n bytes that compresses the way real feeds do (not all one byte).
function jsonBody(n) {
  const items = [];
  for (let i = 0; JSON.stringify(items).length < n; i++) items.push({ symbol: `S${i % 41}`, price: 100 + (i * 7) % 91, seq: i });
  return JSON.stringify(items);
}

async function rawDeflate(broker, extra = [OFFER], version = '1.2') {
  return rawWsConnect(broker, { extra, protocols: [`v${version.replace('.', '')}.stomp`] });
}

async function rawConnected(broker, { version = '1.2', offer = OFFER, answer = ANSWER } = {}) {
  const c = await rawDeflate(broker, [offer], version);
  assert.equal(c.head.headers['sec-websocket-extensions'], answer);
  c.version = version;
  c.sendFrame(OP.TEXT, deflateMessage(encodeFrame('CONNECT', { 'accept-version': version, host: 'x' })), { rsv: 4 });
  await c.stomp.take('CONNECTED');
  return c;
}

// ---- negotiation ----

const offers = [
  // [offer header value, expected answer or null for none]
  ['permessage-deflate', ANSWER],
  ['permessage-deflate; client_max_window_bits', ANSWER],
  ['permessage-deflate; server_max_window_bits=15', `${ANSWER}; server_max_window_bits=15`],
  ['permessage-deflate; server_max_window_bits=10', `${ANSWER}; server_max_window_bits=9`],
  ['permessage-deflate; server_max_window_bits=8', null],
  ['permessage-deflate; server_max_window_bits=8, permessage-deflate', ANSWER],
  ['permessage-deflate; nonsense', null],
  ['permessage-deflate; client_no_context_takeover=yes', null],
  ['x-webkit-deflate-frame', null],
];

brokerTest('each offer is answered with the extension or declined with a plain 101', {}, async (broker) => {
  for (const [offer, answer] of offers) {
    const c = await rawDeflate(broker, [`Sec-WebSocket-Extensions: ${offer}`]);
    assert.equal(c.head.status, 101, offer);
    assert.equal(c.head.headers['sec-websocket-extensions'], answer ?? undefined, offer);
    c.destroy();
  }
});

brokerTest('compression.enabled=off declines every offer', { set: { 'compression.enabled': 'off' } }, async (broker) => {
  const c = await rawDeflate(broker);
  assert.equal(c.head.status, 101);
  assert.equal(c.head.headers['sec-websocket-extensions'], undefined);
  // and RSV1 is then a protocol error as before
  c.sendFrame(OP.TEXT, deflateMessage(CONNECT12), { rsv: 4 });
  assert.equal((await c.closeCode()).code, 1002);
});

// ---- the ws package, every parameter combination ----

// What ws offers for each option: the four parameters of RFC 7692, each left out or set.
const combos = [];
for (const serverNoContextTakeover of [undefined, true, false]) {
  for (const clientNoContextTakeover of [undefined, true, false]) {
    for (const serverMaxWindowBits of [undefined, 8, 9, 12, 15]) {
      for (const clientMaxWindowBits of [undefined, true, 8, 15]) {
        combos.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits });
      }
    }
  }
}

// The outcome the broker owes each combination: declined for a 2^8 server window; refused by ws
// itself when told clientNoContextTakeover: false (the broker always asks for it, see
// docs/COMPRESSION.md); otherwise negotiated, with the server window it keeps to.
function expected(o) {
  if (o.serverMaxWindowBits === 8) return { negotiated: false };
  if (o.clientNoContextTakeover === false) return { refusedByClient: true };
  const window = o.serverMaxWindowBits === undefined ? null : (o.serverMaxWindowBits === 15 ? 15 : 9);
  return { negotiated: true, window };
}

brokerTest('ws with perMessageDeflate: every combination negotiates or is declined, and messages round-trip', { timeout: 120000 }, async (broker) => {
  const pub = await tcpStomp(broker);
  const big = jsonBody(4000);
  for (const [i, o] of combos.entries()) {
    const label = JSON.stringify(o);
    const want = expected(o);
    const options = { threshold: 0 }; // the client compresses what it sends too
    for (const [k, v] of Object.entries(o)) if (v !== undefined) options[k] = v;
    if (want.refusedByClient) {
      // ws fails the connection on an answer it did not want: "Invalid Sec-WebSocket-Extensions"
      await assert.rejects(wsStomp(broker, { perMessageDeflate: options }), /Sec-WebSocket-Extensions/, label);
      continue;
    }
    const c = await wsStomp(broker, { perMessageDeflate: options, label: `combo-${i}` });
    const ext = c.upgradeHeaders['sec-websocket-extensions'] ?? '';
    if (!want.negotiated) {
      assert.equal(ext, '', label);
    } else {
      assert.match(ext, /^permessage-deflate; server_no_context_takeover; client_no_context_takeover/, label);
      if (want.window === null) assert.doesNotMatch(ext, /server_max_window_bits/, label);
      else assert.match(ext, new RegExp(`server_max_window_bits=${want.window}$`), label);
    }
    const dest = `/topic/combo.${i}`;
    await c.subscribe(dest, 's'); // a compressed SUBSCRIBE from the client (threshold 0)
    const before = c.ws._socket.bytesRead;
    await pub.sendWithReceipt('SEND', { destination: dest }, big);
    c.send('SEND', { destination: dest }, 'small'); // compressed by the client, echoed back
    const [m1, m2] = await c.messages(2);
    assert.equal(m1.text, big, label);
    assert.equal(m2.text, 'small', label);
    const read = c.ws._socket.bytesRead - before;
    if (want.negotiated) assert.ok(read < big.length / 2, `${label}: ${read} bytes on the wire for a ${big.length}-byte body`);
    else assert.ok(read > big.length, `${label}: ${read} bytes on the wire uncompressed`);
    c.destroy();
  }
  pub.destroy();
});

// ---- raw frames ----

brokerTest('messages from the broker: RSV1 from compression.min_size on, decoded by zlib, same shared part for every subscriber', {}, async (broker) => {
  const a = await rawConnected(broker);
  const b = await rawConnected(broker);
  a.sendFrame(OP.TEXT, deflateMessage(encodeFrame('SUBSCRIBE', { id: 'first-subscriber', destination: '/topic/raw', receipt: 'r' })), { rsv: 4 });
  b.sendFrame(OP.TEXT, deflateMessage(encodeFrame('SUBSCRIBE', { id: 'b', destination: '/topic/raw', ack: 'client', receipt: 'r' })), { rsv: 4 });
  await a.stomp.take('RECEIPT');
  await b.stomp.take('RECEIPT');
  const pub = await tcpStomp(broker);
  const big = jsonBody(3000);
  await pub.sendWithReceipt('SEND', { destination: '/topic/raw', 'content-type': 'application/json' }, big);
  await pub.sendWithReceipt('SEND', { destination: '/topic/raw' }, 'tiny');
  for (const [c, id] of [[a, 'first-subscriber'], [b, 'b']]) {
    const m1 = await c.stomp.take('MESSAGE');
    const m2 = await c.stomp.take('MESSAGE');
    assert.equal(m1.wsCompressed, true, 'a 3 KB message is compressed');
    assert.equal(m1.headers.subscription, id);
    assert.equal(m1.headers['content-type'], 'application/json');
    assert.equal(m1.text, big);
    assert.equal(m2.wsCompressed, false, 'a frame under compression.min_size goes as it is');
    assert.equal(m2.text, 'tiny');
  }
  // the wire: every compressed MESSAGE frame is far smaller than its body
  const sizes = a.frames.filter((f) => f.rsv === 4).map((f) => f.payload.length);
  assert.ok(sizes.length >= 1 && sizes.every((n) => n < big.length / 2), `compressed frame sizes ${sizes}`);
  pub.destroy();
});

// The shared part is cached per STOMP version and per server window; a queue delivery carries
// the consumer's own destination line in its stored prefix. Each subscriber must still read
// exactly its own frame.
brokerTest('one message to subscribers of every STOMP version, both windows, a topic and a queue', {}, async (broker) => {
  const small = 'Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10';
  const subs = [
    { c: await rawConnected(broker, { version: '1.0' }), dest: '/topic/mix', id: 'v10' },
    { c: await rawConnected(broker, { version: '1.1' }), dest: '/topic/mix', id: 'v11' },
    { c: await rawConnected(broker), dest: '/topic/mix', id: 'v12', ack: 'client-individual' },
    { c: await rawConnected(broker, { offer: small, answer: `${ANSWER}; server_max_window_bits=9` }), dest: '/topic/mix', id: 'small-window' },
    { c: await rawConnected(broker), dest: '/queue/mix', id: 'queue' },
  ];
  for (const s of subs) {
    s.c.sendFrame(OP.TEXT, deflateMessage(encodeFrame('SUBSCRIBE', { id: s.id, destination: s.dest, ack: s.ack ?? 'auto', receipt: 'r' })), { rsv: 4 });
    await s.c.stomp.take('RECEIPT');
  }
  const pub = await tcpStomp(broker);
  const body = jsonBody(5000);
  const headers = { 'x-note': 'a:b\\c' }; // escaped differently by STOMP 1.0 and 1.2
  await pub.sendWithReceipt('SEND', { destination: '/topic/mix', ...headers }, body);
  await pub.sendWithReceipt('SEND', { destination: '/queue/mix', ...headers }, body);
  for (const s of subs) {
    const m = await s.c.stomp.take('MESSAGE');
    assert.equal(m.wsCompressed, true, s.id);
    assert.equal(m.headers.subscription, s.id);
    assert.equal(m.headers.destination, s.dest);
    assert.equal(m.text, body, s.id);
    if (s.ack) assert.equal(m.headers.ack, m.headers['message-id']);
  }
  pub.destroy();
});

brokerTest('a compressed message split over three frames, and two compressed messages in a row', {}, async (broker) => {
  const c = await rawConnected(broker);
  const body = jsonBody(2000);
  const frame = encodeFrame('SUBSCRIBE', { id: 's', destination: '/topic/frag', receipt: 'sub' });
  c.sendFrame(OP.TEXT, deflateMessage(frame), { rsv: 4 });
  await c.stomp.take('RECEIPT');
  const send = deflateMessage(encodeFrame('SEND', { destination: '/topic/frag', receipt: 'sent' }, body));
  const cut1 = Math.floor(send.length / 3), cut2 = Math.floor((2 * send.length) / 3);
  c.sendFrame(OP.TEXT, send.subarray(0, cut1), { rsv: 4, fin: false });
  c.sendFrame(OP.PING, Buffer.from('between'));
  c.sendFrame(OP.CONT, send.subarray(cut1, cut2), { fin: false });
  c.sendFrame(OP.CONT, send.subarray(cut2));
  await c.stomp.take('RECEIPT');
  assert.equal((await c.stomp.take('MESSAGE')).text, body);
  // an uncompressed message right after a compressed one is fine too (RSV1 is per message)
  c.sendText(encodeFrame('SEND', { destination: '/topic/frag', receipt: 'plain' }, 'plain').toString());
  await c.stomp.take('RECEIPT');
  assert.equal((await c.stomp.take('MESSAGE')).text, 'plain');
});

brokerTest('RSV1 on a continuation frame closes with 1002', {}, async (broker) => {
  const c = await rawConnected(broker);
  const send = deflateMessage(encodeFrame('SEND', { destination: '/topic/x' }, 'hello'));
  c.sendFrame(OP.TEXT, send.subarray(0, 4), { rsv: 4, fin: false });
  c.sendFrame(OP.CONT, send.subarray(4), { rsv: 4 });
  const close = await c.closeCode();
  assert.equal(close.code, 1002);
  assert.match(close.reason, /reserved bits/);
});

brokerTest('RSV1 on a ping closes with 1002', {}, async (broker) => {
  const c = await rawConnected(broker);
  c.sendFrame(OP.PING, Buffer.from('x'), { rsv: 4 });
  assert.equal((await c.closeCode()).code, 1002);
});

brokerTest('a deflate bomb closes with 1009 naming limits.max_ws_message', { set: { 'limits.max_ws_message': '64k' } }, async (broker) => {
  const c = await rawConnected(broker);
  // 8 MiB of one byte inside a SEND: a few KiB on the wire
  const bomb = deflateMessage(Buffer.concat([
    Buffer.from('SEND\ndestination:/topic/bomb\n\n'), Buffer.alloc(8 << 20, 0x41), Buffer.from([0])]));
  assert.ok(bomb.length < 16 * 1024, `bomb of ${bomb.length} bytes`);
  c.sendFrame(OP.TEXT, bomb, { rsv: 4 });
  const close = await c.closeCode();
  assert.equal(close.code, 1009);
  assert.match(close.reason, /limits\.max_ws_message/);
});

brokerTest('a message that inflates to exactly limits.max_ws_message is taken', { set: { 'limits.max_ws_message': '64k', 'limits.max_body': '64k' } }, async (broker) => {
  const c = await rawConnected(broker);
  const head = Buffer.from('SEND\ndestination:/topic/edge\nreceipt:edge\n\n');
  const body = Buffer.alloc(64 * 1024 - head.length - 1, 0x42);
  c.sendFrame(OP.TEXT, deflateMessage(Buffer.concat([head, body, Buffer.from([0])])), { rsv: 4 });
  await c.stomp.take('RECEIPT');
});

brokerTest('compressed bytes that are not deflate close with 1007', {}, async (broker) => {
  const c = await rawConnected(broker);
  c.sendFrame(OP.TEXT, Buffer.from([0xff, 0xff, 0xff, 0xff]), { rsv: 4 });
  assert.equal((await c.closeCode()).code, 1007);
});

brokerTest('a compressed text message that is not UTF-8 once inflated closes with 1007', {}, async (broker) => {
  const c = await rawConnected(broker);
  const frame = Buffer.concat([Buffer.from('SEND\ndestination:/topic/u\n\n'), Buffer.from([0xc0, 0x80]), Buffer.from([0])]);
  c.sendFrame(OP.TEXT, deflateMessage(frame), { rsv: 4 });
  assert.equal((await c.closeCode()).code, 1007);
});

brokerTest('a message that ends with a final deflate block (BFINAL) is inflated too', {}, async (broker) => {
  const c = await rawConnected(broker);
  const frame = encodeFrame('SEND', { destination: '/topic/final', receipt: 'fin' }, 'final block');
  c.sendFrame(OP.TEXT, zlib.deflateRawSync(frame), { rsv: 4 });
  await c.stomp.take('RECEIPT');
});

brokerTest('an ERROR frame to a compressing client arrives whole', { set: { 'compression.min_size': '1' } }, async (broker) => {
  const c = await rawConnected(broker);
  c.sendFrame(OP.TEXT, deflateMessage(encodeFrame('SUBSCRIBE', { destination: '/nowhere/x', id: 's' })), { rsv: 4 });
  const err = await c.stomp.take('ERROR');
  assert.equal(err.wsCompressed, true);
  assert.ok(err.headers.message.length > 0);
});
