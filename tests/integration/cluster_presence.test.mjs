// Presence across three nodes and Redis (docs/PRESENCE.md, "Across nodes"): a user present on
// two nodes joins once, GET /api/presence answers the same on every node, /presence/ watchers on
// different nodes see the same events in the same order, and a node killed with SIGKILL is
// forgotten once presence.ttl_s has passed: its users leave. presence.ttl_s is 2 here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeUsersFile } from './lib/broker.mjs';
import { RedisServer, clusterTest, killNode, useSharedRedis, waitLog } from './lib/cluster.mjs';
import { tcpStomp } from './lib/stomp.mjs';
import { apiKeyFile } from './lib/api.mjs';
import { httpCall } from './lib/http.mjs';
import { waitFor } from './lib/proc.mjs';

useSharedRedis();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-cluster-presence-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const users = writeUsersFile(path.join(dir, 'users'), {
  alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw', dave: 'dave-pw',
});
const { key: apiKey, file: keyFile } = apiKeyFile();
const broker = {
  args: ['--users', users, '--api-key-file', keyFile, '--presence', '/topic/room.*',
    '--set', 'presence.ttl_s=2'],
};

const tcpAs = (node, name, label = `${name}@${node.nodeId}`) =>
  tcpStomp(node, { label, headers: { login: name, passcode: `${name}-pw` } });

const presenceOf = (node, dest) => httpCall(node.wsPort, 'GET',
  `/api/presence?destination=${encodeURIComponent(dest)}`, { key: apiKey });

const event = (f) => [f.headers['x-presence-event'], f.headers['x-presence-user'], f.headers['x-presence-count']];

clusterTest('3 nodes: one join per user across nodes, the same count everywhere, a killed node\'s users leave after the TTL',
  { ids: ['pA', 'pB', 'pC'], timeout: 40000, broker }, async ({ nodes }) => {
    const [a, b, c] = nodes;
    const watchB = await tcpAs(b, 'dave', 'watcher@pB');
    await watchB.subscribe('/presence/topic/room.c', 'p');
    const snap = await watchB.message('p');
    assert.equal(snap.headers['x-presence-event'], 'snapshot');
    assert.deepEqual(JSON.parse(snap.text), { count: 0, users: [], truncated: false });

    const aliceA = await tcpAs(a, 'alice');
    await aliceA.subscribe('/topic/room.c', 'r');
    assert.deepEqual(event(await watchB.message('p')), ['join', 'alice', '1']);
    const bobB = await tcpAs(b, 'bob');
    await bobB.subscribe('/topic/room.c', 'r');
    assert.deepEqual(event(await watchB.message('p')), ['join', 'bob', '2']);
    const aliceC = await tcpAs(c, 'alice');
    await aliceC.subscribe('/topic/room.c', 'r'); // alice is on A already: no second join
    assert.equal(await watchB.inbox.quiet(500, (f) => f.command === 'MESSAGE'), null);

    for (const node of nodes) {
      const r = await presenceOf(node, '/topic/room.c');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { destination: '/topic/room.c', count: 2, users: ['alice', 'bob'], truncated: false },
        `GET on ${node.nodeId}`);
    }
    // A late watcher on A: a snapshot with both, then the same events as B's watcher.
    const watchA = await tcpAs(a, 'dave', 'watcher@pA');
    await watchA.subscribe('/presence/topic/room.c', 'p');
    const snapA = await watchA.message('p');
    assert.deepEqual(JSON.parse(snapA.text), { count: 2, users: ['alice', 'bob'], truncated: false });

    await aliceA.sendWithReceipt('UNSUBSCRIBE', { id: 'r' }); // still on C: nothing
    assert.equal(await watchB.inbox.quiet(500, (f) => f.command === 'MESSAGE'), null);
    const carolA = await tcpAs(a, 'carol');
    await carolA.subscribe('/topic/room.c', 'r');

    await killNode(c); // alice's last session goes with it, without a word to Redis
    const started = Date.now();
    for (const w of [watchB, watchA]) {
      const got = await w.messages(2, 'p', 10000);
      assert.deepEqual(got.map(event), [['join', 'carol', '3'], ['leave', 'alice', '2']], w === watchA ? 'A' : 'B');
      const offsets = got.map((f) => Number(f.headers['x-stream-offset']));
      assert.ok(offsets[0] < offsets[1] && offsets[0] > Number(snapA.headers['x-stream-offset']));
    }
    assert.ok(Date.now() - started < 8000, 'forgotten within the TTL and a refresh');
    for (const node of [a, b]) {
      await waitFor(`count 2 on ${node.nodeId}`, async () => (await presenceOf(node, '/topic/room.c')).json.count === 2, 5000);
      assert.deepEqual((await presenceOf(node, '/topic/room.c')).json.users, ['bob', 'carol']);
    }
    await bobB.disconnect(); // a session that closes: bob leaves everywhere
    assert.deepEqual(event(await watchA.message('p')), ['leave', 'bob', '1']);
    assert.deepEqual(event(await watchB.message('p')), ['leave', 'bob', '1']);
  });

