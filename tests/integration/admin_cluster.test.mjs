// The admin API across a cluster (docs/API.md "Admin API", docs/CLUSTER.md "Admin control
// channel"; issue #15): three nodes and Redis. Any node lists every node's connections and
// destinations, and a kick reaches the node that holds the session.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sleep, writeUsersFile } from './lib/broker.mjs';
import { RedisServer, clusterTest, useSharedRedis } from './lib/cluster.mjs';
import { tcpStomp } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';
import { adminKeyFile, adminRequest, connections } from './lib/admin.mjs';

useSharedRedis();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-admin-cluster-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const users = writeUsersFile(path.join(dir, 'users'), { alice: 'alice-pw', bob: 'bob-pw' });
const admin = adminKeyFile();
const broker = { args: ['--users', users, '--anonymous', 'off', ...admin.args] };

const login = (name) => ({ login: name, passcode: `${name}-pw` });
const tcpAs = (node, name) => tcpStomp(node, { label: `${name}@${node.nodeId}`, headers: login(name) });
const jsAs = (node, name) => stompjs(node, { label: `js-${name}@${node.nodeId}`, connectHeaders: login(name) });
const req = (node, method, p) => adminRequest(node.wsPort, admin.key, method, p);
const byNode = (list) => list.connections.map((c) => `${c.user}@${c.node}`).sort();

clusterTest('3 nodes: any node lists every node\'s connections and destinations', { timeout: 40000, broker }, async ({ nodes }) => {
  const [a, b, c] = nodes;
  const aliceA = await jsAs(a, 'alice');
  await aliceA.subscribe('/topic/news');
  const aliceC = await tcpAs(c, 'alice');
  await aliceC.subscribe('/topic/news', 's1');
  await aliceC.subscribe('/topic/sport', 's2');
  const bobB = await tcpAs(b, 'bob');
  await bobB.subscribe('/topic/news', 's1');
  for (const node of nodes) {
    const all = await connections(node.wsPort, admin.key);
    assert.equal(all.partial, false);
    assert.deepEqual(byNode(all), ['alice@nA', 'alice@nC', 'bob@nB']);
    for (const conn of all.connections) assert.match(conn.id, new RegExp(`^${conn.node}-\\d+$`));
    const alice = await connections(node.wsPort, admin.key, 'alice');
    assert.deepEqual(byNode(alice), ['alice@nA', 'alice@nC']);
    const dests = await req(node, 'GET', '/api/destinations?prefix=/topic/');
    assert.equal(dests.status, 200, dests.text);
    assert.deepEqual(dests.json, {
      destinations: [{ destination: '/topic/news', subscribers: 3 }, { destination: '/topic/sport', subscribers: 1 }],
      partial: false,
    });
  }
});

clusterTest('3 nodes + Redis: kicking a user closes her sessions on all nodes', { timeout: 40000, broker }, async ({ nodes }) => {
  const [a, b, c] = nodes;
  const aliceA = await jsAs(a, 'alice');
  const aliceB = await tcpAs(b, 'alice');
  const aliceC = await tcpAs(c, 'alice');
  const aliceC2 = await tcpAs(c, 'alice');
  const bobC = await tcpAs(c, 'bob');
  // one session by id, held by another node than the one asked
  const list = await connections(a.wsPort, admin.key, 'alice');
  assert.equal(list.connections.length, 4);
  const port = aliceC2.socket.localPort;
  const target = list.connections.find((x) => x.node === 'nC' && x.remote === `127.0.0.1:${port}`);
  assert.ok(target, JSON.stringify(list));
  const kicked = await req(a, 'DELETE', `/api/connections/${target.id}`);
  assert.equal(kicked.status, 204, kicked.text);
  assert.equal((await aliceC2.error(5000)).headers.message, 'disconnected by administrator');
  await aliceC2.closed(5000);
  const again = await req(b, 'DELETE', `/api/connections/${target.id}`);
  assert.equal(again.status, 404, again.text);
  assert.equal((await req(b, 'DELETE', '/api/connections/nZ-1')).status, 404);
  // the rest of alice's sessions, on every node, from node B
  const r = await req(b, 'POST', '/api/users/alice/disconnect');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { disconnected: 3, partial: false });
  assert.equal((await aliceB.error(5000)).headers.message, 'disconnected by administrator');
  assert.equal((await aliceC.error(5000)).headers.message, 'disconnected by administrator');
  await aliceB.closed(5000);
  await aliceC.closed(5000);
  assert.equal((await aliceA.inbox.closed(5000)).code, 1008);
  assert.equal(aliceA.errors[0].headers.message, 'disconnected by administrator');
  assert.deepEqual(byNode(await connections(c.wsPort, admin.key)), ['bob@nC']);
  await bobC.sendWithReceipt('SUBSCRIBE', { id: 'x', destination: '/topic/x' });
});

let ownRedis = null;
clusterTest('Redis down: a node answers for itself and says the answer is partial', {
  timeout: 40000, broker, ids: ['nA', 'nB'],
  redis: async () => { ownRedis = await RedisServer.start(); return ownRedis; },
}, async ({ nodes }) => {
  const [a, b] = nodes;
  await tcpAs(a, 'alice');
  await tcpAs(b, 'alice');
  assert.equal((await connections(a.wsPort, admin.key)).connections.length, 2);
  await ownRedis.kill('SIGKILL');
  const started = Date.now();
  const list = await connections(a.wsPort, admin.key);
  assert.equal(list.partial, true);
  assert.deepEqual(byNode(list), ['alice@nA']);
  assert.ok(Date.now() - started < 5000);
  const r = await req(b, 'POST', '/api/users/alice/disconnect');
  assert.deepEqual(r.json, { disconnected: 1, partial: true });
  await sleep(10);
});

clusterTest('--threads 2 with Redis: each loop is a node, and every loop answers', {
  timeout: 40000, ids: ['nT'], broker: { ...broker, threads: 2 },
}, async ({ nodes }) => {
  const [node] = nodes;
  // Connections land on a loop by the kernel's hash: open some until both loops (nodes nT and
  // nT.1) hold one.
  const clients = [];
  for (let i = 0; i < 40; i++) {
    clients.push(await tcpAs(node, 'alice'));
    const list = await connections(node.wsPort, admin.key);
    assert.equal(list.partial, false);
    assert.equal(list.connections.length, clients.length);
    if (new Set(list.connections.map((c) => c.node)).size === 2 && clients.length >= 4) break;
  }
  const list = await connections(node.wsPort, admin.key);
  assert.deepEqual([...new Set(list.connections.map((c) => c.node))].sort(), ['nT', 'nT.1']);
  const r = await req(node, 'POST', '/api/users/alice/disconnect');
  assert.deepEqual(r.json, { disconnected: clients.length, partial: false });
  for (const c of clients) await c.closed(5000);
});
