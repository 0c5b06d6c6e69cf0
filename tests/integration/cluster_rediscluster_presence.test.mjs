// Presence on a Redis Cluster (docs/PRESENCE.md "Across nodes", docs/CLUSTER.md "Queues, stream
// state and presence in a Redis Cluster"), and the nodes' home master failing.
//
// In a Redis Cluster the presence scripts take KEYS[1] = "{<prefix>}": every presence key is in
// the slot of "<prefix>", on one master, and the events go out by classic PUBLISH, which the
// cluster broadcasts and each node's classic subscribe link hears. Commands without a key
// (PUBLISH, WAIT, ...) and the classic subscribe link go to each node's *home* master, the master
// of the slot of "<prefix>" (cluster/redis_router.c): the same master as the presence keys.
//
// One cluster for the file (lib/rediscluster.mjs: 3 masters and a replica each), stopped even on
// failure; each test starts its brokers and stops them (each must exit 0 on SIGTERM, except one
// the test SIGKILLs).
//
// What is asserted:
//   - presence across 3 nodes: a watcher's snapshot, then the join and leave events of users on
//     other nodes; a user on two nodes joins once and leaves when her last node lets go; GET
//     /api/presence answers the same on every node; the presence keys are in the slot of
//     "{stompws}"; a SIGKILLed node's users leave within presence.ttl_s (2 s) plus a refresh,
//     seen in the same order by watchers on two nodes;
//   - the home master SIGKILLed while a wildcard subscriber on B hears a publisher on A (its
//     topic on another shard): wildcard delivery resumes within HOME_FAILOVER_BOUND_MS of the
//     kill (the broadcast copies, classic PUBLISH to the home master, are lost meanwhile: one
//     run of them), nothing lost or doubled after that; and an exact subscriber of the same
//     topic on C loses nothing at all: its shard is healthy (before the fix in bridge.c and
//     redis_router.c, every node dropped every publish while its home master was down). Presence
//     follows the new home master: a user present before the kill is still counted by GET on
//     every node, and a join after it reaches a watcher on another node.
// The figures are printed: "cluster-rediscluster-presence <name> {json}".
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, before, after } from 'node:test';
import { TIME_SCALE, startBroker, writeUsersFile } from './lib/broker.mjs';
import { PREFIX, REDIS_CLI, REDIS_SERVER, killNode, pollReady, redisCommand, withBrokers } from './lib/cluster.mjs';
import { slotOf, startRedisCluster, until } from './lib/rediscluster.mjs';
import { tcpStomp } from './lib/stomp.mjs';
import { apiKeyFile } from './lib/api.mjs';
import { httpCall } from './lib/http.mjs';
import { collect } from './lib/traffic.mjs';

// The home master fails: FAIL after ~1-2 s (node timeout 1000 ms), the replica elected ~1 s
// later, then each node's slot map names the new master (on its next refresh: a lost
// connection, or the 5 s timer) and its links to the home master come back. The bound leaves
// room for a loaded CI machine, as the other failover tests' do.
const HOME_FAILOVER_BOUND_MS = 15000 * TIME_SCALE;
const TTL_S = 2;

const missing = [REDIS_SERVER, REDIS_CLI].find((f) => !fs.existsSync(f));
const skip = missing ? `${missing} not found (apt install redis-server redis-tools)` : false;

let cluster = null;
before(async () => { if (!skip) cluster = await startRedisCluster(); });
after(async () => { if (cluster) await cluster.stop(); });