clusterTest('2 nodes with --threads 2: a user on both loops of a node and on the other node joins and leaves once',
  { ids: ['tA', 'tB'], timeout: 30000, broker: { args: [...broker.args, '--threads', '2'] } }, async ({ nodes }) => {
    const [a, b] = nodes;
    const watch = await tcpAs(b, 'dave', 'watcher@tB');
    await watch.subscribe('/presence/topic/room.t', 'p');
    assert.equal((await watch.message('p')).headers['x-presence-event'], 'snapshot');
    const sessions = [];
    for (let i = 0; i < 4; i++) { // connections go to the loops in turn: both of A's hold some
      const s = await tcpAs(a, 'alice', `alice-${i}@tA`);
      await s.subscribe('/topic/room.t', 'r');
      sessions.push(s);
    }
    const aliceB = await tcpAs(b, 'alice');
    await aliceB.subscribe('/topic/room.t', 'r');
    assert.deepEqual(event(await watch.message('p')), ['join', 'alice', '1']);
    for (const s of sessions) await s.sendWithReceipt('UNSUBSCRIBE', { id: 'r' });
    assert.equal(await watch.inbox.quiet(500, (f) => f.command === 'MESSAGE'), null, 'still on B');
    assert.equal((await presenceOf(a, '/topic/room.t')).json.count, 1);
    await aliceB.sendWithReceipt('UNSUBSCRIBE', { id: 'r' });
    assert.deepEqual(event(await watch.message('p')), ['leave', 'alice', '0']);
    assert.equal(await watch.inbox.quiet(300, (f) => f.command === 'MESSAGE'), null);
  });

clusterTest('a node that stops normally (SIGTERM) lets its users leave at once, not after the TTL',
  { ids: ['gA', 'gB'], timeout: 30000, broker: { args: [...broker.args, '--set', 'presence.ttl_s=60'] } },
  async ({ nodes }) => {
    const [a, b] = nodes;
    const watch = await tcpAs(b, 'dave', 'watcher@gB');
    await watch.subscribe('/presence/topic/room.g', 'p');
    await watch.message('p');
    const alice = await tcpAs(a, 'alice');
    await alice.subscribe('/topic/room.g', 'r');
    assert.deepEqual(event(await watch.message('p')), ['join', 'alice', '1']);
    const started = Date.now();
    const exit = await a.stop(); // alice's session is still open: the shutdown closes it
    assert.equal(exit.code, 0);
    assert.deepEqual(event(await watch.message('p', 5000)), ['leave', 'alice', '0']);
    assert.ok(Date.now() - started < 5000, 'well before the 60 s TTL');
    assert.equal((await presenceOf(b, '/topic/room.g')).json.count, 0);
  });

clusterTest('Redis down: GET /api/presence answers with this node\'s users and "partial": true',
  { ids: ['rA'], timeout: 30000, broker, redis: () => RedisServer.start() }, async ({ nodes, redis }) => {
    const [a] = nodes;
    const alice = await tcpAs(a, 'alice');
    await alice.subscribe('/topic/room.r', 'r');
    await waitFor('the cluster count', async () => (await presenceOf(a, '/topic/room.r')).json.count === 1, 5000);
    assert.deepEqual((await presenceOf(a, '/topic/room.r')).json,
      { destination: '/topic/room.r', count: 1, users: ['alice'], truncated: false });
    await redis.stop();
    await waitLog(a, /redis publish link down/, 10000, 'the publish link down');
    const alone = await presenceOf(a, '/topic/room.r');
    assert.equal(alone.status, 200);
    assert.deepEqual(alone.json,
      { destination: '/topic/room.r', count: 1, users: ['alice'], truncated: false, partial: true });
  });
