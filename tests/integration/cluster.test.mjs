// Topics across nodes: three brokers joined through one real redis-server (docs/CLUSTER.md).
//
// The file starts its own redis-server on a free loopback port (no persistence, a temp dir) and
// stops it at the end, even on failure; the Redis-restart case runs a second one of its own.
// Each test starts its brokers with --redis redis://127.0.0.1:PORT --node-id nX, waits until
// both of their Redis links are up, and waits for Redis to show a remote subscription
// (PUBSUB NUMSUB / NUMPAT) before publishing, so no publish races a SUBSCRIBE on the way.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { sleep } from './lib/broker.mjs';
import {
  PREFIX, REDIS_CLI, RedisServer, clusterTest, freePort, linksUp, metricsText, pollReady, readyz,
  startNode, useSharedRedis, waitLog,
} from './lib/cluster.mjs';
import { wsStomp, tcpStomp, encodeFrame } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';

useSharedRedis();

const channel = (dest) => `${PREFIX}:${dest}`;
const bodies = (frames) => frames.map((f) => f.text);

// Sends n SENDs in batches (no receipts), then one with a receipt: all are routed when it returns.
async function publishMany(pub, destination, n, body = (i) => `m${i}`, headers = {}) {
  for (let from = 0; from < n; from += 100) {
    const frames = [];
    for (let i = from; i < Math.min(n, from + 100); i++) frames.push(encodeFrame('SEND', { destination, ...headers }, body(i)));
    pub.sendBytes(Buffer.concat(frames));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await pub.sendWithReceipt('SEND', { destination: '/topic/fence' }, 'fence', 20000);
}

// ---- cases -----------------------------------------------------------------------------

clusterTest('topic fan-out across 3 nodes: each subscriber gets each message once, in publisher order', { timeout: 60000 }, async ({ nodes, redis }) => {
  const [a, b, c] = nodes;
  const dest = '/topic/fan.out';
  const subs = [
    await wsStomp(a, { label: 'sub-a' }), // local to the publisher: its own echo must not double
    await wsStomp(b, { label: 'sub-b' }),
    await tcpStomp(c, { label: 'sub-c1' }),
    await wsStomp(c, { label: 'sub-c2' }),
  ];
  for (const [i, s] of subs.entries()) await s.subscribe(dest, `s${i}`);
  await redis.waitNumsub(channel(dest), 3); // one Redis subscription per node, not per client
  const pub = await tcpStomp(a, { label: 'pub' });
  const N = 1000;
  await publishMany(pub, dest, N);
  for (const [i, s] of subs.entries()) {
    const got = await s.messages(N, `s${i}`, 30000);
    assert.deepEqual(bodies(got), Array.from({ length: N }, (_, k) => `m${k}`), `subscriber ${i}: all ${N}, in order`);
    assert.ok(got.every((m) => m.headers.destination === dest));
  }
  for (const [i, s] of subs.entries()) {
    const extra = await s.inbox.quiet(300, 'MESSAGE');
    assert.equal(extra, null, `subscriber ${i}: no duplicate after the ${N} messages`);
  }
});

clusterTest('wildcard subscriptions across nodes: * and # match as STOMP says, not as the Redis glob', {}, async ({ nodes, redis }) => {
  const [a, b, c] = nodes;
  const star = await wsStomp(b, { label: 'star' });
  await star.subscribe('/topic/wc.*.price', 'star');
  const hash = await wsStomp(c, { label: 'hash' });
  await hash.subscribe('/topic/wc.#', 'hash');
  await redis.waitNumpat(2); // one PSUBSCRIBE per node and pattern
  const pub = await tcpStomp(a, { label: 'pub' });
  // "wcx.ibm.price" matches the glob "stompws:/topic/wc*" (Redis' * crosses dots) but not
  // the STOMP pattern "wc.#": node C's router filters it out.
  for (const d of ['/topic/wc.ibm.price', '/topic/wc.ibm.volume', '/topic/wc', '/topic/wcx.ibm.price', '/topic/wc.a.b.price']) {
    await pub.sendWithReceipt('SEND', { destination: d }, d);
  }
  await pub.sendWithReceipt('SEND', { destination: '/topic/wc.end' }, 'end');
  const hashGot = bodies(await hash.messages(5, 'hash', 5000));
  assert.deepEqual(hashGot, ['/topic/wc.ibm.price', '/topic/wc.ibm.volume', '/topic/wc', '/topic/wc.a.b.price', 'end']);
  const starGot = bodies(await star.messages(1, 'star', 5000));
  assert.deepEqual(starGot, ['/topic/wc.ibm.price']);
  assert.equal(await star.inbox.quiet(300, 'MESSAGE'), null, 'wc.*.price: nothing else (wc.a.b.price has two segments)');
  assert.equal(await hash.inbox.quiet(100, 'MESSAGE'), null);
  const m = star.inbox.all.find((f) => f.command === 'MESSAGE');
  assert.equal(m.headers.destination, '/topic/wc.ibm.price', 'destination is the published name, not the pattern');
});

clusterTest('a node subscribed exactly and by patterns (two sharing one glob) gets no duplicates', { ids: ['nA', 'nB'] }, async ({ nodes, redis }) => {
  const [a, b] = nodes;
  const s = await wsStomp(b, { label: 'multi' });
  await s.subscribe('/topic/dup.a', 'exact');
  await s.subscribe('/topic/dup.*', 'star');
  await s.subscribe('/topic/dup.*.#', 'star-hash'); // the same Redis glob as dup.*: "stompws:/topic/dup.*"
  await redis.waitNumsub(channel('/topic/dup.a'), 1);
  const pub = await tcpStomp(a, { label: 'pub' });
  await pub.sendWithReceipt('SEND', { destination: '/topic/dup.a' }, 'one');
  await pub.sendWithReceipt('SEND', { destination: '/topic/dup.a.b' }, 'two');
  await pub.sendWithReceipt('SEND', { destination: '/topic/dup.b' }, 'three');
  const got = await s.messages(6, null, 5000);
  const by = (sub) => got.filter((m) => m.headers.subscription === sub).map((m) => m.text);
  assert.deepEqual(by('exact'), ['one']);
  assert.deepEqual(by('star'), ['one', 'three']);
  assert.deepEqual(by('star-hash'), ['one', 'two', 'three']);
  assert.equal(await s.inbox.quiet(300, 'MESSAGE'), null, 'no duplicates');
});

clusterTest('redis-cli PUBLISH from a backend reaches a stompjs subscriber', { ids: ['nA', 'nB'] }, async ({ nodes, redis }) => {
  const [, b] = nodes;
  const web = await stompjs(b, { label: 'browser' });
  const sub = await web.subscribe('/topic/prices');
  const wild = await web.subscribe('/topic/prices.#');
  await redis.waitNumsub(channel('/topic/prices'), 1);
  const out = await new Promise((resolve, reject) => {
    execFile(REDIS_CLI, ['-p', String(redis.port), 'PUBLISH', 'stompws:/topic/prices', 'IBM 142.10'],
      { timeout: 5000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
  });
  assert.ok(Number(out.trim()) >= 1, `redis-cli PUBLISH receivers: ${out.trim()}`);
  const m = await web.message(sub, 5000);
  assert.equal(m.body, 'IBM 142.10');
  assert.equal(m.headers.destination, '/topic/prices');
  assert.ok(m.headers['message-id'], 'the receiving broker gives it a message-id');
  assert.equal(m.headers['content-type'], undefined, 'a raw payload carries no content-type');
  // "prices.#" matches "prices" itself (zero segments): the pattern subscription gets it too.
  const w = await web.message(wild, 5000);
  assert.equal(w.body, 'IBM 142.10');
  // A binary raw payload: delivered byte for byte (a binary WebSocket frame).
  const raw = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x41]);
  assert.ok(await redis.command('PUBLISH', 'stompws:/topic/prices', raw) >= 1);
  const bin = await web.message(sub, 5000);
  assert.deepEqual(Buffer.from(bin.binaryBody), raw);
});

// The envelope of docs/CLUSTER.md, built here independently of cluster/envelope.c.
function envelope({ origin, seq, dest, headers, body }) {
  const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
  const field = (x) => { const b = Buffer.from(x); return Buffer.concat([u32(b.length), b]); };
  const seqBuf = Buffer.alloc(8);
  seqBuf.writeBigUInt64BE(BigInt(seq));
  return Buffer.concat([
    Buffer.from([0x00, 0x53, 0x57, 0x53, 1, 0, Buffer.byteLength(origin)]), Buffer.from(origin), seqBuf,
    field(dest), u32(headers.length), ...headers.flatMap(([k, v]) => [field(k), field(v)]), field(body),
  ]);
}

clusterTest('an envelope from another program delivers its headers; malformed ones are dropped and logged', { ids: ['nA'] }, async ({ nodes, redis }) => {
  const [a] = nodes;
  const sub = await wsStomp(a, { label: 'sub' });
  await sub.subscribe('/topic/env', 's');
  await redis.waitNumsub(channel('/topic/env'), 1);
  const good = envelope({ origin: 'backend-1', seq: 1, dest: '/topic/env', headers: [['content-type', 'application/json'], ['x-k', 'v:1']], body: '{"IBM":142.1}' });
  const cases = [
    good.subarray(0, good.length - 1), // truncated
    Buffer.concat([good, Buffer.from([0])]), // trailing byte
    Buffer.concat([good.subarray(0, 4), Buffer.from([2]), good.subarray(5)]), // version 2
    envelope({ origin: 'backend-1', seq: 2, dest: '/topic/other', headers: [], body: 'x' }), // not its channel
    envelope({ origin: 'nA', seq: 3, dest: '/topic/env', headers: [], body: 'mine' }), // claims to be nA
  ];
  for (const bad of cases) assert.equal(await redis.command('PUBLISH', channel('/topic/env'), bad), 1);
  assert.equal(await redis.command('PUBLISH', channel('/topic/env'), good), 1);
  const m = await sub.message('s', 5000);
  assert.equal(m.text, '{"IBM":142.1}');
  assert.equal(m.headers['content-type'], 'application/json');
  assert.equal(m.headers['x-k'], 'v:1');
  assert.equal(await sub.inbox.quiet(300, 'MESSAGE'), null, 'only the good envelope was delivered');
  await waitLog(a, /dropped a message on Redis channel stompws:\/topic\/env: truncated envelope/, 2000, 'the decode warning');
});

clusterTest('a node started before Redis subscribes once Redis is there', {
  ids: ['nA'],
  waitLinks: false,
  redis: async () => new RedisServer(await freePort()), // not running yet
}, async ({ nodes, redis }) => {
  const [a] = nodes;
  await waitLog(a, /redis subscribe link cannot connect/, 5000, 'the "cannot connect" line');
  const sub = await wsStomp(a, { label: 'sub' }); // local service goes on without Redis
  await sub.subscribe('/topic/late', 's');
  await sub.subscribe('/topic/late.#', 'w');
  await redis.spawn();
  await linksUp(a);
  await redis.waitNumsub(channel('/topic/late'), 1, 10000);
  await redis.waitNumpat(1, 5000);
  assert.equal(await redis.command('PUBLISH', channel('/topic/late'), 'hello'), 2);
  assert.equal((await sub.message('s', 5000)).text, 'hello');
  assert.equal((await sub.message('w', 5000)).text, 'hello');
  assert.equal((a.stderr.match(/redis subscribe link cannot connect/g) ?? []).length, 1, 'one line for the whole outage');
});

clusterTest('headers and a binary body cross nodes unchanged', { ids: ['nA', 'nB'] }, async ({ nodes, redis }) => {
  const [a, b] = nodes;
  const sub = await wsStomp(b, { label: 'sub' });
  await sub.subscribe('/topic/hdrs', 's');
  await redis.waitNumsub(channel('/topic/hdrs'), 1);
  const pub = await tcpStomp(a, { label: 'pub' });
  const body = Buffer.concat([Buffer.from([0, 1, 2, 0xff, 0xfe, 0]), Buffer.from('after NULs'), Buffer.alloc(4096, 0xab)]);
  await pub.sendWithReceipt('SEND', [
    ['destination', '/topic/hdrs'],
    ['content-type', 'application/octet-stream'],
    ['content-length', String(body.length)],
    ['x-escaped', 'colon\\cnewline\\nbackslash\\\\'], // STOMP 1.2 escapes: "colon:newline\nbackslash\"
    ['x-utf8', 'žluťoučký kůň 株価 📈'],
    ['x-empty', ''],
    ['priority', '7'],
  ], body);
  const m = await sub.message('s', 5000);
  assert.deepEqual(m.body, body);
  assert.equal(m.headers['content-type'], 'application/octet-stream');
  assert.equal(m.headers['content-length'], String(body.length));
  assert.equal(m.headers['x-escaped'], 'colon:newline\nbackslash\\');
  assert.equal(m.headers['x-utf8'], 'žluťoučký kůň 株価 📈');
  assert.equal(m.headers['x-empty'], '');
  assert.equal(m.headers.priority, '7');
  assert.equal(m.headers.receipt, undefined, 'the publisher\'s receipt stays on its node');
  const rec = sub.wsMessages.find((w) => w.frames.some((f) => f.command === 'MESSAGE'));
  assert.equal(rec.isBinary, true, 'non-UTF-8 body: a binary WebSocket frame');
});

clusterTest('own echo: a node delivers its local publishes once, not again from Redis', { ids: ['nA', 'nB'] }, async ({ nodes, redis }) => {
  const [a, b] = nodes;
  const local = await wsStomp(a, { label: 'local' });
  await local.subscribe('/topic/echo', 'local');
  const remote = await wsStomp(b, { label: 'remote' });
  await remote.subscribe('/topic/echo', 'remote');
  await redis.waitNumsub(channel('/topic/echo'), 2); // nA hears its own PUBLISHes come back
  const pub = await wsStomp(a, { label: 'pub' });
  for (let i = 0; i < 20; i++) pub.send('SEND', { destination: '/topic/echo' }, `e${i}`);
  await pub.sendWithReceipt('SEND', { destination: '/topic/fence' }, 'fence');
  const expect = Array.from({ length: 20 }, (_, i) => `e${i}`);
  assert.deepEqual(bodies(await remote.messages(20, 'remote', 5000)), expect);
  assert.deepEqual(bodies(await local.messages(20, 'local', 5000)), expect);
  assert.equal(await local.inbox.quiet(500, 'MESSAGE'), null, 'no second copy from Redis');
});

clusterTest('unsubscribe stops remote delivery (after the grace period); a quick resubscribe keeps it', { ids: ['nA', 'nB'] }, async ({ nodes, redis }) => {
  const [a, b] = nodes;
  const dest = '/topic/unsub';
  const sub = await wsStomp(b, { label: 'sub' });
  await sub.subscribe(dest, 's1');
  await redis.waitNumsub(channel(dest), 1);
  const pub = await tcpStomp(a, { label: 'pub' });
  await pub.sendWithReceipt('SEND', { destination: dest }, 'first');
  assert.equal((await sub.message('s1')).text, 'first');

  // Churn inside the grace: Redis never sees the unsubscribe.
  await sub.sendWithReceipt('UNSUBSCRIBE', { id: 's1' });
  await sub.subscribe(dest, 's2');
  for (let i = 0; i < 8; i++) {
    assert.equal((await redis.command('PUBSUB', 'NUMSUB', channel(dest)))[1], 1, 'still subscribed in Redis');
    await sleep(200);
  }
  await pub.sendWithReceipt('SEND', { destination: dest }, 'second');
  assert.equal((await sub.message('s2')).text, 'second');

  // A real unsubscribe: gone from Redis once the grace (1 s) has passed; nothing arrives.
  await sub.sendWithReceipt('UNSUBSCRIBE', { id: 's2' });
  await redis.waitNumsub(channel(dest), 0, 5000);
  const other = await wsStomp(b, { label: 'other' });
  await other.subscribe('/topic/unsub.other', 'o'); // proves node B still receives from Redis
  await redis.waitNumsub(channel('/topic/unsub.other'), 1);
  await pub.sendWithReceipt('SEND', { destination: dest }, 'third');
  await pub.sendWithReceipt('SEND', { destination: '/topic/unsub.other' }, 'other');
  assert.equal((await other.message('o')).text, 'other');
  assert.equal(await sub.inbox.quiet(300, 'MESSAGE'), null, 'nothing after the unsubscribe');
});

clusterTest('Redis restart mid-stream: local traffic goes on, links come back, later messages flow', {
  ids: ['nA', 'nB'],
  timeout: 60000,
  redis: () => RedisServer.start(),
}, async ({ nodes, redis }) => {
  const [a, b] = nodes;
  const dest = '/topic/restart';
  const remote = await wsStomp(b, { label: 'remote' });
  await remote.subscribe(dest, 'r');
  const local = await wsStomp(a, { label: 'local' });
  await local.subscribe(dest, 'l');
  await redis.waitNumsub(channel(dest), 2);
  const pub = await tcpStomp(a, { label: 'pub' });
  for (let i = 0; i < 5; i++) await pub.sendWithReceipt('SEND', { destination: dest }, `before${i}`);
  assert.deepEqual(bodies(await remote.messages(5, 'r')), ['before0', 'before1', 'before2', 'before3', 'before4']);
  assert.equal(bodies(await local.messages(5, 'l')).length, 5);

  assert.deepEqual(await readyz(a), { status: 200, body: 'ready\n' });
  await redis.kill('SIGKILL');
  await waitLog(a, /redis publish link down/, 5000, 'node A to notice Redis is gone');
  // Not ready while the cluster link is down (a load balancer stops sending new clients).
  assert.deepEqual(await readyz(a), { status: 503, body: 'cluster link to Redis is down\n' });
  assert.match(await metricsText(a), /^stompws_cluster_link_up 0$/m);
  // Lost across nodes (expected), but the local subscriber still gets them.
  for (let i = 0; i < 5; i++) await pub.sendWithReceipt('SEND', { destination: dest }, `lost${i}`);
  assert.deepEqual(bodies(await local.messages(5, 'l')), ['lost0', 'lost1', 'lost2', 'lost3', 'lost4']);

  await redis.spawn(); // same port
  // Poll: publish until node B delivers one again (reconnect backoff is at most 5 s + jitter).
  const deadline = Date.now() + 20000;
  let back = null;
  for (let i = 0; !back; i++) {
    if (Date.now() > deadline) throw new Error('no message crossed nodes within 20 s of the Redis restart');
    await pub.sendWithReceipt('SEND', { destination: dest }, `poll${i}`);
    back = await remote.inbox.quiet(200, (f) => f.command === 'MESSAGE' && f.text.startsWith('poll'));
  }
  await pollReady(a, 15000); // ready again once both links are up and the probe came back
  assert.match(await metricsText(a), /^stompws_cluster_link_up 1$/m);
  await sleep(300); // let in-flight polls land before the real sequence
  remote.inbox.items = remote.inbox.items.filter((f) => !(f.command === 'MESSAGE' && f.text.startsWith('poll')));
  for (let i = 0; i < 20; i++) pub.send('SEND', { destination: dest }, `after${i}`);
  await pub.sendWithReceipt('SEND', { destination: '/topic/fence' }, 'fence');
  assert.deepEqual(bodies(await remote.messages(20, 'r', 10000)), Array.from({ length: 20 }, (_, i) => `after${i}`));
  assert.ok(!remote.inbox.all.some((f) => f.command === 'MESSAGE' && f.text.startsWith('lost')), 'nothing published while Redis was down crossed over');
  // One log line per transition, not one per reconnect attempt.
  for (const n of nodes) {
    assert.equal((n.stderr.match(/redis publish link down/g) ?? []).length, 1, `${n.nodeId}: one "down" line`);
    assert.equal((n.stderr.match(/redis publish link up/g) ?? []).length, 2, `${n.nodeId}: two "up" lines`);
  }
});

// A TCP proxy to Redis that can go silent on the subscribe connections only (those that sent a
// SUBSCRIBE): they stay open, and Redis' replies to them are swallowed, as after a failover
// behind a stuck proxy or NAT. New connections are forwarded normally.
async function stallingProxy(redisPort) {
  const conns = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: redisPort });
    const conn = { client, upstream, subscriber: false, stalled: false };
    conns.add(conn);
    client.on('data', (d) => {
      if (/SUBSCRIBE/i.test(d.toString('latin1'))) conn.subscriber = true;
      upstream.write(d);
    });
    upstream.on('data', (d) => { if (!conn.stalled) client.write(d); });
    const end = () => { conns.delete(conn); client.destroy(); upstream.destroy(); };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `redis://127.0.0.1:${server.address().port}`,
    stallSubscribers() {
      let n = 0;
      for (const c of conns) if (c.subscriber) { c.stalled = true; n++; }
      return n;
    },
    close() {
      for (const c of conns) { c.client.destroy(); c.upstream.destroy(); }
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

clusterTest('a subscribe link that is connected but silent is found by the probe and restarted', {
  ids: ['nA'],
  broker: { set: { 'cluster.probe_interval_ms': '200' } },
  waitLinks: false,
}, async ({ nodes, redis }) => {
  const [a] = nodes; // talks to Redis directly: the publisher
  const proxy = await stallingProxy(redis.port);
  const b = await startNode({ url: proxy.url }, 'nB', { set: { 'cluster.probe_interval_ms': '200' } });
  try {
    await Promise.all([a, b].map(linksUp));
    const dest = '/topic/silent';
    const sub = await wsStomp(b, { label: 'sub-b' });
    await sub.subscribe(dest, 's');
    await redis.waitNumsub(channel(dest), 1);
    const pub = await tcpStomp(a, { label: 'pub-a' });
    await pub.sendWithReceipt('SEND', { destination: dest }, 'before');
    assert.equal((await sub.message('s')).text, 'before');

    assert.ok(proxy.stallSubscribers() >= 1, 'the subscribe connection went through the proxy');
    await waitLog(b, /no probe came back on the Redis subscribe link/, 5000, 'the probe to notice the silence');
    await waitLog(b, /redis subscribe link up[^\n]*\n[\s\S]*redis subscribe link up/, 5000, 'the subscribe link back up');
    await pollReady(b, 5000);
    // The new link is subscribed again: messages from the other node flow.
    await redis.waitNumsub(channel(dest), 1);
    await pub.sendWithReceipt('SEND', { destination: dest }, 'after');
    assert.equal((await sub.message('s', 5000)).text, 'after');
    assert.match(await metricsText(b), /^stompws_cluster_link_up 1$/m);
  } finally {
    await b.closeClients();
    const exit = await b.stop();
    await proxy.close();
    assert.equal(exit.code, 0, `node B exit: ${JSON.stringify(exit)}\n${b.logTail(40)}`);
  }
});
