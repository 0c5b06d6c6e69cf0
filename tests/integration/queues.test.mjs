// Queues: one consumer per message, round-robin, waiting messages, max_messages, acks
// (client cumulative, client-individual), NACK / disconnect redelivery, prefetch;
// transactions; reply-to with temp queues; per-connection limits.
import assert from 'node:assert/strict';
import { brokerTest, sleep } from './lib/broker.mjs';
import { metricsText } from './lib/cluster.mjs';
import { sample, waitFor } from './lib/proc.mjs';
import { wsStomp, tcpStomp } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';

async function sendAll(pub, destination, bodies, headers = {}) {
  for (const b of bodies) await pub.sendWithReceipt('SEND', { destination, ...headers }, b);
}

const range = (n, prefix = 'm') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

// ---- delivery ----

brokerTest('queue: each message goes to exactly one consumer, round-robin', {}, async (broker) => {
  const a = await tcpStomp(broker, { label: 'A' });
  const b = await tcpStomp(broker, { label: 'B' });
  await a.subscribe('/queue/rr', 'a');
  await b.subscribe('/queue/rr', 'b');
  const pub = await wsStomp(broker, { label: 'pub' });
  await sendAll(pub, '/queue/rr', range(10));
  const ma = await a.messages(5);
  const mb = await b.messages(5);
  assert.equal(await a.inbox.quiet(300, 'MESSAGE'), null, 'A got no more than 5');
  assert.equal(await b.inbox.quiet(10, 'MESSAGE'), null, 'B got no more than 5');
  const ta = ma.map((m) => m.text);
  const tb = mb.map((m) => m.text);
  assert.deepEqual([...ta, ...tb].sort(), range(10).sort(), 'every message exactly once');
  const evens = range(10).filter((_, i) => i % 2 === 0);
  const odds = range(10).filter((_, i) => i % 2 === 1);
  assert.ok((ta.join() === evens.join() && tb.join() === odds.join()) || (ta.join() === odds.join() && tb.join() === evens.join()),
    `alternating delivery: A=${ta} B=${tb}`);
});

brokerTest('queue: three consumers share 30 messages with no duplicates', {}, async (broker) => {
  const cs = [await stompjs(broker), await stompjs(broker), await stompjs(broker)];
  const subs = [];
  for (const c of cs) subs.push(await c.subscribe('/queue/share'));
  const pub = await stompjs(broker);
  for (let i = 0; i < 30; i++) pub.publish({ destination: '/queue/share', body: `q${i}` });
  await pub.publishWithReceipt({ destination: '/queue/other', body: 'fence' });
  const got = [];
  for (let i = 0; i < 3; i++) got.push(...(await cs[i].messages(10, subs[i], 10000)).map((m) => m.body));
  for (const c of cs) assert.equal(await c.inbox.quiet(200, 'MESSAGE'), null, 'no extra copies');
  assert.deepEqual(got.sort(), range(30, 'q').sort());
});

brokerTest('queue: messages wait for a consumer and arrive in order when it subscribes', {}, async (broker) => {
  const pub = await tcpStomp(broker);
  await sendAll(pub, '/queue/wait', range(5));
  const c = await wsStomp(broker);
  await c.subscribe('/queue/wait', 's');
  const ms = await c.messages(5);
  assert.deepEqual(ms.map((m) => m.text), range(5));
  for (const m of ms) assert.equal(m.headers.destination, '/queue/wait');
});

