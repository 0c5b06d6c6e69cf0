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
//     RESUME_BOUND_MS of the kill (the figure is printed: "cluster-sentinel failover {json}");
//   - with cluster.min_replicas_ack = 1, no receipted queue message is lost when the master is
//     SIGKILLed while its replica lags behind (stopped, its link cut): 10,000 ids, a publisher
//     that sends again what got no RECEIPT, competing consumers on two other nodes (started
//     after the failover, so they read what the new master kept), every id delivered.
//     STOMPWS_SENTINEL_ACK=0 runs it without WAIT: then it loses messages (the check that the
//     test can fail);
//   - no sentinel answers: the node serves its own clients, /readyz says why, it exits 0;
//   - a sentinel with requirepass is asked with cluster.sentinel_password, skipped with a wrong
//     one;
//   - a server whose ROLE is not master is never used, even when a (stand-in) sentinel names it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { test, before, after } from 'node:test';
import { TIME_SCALE, sleep, startBroker, until, withTimeout } from './lib/broker.mjs';
import {
  REDIS_SERVER, freePort, linksUp, metricsText, parseReply, readyz, resp, waitLog, withBrokers,
} from './lib/cluster.mjs';
import { MASTER_NAME, REDIS_SENTINEL, Sentinel, startSentinelTopology } from './lib/sentinel.mjs';
import { tcpStomp, uniq } from './lib/stomp.mjs';
import { collect, idConsumer, reliablePublisher } from './lib/traffic.mjs';

const MIN_REPLICAS_ACK = Number(process.env.STOMPWS_SENTINEL_ACK ?? 1);

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


// Brokers joined through the sentinels (extra sentinel addresses listed first), stopped after
// fn (each must exit 0 on SIGTERM); on failure the tail of each broker's log is attached.
function withNodes(ids, { extraSentinels = [], sentinels = null, args = [] }, fn) {
  return withBrokers(ids, (id) => startBroker({
    args: ['--redis-sentinel', sentinels ?? topology.addrs(extraSentinels), '--redis-master', MASTER_NAME,
      '--node-id', id, ...args],
  }), linksUp, fn);
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
      for (const n of [a, b]) assert.match(await metricsText(n), /^stompws_cluster_sentinel_failovers_total [1-9]/m);
      report('failover', { resumedAfterKillMs: resumedMs, boundMs: RESUME_BOUND_MS, sent: sent.length, lost });
      // The old master comes back: the sentinels make it a replica of the new one.
      await old.spawn();
      await topology.waitReady(newServer.port, 1, 30000);
    } finally {
      clearInterval(timer);
    }
  });
});

test(`min_replicas_ack=${MIN_REPLICAS_ACK}: SIGKILL of the master while its replica lags loses no receipted queue message (10,000 ids, competing consumers)`, { skip, timeout: 180000 }, async () => {
  const TOTAL = 10000;
  await withNodes(['nA', 'nB', 'nC'], { args: ['--set', `cluster.min_replicas_ack=${MIN_REPLICAS_ACK}`] }, async ([a, b, c]) => {
    const queue = `/queue/${uniq('noloss')}`;
    const got = [];
    const ids = Array.from({ length: TOTAL }, (_, i) => i);
    let reached = null;
    const reachedPromise = new Promise((resolve) => { reached = resolve; });
    const pub = reliablePublisher(a, queue, ids, { onProgress: (n) => { if (n >= 3000) reached(); } });
    await Promise.race([reachedPromise, pub.done]);
    // The replica falls behind: it is stopped (SIGSTOP) and its replication connection cut
    // (what a kernel buffer holds would still reach it), so for 400 ms the master answers
    // writes no replica has; the master dies in that window; the replica wakes up and is
    // promoted without them.
    const oldPort = await topology.masterPort();
    const old = topology.serverOnPort(oldPort);
    const replica = topology.servers.find((r) => r !== old);
    const killedAt = Date.now();
    replica.child.kill('SIGSTOP');
    try {
      await old.command('CLIENT', 'KILL', 'TYPE', 'replica');
      await sleep(400);
      await old.kill('SIGKILL');
    } finally {
      replica.child.kill('SIGCONT');
    }
    const atKill = pub.receipted.size;
    await topology.waitMaster(replica.port, 20000 * TIME_SCALE);
    const failedOverMs = Date.now() - killedAt;
    // The consumers come now: what they get is what the stream kept through the failover (had
    // they run before, they would have taken messages from the old master before it died).
    for (const [n, label] of [[b, 'b1'], [b, 'b2'], [c, 'c1'], [c, 'c2']]) await idConsumer(n, queue, label, got);
    // The old master comes back and becomes a replica again: WAIT can be satisfied again.
    await old.spawn();
    await topology.waitReady(replica.port, 1, 30000);
    await withTimeout(pub.done, 120000 * TIME_SCALE, 'the publisher to get a RECEIPT for every id');
    const delivered = new Set(got);
    await until(() => ids.every((id) => delivered.has(id)) || (Date.now() - killedAt > 150000), 60000 * TIME_SCALE,
      'every receipted id delivered').catch(() => {});
    for (const id of got) delivered.add(id);
    const lost = ids.filter((id) => pub.receipted.has(id) && !delivered.has(id));
    report('no-loss', {
      minReplicasAck: MIN_REPLICAS_ACK, total: TOTAL, receipted: pub.receipted.size, receiptedAtKill: atKill,
      lost: lost.length, deliveries: got.length, duplicates: got.length - delivered.size,
      sends: pub.sends, errors: pub.errors, failedOverMs,
    });
    assert.equal(pub.receipted.size, TOTAL, 'every id receipted');
    // Each ERROR the publisher got was a WAIT with too few replicas, and /metrics counts it.
    const metricsA = await metricsText(a);
    const metric = (name) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(metricsA)?.[1]);
    assert.ok(metric('stompws_cluster_queue_unreplicated_total') >= pub.errors, 'unreplicated SENDs counted');
    if (pub.errors > 0) assert.ok(metric('stompws_cluster_queue_wait_timeouts_total') > 0, 'WAIT timeouts counted');
    assert.deepEqual(lost.slice(0, 20), [], `no receipted id lost (${lost.length} lost)`);
  });
});

