// Redis Sentinel (docs/CLUSTER.md, "Sentinel"): brokers started with --redis-sentinel and
// --redis-master find the master through the sentinels and follow a failover.
//
// One topology for the whole file (lib/sentinel.mjs: a master, a replica, three sentinels on
// loopback ports, quorum 2, down-after 1000 ms), stopped even on failure. The tests run in order
// and the failover test changes the topology: its old master comes back as a replica.
//
// What is asserted:
//   - a node finds the master through the sentinels; a sentinel that is down (listed first) is
//     skipped;
//   - SIGKILL of the master while a publisher runs: topic delivery across nodes resumes within
//     RESUME_BOUND_MS of the kill (the figure is printed: "cluster-sentinel failover {json}").
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test, before, after } from 'node:test';
import { TIME_SCALE, sleep, startBroker } from './lib/broker.mjs';
import { REDIS_SERVER, freePort, linksUp, waitLog } from './lib/cluster.mjs';
import { MASTER_NAME, REDIS_SENTINEL, startSentinelTopology } from './lib/sentinel.mjs';
import { tcpStomp, uniq } from './lib/stomp.mjs';

// Sentinel declares the master down after 1000 ms without an answer, agrees (quorum 2), elects a
// leader and promotes the replica; the nodes hear +switch-master and reconnect at once. Measured
// on this machine: 3-6 s (docs/CLUSTER.md). The bound leaves room for a loaded CI machine.
const RESUME_BOUND_MS = 15000 * TIME_SCALE;

const missing = [REDIS_SERVER, REDIS_SENTINEL].find((f) => !fs.existsSync(f));
const skip = missing ? `${missing} not found (apt install redis-server redis-sentinel)` : false;

let topology = null;
before(async () => { if (!skip) topology = await startSentinelTopology(); });
after(async () => { if (topology) await topology.stop(); });

const report = (name, figures) => console.log(`cluster-sentinel ${name} ${JSON.stringify(figures)}`);

async function until(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

// Brokers joined through the sentinels (extra sentinel addresses listed first), stopped after
// fn (each must exit 0 on SIGTERM); on failure the tail of each broker's log is attached.
async function withNodes(ids, { extraSentinels = [], args = [] }, fn) {
  const nodes = [];
  let error = null;
  try {
    for (const id of ids) {
      const node = await startBroker({
        args: ['--redis-sentinel', topology.addrs(extraSentinels), '--redis-master', MASTER_NAME,
          '--node-id', id, ...args],
      });
      node.nodeId = id;
      nodes.push(node);
    }
    await Promise.all(nodes.map(linksUp));
    await fn(nodes);
  } catch (e) {
    error = e;
  }
  for (const n of nodes) await n.closeClients();
  const exits = await Promise.all(nodes.map((n) => n.stop()));
  exits.forEach((exit, i) => {
    if (!error && (exit.code !== 0 || exit.signal !== null)) {
      error = new Error(`broker ${ids[i]} did not exit 0 on SIGTERM: code ${exit.code}, signal ${exit.signal}`);
    }
  });
  if (!error) return;
  for (const n of nodes) error.message += `\n=== node ${n.nodeId} ===\n${n.logTail(60)}`;
  throw error;
}

// Collects the topic messages "LABEL:SEQ" a client gets on subscription sub, with arrival times.
function collect(client, sub) {
  const got = [];
  const push = client.inbox.push.bind(client.inbox);
  client.inbox.push = (f) => {
    if (f.command === 'MESSAGE' && f.headers.subscription === sub) {
      got.push({ seq: Number(f.text.split(':')[1]), at: Date.now() });
      return;
    }
    push(f);
  };
  return got;
}

test('nodes find the master through the sentinels, skipping one that is down', { skip, timeout: 60000 }, async () => {
  const dead = `127.0.0.1:${await freePort()}`; // nothing listens there
  await withNodes(['nA', 'nB'], { extraSentinels: [dead] }, async ([a, b]) => {
    const masterPort = await topology.masterPort();
    for (const n of [a, b]) {
      assert.match(n.stderr, new RegExp(`sentinel: master ${MASTER_NAME} is at 127\\.0\\.0\\.1:${masterPort}`));
      assert.match(n.stderr, new RegExp(`redis publish link up \\(127\\.0\\.0\\.1:${masterPort}\\)`));
    }
    const topic = `/topic/${uniq('sentinel')}`;
    const sub = await tcpStomp(b, { label: 'sub' });
    b.track(sub);
    await sub.subscribe(topic, 's');
    const pub = await tcpStomp(a, { label: 'pub' });
    a.track(pub);
    // Redis confirms the SUBSCRIBE shortly after the local RECEIPT: publish until one arrives.
    const got = collect(sub, 's');
    let seq = 0;
    await until(() => { pub.send('SEND', { destination: topic }, `P:${seq++}`); return got.length > 0; },
      10000, 'a message across nodes');
  });
});

test('SIGKILL of the master under topic traffic: delivery across nodes resumes within the bound', { skip, timeout: 90000 }, async () => {
  await withNodes(['nA', 'nB'], {}, async ([a, b]) => {
    const topic = `/topic/${uniq('failover')}`;
    const sub = await tcpStomp(b, { label: 'sub' });
    b.track(sub);
    const got = collect(sub, 's');
    await sub.subscribe(topic, 's');
    const pub = await tcpStomp(a, { label: 'pub' });
    a.track(pub);
    const sent = [];
    const timer = setInterval(() => {
      pub.send('SEND', { destination: topic }, `P:${sent.length}`);
      sent.push(Date.now());
    }, 10);
    try {
      await until(() => got.length > 50, 10000, 'traffic across nodes before the kill');
      const oldPort = await topology.masterPort();
      const old = topology.serverOnPort(oldPort);
      const newServer = topology.servers.find((r) => r !== old);
      const killedAt = Date.now();
      await old.kill('SIGKILL');
      const first = await until(() => got.find((m) => sent[m.seq] > killedAt), RESUME_BOUND_MS,
        'a topic message sent after the kill to reach the other node');
      const resumedMs = first.at - killedAt;
      await topology.waitMaster(newServer.port, 10000);
      for (const n of [a, b]) {
        await waitLog(n, new RegExp(`master ${MASTER_NAME} moved from 127\\.0\\.0\\.1:${oldPort} to 127\\.0\\.0\\.1:${newServer.port}`),
          5000, 'the switch in the log');
      }
      // Nothing sent once delivery was back is lost, and nothing comes twice.
      await sleep(500);
      clearInterval(timer);
      const last = sent.length - 1;
      await until(() => got.some((m) => m.seq === last), 5000, 'the last message');
      const seen = new Set(got.map((m) => m.seq));
      const lostAfter = [];
      for (let s = first.seq; s <= last; s++) if (!seen.has(s)) lostAfter.push(s);
      assert.deepEqual(lostAfter, [], 'nothing lost once delivery was back');
      assert.equal(seen.size, got.length, 'no message twice');
      const lost = sent.length - seen.size;
      report('failover', { resumedAfterKillMs: resumedMs, boundMs: RESUME_BOUND_MS, sent: sent.length, lost });
      // The old master comes back: the sentinels make it a replica of the new one.
      await old.spawn();
      await topology.waitReady(newServer.port, 1, 30000);
    } finally {
      clearInterval(timer);
    }
  });
});