brokerTest('queue.overflow = reject: SEND past queue.max_messages -> ERROR naming the queue and the limit', {
  set: { 'queue.max_messages': 5, 'queue.overflow': 'reject' },
}, async (broker) => {
  const pub = await tcpStomp(broker);
  await sendAll(pub, '/queue/full', range(5));
  pub.send('SEND', { destination: '/queue/full', receipt: 'sixth' }, 'm5');
  const e = await pub.error();
  const text = `${e.headers.message}\n${e.text}`;
  assert.ok(text.includes('/queue/full'), `ERROR names the queue: ${text}`);
  assert.match(text, /\b5\b/, `ERROR names the limit: ${text}`);
  assert.equal(e.headers['receipt-id'], 'sixth');
  await pub.closed();
  const c = await tcpStomp(broker);
  await c.subscribe('/queue/full', 's');
  const ms = await c.messages(5);
  assert.deepEqual(ms.map((m) => m.text), range(5), 'the first five were kept');
  assert.equal(await c.inbox.quiet(300, 'MESSAGE'), null, 'the sixth was not queued');
});

// queue.overflow = block, the default: producer flow control instead of an ERROR.
brokerTest('queue.overflow = block: a publisher that fills a queue is paused, not refused; it goes on as the queue drains, nothing lost', {
  set: { 'queue.max_messages': 5, 'heartbeat.min_ms': 100, 'heartbeat.receive_ms': 100 },
}, async (broker) => {
  const dest = '/queue/flow';
  // stompjs over WebSocket, heart-beating every 100 ms: while it is paused the broker does not
  // read them, and must not take that for silence.
  const pub = await stompjs(broker, { label: 'pub', heartbeatOutgoing: 100 });
  let receiptAt = null;
  pub.client.watchForReceipt('last', () => { receiptAt = Date.now(); });
  for (let i = 0; i < 40; i++) {
    pub.client.publish({ destination: dest, body: `m${i}`, headers: i === 39 ? { receipt: 'last' } : {} });
  }
  await sleep(1500);
  assert.equal(receiptAt, null, 'the last SEND is not taken yet: the publisher is paused');
  assert.deepEqual([pub.errors.length, pub.closes.length], [0, 0], 'no ERROR, no close, no heart-beat timeout');
  const during = await metricsText(broker);
  assert.equal(sample(during, 'stompws_publishers_paused'), 1);
  const depth = sample(during, 'stompws_queue_depth');
  assert.ok(depth >= 5 && depth < 40, `the queue holds about its limit (5), not everything sent: ${depth}`);
  assert.ok(sample(during, 'stompws_limit_hits_total{limit="queue.max_messages"}') >= 1);

  const consumer = await tcpStomp(broker, { label: 'consumer' });
  await consumer.subscribe(dest, 's');
  const got = await consumer.messages(40, 's', 10000);
  assert.deepEqual(got.map((m) => m.text), range(40), 'every message, once, in order');
  await waitFor('the RECEIPT of the last SEND', () => receiptAt !== null, 5000);
  assert.equal(sample(await metricsText(broker), 'stompws_publishers_paused'), 0);
  assert.deepEqual([pub.errors.length, pub.closes.length], [0, 0]);
});

brokerTest('queue.overflow = block: a publisher paused on a full /reply-queue/ goes on when its owner leaves', {
  set: { 'queue.max_messages': 3 },
}, async (broker) => {
  const { a, b } = await requestReplySetup(broker);
  await a.sendWithReceipt('SEND', { destination: '/queue/requests', 'reply-to': '/temp-queue/foo' }, 'many?');
  const replyTo = (await b.message()).headers['reply-to'];
  a.send('UNSUBSCRIBE', { id: 'replies' }); // nobody drains the reply queue now
  for (let i = 0; i < 10; i++) b.send('SEND', { destination: replyTo }, `r${i}`);
  b.send('SEND', { destination: '/queue/requests', receipt: 'after' }, 'later');
  assert.equal(await b.inbox.quiet(800, 'RECEIPT'), null, 'paused on the full reply queue');
  a.send('DISCONNECT', {});
  const receipt = await b.inbox.take('RECEIPT', 5000, 'the RECEIPT once the reply queue is gone');
  assert.equal(receipt.headers['receipt-id'], 'after');
  assert.equal(await b.inbox.quiet(0, 'ERROR'), null);
});

