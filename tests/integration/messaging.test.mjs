// SEND / SUBSCRIBE / MESSAGE on topics: receipts, headers, bodies (text, UTF-8, binary),
// fan-out, wildcards, unsubscribe, ordering, DISCONNECT.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { test } from 'node:test';
import { brokerTest, startBroker } from './lib/broker.mjs';
import { wsStomp, tcpStomp, wsOpen, encodeFrame } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';

brokerTest('receipt header on SEND, SUBSCRIBE, UNSUBSCRIBE, BEGIN, COMMIT -> RECEIPT', {}, async (broker) => {
  const c = await tcpStomp(broker);
  const frames = [
    ['SUBSCRIBE', { id: 's1', destination: '/topic/r' }],
    ['SEND', { destination: '/topic/none' }],
    ['UNSUBSCRIBE', { id: 's1' }],
    ['BEGIN', { transaction: 't1' }],
    ['COMMIT', { transaction: 't1' }],
  ];
  for (const [cmd, headers] of frames) {
    c.send(cmd, { ...headers, receipt: `rcpt-${cmd}` });
    const r = await c.inbox.take('RECEIPT', 5000, `RECEIPT for ${cmd}`);
    assert.equal(r.headers['receipt-id'], `rcpt-${cmd}`);
  }
});

brokerTest('MESSAGE carries destination, message-id, subscription, content-type, content-length and user headers', {}, async (broker) => {
  const sub = await tcpStomp(broker, { label: 'sub' });
  const pub = await wsStomp(broker, { label: 'pub' });
  await sub.subscribe('/topic/hdr', 'sub-7');
  const body = 'hello, headers';
  await pub.sendWithReceipt('SEND', {
    destination: '/topic/hdr',
    'content-type': 'text/plain;charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-trace-id': 'abc-123',
    priority: '4',
  }, body);
  const m = await sub.message();
  assert.equal(m.command, 'MESSAGE');
  assert.equal(m.headers.destination, '/topic/hdr');
  assert.equal(m.headers.subscription, 'sub-7');
  assert.ok(m.headers['message-id'], 'message-id');
  assert.equal(m.headers['content-type'], 'text/plain;charset=utf-8');
  assert.equal(m.headers['content-length'], String(Buffer.byteLength(body)));
  assert.equal(m.headers['x-trace-id'], 'abc-123');
  assert.equal(m.headers.priority, '4');
  assert.equal(m.text, body);
  assert.equal(m.headers.receipt, undefined, 'the publisher\'s receipt header is not forwarded');
});

brokerTest('a SEND without content-length (NUL-terminated body) is delivered', {}, async (broker) => {
  const sub = await wsStomp(broker);
  const pub = await tcpStomp(broker);
  await sub.subscribe('/topic/nul', 's');
  await pub.sendWithReceipt('SEND', { destination: '/topic/nul' }, 'no length here');
  assert.equal((await sub.message()).text, 'no length here');
});

brokerTest('message-id is unique across messages', {}, async (broker) => {
  const sub = await wsStomp(broker);
  const pub = await wsStomp(broker);
  await sub.subscribe('/topic/ids', 'a');
  await sub.subscribe('/topic/ids', 'b');
  for (let i = 0; i < 50; i++) pub.send('SEND', { destination: '/topic/ids' }, `m${i}`);
  const ms = await sub.messages(100, null, 10000);
  const perSub = { a: new Set(), b: new Set() };
  for (const m of ms) perSub[m.headers.subscription].add(m.headers['message-id']);
  assert.equal(perSub.a.size, 50, 'unique ids on subscription a');
  assert.equal(perSub.b.size, 50, 'unique ids on subscription b');
});

brokerTest('topic fan-out: every subscriber gets a copy', {}, async (broker) => {
  const subs = [await stompjs(broker), await stompjs(broker), await stompjs(broker)];
  const handles = [];
  for (const s of subs) handles.push(await s.subscribe('/topic/fan'));
  const pub = await stompjs(broker);
  await pub.publishWithReceipt({ destination: '/topic/fan', body: 'to all' });
  for (let i = 0; i < subs.length; i++) {
    const m = await subs[i].message(handles[i]);
    assert.equal(m.body, 'to all');
    assert.equal(m.headers.destination, '/topic/fan');
  }
});

