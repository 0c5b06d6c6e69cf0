// Redis Cluster mode (issue #17, docs/CLUSTER.md "Redis Cluster"): brokers started with
// --redis-cluster and a seed list route topics (SPUBLISH / SSUBSCRIBE), wildcards (PSUBSCRIBE,
// broadcast), queues and stream state (keys with hash tags) over the shards of a real cluster,
// and follow it when a slot moves and when a master fails.
//
// One cluster for the whole file (lib/rediscluster.mjs: 3 masters and a replica each on loopback
// ports, cluster-node-timeout 1000 ms), stopped even on failure; each test starts its three
// brokers (nA, nB, nC) and stops them (each must exit 0 on SIGTERM). The tests run in order: the
// MOVED test moves two slots and the failover test turns a replica into a master.
//
// What is asserted:
//   - exact topics: 30 names whose channels live on all 3 shards; subscribers on B and C get
//     every message published on A, in order per topic, once (the first seed named is down);
//   - wildcards: /topic/news.* and /topic/news.# on B get what A publishes to matching names on
//     every shard, not a non-matching one; an exact and a wildcard subscriber of one node get a
//     message once each;
//   - queues: competing consumers on the 3 nodes of /queue/jobs (the untagged queues' shard) and
//     /queue/{eu}.orders (the shard of its tag): every receipted id delivered exactly once, and
//     each stream key is in the slot of its tag;
//   - stream state: history topics on the 3 shards published on A are replayed on C (offsets
//     1..n, and the newest of each through a wildcard); and with no master holding the retain
//     script when the nodes start (SCRIPT FLUSH on each, 6 times), paced publishes to 6 history
//     topics keep publish order, live and in their offsets (see FLUSH_LIVE);
//   - MOVED: the slot of a topic in use and then the slot of a queue in use migrate (as redis-cli
//     reshard does) while messages flow: topic delivery resumes within MOVED_BOUND_MS, every
//     receipted queue id is delivered, and the nodes count the MOVED / ASK replies in /metrics;
//   - failover: with cluster.min_replicas_ack = 1, the master of a queue's slot is SIGKILLed
//     under a receipted SEND load while its replica lags (stopped, its link cut): no receipted
//     id is lost, and topic delivery on that shard resumes within FAILOVER_BOUND_MS (nothing
//     lost or doubled after that).
//     STOMPWS_RCLUSTER_ACK=0 runs it without WAIT: then it loses messages (the check that the
//     test can fail).
// The figures are printed: "cluster-rediscluster <name> {json}".
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test, before, after } from 'node:test';
import { TIME_SCALE, sleep, startBroker, withTimeout } from './lib/broker.mjs';
import {
  PREFIX, REDIS_CLI, REDIS_SERVER, freePort, metricsText, pollReady, redisCommand, withBrokers,
} from './lib/cluster.mjs';
import { slotOf, startRedisCluster, until } from './lib/rediscluster.mjs';
import { encodeFrame, tcpStomp } from './lib/stomp.mjs';
import { collect, idConsumer, reliablePublisher } from './lib/traffic.mjs';

const MIN_REPLICAS_ACK = Number(process.env.STOMPWS_RCLUSTER_ACK ?? 1);

// A moved slot: the subscriber's shard connection is told (sunsubscribe) or the next SPUBLISH
// gets MOVED; either refreshes the map at once and the channel is subscribed on the new master.
// Measured here from the end of the migration: 2-40 ms. The bound is the map's refresh period
// (cluster.redis_cluster_refresh_ms, 5000), what a missed notice would cost.
const MOVED_BOUND_MS = 5000 * TIME_SCALE;
// A failed master: FAIL after ~1-2 s (node timeout 1000 ms), the replica elected ~1 s later
// (the lib's test measures 2.1-2.8 s kill to healthy), then the nodes' next map refresh (on a
// MOVED, a lost link, or the 5 s timer). Measured from the kill: 2.3-4.4 s. The bound leaves
// room for a loaded CI machine, as the Sentinel test's does.
const FAILOVER_BOUND_MS = 15000 * TIME_SCALE;