// ---- acknowledgements ----

brokerTest('ack client is cumulative; unacked messages are redelivered after disconnect', {}, async (broker) => {
  const pub = await tcpStomp(broker);
  const c1 = await tcpStomp(broker, { label: 'c1' });
  await c1.subscribe('/queue/cum', 's1', { ack: 'client' });
  await sendAll(pub, '/queue/cum', range(5));
  const ms = await c1.messages(5);
  for (const m of ms) assert.ok(m.headers.ack, 'ack header on 1.2 client-ack MESSAGE');
  await c1.sendWithReceipt('ACK', { id: ms[2].headers.ack }); // acks m0, m1, m2
  await c1.disconnect();
  const c2 = await tcpStomp(broker, { label: 'c2' });
  await c2.subscribe('/queue/cum', 's2', { ack: 'client' });
  const re = await c2.messages(2);
  assert.deepEqual(re.map((m) => m.text), ['m3', 'm4']);
  for (const m of re) assert.equal(m.headers.redelivered, 'true', 'redelivered:true');
  assert.equal(await c2.inbox.quiet(300, 'MESSAGE'), null, 'acked messages are not redelivered');
});

brokerTest('ack client-individual acks only the named message', {}, async (broker) => {
  const pub = await tcpStomp(broker);
  const c1 = await wsStomp(broker, { label: 'c1' });
  await c1.subscribe('/queue/ind', 's1', { ack: 'client-individual' });
  await sendAll(pub, '/queue/ind', range(5));
  const ms = await c1.messages(5);
  await c1.sendWithReceipt('ACK', { id: ms[1].headers.ack });
  await c1.sendWithReceipt('ACK', { id: ms[3].headers.ack });
  await c1.disconnect();
  const c2 = await wsStomp(broker, { label: 'c2' });
  await c2.subscribe('/queue/ind', 's2', { ack: 'client-individual' });
  const re = await c2.messages(3);
  assert.deepEqual(re.map((m) => m.text), ['m0', 'm2', 'm4']);
  for (const m of re) assert.equal(m.headers.redelivered, 'true');
  assert.equal(await c2.inbox.quiet(300, 'MESSAGE'), null);
});

brokerTest('STOMP 1.1 ACK by message-id + subscription', {}, async (broker) => {
  const pub = await tcpStomp(broker);
  const c1 = await tcpStomp(broker, { label: 'c1', version: '1.1' });
  assert.equal(c1.connected.headers.version, '1.1');
  await c1.subscribe('/queue/v11ack', 's1', { ack: 'client-individual' });
  await sendAll(pub, '/queue/v11ack', range(2));
  const ms = await c1.messages(2);
  await c1.sendWithReceipt('ACK', { 'message-id': ms[0].headers['message-id'], subscription: 's1' });
  await c1.disconnect();
  const c2 = await tcpStomp(broker, { label: 'c2' });
  await c2.subscribe('/queue/v11ack', 's2');
  const re = await c2.message();
  assert.equal(re.text, 'm1');
  assert.equal(await c2.inbox.quiet(300, 'MESSAGE'), null);
});

brokerTest('an abrupt disconnect (socket closed) redelivers unacked messages', {}, async (broker) => {
  const pub = await tcpStomp(broker);
  const c1 = await tcpStomp(broker, { label: 'c1' });
  await c1.subscribe('/queue/abrupt', 's1', { ack: 'client-individual' });
  await sendAll(pub, '/queue/abrupt', ['only']);
  await c1.message();
  c1.destroy();
  const c2 = await tcpStomp(broker, { label: 'c2' });
  await c2.subscribe('/queue/abrupt', 's2', { ack: 'client-individual' });
  const m = await c2.message();
  assert.equal(m.text, 'only');
  assert.equal(m.headers.redelivered, 'true');
});