// Bodies around the sizes where the broker changes how it writes a frame (copied beside its
// head on the stack, copied straight into the output, shared by reference from 8 KiB), many in a
// row so that frames straddle the output's chains: each arrives byte for byte, in order.
brokerTest('bodies of every write path (1 B to 64 KiB) arrive byte for byte over TCP and WebSocket', {}, async (broker) => {
  const sizes = [1, 1000, 1024, 2000, 2048, 2100, 4000, 4096, 8191, 8192, 8193, 20000, 65536];
  const tcp = await tcpStomp(broker);
  await tcp.subscribe('/topic/sizes', 't');
  const ws = await stompjs(broker);
  const handle = await ws.subscribe('/topic/sizes');
  const pub = await tcpStomp(broker);
  const bodies = [];
  for (let round = 0; round < 5; round++) {
    for (const size of sizes) {
      const body = crypto.randomBytes(Math.ceil(size / 2)).toString('hex').slice(0, size);
      bodies.push(body);
      pub.send('SEND', { destination: '/topic/sizes' }, body);
    }
  }
  const got = await tcp.messages(bodies.length, 't', 20000);
  got.forEach((m, i) => assert.equal(m.text, bodies[i], `TCP message ${i} (${bodies[i].length} B)`));
  for (let i = 0; i < bodies.length; i++) {
    assert.equal((await ws.message(handle, 20000)).body, bodies[i], `WebSocket message ${i} (${bodies[i].length} B)`);
  }
});

brokerTest('the publisher receives its own topic message when subscribed', {}, async (broker) => {
  const c = await stompjs(broker);
  const sub = await c.subscribe('/topic/self');
  await c.publishWithReceipt({ destination: '/topic/self', body: 'echo' });
  assert.equal((await c.message(sub)).body, 'echo');
});

brokerTest('topic messages are not retained for later subscribers', {}, async (broker) => {
  const c = await tcpStomp(broker);
  await c.sendWithReceipt('SEND', { destination: '/topic/late' }, 'early');
  await c.subscribe('/topic/late', 's');
  await c.sendWithReceipt('SEND', { destination: '/topic/late' }, 'on time');
  const m = await c.message();
  assert.equal(m.text, 'on time');
  assert.equal(await c.inbox.quiet(200, 'MESSAGE'), null);
});

brokerTest('wildcard *: one segment', {}, async (broker) => {
  const c = await tcpStomp(broker);
  await c.subscribe('/topic/stocks.*.price', 'w');
  const pub = await tcpStomp(broker);
  for (const d of ['/topic/stocks.ibm.bid.price', '/topic/stocks.price', '/topic/stocks.ibm.price', '/topic/stocks.aapl.price', '/topic/stock.ibm.price']) {
    await pub.sendWithReceipt('SEND', { destination: d }, d);
  }
  const ms = await c.messages(2);
  assert.deepEqual(ms.map((m) => m.text), ['/topic/stocks.ibm.price', '/topic/stocks.aapl.price']);
  assert.deepEqual(ms.map((m) => m.headers.destination), ['/topic/stocks.ibm.price', '/topic/stocks.aapl.price'],
    'MESSAGE destination is the published destination');
  assert.equal(await c.inbox.quiet(300, 'MESSAGE'), null, 'nothing else matched');
});

brokerTest('wildcard #: zero or more segments', {}, async (broker) => {
  const c = await wsStomp(broker);
  await c.subscribe('/topic/news.#', 'h');
  const pub = await wsStomp(broker);
  const sent = ['/topic/news', '/topic/news.a', '/topic/newsroom', '/topic/news.a.b', '/topic/sports.news', '/topic/news.x.y.z'];
  for (const d of sent) await pub.sendWithReceipt('SEND', { destination: d }, d);
  const ms = await c.messages(4);
  assert.deepEqual(ms.map((m) => m.text), ['/topic/news', '/topic/news.a', '/topic/news.a.b', '/topic/news.x.y.z']);
  assert.equal(await c.inbox.quiet(300, 'MESSAGE'), null, 'nothing else matched');
});