const report = (name, figures) => console.log(`cluster-rediscluster-presence ${name} ${JSON.stringify(figures)}`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-rcluster-presence-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const users = writeUsersFile(path.join(dir, 'users'), {
  alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw', dave: 'dave-pw',
});
const { key: apiKey, file: keyFile } = apiKeyFile();
const presenceArgs = ['--users', users, '--api-key-file', keyFile, '--presence', '/topic/room.*',
  '--set', `presence.ttl_s=${TTL_S}`];

// Brokers joined through the cluster (every node of it a seed), ready (/readyz 200), stopped
// after fn: each must exit 0 on SIGTERM unless the test killed it (killNode). On failure the
// tail of each broker's log is attached.
function withNodes(ids, args, fn) {
  return withBrokers(ids,
    (id) => startBroker({ args: ['--redis-cluster', cluster.seeds(), '--node-id', id, ...args] }),
    (n) => pollReady(n, 10000 * TIME_SCALE), fn);
}

const tcpAs = (node, name, label = `${name}@${node.nodeId}`) =>
  tcpStomp(node, { label, headers: { login: name, passcode: `${name}-pw` } });

const presenceOf = (node, dest) => httpCall(node.wsPort, 'GET',
  `/api/presence?destination=${encodeURIComponent(dest)}`, { key: apiKey });

const event = (f) => [f.headers['x-presence-event'], f.headers['x-presence-user'], f.headers['x-presence-count']];
const isMessage = (f) => f.command === 'MESSAGE';

test('presence across 3 nodes: snapshot, events seen on other nodes, one join per user, one answer, a killed node\'s users leave', { skip, timeout: 60000 }, async () => {
  const room = '/topic/room.c';
  await withNodes(['pA', 'pB', 'pC'], presenceArgs, async (nodes) => {
    const [a, b, c] = nodes;
    const watchB = await tcpAs(b, 'dave', 'watcher@pB');
    await watchB.subscribe(`/presence${room}`, 'p');
    const snap = await watchB.message('p');
    assert.equal(snap.headers['x-presence-event'], 'snapshot');
    assert.deepEqual(JSON.parse(snap.text), { count: 0, users: [], truncated: false });

    const aliceA = await tcpAs(a, 'alice');
    await aliceA.subscribe(room, 'r');
    assert.deepEqual(event(await watchB.message('p')), ['join', 'alice', '1'], 'alice on A, seen on B');
    const bobB = await tcpAs(b, 'bob');
    await bobB.subscribe(room, 'r');
    assert.deepEqual(event(await watchB.message('p')), ['join', 'bob', '2']);
    const aliceC = await tcpAs(c, 'alice');
    await aliceC.subscribe(room, 'r'); // alice is on A already: no second join
    assert.equal(await watchB.inbox.quiet(500, isMessage), null, 'alice on a second node joins once');

    for (const node of nodes) {
      const r = await presenceOf(node, room);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { destination: room, count: 2, users: ['alice', 'bob'], truncated: false },
        `GET on ${node.nodeId}`);
    }
    // Every presence key is in the slot of "{stompws}", on its master.
    const slot = slotOf(`{${PREFIX}}`);
    const owner = await cluster.ownerOf(slot);
    const keys = (await redisCommand(owner.port, ['CLUSTER', 'GETKEYSINSLOT', slot, 100])).map(String);
    for (const k of [`{${PREFIX}}:presence:${room}`, `{${PREFIX}}:presence-nodes`, `{${PREFIX}}:presence-seq`]) {
      assert.ok(keys.includes(k), `${k} in slot ${slot} on port ${owner.port} (${keys.join(', ')})`);
    }

    // A late watcher on A: a snapshot with both, then the same events as B's watcher.
    const watchA = await tcpAs(a, 'dave', 'watcher@pA');
    await watchA.subscribe(`/presence${room}`, 'p');
    const snapA = await watchA.message('p');
    assert.deepEqual(JSON.parse(snapA.text), { count: 2, users: ['alice', 'bob'], truncated: false });

    await aliceA.sendWithReceipt('UNSUBSCRIBE', { id: 'r' }); // still on C: nothing
    assert.equal(await watchB.inbox.quiet(500, isMessage), null, 'alice still on C');
    const carolA = await tcpAs(a, 'carol');
    await carolA.subscribe(room, 'r');

    await killNode(c); // alice's last session goes with it, without a word to Redis
    const killedAt = Date.now();
    const leftAfterMs = {};
    for (const [w, name] of [[watchB, 'B'], [watchA, 'A']]) {
      const got = await w.messages(2, 'p', 10000);
      assert.deepEqual(got.map(event), [['join', 'carol', '3'], ['leave', 'alice', '2']], `watcher on ${name}`);
      leftAfterMs[name] = Date.now() - killedAt;
      const offsets = got.map((f) => Number(f.headers['x-stream-offset']));
      assert.ok(offsets[0] < offsets[1] && offsets[0] > Number(snapA.headers['x-stream-offset']), `offsets ${offsets}`);
    }
    // The TTL, then a refresh of a live node (every TTL / 3), and the event's way back.
    const boundMs = TTL_S * 1000 + 2000;
    assert.ok(leftAfterMs.B < boundMs && leftAfterMs.A < boundMs, `alice left within ${boundMs} ms (${JSON.stringify(leftAfterMs)})`);
    for (const node of [a, b]) {
      await until(async () => (await presenceOf(node, room)).json.count === 2, 5000, `count 2 on ${node.nodeId}`);
      assert.deepEqual((await presenceOf(node, room)).json.users, ['bob', 'carol']);
    }
    await bobB.disconnect(); // a session that closes: bob leaves everywhere
    assert.deepEqual(event(await watchA.message('p')), ['leave', 'bob', '1']);
    assert.deepEqual(event(await watchB.message('p')), ['leave', 'bob', '1']);
    report('presence', { ttlS: TTL_S, leftAfterKillMs: leftAfterMs, boundMs, presenceSlot: slot, presenceMaster: owner.port });
  });
});