brokerTest('NACK -> redelivered to another consumer with redelivered:true', {}, async (broker) => {
  const a = await tcpStomp(broker, { label: 'A' });
  const b = await tcpStomp(broker, { label: 'B' });
  await a.subscribe('/queue/nack', 'a', { ack: 'client-individual' });
  await b.subscribe('/queue/nack', 'b', { ack: 'client-individual' });
  const pub = await tcpStomp(broker);
  await sendAll(pub, '/queue/nack', ['n1']);
  // Wait (without consuming) until one of the two has it.
  await Promise.race([a.inbox.quiet(5000, 'MESSAGE'), b.inbox.quiet(5000, 'MESSAGE')]);
  const [who, other] = a.inbox.items.some((f) => f.command === 'MESSAGE') ? [a, b] : [b, a];
  const first = { m: await who.message(null, 100), who, other };
  assert.equal(first.m.text, 'n1');
  assert.notEqual(first.m.headers.redelivered, 'true', 'first delivery is not marked redelivered');
  await first.who.sendWithReceipt('NACK', { id: first.m.headers.ack });
  const again = await first.other.message();
  assert.equal(again.text, 'n1');
  assert.equal(again.headers.redelivered, 'true');
  assert.equal(await first.who.inbox.quiet(300, 'MESSAGE'), null, 'not redelivered twice');
});

brokerTest('NACK with a single consumer -> the same consumer gets it again, redelivered', {}, async (broker) => {
  const c = await stompjs(broker);
  const sub = await c.subscribe('/queue/nack1', { ack: 'client-individual' });
  const pub = await stompjs(broker);
  await pub.publishWithReceipt({ destination: '/queue/nack1', body: 'retry me', headers: { 'x-k': 'v' } });
  const m = await c.message(sub);
  assert.equal(m.body, 'retry me');
  await c.receipt((receipt) => m.nack({ receipt }));
  const again = await c.message(sub);
  assert.equal(again.body, 'retry me');
  assert.equal(again.headers.redelivered, 'true');
  assert.equal(again.headers['x-k'], 'v', 'user headers survive redelivery');
  again.ack();
});

brokerTest('UNSUBSCRIBE with unacked messages -> redelivered to the remaining consumer', {}, async (broker) => {
  // The spec names NACK and disconnect; cancelling a subscription requeues too (as RabbitMQ does).
  const a = await tcpStomp(broker, { label: 'A' });
  await a.subscribe('/queue/unsub', 'a', { ack: 'client-individual' });
  const pub = await tcpStomp(broker);
  await sendAll(pub, '/queue/unsub', ['u1']);
  await a.message();
  const b = await tcpStomp(broker, { label: 'B' });
  await b.subscribe('/queue/unsub', 'b', { ack: 'client-individual' });
  await a.sendWithReceipt('UNSUBSCRIBE', { id: 'a' });
  const m = await b.message();
  assert.equal(m.text, 'u1');
  assert.equal(m.headers.redelivered, 'true');
});

brokerTest('prefetch-count:2 with client-individual: at most 2 unacked messages', {}, async (broker) => {
  const c = await tcpStomp(broker);
  await c.subscribe('/queue/pf', 's', { ack: 'client-individual', 'prefetch-count': 2 });
  const pub = await tcpStomp(broker);
  await sendAll(pub, '/queue/pf', range(5));
  const first = await c.messages(2);
  assert.deepEqual(first.map((m) => m.text), ['m0', 'm1']);
  assert.equal(await c.inbox.quiet(500, 'MESSAGE'), null, 'no third message while 2 are unacked');
  await c.sendWithReceipt('ACK', { id: first[0].headers.ack });
  const third = await c.message();
  assert.equal(third.text, 'm2');
  assert.equal(await c.inbox.quiet(300, 'MESSAGE'), null, 'still at most 2 unacked');
  await c.sendWithReceipt('ACK', { id: first[1].headers.ack });
  await c.sendWithReceipt('ACK', { id: third.headers.ack });
  const rest = await c.messages(2);
  assert.deepEqual(rest.map((m) => m.text), ['m3', 'm4']);
});

