// Presence on a Redis Cluster (docs/PRESENCE.md "Across nodes", docs/CLUSTER.md "Queues, stream
// state and presence in a Redis Cluster").
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
// The figures are printed: "cluster-rediscluster-presence <name> {json}".
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, before, after } from 'node:test';
import { TIME_SCALE, startBroker, writeUsersFile } from './lib/broker.mjs';
import { PREFIX, REDIS_CLI, REDIS_SERVER, killNode, pollReady, redisCommand } from './lib/cluster.mjs';
import { slotOf, startRedisCluster, until } from './lib/rediscluster.mjs';
import { tcpStomp } from './lib/stomp.mjs';
import { apiKeyFile } from './lib/api.mjs';
import { httpCall } from './lib/http.mjs';

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
async function withNodes(ids, args, fn) {
  const nodes = [];
  let error = null;
  try {
    for (const id of ids) {
      const node = await startBroker({ args: ['--redis-cluster', cluster.seeds(), '--node-id', id, ...args] });
      node.nodeId = id;
      nodes.push(node);
    }
    await Promise.all(nodes.map((n) => pollReady(n, 10000 * TIME_SCALE)));
    await fn(nodes);
  } catch (e) {
    error = e;
  }
  for (const n of nodes) await n.closeClients();
  const exits = await Promise.all(nodes.map((n) => n.stop()));
  exits.forEach((exit, i) => {
    if (!error && !nodes[i].killedOnPurpose && (exit.code !== 0 || exit.signal !== null)) {
      error = new Error(`broker ${ids[i]} did not exit 0 on SIGTERM: code ${exit.code}, signal ${exit.signal}`);
    }
  });
  if (!error) {
    for (const n of nodes) fs.rmSync(n.dir, { recursive: true, force: true });
    return;
  }
  for (const n of nodes) error.message += `\n=== node ${n.nodeId} ===\n${n.logTail(60)}`;
  throw error;
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