const missing = [REDIS_SERVER, REDIS_CLI].find((f) => !fs.existsSync(f));
const skip = missing ? `${missing} not found (apt install redis-server redis-tools)` : false;

let cluster = null;
before(async () => { if (!skip) cluster = await startRedisCluster(); });
after(async () => { if (cluster) await cluster.stop(); });

const report = (name, figures) => console.log(`cluster-rediscluster ${name} ${JSON.stringify(figures)}`);

// The topic channel of a destination, and the slot a queue's stream lives in: its own hash tag's,
// or that of "q", which all untagged queues share (docs/CLUSTER.md).
const channelOf = (dest) => `${PREFIX}:${dest}`;
const queueSlot = (dest) => slotOf(/\{([^}]+)\}/.exec(dest)?.[1] ?? 'q');

// The ports of the masters that serve the channels of dests.
async function shardsOf(dests) {
  const ports = new Set();
  for (const d of dests) ports.add((await cluster.ownerOf(slotOf(channelOf(d)))).port);
  return ports;
}

// Until the master of channel's slot counts n SSUBSCRIBEs of it (one per node that follows it).
async function waitShardSubs(channel, n, timeoutMs = 10000) {
  await until(async () => {
    const owner = await cluster.ownerOf(slotOf(channel));
    const [, count] = await redisCommand(owner.port, ['PUBSUB', 'SHARDNUMSUB', channel]);
    if (count !== n) throw new Error(`${count} on port ${owner.port}`);
    return true;
  }, timeoutMs, `${n} SSUBSCRIBE(s) of ${channel}`);
}

// Brokers joined through the cluster (every node of it a seed, after the extra seeds), ready
// (/readyz 200), stopped after fn (each must exit 0 on SIGTERM); on failure the tail of each
// broker's log is attached.
function withNodes(ids, { args = [], extraSeeds = [] }, fn) {
  const seeds = [...extraSeeds, cluster.seeds()].join(',');
  return withBrokers(ids, (id) => startBroker({ args: ['--redis-cluster', seeds, '--node-id', id, ...args] }),
    (n) => pollReady(n, 10000 * TIME_SCALE), fn);
}

// The sum over the series of a /metrics text whose name matches re (labels allowed).
function counterSum(text, re) {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^(\S+?)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && re.test(m[1])) sum += Number(m[3]);
  }
  return sum;
}

test('exact topics on all 3 shards: subscribers on B and C get what A publishes, in order per topic', { skip, timeout: 60000 }, async () => {
  const topics = Array.from({ length: 30 }, (_, i) => `/topic/ex.${i}`);
  assert.equal((await shardsOf(topics)).size, 3, 'the 30 channels live on the 3 shards');
  // The first seed is down (nothing listens there): the nodes ask the next.
  const dead = `127.0.0.1:${await freePort()}`;
  await withNodes(['nA', 'nB', 'nC'], { extraSeeds: [dead] }, async ([a, b, c]) => {
    const subs = [b.track(await tcpStomp(b, { label: 'sub-b' })), c.track(await tcpStomp(c, { label: 'sub-c' }))];
    for (const s of subs) for (const [i, t] of topics.entries()) await s.subscribe(t, `t${i}`);
    for (const t of topics) await waitShardSubs(channelOf(t), 2); // one per node, not per client
    const pub = a.track(await tcpStomp(a, { label: 'pub' }));
    const ROUNDS = 20;
    const frames = [];
    for (let r = 0; r < ROUNDS; r++) for (const t of topics) frames.push(encodeFrame('SEND', { destination: t }, `${t}:${r}`));
    pub.sendBytes(Buffer.concat(frames));
    await pub.sendWithReceipt('SEND', { destination: topics[0] }, `${topics[0]}:${ROUNDS}`);
    for (const s of subs) {
      const got = await s.messages(topics.length * ROUNDS + 1, null, 20000);
      for (const [i, t] of topics.entries()) {
        const bodies = got.filter((m) => m.headers.subscription === `t${i}`).map((m) => m.text);
        const want = Array.from({ length: i === 0 ? ROUNDS + 1 : ROUNDS }, (_, r) => `${t}:${r}`);
        assert.deepEqual(bodies, want, `${s.inbox.label}: ${t} complete and in order`);
        assert.ok(got.every((m) => m.headers.destination === t || m.headers.subscription !== `t${i}`));
      }
      assert.equal(await s.inbox.quiet(300, 'MESSAGE'), null, `${s.inbox.label}: nothing twice`);
    }
  });
});