brokerTest('prefetch with cumulative client ack: one ACK frees the whole window', {}, async (broker) => {
  const c = await tcpStomp(broker);
  await c.subscribe('/queue/pfc', 's', { ack: 'client', 'prefetch-count': 2 });
  const pub = await tcpStomp(broker);
  await sendAll(pub, '/queue/pfc', range(4));
  const first = await c.messages(2);
  assert.equal(await c.inbox.quiet(400, 'MESSAGE'), null, 'window full');
  await c.sendWithReceipt('ACK', { id: first[1].headers.ack });
  const next = await c.messages(2);
  assert.deepEqual(next.map((m) => m.text), ['m2', 'm3']);
});

brokerTest('prefetch-count:0 means unlimited (overriding queue.prefetch)', { set: { 'queue.prefetch': 1 } }, async (broker) => {
  const c = await tcpStomp(broker);
  await c.subscribe('/queue/pf0', 's', { ack: 'client-individual', 'prefetch-count': 0 });
  const pub = await tcpStomp(broker);
  await sendAll(pub, '/queue/pf0', range(5));
  const ms = await c.messages(5);
  assert.deepEqual(ms.map((m) => m.text), range(5));
});

brokerTest('a consumer whose prefetch window is full is skipped; others get the messages', {}, async (broker) => {
  const slow = await tcpStomp(broker, { label: 'slow' });
  await slow.subscribe('/queue/skip', 'slow', { ack: 'client-individual', 'prefetch-count': 1 });
  const pub = await tcpStomp(broker);
  await sendAll(pub, '/queue/skip', ['first']);
  await slow.message();
  const fast = await tcpStomp(broker, { label: 'fast' });
  await fast.subscribe('/queue/skip', 'fast');
  await sendAll(pub, '/queue/skip', range(4));
  const ms = await fast.messages(4);
  assert.deepEqual(ms.map((m) => m.text), range(4));
  assert.equal(await slow.inbox.quiet(200, 'MESSAGE'), null);
});

// ---- transactions ----

brokerTest('transaction: SENDs take effect only at COMMIT', {}, async (broker) => {
  const sub = await tcpStomp(broker, { label: 'sub' });
  await sub.subscribe('/topic/tx', 's');
  const pub = await tcpStomp(broker, { label: 'pub' });
  await pub.sendWithReceipt('BEGIN', { transaction: 'tx1' });
  for (let i = 0; i < 3; i++) await pub.sendWithReceipt('SEND', { destination: '/topic/tx', transaction: 'tx1' }, `t${i}`);
  assert.equal(await sub.inbox.quiet(400, 'MESSAGE'), null, 'nothing before COMMIT');
  await pub.sendWithReceipt('COMMIT', { transaction: 'tx1' });
  const ms = await sub.messages(3);
  assert.deepEqual(ms.map((m) => m.text), ['t0', 't1', 't2']);
  for (const m of ms) assert.equal(m.headers.transaction, undefined, 'the transaction header is not forwarded');
});

brokerTest('transaction: ABORT discards its SENDs', {}, async (broker) => {
  const sub = await tcpStomp(broker);
  await sub.subscribe('/queue/txa', 's');
  const pub = await tcpStomp(broker);
  await pub.sendWithReceipt('BEGIN', { transaction: 'tx2' });
  await pub.sendWithReceipt('SEND', { destination: '/queue/txa', transaction: 'tx2' }, 'discarded');
  await pub.sendWithReceipt('ABORT', { transaction: 'tx2' });
  await pub.sendWithReceipt('SEND', { destination: '/queue/txa' }, 'marker');
  const m = await sub.message();
  assert.equal(m.text, 'marker');
  assert.equal(await sub.inbox.quiet(300, 'MESSAGE'), null);
});