test('no sentinel answers: the node serves its own clients and /readyz says why', { skip, timeout: 30000 }, async () => {
  const node = await startBroker({
    args: ['--redis-sentinel', `127.0.0.1:${await freePort()},127.0.0.1:${await freePort()}`,
      '--redis-master', MASTER_NAME, '--set', 'cluster.sentinel_timeout_ms=200'],
  });
  try {
    await sleep(500);
    const r = await readyz(node);
    assert.equal(r.status, 503);
    assert.match(r.body, /no sentinel has told where the Redis master is/);
    assert.match(await metricsText(node), /^stompws_cluster_sentinel_skipped_total [1-9]/m);
    const c = node.track(await tcpStomp(node, { label: 'local' }));
    await c.subscribe('/topic/local', 's');
    c.send('SEND', { destination: '/topic/local' }, 'here');
    assert.equal((await c.message('s')).text, 'here');
  } finally {
    await node.closeClients();
    const exit = await node.stop();
    assert.deepEqual([exit.code, exit.signal], [0, null], node.logTail(40));
  }
});

test('a sentinel with a password: asked with cluster.sentinel_password, skipped with a wrong one', { skip, timeout: 60000 }, async () => {
  const guarded = new Sentinel(await freePort(), await topology.masterPort(), { password: 's3cret' });
  let wrong = null;
  try {
    await guarded.spawn();
    const addr = `127.0.0.1:${guarded.port}`;
    await withNodes(['nP'], { sentinels: addr, args: ['--set', 'cluster.sentinel_password=s3cret'] }, async () => {});
    wrong = await startBroker({
      args: ['--redis-sentinel', addr, '--redis-master', MASTER_NAME, '--set', 'cluster.sentinel_password=wrong',
        '--set', 'cluster.sentinel_timeout_ms=200'],
    });
    await sleep(500);
    const r = await readyz(wrong);
    assert.equal(r.status, 503);
    assert.match(r.body, /no sentinel has told where the Redis master is/);
  } finally {
    if (wrong) {
      await wrong.closeClients();
      const exit = await wrong.stop();
      assert.deepEqual([exit.code, exit.signal], [0, null], wrong.logTail(40));
    }
    await guarded.stop();
  }
});

// A stand-in sentinel that names whatever address it is told (a real sentinel would not name a
// replica): SENTINEL get-master-addr-by-name answers [host, port] of answer.port, SUBSCRIBE is
// confirmed and then silent, PING and AUTH say OK.
async function fakeSentinel(answer) {
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const r = parseReply(buf);
        if (!r) return;
        buf = buf.subarray(r.end);
        const [cmd] = r.value.map(String);
        if (cmd.toUpperCase() === 'SENTINEL') sock.write(resp(['127.0.0.1', String(answer.port)]));
        else if (cmd.toUpperCase() === 'SUBSCRIBE') sock.write(Buffer.from('*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n'));
        else if (cmd.toUpperCase() === 'PING') sock.write('+PONG\r\n');
        else sock.write('+OK\r\n');
      }
    });
    sock.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, close: () => new Promise((resolve) => server.close(resolve)) };
}

test('a server whose ROLE is not master is not used, even when a sentinel names it', { skip, timeout: 60000 }, async () => {
  const masterPort = await topology.masterPort();
  const replica = topology.servers.find((r) => r.port !== masterPort);
  const answer = { port: replica.port };
  const fake = await fakeSentinel(answer);
  let node = null;
  try {
    node = await startBroker({
      args: ['--threads', '1', '--redis-sentinel', `127.0.0.1:${fake.port}`, '--redis-master', MASTER_NAME,
        '--set', 'cluster.sentinel_timeout_ms=300'],
    });
    await waitLog(node, /not the master \(ROLE says slave\)/, 10000, 'the replica refused');
    const r = await readyz(node);
    assert.equal(r.status, 503);
    assert.doesNotMatch(node.stderr, /redis (publish|queue) link up/);
    // The sentinel names the master now: the next question moves every link there.
    answer.port = masterPort;
    await linksUp(node);
    assert.match(node.stderr, new RegExp(`redis publish link up \\(127\\.0\\.0\\.1:${masterPort}\\)`));
  } finally {
    if (node) {
      await node.closeClients();
      const exit = await node.stop();
      assert.deepEqual([exit.code, exit.signal], [0, null], node.logTail(40));
    }
    await fake.close();
  }
});
