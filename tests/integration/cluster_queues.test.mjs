// Queues across nodes: brokers joined through one real redis-server share each /queue/ as one
// Redis stream with a consumer group (docs/CLUSTER.md, "Queues across nodes").
//
// What is checked, through real processes only: a message sent on one node reaches a consumer on
// another with its headers and body; competing consumers on three nodes share 10,000 messages with
// no loss and no duplicate; messages sent before any consumer exists wait in Redis; a node killed
// with SIGKILL leaves its unacked messages to another node (redelivered:true); a consumer leaving
// hands its messages back at once; RECEIPTs wait until Redis has stored the message, so queue
// messages sent while Redis is down are kept and delivered when it returns; the buffer limit; a read
// whose reply is lost with the link is recovered at once after the reconnect.
import assert from 'node:assert/strict';
import { sleep, withTimeout } from './lib/broker.mjs';
import {
  PREFIX, RedisServer, clusterTest, freePort, killNode, linksUp, metricsText, startNode,
  useSharedRedis, waitStreamGroup, waitStreamLength,
} from './lib/cluster.mjs';
import { startRelay } from './lib/relay.mjs';
import { wsStomp, tcpStomp, encodeFrame, uniq } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';

useSharedRedis();

const streamKey = (dest) => `${PREFIX}:${dest}`;
const bodies = (frames) => frames.map((f) => f.text);
const FAST = { set: { 'cluster.queue_visibility_ms': '2000' } };