test('home master failover: wildcard delivery from A to B resumes after the master of the slot of "stompws" is SIGKILLed', { skip, timeout: 90000 }, async () => {
  const homeSlot = slotOf(PREFIX);
  const home = await cluster.ownerOf(homeSlot);
  // A topic whose channel is on another shard: what stops is the home master's part only.
  const topic = ['/topic/wf.a', '/topic/wf.b', '/topic/wf.c', '/topic/wf.d']
    .find((t) => slotOf(`${PREFIX}:${t}`) !== homeSlot);
  const topicMaster = await cluster.ownerOf(slotOf(`${PREFIX}:${topic}`));
  assert.notEqual(topicMaster, home, `${topic}'s channel on another master than the home one`);
  const registryMaster = await cluster.ownerOf(slotOf(`${PREFIX}:wildcards`));
  // Presence too (its keys are on the home master), with a TTL longer than the failover: a
  // node's entry that expired meanwhile would make its users leave (docs/PRESENCE.md).
  const room = '/topic/room.h';
  await withNodes(['hA', 'hB', 'hC'], [...presenceArgs, '--set', 'presence.ttl_s=30'], async ([a, b, c]) => {
    const watch = await tcpAs(b, 'dave', 'watcher@hB');
    await watch.subscribe(`/presence${room}`, 'p');
    assert.equal((await watch.message('p')).headers['x-presence-event'], 'snapshot');
    const alice = await tcpAs(a, 'alice');
    await alice.subscribe(room, 'r');
    assert.deepEqual(event(await watch.message('p')), ['join', 'alice', '1']);

    const wild = await tcpAs(b, 'dave', 'wildcard');
    const wildGot = collect(wild, 'w');
    await wild.subscribe('/topic/wf.*', 'w');
    const exact = await tcpAs(c, 'dave', 'exact');
    const exactGot = collect(exact, 'e');
    await exact.subscribe(topic, 'e');
    const pub = await tcpAs(a, 'dave', 'pub');
    const sent = [];
    const timer = setInterval(() => {
      pub.send('SEND', { destination: topic }, `P:${sent.length}`);
      sent.push(Date.now());
    }, 10);
    try {
      // The wildcard reaches A through the interest registry: wait until B hears A.
      await until(() => wildGot.length > 20 && exactGot.length > 20, 10000, 'wildcard and exact traffic before the kill');
      const { promoted, ms: failedOverMs, killedAt } = await cluster.failover(home);
      // Delivery is back once a message sent after the kill arrives after every message lost
      // (what was on its way to the dead master may still arrive right after the kill).
      const outage = (got) => {
        const seen = new Set(got.map((m) => m.seq));
        const lost = [];
        for (let s = got[0].seq; s < sent.length; s++) if (!seen.has(s)) lost.push(s);
        const firstBack = got.find((m) => sent[m.seq] > killedAt && (lost.length === 0 || m.seq > lost.at(-1)));
        return { seen, lost, firstBack };
      };
      await until(() => outage(wildGot).firstBack && outage(exactGot).firstBack, HOME_FAILOVER_BOUND_MS,
        'a message sent after the kill, and after every lost one, to reach both subscribers');
      const atResume = sent.length;
      await until(() => sent.length > atResume + 100, 5000, '100 more messages');
      clearInterval(timer);
      const lastSeq = sent.length - 1;
      await until(() => wildGot.some((m) => m.seq === lastSeq) && exactGot.some((m) => m.seq === lastSeq), 5000,
        'the last message on both subscribers');
      const [wild, exact] = [outage(wildGot), outage(exactGot)];
      // The lost messages of each: one run of consecutive numbers, the outage, nothing after it.
      const runs = (lost) => lost.filter((s, i) => i === 0 || s !== lost[i - 1] + 1).length;
      report('home-failover', {
        homeSlot, home: home.port, promoted: promoted.port, registryOnHome: registryMaster === home,
        topic, topicMaster: topicMaster.port, failedOverMs, boundMs: HOME_FAILOVER_BOUND_MS, sent: sent.length,
        wildcardResumeMs: wild.firstBack.at - killedAt, wildcardLost: wild.lost.length, wildcardLostRuns: runs(wild.lost),
        exactResumeMs: exact.firstBack.at - killedAt, exactLost: exact.lost.length, exactLostRuns: runs(exact.lost),
      });
      assert.ok(runs(wild.lost) <= 1, `wildcard: one outage, nothing lost after it (lost ${wild.lost.slice(0, 40)})`);
      assert.equal(wild.seen.size, wildGot.length, 'no wildcard message twice');
      // docs/CLUSTER.md: one master down stops its own slots only; the topic's shard is healthy.
      assert.deepEqual(exact.lost.slice(0, 40), [], 'the exact subscriber of a topic on a healthy shard loses nothing');
      assert.equal(exact.seen.size, exactGot.length, 'no exact message twice');

      // Presence on the new home master: alice is still counted everywhere, and bob's join on C
      // reaches B's watcher (whose subscription moved to the new master with the link).
      await Promise.all([a, b, c].map((n) => pollReady(n, 10000 * TIME_SCALE)));
      const bob = await tcpAs(c, 'bob');
      await bob.subscribe(room, 'r');
      assert.deepEqual(event(await watch.message('p', 10000)), ['join', 'bob', '2'], 'a join after the failover');
      for (const node of [a, b, c]) {
        const r = await presenceOf(node, room);
        assert.deepEqual(r.json, { destination: room, count: 2, users: ['alice', 'bob'], truncated: false },
          `GET on ${node.nodeId} after the failover`);
      }
      await cluster.restart(home); // the old master back, as a replica, for the tests after this one
    } finally {
      clearInterval(timer);
    }
  });
});