brokerTest('transaction: stompjs begin/commit and begin/abort', {}, async (broker) => {
  const sub = await stompjs(broker);
  const handle = await sub.subscribe('/queue/stompjs-tx');
  const pub = await stompjs(broker);
  const tx = pub.client.begin();
  pub.publish({ destination: '/queue/stompjs-tx', body: 'committed', headers: { transaction: tx.id } });
  await pub.receipt((receipt) => pub.client.publish({ destination: '/queue/stompjs-tx', body: 'committed-2', headers: { transaction: tx.id, receipt } }));
  assert.equal(await sub.inbox.quiet(300, 'MESSAGE'), null, 'nothing before commit');
  tx.commit();
  const ms = await sub.messages(2, handle);
  assert.deepEqual(ms.map((m) => m.body), ['committed', 'committed-2']);
  const tx2 = pub.client.begin();
  pub.publish({ destination: '/queue/stompjs-tx', body: 'aborted', headers: { transaction: tx2.id } });
  tx2.abort();
  await pub.publishWithReceipt({ destination: '/queue/stompjs-tx', body: 'after abort' });
  assert.equal((await sub.message(handle)).body, 'after abort');
});

brokerTest('transaction: ACK inside a transaction takes effect at COMMIT only', {}, async (broker) => {
  const pub = await tcpStomp(broker);
  const c1 = await tcpStomp(broker, { label: 'c1' });
  await c1.subscribe('/queue/txack', 's1', { ack: 'client-individual' });
  await sendAll(pub, '/queue/txack', ['a1', 'a2']);
  const [m1, m2] = await c1.messages(2);
  // m1: acked in a transaction that is aborted -> still unacked
  await c1.sendWithReceipt('BEGIN', { transaction: 'ta' });
  await c1.sendWithReceipt('ACK', { id: m1.headers.ack, transaction: 'ta' });
  await c1.sendWithReceipt('ABORT', { transaction: 'ta' });
  // m2: acked in a committed transaction -> acked
  await c1.sendWithReceipt('BEGIN', { transaction: 'tc' });
  await c1.sendWithReceipt('ACK', { id: m2.headers.ack, transaction: 'tc' });
  await c1.sendWithReceipt('COMMIT', { transaction: 'tc' });
  await c1.disconnect();
  const c2 = await tcpStomp(broker, { label: 'c2' });
  await c2.subscribe('/queue/txack', 's2');
  const re = await c2.message();
  assert.equal(re.text, 'a1');
  assert.equal(re.headers.redelivered, 'true');
  assert.equal(await c2.inbox.quiet(300, 'MESSAGE'), null, 'a2 was acked at COMMIT');
});

brokerTest('transaction: NACK inside a transaction redelivers only at COMMIT', {}, async (broker) => {
  const pub = await tcpStomp(broker);
  const c = await tcpStomp(broker);
  await c.subscribe('/queue/txnack', 's', { ack: 'client-individual' });
  await sendAll(pub, '/queue/txnack', ['x']);
  const m = await c.message();
  await c.sendWithReceipt('BEGIN', { transaction: 'tn' });
  await c.sendWithReceipt('NACK', { id: m.headers.ack, transaction: 'tn' });
  assert.equal(await c.inbox.quiet(400, 'MESSAGE'), null, 'no redelivery before COMMIT');
  await c.sendWithReceipt('COMMIT', { transaction: 'tn' });
  const again = await c.message();
  assert.equal(again.text, 'x');
  assert.equal(again.headers.redelivered, 'true');
});

brokerTest('transaction: unfinished at disconnect -> aborted', {}, async (broker) => {
  const sub = await tcpStomp(broker);
  await sub.subscribe('/queue/txdc', 's');
  const pub = await tcpStomp(broker);
  await pub.sendWithReceipt('BEGIN', { transaction: 'open' });
  await pub.sendWithReceipt('SEND', { destination: '/queue/txdc', transaction: 'open' }, 'never');
  await pub.disconnect();
  const other = await tcpStomp(broker);
  await other.sendWithReceipt('SEND', { destination: '/queue/txdc' }, 'marker');
  assert.equal((await sub.message()).text, 'marker');
  assert.equal(await sub.inbox.quiet(300, 'MESSAGE'), null);
});