brokerTest('wildcard # in the middle and * at the end', {}, async (broker) => {
  const c = await tcpStomp(broker);
  await c.subscribe('/topic/a.#.z', 'mid');
  await c.subscribe('/topic/logs.*', 'end');
  const pub = await tcpStomp(broker);
  for (const d of ['/topic/a.z', '/topic/a.b.z', '/topic/a.b.c.z', '/topic/a.b', '/topic/logs', '/topic/logs.x', '/topic/logs.x.y']) {
    await pub.sendWithReceipt('SEND', { destination: d }, d);
  }
  const ms = await c.messages(4);
  assert.deepEqual(ms.filter((m) => m.headers.subscription === 'mid').map((m) => m.text), ['/topic/a.z', '/topic/a.b.z', '/topic/a.b.c.z']);
  assert.deepEqual(ms.filter((m) => m.headers.subscription === 'end').map((m) => m.text), ['/topic/logs.x']);
  assert.equal(await c.inbox.quiet(300, 'MESSAGE'), null, 'nothing else matched');
});

brokerTest('a message matching two subscriptions of one connection is delivered once per subscription', {}, async (broker) => {
  const c = await stompjs(broker);
  const exact = await c.subscribe('/topic/multi.x');
  const wild = await c.subscribe('/topic/multi.*');
  const pub = await stompjs(broker);
  await pub.publishWithReceipt({ destination: '/topic/multi.x', body: 'twice' });
  const a = await c.message(exact);
  const b = await c.message(wild);
  assert.equal(a.body, 'twice');
  assert.equal(b.body, 'twice');
  assert.equal(await c.inbox.quiet(300, 'MESSAGE'), null, 'exactly two copies');
});

brokerTest('UNSUBSCRIBE stops delivery to that subscription only', {}, async (broker) => {
  const c = await tcpStomp(broker);
  await c.subscribe('/topic/u', 'keep');
  await c.subscribe('/topic/u', 'drop');
  await c.sendWithReceipt('UNSUBSCRIBE', { id: 'drop' });
  await c.sendWithReceipt('SEND', { destination: '/topic/u' }, 'after');
  const m = await c.message();
  assert.equal(m.headers.subscription, 'keep');
  assert.equal(await c.inbox.quiet(300, 'MESSAGE'), null, 'nothing for the dropped subscription');
});

brokerTest('stompjs unsubscribe stops delivery', {}, async (broker) => {
  const c = await stompjs(broker);
  const sub = await c.subscribe('/topic/unsub');
  await c.receipt((receipt) => sub.unsubscribe({ receipt }));
  await c.publishWithReceipt({ destination: '/topic/unsub', body: 'gone' });
  assert.equal(await c.inbox.quiet(300, 'MESSAGE'), null);
});

brokerTest('UTF-8 bodies and header values survive byte-exact (stompjs)', {}, async (broker) => {
  const sub = await stompjs(broker);
  const handle = await sub.subscribe('/topic/utf8');
  const pub = await stompjs(broker);
  const body = 'grüße, 日本語, emoji 🎉, and a NUL-free line\nnext line';
  await pub.publishWithReceipt({ destination: '/topic/utf8', body, headers: { 'x-name': 'Zoë : colon\\back', 'content-type': 'text/plain' } });
  const m = await sub.message(handle);
  assert.equal(m.body, body);
  assert.equal(m.headers['x-name'], 'Zoë : colon\\back', 'escaped header round-trips');
  assert.equal(m.headers['content-length'], String(Buffer.byteLength(body)));
});

brokerTest('1.2 header escapes (\\c \\n \\\\ \\r) round-trip', {}, async (broker) => {
  const sub = await tcpStomp(broker);
  await sub.subscribe('/topic/esc', 's');
  const pub = await tcpStomp(broker);
  await pub.sendWithReceipt('SEND', { destination: '/topic/esc', 'x-esc': 'a\\cb\\nc\\\\d\\re' }, 'x');
  const m = await sub.message();
  assert.equal(m.headers['x-esc'], 'a:b\nc\\d\re');
  const raw = Buffer.concat(sub.chunks).toString('utf8');
  assert.ok(raw.includes('x-esc:a\\cb\\nc\\\\d\\re'), 're-escaped on the wire');
});