test('wildcards: news.* and news.# on B get matching names of every shard, once, and not the others', { skip, timeout: 60000 }, async () => {
  const matching = ['/topic/news.eu', '/topic/news.us', '/topic/news.uk', '/topic/news.jp'];
  const hashOnly = ['/topic/news.eu.markets', '/topic/news']; // news.# matches zero or more words
  const nonMatching = ['/topic/newsx.eu', '/topic/other.news.us'];
  assert.equal((await shardsOf(matching)).size, 3, 'the matching channels live on the 3 shards');
  await withNodes(['nA', 'nB', 'nC'], {}, async ([a, b]) => {
    const star = b.track(await tcpStomp(b, { label: 'star' }));
    await star.subscribe('/topic/news.*', 'star');
    const hash = b.track(await tcpStomp(b, { label: 'hash' }));
    await hash.subscribe('/topic/news.#', 'hash');
    const exact = b.track(await tcpStomp(b, { label: 'exact' }));
    await exact.subscribe('/topic/news.eu', 'exact');
    await waitShardSubs(channelOf('/topic/news.eu'), 1);
    const pub = a.track(await tcpStomp(a, { label: 'pub' }));
    // The wildcard reaches A through the nodes' interest registry: probe until both hear it.
    const probe = '/topic/news.probe';
    const isProbe = (m) => m.headers.destination === probe;
    await until(() => {
      pub.send('SEND', { destination: probe }, 'probe');
      return star.inbox.items.some(isProbe) && hash.inbox.items.some(isProbe);
    }, 10000, 'a wildcard probe from A to reach B');
    for (const d of [...matching, ...hashOnly, ...nonMatching]) await pub.sendWithReceipt('SEND', { destination: d }, d);
    await pub.sendWithReceipt('SEND', { destination: '/topic/news.end' }, '/topic/news.end');
    const take = async (client, sub, n) => (await client.inbox.takeN(n,
      (f) => f.command === 'MESSAGE' && f.headers.subscription === sub && !isProbe(f), 10000, `MESSAGE on ${sub}`)).map((m) => m.text);
    assert.deepEqual((await take(star, 'star', matching.length + 1)).sort(), [...matching, '/topic/news.end'].sort());
    assert.deepEqual((await take(hash, 'hash', matching.length + hashOnly.length + 1)).sort(), [...matching, ...hashOnly, '/topic/news.end'].sort());
    assert.deepEqual(await take(exact, 'exact', 1), ['/topic/news.eu']);
    for (const [client, what] of [[star, 'news.*'], [hash, 'news.#'], [exact, 'the exact subscriber']]) {
      const extra = await client.inbox.quiet(500, (f) => f.command === 'MESSAGE' && !isProbe(f));
      assert.equal(extra, null, `${what}: nothing else (got ${extra?.headers.destination})`);
    }
  });
});