// n SENDs in batches without receipts, then one more with a receipt: once it comes back, Redis
// has stored all of them (receipts wait for every earlier queue message of the session).
async function sendMany(pub, destination, n, body) {
  for (let from = 0; from < n - 1; from += 200) {
    const frames = [];
    for (let i = from; i < Math.min(n - 1, from + 200); i++) frames.push(encodeFrame('SEND', { destination }, body(i)));
    pub.sendBytes(Buffer.concat(frames));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await pub.sendWithReceipt('SEND', { destination }, body(n - 1), 30000);
}

clusterTest('a queue message sent on one node reaches a consumer on another, headers and body intact', {}, async ({ nodes, redis }) => {
  const [a, b] = nodes;
  const dest = `/queue/${uniq('orders')}`;
  const consumer = await stompjs(b, { label: 'consumer-b' });
  const sub = await consumer.subscribe(dest);
  await waitStreamGroup(redis, dest);
  const pub = await tcpStomp(a, { label: 'pub-a' });
  for (let i = 0; i < 5; i++) {
    await pub.sendWithReceipt('SEND', { destination: dest, 'content-type': 'application/json', 'x-order': String(i) }, `{"n":${i}}`);
  }
  const got = await consumer.messages(5, sub, 10000);
  assert.deepEqual(got.map((m) => m.body), [0, 1, 2, 3, 4].map((i) => `{"n":${i}}`), 'all five, in order');
  for (const [i, m] of got.entries()) {
    assert.equal(m.headers.destination, dest);
    assert.equal(m.headers['content-type'], 'application/json');
    assert.equal(m.headers['x-order'], String(i));
    assert.ok(m.headers['message-id'], 'a message-id');
    assert.notEqual(m.headers.redelivered, 'true', 'first delivery is not marked redelivered');
  }
  await waitStreamLength(redis, dest, 0); // auto-ack: acked (XACK + XDEL) once written to the consumer
  const metric = (text, name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  const [ma, mb] = [await metricsText(a), await metricsText(b)];
  assert.equal(metric(ma, 'stompws_cluster_queue_appended_total'), 5, 'node a stored 5 in Redis');
  assert.equal(metric(mb, 'stompws_cluster_queue_read_total'), 5, 'node b read 5');
  assert.equal(metric(mb, 'stompws_cluster_queue_acked_total'), 5, 'node b acked 5');
  assert.equal(metric(mb, 'stompws_cluster_queue_held'), 0);
  assert.equal(metric(ma, 'stompws_cluster_queue_link_up'), 1);
  const latency = metric(ma, 'stompws_cluster_redis_latency_seconds');
  assert.ok(latency > 0 && latency < 1, `a measured Redis round trip (${latency} s)`);
});

clusterTest('competing consumers on 3 nodes share 10,000 messages from 2 publishers: no loss, no duplicate', { timeout: 120000 }, async ({ nodes, redis }) => {
  const [a, b, c] = nodes;
  const dest = `/queue/${uniq('work')}`;
  const consumers = [
    { client: await tcpStomp(a, { label: 'cons-a' }), ack: 'auto' },
    { client: await wsStomp(b, { label: 'cons-b' }), ack: 'client-individual' },
    { client: await tcpStomp(c, { label: 'cons-c' }), ack: 'client' },
  ];
  const received = consumers.map(() => []);
  for (const [i, k] of consumers.entries()) {
    await k.client.subscribe(dest, `s${i}`, { ack: k.ack, 'prefetch-count': '50' });
    // Acks as messages come, the way a real worker does: cumulative for 'client'.
    k.client.inbox.push = (frame) => {
      if (frame.command !== 'MESSAGE') { Object.getPrototypeOf(k.client.inbox).push.call(k.client.inbox, frame); return; }
      received[i].push(frame.text);
      if (k.ack !== 'auto') k.client.send('ACK', { id: frame.headers.ack });
    };
  }
  await waitStreamGroup(redis, dest);
  const pubA = await tcpStomp(a, { label: 'pub-a' });
  const pubB = await wsStomp(b, { label: 'pub-b' });
  const N = 5000;
  await Promise.all([
    sendMany(pubA, dest, N, (i) => `a${i}`),
    sendMany(pubB, dest, N, (i) => `b${i}`),
  ]);
  const deadline = Date.now() + 60000;
  const total = () => received.reduce((n, r) => n + r.length, 0);
  while (total() < 2 * N && Date.now() < deadline) await sleep(50);
  await sleep(300); // anything extra (a duplicate) would arrive now
  const all = received.flat();
  const unique = new Set(all);
  assert.equal(unique.size, 2 * N, `every message delivered (got ${unique.size} distinct of ${2 * N})`);
  assert.equal(all.length, 2 * N, `no duplicates (${all.length - unique.size} extra deliveries)`);
  for (const [i, r] of received.entries()) assert.ok(r.length > 0, `consumer ${i} took part (got ${r.length})`);
  // Each publisher's messages reach each consumer in the order sent.
  for (const r of received) {
    for (const p of ['a', 'b']) {
      const seq = r.filter((x) => x[0] === p).map((x) => Number(x.slice(1)));
      assert.deepEqual(seq, [...seq].sort((x, y) => x - y), `publisher ${p}'s order kept`);
    }
  }
  await waitStreamLength(redis, dest, 0, 20000);
});

clusterTest('messages sent before any consumer exists wait in Redis and go to the first consumer on any node', {}, async ({ nodes, redis }) => {
  const [a, , c] = nodes;
  const dest = `/queue/${uniq('backlog')}`;
  const pub = await tcpStomp(a, { label: 'pub-a' });
  for (let i = 0; i < 20; i++) await pub.sendWithReceipt('SEND', { destination: dest }, `early${i}`);
  await waitStreamLength(redis, dest, 20);
  const late = await wsStomp(c, { label: 'late-c' });
  await late.subscribe(dest, 's');
  const got = await late.messages(20, 's', 10000);
  assert.deepEqual(bodies(got), Array.from({ length: 20 }, (_, i) => `early${i}`));
  await waitStreamLength(redis, dest, 0);
});

clusterTest('a backend XADDs a raw payload to the stream and a consumer gets it as the body', {}, async ({ nodes, redis }) => {
  const dest = `/queue/${uniq('raw')}`;
  const consumer = await wsStomp(nodes[1], { label: 'consumer' });
  await consumer.subscribe(dest, 's');
  await waitStreamGroup(redis, dest);
  await redis.command('XADD', streamKey(dest), '*', 'm', 'made by redis-cli');
  const m = await consumer.message('s', 10000);
  assert.equal(m.text, 'made by redis-cli');
  assert.equal(m.headers.destination, dest);
  await waitStreamLength(redis, dest, 0);
});

clusterTest('node SIGKILLed with unacked queue messages: another node redelivers them (redelivered:true)', { broker: FAST }, async ({ nodes, redis }) => {
  const [a, b, c] = nodes;
  const dest = `/queue/${uniq('crash')}`;
  const doomed = await tcpStomp(b, { label: 'doomed-b' });
  await doomed.subscribe(dest, 'd', { ack: 'client-individual', 'prefetch-count': '100' });
  await waitStreamGroup(redis, dest);
  const pub = await tcpStomp(a, { label: 'pub-a' });
  for (let i = 0; i < 10; i++) await pub.sendWithReceipt('SEND', { destination: dest }, `job${i}`);
  const held = await doomed.messages(10, 'd', 10000); // delivered, never acked
  assert.deepEqual(bodies(held), Array.from({ length: 10 }, (_, i) => `job${i}`));
  await killNode(b);
  const survivor = await tcpStomp(c, { label: 'survivor-c' });
  await survivor.subscribe(dest, 's', { ack: 'client-individual' });
  const started = Date.now();
  const again = await survivor.messages(10, 's', 15000);
  assert.deepEqual(bodies(again).sort(), bodies(held).sort(), 'the same ten messages, on another node');
  assert.ok(again.every((m) => m.headers.redelivered === 'true'), 'marked redelivered');
  assert.ok(Date.now() - started < 10000, 'within a few visibility timeouts (2 s here)');
  for (const m of again) survivor.send('ACK', { id: m.headers.ack });
  await waitStreamLength(redis, dest, 0);
});

clusterTest('a consumer that leaves without acking hands its messages back: a consumer on another node gets them', { broker: FAST }, async ({ nodes, redis }) => {
  const [a, b, c] = nodes;
  const dest = `/queue/${uniq('handback')}`;
  const leaver = await wsStomp(b, { label: 'leaver-b' });
  await leaver.subscribe(dest, 'l', { ack: 'client', 'prefetch-count': '100' });
  await waitStreamGroup(redis, dest);
  const pub = await tcpStomp(a, { label: 'pub-a' });
  for (let i = 0; i < 5; i++) await pub.sendWithReceipt('SEND', { destination: dest }, `h${i}`);
  await leaver.messages(5, 'l', 10000);
  const stayer = await tcpStomp(c, { label: 'stayer-c' });
  await stayer.subscribe(dest, 's', { ack: 'client-individual' });
  assert.equal(await stayer.inbox.quiet(500, 'MESSAGE'), null, 'nothing while b still holds them');
  await leaver.disconnect();
  const got = await stayer.messages(5, 's', 10000);
  assert.deepEqual(bodies(got).sort(), ['h0', 'h1', 'h2', 'h3', 'h4']);
  assert.ok(got.every((m) => m.headers.redelivered === 'true'));
  for (const m of got) stayer.send('ACK', { id: m.headers.ack });
  await waitStreamLength(redis, dest, 0);
});

clusterTest('Redis down: a queue SEND waits for its RECEIPT and is delivered once Redis is back', {
  redis: async () => RedisServer.start(),
  ids: ['nA', 'nB'],
  broker: { set: { 'cluster.reconnect_max_ms': '300' } },
}, async ({ nodes, redis }) => {
  const [a, b] = nodes;
  const dest = `/queue/${uniq('outage')}`;
  const consumer = await tcpStomp(b, { label: 'consumer-b' });
  await consumer.subscribe(dest, 's');
  await waitStreamGroup(redis, dest);
  await redis.kill();
  const pub = await tcpStomp(a, { label: 'pub-a' });
  pub.send('SEND', { destination: dest, receipt: 'while-down' }, 'kept on node a');
  assert.equal(await pub.inbox.quiet(800, 'RECEIPT'), null, 'no RECEIPT while Redis cannot store the message');
  assert.equal(await pub.inbox.quiet(0, 'ERROR'), null, 'and no ERROR: it is buffered');
  await redis.spawn(); // same port, empty: the stream and the group are made again
  const receipt = await pub.inbox.take('RECEIPT', 15000, 'the RECEIPT once Redis is back');
  assert.equal(receipt.headers['receipt-id'], 'while-down');
  const m = await consumer.message('s', 15000);
  assert.equal(m.text, 'kept on node a');
  await Promise.all(nodes.map(linksUp));
});

clusterTest('the queue buffer is bounded: past cluster.queue_buffer_bytes a SEND gets an ERROR naming it', {
  redis: async () => new RedisServer(await freePort()), // never started: Redis stays down
  ids: ['nA'],
  waitLinks: false,
  broker: { set: { 'cluster.queue_buffer_bytes': '4096' } },
}, async ({ nodes }) => {
  const pub = await tcpStomp(nodes[0], { label: 'pub' });
  const dest = `/queue/${uniq('full')}`;
  pub.send('SEND', { destination: dest }, 'x'.repeat(1000)); // fits: waits in the buffer
  pub.send('SEND', { destination: dest }, 'y'.repeat(5000)); // does not fit
  const err = await pub.error(5000);
  assert.match(err.headers.message, /cluster\.queue_buffer_bytes = 4096/);
  const m = await metricsText(nodes[0]);
  assert.match(m, /stompws_limit_hits_total\{limit="cluster\.queue_buffer_bytes"\} 1/);
});

clusterTest('NACK on one node goes to another local consumer; acked messages leave the stream', { ids: ['nA', 'nB'] }, async ({ nodes, redis }) => {
  const [a, b] = nodes;
  const dest = `/queue/${uniq('nack')}`;
  const first = await tcpStomp(b, { label: 'first' });
  await first.subscribe(dest, 'f', { ack: 'client-individual', 'prefetch-count': '1' });
  await waitStreamGroup(redis, dest);
  const pub = await tcpStomp(a, { label: 'pub' });
  await pub.sendWithReceipt('SEND', { destination: dest }, 'retry me');
  const m1 = await first.message('f', 10000);
  const second = await tcpStomp(b, { label: 'second' });
  await second.subscribe(dest, 's', { ack: 'client-individual' });
  first.send('NACK', { id: m1.headers.ack });
  const m2 = await second.message('s', 10000);
  assert.equal(m2.text, 'retry me');
  assert.equal(m2.headers.redelivered, 'true');
  await waitStreamLength(redis, dest, 1); // still unacked
  await second.sendWithReceipt('ACK', { id: m2.headers.ack });
  await waitStreamLength(redis, dest, 0);
});

clusterTest('a node shut down with SIGTERM hands its unacked messages back at once (no visibility wait)', {}, async ({ nodes, redis }) => {
  const [a, b, c] = nodes; // default visibility: 30 s, so only a hand-back can be this fast
  const dest = `/queue/${uniq('drain')}`;
  const leaving = await tcpStomp(b, { label: 'leaving-b' });
  await leaving.subscribe(dest, 'l', { ack: 'client-individual', 'prefetch-count': '100' });
  await waitStreamGroup(redis, dest);
  const pub = await tcpStomp(a, { label: 'pub-a' });
  for (let i = 0; i < 8; i++) await pub.sendWithReceipt('SEND', { destination: dest }, `d${i}`);
  await leaving.messages(8, 'l', 10000);
  const stayer = await wsStomp(c, { label: 'stayer-c' });
  await stayer.subscribe(dest, 's', { ack: 'client-individual' });
  const exit = await b.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, 'node b drained and exited 0');
  const got = await stayer.messages(8, 's', 5000);
  assert.deepEqual(bodies(got).sort(), Array.from({ length: 8 }, (_, i) => `d${i}`));
  assert.ok(got.every((m) => m.headers.redelivered === 'true'));
  for (const m of got) stayer.send('ACK', { id: m.headers.ack });
  await waitStreamLength(redis, dest, 0);
});

// Redis hands a read's entries to the node when it answers; if the answer is lost with the link
// (Redis killed between its AOF write and the reply, a broken connection) the entries sit in the
// node's pending list. The node reads them back after the reconnect instead of leaving them for
// the visibility timeout (30 s by default).
clusterTest('a queue read whose reply is lost with the link: its entries arrive right after the reconnect, once', { ids: [] }, async ({ nodes, redis }) => {
  const relay = await startRelay({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: redis.port });
  let node = null;
  try {
    node = await startNode({ url: relay.url }, 'nR', { set: { 'cluster.reconnect_max_ms': '300' } });
    nodes.push(node); // stopped, and its log shown on failure, by clusterTest
    await linksUp(node);
    const dest = `/queue/${uniq('lost-reply')}`;
    const consumer = await tcpStomp(node, { label: 'consumer' });
    await consumer.subscribe(dest, 's', { ack: 'client-individual' });
    await waitStreamGroup(redis, dest);
    const cut = relay.cutReply('XREADGROUP', 'lost with the link');
    await redis.command('XADD', streamKey(dest), '*', 'm', 'lost with the link');
    await withTimeout(cut, 10000, 'the read reply carrying the entry');
    const cutAt = Date.now();
    const m = await consumer.message('s', 10000);
    assert.equal(m.text, 'lost with the link');
    assert.ok(Date.now() - cutAt < 5000, `recovered ${Date.now() - cutAt} ms after the cut, not at the 30 s visibility timeout`);
    consumer.send('ACK', { id: m.headers.ack });
    await waitStreamLength(redis, dest, 0);
    await redis.command('XADD', streamKey(dest), '*', 'm', 'after');
    const next = await consumer.message('s', 10000);
    assert.equal(next.text, 'after', 'reading goes on');
    consumer.send('ACK', { id: next.headers.ack });
    assert.equal(await consumer.inbox.quiet(500, 'MESSAGE'), null, 'nothing twice');
    await waitStreamLength(redis, dest, 0);
  } finally {
    if (node) { // before the relay goes: its exit code is checked by clusterTest
      await node.closeClients();
      await node.stop();
    }
    await relay.close();
  }
});