for (const [what, frame] of [
  ['COMMIT', ['COMMIT', { transaction: 'nope' }]],
  ['ABORT', ['ABORT', { transaction: 'nope' }]],
  ['SEND', ['SEND', { destination: '/queue/x', transaction: 'nope' }, 'b']],
]) {
  brokerTest(`transaction: ${what} naming an unknown transaction -> ERROR`, {}, async (broker) => {
    const c = await tcpStomp(broker);
    const [cmd, headers, body] = frame;
    c.send(cmd, { ...headers, receipt: 'r-unknown' }, body ?? '');
    const e = await c.error();
    assert.ok(e.headers.message, 'message header');
    assert.equal(e.headers['receipt-id'], 'r-unknown');
    await c.closed();
  });
}

brokerTest('limits.max_transactions: one BEGIN too many -> ERROR', { set: { 'limits.max_transactions': 2 } }, async (broker) => {
  const c = await tcpStomp(broker);
  await c.sendWithReceipt('BEGIN', { transaction: 't1' });
  await c.sendWithReceipt('BEGIN', { transaction: 't2' });
  c.send('BEGIN', { transaction: 't3' });
  const e = await c.error();
  assert.ok(e.headers.message);
  await c.closed();
});

brokerTest('limits.max_tx_frames: one frame too many in a transaction -> ERROR', { set: { 'limits.max_tx_frames': 3 } }, async (broker) => {
  const c = await tcpStomp(broker);
  await c.sendWithReceipt('BEGIN', { transaction: 't' });
  for (let i = 0; i < 3; i++) await c.sendWithReceipt('SEND', { destination: '/queue/txf', transaction: 't' }, `f${i}`);
  c.send('SEND', { destination: '/queue/txf', transaction: 't' }, 'f3');
  const e = await c.error();
  assert.ok(e.headers.message);
  await c.closed();
});

brokerTest('limits.max_subscriptions: one SUBSCRIBE too many -> ERROR', { set: { 'limits.max_subscriptions': 2 } }, async (broker) => {
  const c = await tcpStomp(broker);
  await c.subscribe('/topic/a', 's1');
  await c.subscribe('/queue/b', 's2');
  c.send('SUBSCRIBE', { id: 's3', destination: '/topic/c' });
  const e = await c.error();
  assert.ok(e.headers.message);
  await c.closed();
});

// ---- reply-to and temp queues ----

async function requestReplySetup(broker) {
  const a = await tcpStomp(broker, { label: 'A' });
  const b = await wsStomp(broker, { label: 'B' });
  await b.subscribe('/queue/requests', 'srv');
  await a.subscribe('/temp-queue/foo', 'replies');
  return { a, b };
}

brokerTest('reply-to /temp-queue: request/reply through a private /reply-queue', {}, async (broker) => {
  const { a, b } = await requestReplySetup(broker);
  await a.sendWithReceipt('SEND', { destination: '/queue/requests', 'reply-to': '/temp-queue/foo', 'correlation-id': 'c1' }, 'ping?');
  const req = await b.message();
  assert.equal(req.text, 'ping?');
  const replyTo = req.headers['reply-to'];
  assert.ok(replyTo?.startsWith('/reply-queue/'), `reply-to rewritten to /reply-queue/...: ${replyTo}`);
  await b.sendWithReceipt('SEND', { destination: replyTo, 'correlation-id': req.headers['correlation-id'] }, 'pong!');
  const rep = await a.message('replies');
  assert.equal(rep.text, 'pong!');
  assert.equal(rep.headers.destination, '/temp-queue/foo');
  assert.equal(rep.headers['correlation-id'], 'c1');
});