test('queues: competing consumers on 3 nodes, every receipted id delivered exactly once, keys in their tag\'s slot', { skip, timeout: 60000 }, async () => {
  const queues = ['/queue/jobs', '/queue/{eu}.orders'];
  const N = 1000;
  await withNodes(['nA', 'nB', 'nC'], {}, async (nodes) => {
    const [a, b] = nodes;
    // perNode[q][i]: the ids node i's consumer of queue q got.
    const perNode = queues.map(() => nodes.map(() => []));
    for (const [q, dest] of queues.entries()) {
      for (const [i, n] of nodes.entries()) await idConsumer(n, dest, `${dest}@${n.nodeId}`, perNode[q][i]);
    }
    const got = perNode.map((lists) => ({ get length() { return lists.reduce((sum, l) => sum + l.length, 0); }, all: () => lists.flat() }));
    const ids = Array.from({ length: N }, (_, i) => i);
    const pubs = [reliablePublisher(a, queues[0], ids), reliablePublisher(b, queues[1], ids)];
    await withTimeout(Promise.all(pubs.map((p) => p.done)), 30000 * TIME_SCALE, 'a RECEIPT for every id');
    for (const [q, dest] of queues.entries()) {
      await until(() => got[q].length >= N, 15000, `${N} deliveries on ${dest}`);
      await sleep(300); // a duplicate would come now
      const all = got[q].all();
      assert.deepEqual([...new Set(all)].sort((x, y) => x - y), ids, `${dest}: every id`);
      assert.equal(all.length, N, `${dest}: no id twice`);
    }
    // Each queue's keys are in one slot: its tag's ("q" for the untagged queues).
    for (const dest of queues) {
      const slot = queueSlot(dest);
      const owner = await cluster.ownerOf(slot);
      const keys = (await redisCommand(owner.port, ['CLUSTER', 'GETKEYSINSLOT', slot, 100])).map(String);
      assert.ok(keys.some((k) => k.includes(dest)), `${dest}: a key in slot ${slot} on port ${owner.port} (${keys.join(', ')})`);
    }
    report('queues', { ids: N, perNode: Object.fromEntries(queues.map((d, q) => [d, perNode[q].map((l) => l.length)])), sends: pubs.map((p) => p.sends) });
  });
});

test('stream state: history topics on the 3 shards published on A are replayed on C', { skip, timeout: 60000 }, async () => {
  const topics = ['/topic/h.a', '/topic/h.b', '/topic/h.c', '/topic/h.d', '/topic/h.e', '/topic/h.f'];
  assert.equal((await shardsOf(topics)).size, 3, 'the channels live on the 3 shards');
  await withNodes(['nA', 'nB', 'nC'], { args: ['--history', '/topic/h.#=100'] }, async ([a, , c]) => {
    const pub = a.track(await tcpStomp(a, { label: 'pub' }));
    for (const t of topics) {
      for (let i = 0; i < 5; i++) await pub.sendWithReceipt('SEND', { destination: t }, `${t}#${i}`);
    }
    const sub = c.track(await tcpStomp(c, { label: 'replay' }));
    // The newest entry is stored right after the RECEIPT: ask again until all 5 are there.
    for (const [k, t] of topics.entries()) {
      const bodies = await until(async () => {
        const id = `r${k}-${Date.now()}`;
        const r = await sub.subscribe(t, id, { 'x-stream-offset': 'first' });
        assert.equal(r.headers['x-stream-recovered'], 'true');
        const replayed = [];
        for (;;) {
          const m = await sub.inbox.quiet(300, (f) => f.command === 'MESSAGE' && f.headers.subscription === id);
          if (!m) break;
          sub.inbox.items.splice(sub.inbox.items.indexOf(m), 1);
          replayed.push(m);
        }
        await sub.sendWithReceipt('UNSUBSCRIBE', { id });
        if (replayed.length < 5) return false;
        assert.deepEqual(replayed.map((m) => Number(m.headers['x-stream-offset'])), [1, 2, 3, 4, 5]);
        return replayed.map((m) => m.text);
      }, 5000, `the 5 messages of ${t} replayed on C`);
      assert.deepEqual(bodies, [0, 1, 2, 3, 4].map((i) => `${t}#${i}`));
    }
    const last = await sub.subscribe('/topic/h.*', 'last', { 'x-stream-offset': 'last' });
    assert.equal(last.headers['x-stream-recovered'], 'true');
    const newest = await sub.messages(topics.length, 'last', 5000);
    assert.deepEqual(newest.map((m) => m.text).sort(), topics.map((t) => `${t}#4`).sort());
  });
});