brokerTest('repeated header: the first value wins (STOMP 1.2)', {}, async (broker) => {
  const sub = await tcpStomp(broker);
  await sub.subscribe('/topic/rep', 's');
  const pub = await tcpStomp(broker);
  pub.send('SEND', [['destination', '/topic/rep'], ['x-dup', 'first'], ['x-dup', 'second'], ['receipt', 'r']], 'b');
  await pub.inbox.take('RECEIPT');
  const m = await sub.message();
  assert.equal(m.headers['x-dup'], 'first');
});

brokerTest('binary body of 256 KiB with NUL bytes via stompjs binaryBody is byte-exact', {}, async (broker) => {
  const sub = await stompjs(broker);
  const handle = await sub.subscribe('/topic/bin');
  const raw = await wsStomp(broker, { label: 'raw-sub' });
  await raw.subscribe('/topic/bin', 'r');
  const pub = await stompjs(broker);
  const body = crypto.randomBytes(256 * 1024);
  body[0] = 0; body[1000] = 0; body[body.length - 1] = 0;
  await pub.publishWithReceipt({ destination: '/topic/bin', binaryBody: new Uint8Array(body), headers: { 'content-type': 'application/octet-stream' } }, 10000);
  const m = await sub.message(handle, 10000);
  assert.ok(m.isBinaryBody, 'stompjs saw a binary WebSocket message');
  assert.equal(m.binaryBody.length, body.length);
  assert.ok(Buffer.from(m.binaryBody).equals(body), 'body bytes identical');
  assert.equal(m.headers['content-length'], String(body.length));
  const r = await raw.message(null, 10000);
  assert.ok(r.body.equals(body), 'raw client: identical bytes');
  const rec = raw.wsMessages.find((x) => x.frames.includes(r));
  assert.equal(rec.isBinary, true, 'non-UTF-8 body goes out in a binary frame');
});

brokerTest('a 1 MiB text body with max_body/max_ws_message raised', {
  set: { 'limits.max_body': 2 * 1048576, 'limits.max_ws_message': 3 * 1048576, 'limits.outbound_high_water': 8 * 1048576 },
  timeout: 60000,
}, async (broker) => {
  const sub = await stompjs(broker);
  const handle = await sub.subscribe('/topic/big');
  const pub = await stompjs(broker);
  const body = 'x'.repeat(1048576);
  await pub.publishWithReceipt({ destination: '/topic/big', body }, 20000);
  const m = await sub.message(handle, 20000);
  assert.equal(m.body.length, body.length);
  assert.equal(m.body, body);
});

brokerTest('an empty body is delivered as an empty body', {}, async (broker) => {
  const sub = await tcpStomp(broker);
  await sub.subscribe('/topic/empty', 's');
  const pub = await tcpStomp(broker);
  await pub.sendWithReceipt('SEND', { destination: '/topic/empty', 'content-length': 0 }, '');
  const m = await sub.message();
  assert.equal(m.body.length, 0);
});

brokerTest('1,000 messages from one publisher arrive in order (stompjs)', { timeout: 60000 }, async (broker) => {
  const sub = await stompjs(broker);
  const handle = await sub.subscribe('/topic/seq');
  const pub = await stompjs(broker);
  for (let i = 0; i < 1000; i++) pub.publish({ destination: '/topic/seq', body: `seq=${i}` });
  const ms = await sub.messages(1000, handle, 40000);
  for (let i = 0; i < 1000; i++) assert.equal(ms[i].body, `seq=${i}`, `message ${i} in order`);
});

brokerTest('1,000 messages from a TCP publisher arrive in order at a WS subscriber', { timeout: 60000 }, async (broker) => {
  const sub = await wsStomp(broker);
  await sub.subscribe('/topic/seq2', 's');
  const pub = await tcpStomp(broker);
  const frames = [];
  for (let i = 0; i < 1000; i++) frames.push(encodeFrame('SEND', { destination: '/topic/seq2' }, `n${i}`));
  pub.sendBytes(Buffer.concat(frames)); // one big write: many frames per TCP segment
  const ms = await sub.messages(1000, 's', 40000);
  ms.forEach((m, i) => assert.equal(m.text, `n${i}`));
});