brokerTest('reply-to with stompjs on both ends', {}, async (broker) => {
  const a = await stompjs(broker);
  const replies = await a.subscribe('/temp-queue/rpc');
  const b = await stompjs(broker);
  const srv = await b.subscribe('/queue/rpc');
  await a.publishWithReceipt({ destination: '/queue/rpc', body: '2+2', headers: { 'reply-to': '/temp-queue/rpc' } });
  const req = await b.message(srv);
  assert.match(req.headers['reply-to'], /^\/reply-queue\//);
  await b.publishWithReceipt({ destination: req.headers['reply-to'], body: '4' });
  const rep = await a.message(replies);
  assert.equal(rep.body, '4');
  assert.equal(rep.headers.destination, '/temp-queue/rpc');
});

brokerTest('/temp-queue/foo is private per connection: no cross-talk', {}, async (broker) => {
  const { a, b } = await requestReplySetup(broker);
  const c = await tcpStomp(broker, { label: 'C' });
  await c.subscribe('/temp-queue/foo', 'replies');
  await a.sendWithReceipt('SEND', { destination: '/queue/requests', 'reply-to': '/temp-queue/foo' }, 'from A');
  await c.sendWithReceipt('SEND', { destination: '/queue/requests', 'reply-to': '/temp-queue/foo' }, 'from C');
  const reqs = await b.messages(2);
  const byBody = Object.fromEntries(reqs.map((m) => [m.text, m.headers['reply-to']]));
  assert.notEqual(byBody['from A'], byBody['from C'], 'distinct reply queues');
  await b.sendWithReceipt('SEND', { destination: byBody['from A'] }, 'for A');
  await b.sendWithReceipt('SEND', { destination: byBody['from C'] }, 'for C');
  assert.equal((await a.message('replies')).text, 'for A');
  assert.equal((await c.message('replies')).text, 'for C');
  assert.equal(await a.inbox.quiet(300, 'MESSAGE'), null, 'A gets only its reply');
  assert.equal(await c.inbox.quiet(10, 'MESSAGE'), null, 'C gets only its reply');
});

brokerTest('SEND to a /temp-queue/ from its owner is delivered to its own subscription', {}, async (broker) => {
  const a = await tcpStomp(broker);
  await a.subscribe('/temp-queue/self', 's');
  await a.sendWithReceipt('SEND', { destination: '/temp-queue/self' }, 'note to self');
  const m = await a.message();
  assert.equal(m.text, 'note to self');
  assert.equal(m.headers.destination, '/temp-queue/self');
  const other = await tcpStomp(broker);
  await other.subscribe('/temp-queue/self', 's');
  assert.equal(await other.inbox.quiet(300, 'MESSAGE'), null, 'another connection does not see it');
});

brokerTest('after the requester disconnects, replies to its reply-queue are dropped silently', {}, async (broker) => {
  const { a, b } = await requestReplySetup(broker);
  await a.sendWithReceipt('SEND', { destination: '/queue/requests', 'reply-to': '/temp-queue/foo' }, 'q');
  const replyTo = (await b.message()).headers['reply-to'];
  await a.disconnect();
  await b.sendWithReceipt('SEND', { destination: replyTo }, 'too late'); // a RECEIPT, not an ERROR
  await b.sendWithReceipt('SEND', { destination: replyTo }, 'still too late');
  assert.equal(b.inbox.closedInfo, null, 'B is still connected');
  assert.equal(b.inbox.all.filter((f) => f.command === 'ERROR').length, 0, 'no ERROR for B');
  // A new connection using the same temp name does not inherit the old replies.
  const a2 = await tcpStomp(broker, { label: 'A2' });
  await a2.subscribe('/temp-queue/foo', 'replies');
  assert.equal(await a2.inbox.quiet(300, 'MESSAGE'), null);
});