// The retain script's NOSCRIPT fallback (EVAL) goes out behind EVALSHAs of later messages that
// already found the script: a master must have it before a destination's first EVALSHA. The
// nodes load it on each master connection as it comes up; STOMPWS_RCLUSTER_FLUSH=live flushes
// the scripts on connections already up instead (an operator's SCRIPT FLUSH), which that does
// not cover: offsets then follow Redis' order, not the publisher's.
const FLUSH_LIVE = process.env.STOMPWS_RCLUSTER_FLUSH === 'live';

test(`stream state keeps publish order on every shard, scripts flushed ${FLUSH_LIVE ? 'on live connections' : 'before the nodes start'}`, { skip, timeout: 60000 }, async () => {
  const ROUNDS = FLUSH_LIVE ? 12 : 6;
  const N = 100;
  const args = ['--history', '/topic/h.#=1000'];
  const flushScripts = async () => {
    for (const m of await cluster.masters()) await redisCommand(m.port, ['SCRIPT', 'FLUSH']);
  };
  const disorder = [];
  // 6 history topics, 100 messages each from A, paced (a pace per round) so that some are on
  // their way while the first answers come back; C's live subscriber checks order and offsets.
  const round = async (r, a, c) => {
    const topics = Array.from({ length: 6 }, (_, i) => `/topic/h.o${r}.${i}`);
    const live = c.track(await tcpStomp(c, { label: `live-${r}` }));
    for (const t of topics) await live.subscribe(t, t);
    for (const t of topics) await waitShardSubs(channelOf(t), 1);
    const pub = a.track(await tcpStomp(a, { label: `pub-${r}` }));
    for (let k = 0; k < N; k++) {
      for (const t of topics) pub.send('SEND', { destination: t }, `${t}#${k}`);
      if (k % (1 + r) === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await pub.sendWithReceipt('SEND', { destination: '/topic/fence' }, 'fence');
    for (const t of topics) {
      const got = await live.messages(N, t, 15000);
      const bodies = got.map((m) => m.text);
      const offsets = got.map((m) => Number(m.headers['x-stream-offset']));
      const want = Array.from({ length: N }, (_, k) => `${t}#${k}`);
      if (bodies.join() !== want.join() || offsets.some((o, k) => o !== k + 1)) {
        const at = bodies.findIndex((b, k) => b !== want[k]);
        disorder.push(`${t}: from #${at}: ${bodies.slice(at, at + 4).join(' ')} (offsets ${offsets.slice(at, at + 4).join(' ')})`);
      }
    }
    for (const client of [live, pub]) client.destroy();
  };
  if (FLUSH_LIVE) {
    await withNodes(['nA', 'nC'], { args }, async ([a, c]) => {
      for (let r = 0; r < ROUNDS; r++) {
        await flushScripts();
        await round(r, a, c);
      }
    });
  } else {
    for (let r = 0; r < ROUNDS; r++) {
      await flushScripts();
      await withNodes(['nA', 'nC'], { args }, ([a, c]) => round(r, a, c));
    }
  }
  report('history-order', { flush: FLUSH_LIVE ? 'live' : 'before-start', rounds: ROUNDS, destinations: ROUNDS * 6, perDestination: N, outOfOrder: disorder.length });
  assert.deepEqual(disorder, [], 'every destination live in publish order, offsets 1..N');
});

test('MOVED: the slots of a topic and of a queue in use migrate; delivery resumes, no receipted id lost', { skip, timeout: 90000 }, async () => {
  const topic = '/topic/mv.ticks';
  const queue = '/queue/{mv}.work';
  const TOTAL = 3000;
  await withNodes(['nA', 'nB', 'nC'], {}, async ([a, b, c]) => {
    const sub = b.track(await tcpStomp(b, { label: 'topic-sub' }));
    const topicGot = collect(sub, 's');
    await sub.subscribe(topic, 's');
    await waitShardSubs(channelOf(topic), 1);
    const tpub = a.track(await tcpStomp(a, { label: 'topic-pub' }));
    const sent = [];
    const timer = setInterval(() => {
      tpub.send('SEND', { destination: topic }, `P:${sent.length}`);
      sent.push(Date.now());
    }, 10);
    try {
      const queueGot = [];
      for (const [n, label] of [[b, 'qb'], [c, 'qc']]) await idConsumer(n, queue, label, queueGot);
      const ids = Array.from({ length: TOTAL }, (_, i) => i);
      let reached = null;
      const reachedPromise = new Promise((resolve) => { reached = resolve; });
      const qpub = reliablePublisher(a, queue, ids, { window: 20, onProgress: (n) => { if (n >= 500) reached(); } });
      await Promise.race([reachedPromise, qpub.done]);
      await until(() => topicGot.length > 20, 5000, 'topic traffic before the migration');

      // The topic's slot moves to another master.
      const topicSlot = slotOf(channelOf(topic));
      const topicFrom = await cluster.ownerOf(topicSlot);
      const topicTo = (await cluster.masters()).find((m) => m !== topicFrom);
      await cluster.migrateSlot(topicSlot, topicTo);
      const topicMovedAt = Date.now();
      const first = await until(() => topicGot.find((m) => sent[m.seq] > topicMovedAt), MOVED_BOUND_MS,
        'a topic message sent after the migration to reach B');
      const topicResumeMs = first.at - topicMovedAt;
      await waitShardSubs(channelOf(topic), 1);

      // The queue's slot moves while the publisher and both consumers work on it: with a pause
      // after the stream key moved, XADD / XACK / XREADGROUP on the source get ASK meanwhile.
      const queueSlotNo = queueSlot(queue);
      const queueFrom = await cluster.ownerOf(queueSlotNo);
      const queueTo = (await cluster.masters()).find((m) => m !== queueFrom);
      const atMigration = qpub.receipted.size;
      const { keys } = await cluster.migrateSlot(queueSlotNo, queueTo, { batch: 1, pauseMs: 300 });
      await withTimeout(qpub.done, 30000 * TIME_SCALE, 'a RECEIPT for every queue id');
      const delivered = new Set(queueGot);
      await until(() => { for (const id of queueGot) delivered.add(id); return delivered.size >= TOTAL; },
        20000, 'every queue id delivered').catch(() => {});
      const lost = ids.filter((id) => !delivered.has(id));

      clearInterval(timer);
      const lastSeq = sent.length - 1;
      await until(() => topicGot.some((m) => m.seq === lastSeq), 5000, 'the last topic message');
      const seen = new Set(topicGot.map((m) => m.seq));
      const lostAfter = [];
      for (let s = first.seq; s <= lastSeq; s++) if (!seen.has(s)) lostAfter.push(s);

      let moved = 0;
      let ask = 0;
      for (const n of [a, b, c]) {
        const text = await metricsText(n);
        moved += counterSum(text, /^stompws_cluster_moved_total$/);
        ask += counterSum(text, /^stompws_cluster_ask_total$/);
      }
      report('moved', {
        topicResumeMs, boundMs: MOVED_BOUND_MS, topicSent: sent.length, topicLost: sent.length - seen.size,
        queueIds: TOTAL, receiptedAtMigration: atMigration, queueKeysMoved: keys, lost: lost.length,
        duplicates: queueGot.length - delivered.size, sends: qpub.sends, errors: qpub.errors, moved, ask,
      });
      assert.deepEqual(lostAfter, [], 'no topic message lost once delivery was back');
      assert.equal(seen.size, topicGot.length, 'no topic message twice');
      assert.deepEqual(lost.slice(0, 20), [], `no receipted queue id lost (${lost.length} lost)`);
      assert.ok(keys >= 1, 'the stream key moved');
      assert.ok(moved > 0, 'the nodes counted MOVED replies');
      assert.ok(ask > 0, 'the nodes counted ASK replies');
    } finally {
      clearInterval(timer);
    }
  });
});

test(`failover with min_replicas_ack=${MIN_REPLICAS_ACK}: SIGKILL of a lagging queue master loses no receipted id; topics resume`, { skip, timeout: 120000 }, async () => {
  const queue = '/queue/{fo}.jobs';
  const topic = '/topic/{fo}.ticks'; // the queue's slot: the same master dies under it
  const TOTAL = 5000;
  assert.equal(slotOf(channelOf(topic)), queueSlot(queue));
  await withNodes(['nA', 'nB', 'nC'], { args: ['--set', `cluster.min_replicas_ack=${MIN_REPLICAS_ACK}`] }, async ([a, b, c]) => {
    const sub = b.track(await tcpStomp(b, { label: 'topic-sub' }));
    const topicGot = collect(sub, 's');
    await sub.subscribe(topic, 's');
    await waitShardSubs(channelOf(topic), 1);
    const tpub = a.track(await tcpStomp(a, { label: 'topic-pub' }));
    const sent = [];
    const timer = setInterval(() => {
      tpub.send('SEND', { destination: topic }, `P:${sent.length}`);
      sent.push(Date.now());
    }, 10);
    try {
      const ids = Array.from({ length: TOTAL }, (_, i) => i);
      let reached = null;
      const reachedPromise = new Promise((resolve) => { reached = resolve; });
      const qpub = reliablePublisher(a, queue, ids, { onProgress: (n) => { if (n >= 1500) reached(); } });
      await Promise.race([reachedPromise, qpub.done]);
      const master = await cluster.ownerOf(queueSlot(queue));
      let atCut = 0;
      const { promoted, ms: failedOverMs, killedAt } = await cluster.failover(master, {
        cutReplicasMs: 400,
        onCut: () => { atCut = qpub.receipted.size; },
      });
      const first = await until(() => topicGot.find((m) => sent[m.seq] > killedAt), FAILOVER_BOUND_MS,
        'a topic message sent after the kill to reach B');
      const topicResumeMs = first.at - killedAt;
      // The consumers come now: what they get is what the stream kept through the failover.
      const got = [];
      for (const [n, label] of [[b, 'b1'], [b, 'b2'], [c, 'c1'], [c, 'c2']]) await idConsumer(n, queue, label, got);
      // The old master comes back as the new one's replica: WAIT can be satisfied again.
      await cluster.restart(master);
      await withTimeout(qpub.done, 60000 * TIME_SCALE, 'a RECEIPT for every id');
      const delivered = new Set(got);
      await until(() => { for (const id of got) delivered.add(id); return delivered.size >= TOTAL; },
        30000, 'every receipted id delivered').catch(() => {});
      const lost = ids.filter((id) => qpub.receipted.has(id) && !delivered.has(id));
      clearInterval(timer);
      const lastSeq = sent.length - 1;
      await until(() => topicGot.some((m) => m.seq === lastSeq), 5000, 'the last topic message');
      const seen = new Set(topicGot.map((m) => m.seq));
      const topicLostAfter = [];
      for (let s = first.seq; s <= lastSeq; s++) if (!seen.has(s)) topicLostAfter.push(s);
      report('failover', {
        minReplicasAck: MIN_REPLICAS_ACK, total: TOTAL, receipted: qpub.receipted.size, receiptedAtCut: atCut,
        lost: lost.length, deliveries: got.length, duplicates: got.length - delivered.size, sends: qpub.sends,
        errors: qpub.errors, failedOverMs, topicResumeMs, boundMs: FAILOVER_BOUND_MS, topicSent: sent.length,
        topicLost: sent.length - seen.size, promoted: promoted.port,
      });
      assert.equal(qpub.receipted.size, TOTAL, 'every id receipted');
      assert.deepEqual(lost.slice(0, 20), [], `no receipted id lost (${lost.length} lost)`);
      assert.deepEqual(topicLostAfter, [], 'no topic message lost once delivery was back');
      assert.equal(seen.size, topicGot.length, 'no topic message twice');
    } finally {
      clearInterval(timer);
    }
  });
});