brokerTest('DISCONNECT with receipt -> RECEIPT, then the server closes (WS and TCP)', {}, async (broker) => {
  const w = await wsStomp(broker);
  w.send('DISCONNECT', { receipt: 'bye-ws' });
  const r = await w.inbox.take('RECEIPT');
  assert.equal(r.headers['receipt-id'], 'bye-ws');
  const info = await w.closed(5000);
  assert.equal(info.code, 1000, `WebSocket close code ${info.code}`);
  const t = await tcpStomp(broker);
  t.send('DISCONNECT', { receipt: 'bye-tcp' });
  assert.equal((await t.inbox.take('RECEIPT')).headers['receipt-id'], 'bye-tcp');
  await t.closed(5000);
});

brokerTest('stompjs deactivate sends DISCONNECT and the broker keeps serving others', {}, async (broker) => {
  const a = await stompjs(broker);
  const b = await stompjs(broker);
  const sub = await b.subscribe('/topic/after-bye');
  await a.deactivate();
  await b.publishWithReceipt({ destination: '/topic/after-bye', body: 'still here' });
  assert.equal((await b.message(sub)).body, 'still here');
});

brokerTest('1.0 client without subscription id receives messages', {}, async (broker) => {
  const c = await tcpStomp(broker, { version: '1.0' });
  assert.equal(c.connected.headers.version, '1.0');
  c.send('SUBSCRIBE', { destination: '/topic/v10', receipt: 'sub10' });
  await c.inbox.take('RECEIPT');
  const pub = await wsStomp(broker);
  await pub.sendWithReceipt('SEND', { destination: '/topic/v10' }, 'for 1.0');
  const m = await c.message();
  assert.equal(m.text, 'for 1.0');
  assert.equal(m.headers.destination, '/topic/v10');
});

brokerTest('ack header in 1.2 MESSAGE for client and client-individual subscriptions', {}, async (broker) => {
  const c = await tcpStomp(broker);
  await c.subscribe('/topic/ackhdr', 'cl', { ack: 'client' });
  await c.subscribe('/topic/ackhdr', 'ci', { ack: 'client-individual' });
  await c.sendWithReceipt('SEND', { destination: '/topic/ackhdr' }, 'x');
  const ms = await c.messages(2);
  for (const m of ms) assert.ok(m.headers.ack, `ack header on subscription ${m.headers.subscription}`);
  // ACK of each copy is accepted.
  for (const m of ms) await c.sendWithReceipt('ACK', { id: m.headers.ack });
});

brokerTest('an unconnected frame over WebSocket before CONNECT is refused', {}, async (broker) => {
  const c = await wsOpen(broker);
  c.send('SEND', { destination: '/topic/x' }, 'too early');
  const e = await c.error();
  assert.ok(e.headers.message);
  await c.closed();
});

// message-id is "m-<run id>-<seq>": the run id is drawn per process, so ids never repeat after a
// restart or across nodes (the counter alone starts at 1 in every process), and clients that
// de-duplicate by id never drop a real message.
test('message-ids are unique across a restart and across two brokers running at once', { timeout: 60000 }, async () => {
  async function firstId(broker) {
    const c = await tcpStomp(broker);
    await c.subscribe('/topic/ids', 'ids');
    await c.sendWithReceipt('SEND', { destination: '/topic/ids' }, 'one');
    const m = await c.message();
    assert.match(m.headers['message-id'], /^m-[0-9a-f]{12}-\d+$/);
    return m.headers['message-id'];
  }
  const ids = [];
  const first = await startBroker();
  try {
    ids.push(await firstId(first));
  } finally {
    await first.closeClients();
    await first.stop();
    fs.rmSync(first.dir, { recursive: true, force: true });
  }
  const [again, other] = await Promise.all([startBroker(), startBroker()]);
  try {
    ids.push(await firstId(again), await firstId(other));
  } finally {
    for (const b of [again, other]) {
      await b.closeClients();
      await b.stop();
      fs.rmSync(b.dir, { recursive: true, force: true });
    }
  }
  assert.equal(new Set(ids).size, 3, `three runs, three ids: ${ids.join(' ')}`);
  const seqs = ids.map((id) => id.split('-')[2]);
  assert.deepEqual(seqs, [seqs[0], seqs[0], seqs[0]], 'the same counter value in each run: the run id tells them apart');
});
