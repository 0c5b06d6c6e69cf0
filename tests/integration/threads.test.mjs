// server.threads = 2: one event loop per thread, the listening ports shared (SO_REUSEPORT). Every
// test checks that clients really sit on both loops: a session id is sess-<connection id>-...,
// and a connection id modulo the number of loops is its loop (broker/conn.c), which the
// per-loop gauge stompws_loop_connections{loop="i"} confirms from the outside.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { brokerTest, runBroker, sleep, STOMPWS_BIN, withTimeout } from './lib/broker.mjs';
import { clusterTest, metricsText, useSharedRedis, waitLog } from './lib/cluster.mjs';
import { sample, waitFor } from './lib/proc.mjs';
import { tcpClient, tcpStomp, uniq, wsStomp } from './lib/stomp.mjs';

const LOOPS = 2;
const threads = (extra = {}) => ({ ...extra, args: ['--threads', String(LOOPS), ...(extra.args ?? [])] });

const loopOf = (client) => Number(/^sess-(\d+)-/.exec(client.connected.headers.session)[1]) % LOOPS;

// Opens clients (alternating ws and tcp unless told) until each loop has at least perLoop of them,
// within a bound; returns them grouped by loop.
async function clientsOnLoops(broker, perLoop, { kinds = ['ws', 'tcp'], label = 'c' } = {}) {
  const byLoop = Array.from({ length: LOOPS }, () => []);
  for (let i = 0; byLoop.some((l) => l.length < perLoop); i++) {
    assert.ok(i < perLoop * LOOPS * 20, `the kernel put ${byLoop.map((l) => l.length)} connections on the loops`);
    const kind = kinds[i % kinds.length];
    const c = kind === 'ws' ? await wsStomp(broker, { label: `${label}${i}` }) : await tcpStomp(broker, { label: `${label}${i}` });
    byLoop[loopOf(c)].push(c);
  }
  return byLoop;
}

const loopGauges = (text) => Array.from({ length: LOOPS }, (_, i) => sample(text, `stompws_loop_connections{loop="${i}"}`, NaN));
const connections = (text) => ['ws', 'wss', 'tcp', 'stomp-tls']
  .reduce((n, t) => n + sample(text, `stompws_connections{transport="${t}"}`, 0), 0);

// Other loops publish their figures every 250 ms: wait for them to agree with what was opened.
async function waitConnections(broker, n) {
  let text = '';
  await waitFor(`/metrics to show ${n} connections`, async () => {
    text = await metricsText(broker);
    return connections(text) === n;
  }, 3000);
  return text;
}

// ---- the default: one loop per CPU this process may use ----

// The count `--print-config` shows for "auto" (`; auto: N here, ...`) under an optional taskset.
async function autoLoops(cpuList) {
  const args = ['--print-config'];
  const r = cpuList === undefined ? await runBroker(args)
    : { stdout: execFileSync('taskset', ['-c', cpuList, STOMPWS_BIN, ...args], { encoding: 'utf8' }) };
  assert.match(r.stdout, /^threads = auto$/m, 'threads = auto is the default');
  return Number(/^; auto: (\d+) here, one event loop per CPU this process may use$/m.exec(r.stdout)?.[1]);
}

test('threads: the default is auto, one loop per CPU the affinity mask allows (taskset)', async () => {
  assert.equal(await autoLoops('0'), 1, 'pinned to one CPU: one loop');
  const all = await autoLoops();
  assert.ok(all >= 1 && all <= os.cpus().length, `auto: ${all} loops for ${os.cpus().length} CPUs`);
  if (os.cpus().length >= 2) assert.ok(await autoLoops('0,1') <= 2, 'two CPUs allowed: at most two loops');
});

brokerTest('threads: a broker started without --threads runs the loops --print-config shows', { threads: null }, async (broker) => {
  const expected = await autoLoops();
  await waitLog(broker, expected === 1 ? /stompws \S+ ready\n/ : new RegExp(`ready \\(${expected} event loops\\)`), 5000);
  // Every loop has a gauge of its own on /metrics (loops publish their figures every 250 ms).
  await waitFor(`/metrics to show ${expected} loops`, async () => {
    const text = await metricsText(broker);
    const shown = text.match(/^stompws_loop_connections\{loop="\d+"\}/gm) ?? [];
    return expected === 1 ? !/stompws_loop_connections\{loop="1"\}/.test(text) : shown.length === expected;
  }, 3000);
});

// ---- topics ----

brokerTest('threads: topic fan-out from one publisher to 100 subscribers on both loops, in order', threads({ timeout: 60000 }), async (broker) => {
  const subs = [];
  for (let i = 0; i < 100; i++) {
    const c = i % 2 === 0 ? await wsStomp(broker, { label: `s${i}` }) : await tcpStomp(broker, { label: `s${i}` });
    await c.subscribe('/topic/fan', 'f');
    subs.push(c);
  }
  const perLoop = [0, 0];
  for (const c of subs) perLoop[loopOf(c)]++;
  assert.ok(perLoop.every((n) => n > 0), `subscribers on every loop: ${perLoop}`);
  const pub = await tcpStomp(broker, { label: 'pub' });
  const text = await waitConnections(broker, 101);
  const gauges = loopGauges(text);
  assert.equal(gauges.reduce((a, b) => a + b, 0), 101, `per-loop gauges ${gauges}`);
  assert.ok(gauges.every((n) => n > 0), `per-loop gauges ${gauges}`);

  const N = 50;
  for (let i = 0; i < N; i++) pub.send('SEND', { destination: '/topic/fan' }, `m${i}`);
  await pub.sendWithReceipt('SEND', { destination: '/topic/other' }, 'flush');
  for (const c of subs) {
    const got = await c.messages(N, 'f', 10000);
    assert.deepEqual(got.map((m) => m.text), Array.from({ length: N }, (_, i) => `m${i}`), `${c.inbox.label} in order`);
    assert.equal(new Set(got.map((m) => m.headers['message-id'])).size, N);
    assert.equal(await c.inbox.quiet(0, 'MESSAGE'), null, `${c.inbox.label}: no duplicate`);
  }
  const after = await metricsText(broker);
  assert.equal(sample(after, 'stompws_messages_dropped_total{reason="loop_inbox"}'), 0);
  await waitFor('messages_out to count every delivery of every loop', async () =>
    sample(await metricsText(broker), 'stompws_messages_out_total') === 100 * N, 3000);
});

brokerTest('threads: wildcard subscriptions receive messages published on either loop once', threads(), async (broker) => {
  const byLoop = await clientsOnLoops(broker, 2);
  const subs = byLoop.flatMap((l) => l.slice(0, 2));
  for (const c of subs) {
    await c.subscribe('/topic/w.*', 'star');
    await c.subscribe('/topic/w.#', 'hash');
    await c.subscribe('/topic/w.x', 'exact');
  }
  for (const [loop, l] of byLoop.entries()) {
    await l[0].sendWithReceipt('SEND', { destination: '/topic/w.x' }, `from-${loop}`);
  }
  for (const c of subs) {
    for (const id of ['star', 'hash', 'exact']) {
      const got = await c.messages(LOOPS, id);
      assert.deepEqual(got.map((m) => m.text).sort(), ['from-0', 'from-1'], `${c.inbox.label} ${id}`);
    }
    assert.equal(await c.inbox.quiet(200, 'MESSAGE'), null, `${c.inbox.label}: one copy per subscription`);
  }
});

// ---- queues ----

brokerTest('threads: 2,000 queue messages over consumers on both loops: none lost, none twice, all acked', threads({ timeout: 60000 }), async (broker) => {
  const byLoop = await clientsOnLoops(broker, 2, { label: 'q' });
  const consumers = byLoop.flatMap((l) => l.slice(0, 2));
  const seen = new Map();
  const got = consumers.map(() => 0);
  for (const [i, c] of consumers.entries()) {
    await c.subscribe('/queue/work', 'w', { ack: 'client-individual', 'prefetch-count': '20' });
    c.inbox.push = (f) => { // ack as they come, from the frame handler
      if (f.command !== 'MESSAGE') { c.inbox.items.push(f); c.inbox.wake(); return; }
      seen.set(f.text, (seen.get(f.text) ?? 0) + 1);
      got[i]++;
      c.send('ACK', { id: f.headers.ack });
    };
  }
  const pub = await tcpStomp(broker, { label: 'pub' });
  const N = 2000;
  for (let i = 0; i < N; i++) pub.send('SEND', { destination: '/queue/work' }, `j${i}`);
  await pub.sendWithReceipt('SEND', { destination: '/queue/flush' }, 'x');
  await waitFor('every message delivered', () => seen.size === N, 20000);
  await sleep(300);
  assert.equal([...seen.values()].filter((n) => n !== 1).length, 0, 'no message delivered twice');
  const perLoop = [0, 0];
  consumers.forEach((c, i) => { perLoop[loopOf(c)] += got[i]; });
  assert.ok(perLoop.every((n) => n > 0), `consumers of both loops took messages: ${perLoop}`);
  await waitFor('nothing unacked and nothing waiting', async () => {
    const text = await metricsText(broker);
    return sample(text, 'stompws_unacked_messages') === 0 && sample(text, 'stompws_queue_depth') === 1;
  }, 3000);
});

brokerTest('threads: a NACKed queue message goes to the consumer on the other loop', threads(), async (broker) => {
  const byLoop = await clientsOnLoops(broker, 1, { kinds: ['tcp'] });
  const [a, b] = [byLoop[0][0], byLoop[1][0]];
  for (const c of [a, b]) await c.subscribe('/queue/nack', 'n', { ack: 'client-individual' });
  const pub = await wsStomp(broker, { label: 'pub' });
  for (let i = 0; i < 10; i++) {
    await pub.sendWithReceipt('SEND', { destination: '/queue/nack' }, `n${i}`);
    // Whoever got it (looked at without taking: a pending take would swallow the redelivery).
    await waitFor('the message to reach a consumer', () => [a, b].some((c) => c.inbox.items.length > 0), 3000);
    const first = { c: a.inbox.items.length > 0 ? a : b };
    first.m = await first.c.message('n');
    const other = first.c === a ? b : a;
    assert.equal(first.m.headers.redelivered, undefined);
    first.c.send('NACK', { id: first.m.headers.ack });
    const again = await other.message('n', 3000);
    assert.equal(again.text, `n${i}`);
    assert.equal(again.headers.redelivered, 'true');
    assert.equal(again.headers['message-id'], first.m.headers['message-id']);
    await other.sendWithReceipt('ACK', { id: again.headers.ack });
  }
  assert.equal(await a.inbox.quiet(200, 'MESSAGE'), null);
  assert.equal(await b.inbox.quiet(0, 'MESSAGE'), null);
});

brokerTest('threads: a queue backlog sent before any consumer reaches a consumer on any loop', threads(), async (broker) => {
  const byLoop = await clientsOnLoops(broker, 1, { kinds: ['tcp'] });
  const [pub, consumer] = [byLoop[0][0], byLoop[1][0]];
  for (let i = 0; i < 50; i++) await pub.sendWithReceipt('SEND', { destination: '/queue/backlog' }, `b${i}`);
  assert.equal(sample(await metricsText(broker), 'stompws_queue_depth'), 50);
  await consumer.subscribe('/queue/backlog', 'b');
  const got = await consumer.messages(50, 'b');
  assert.deepEqual(got.map((m) => m.text), Array.from({ length: 50 }, (_, i) => `b${i}`));
});

brokerTest('threads: overflow = block pauses a publisher on one loop until a consumer on the other drains the queue',
  threads({ set: { 'queue.max_messages': 10, 'queue.overflow': 'block' } }), async (broker) => {
    const byLoop = await clientsOnLoops(broker, 1, { kinds: ['tcp'] });
    const [pub, consumer] = [byLoop[0][0], byLoop[1][0]];
    const N = 40;
    for (let i = 0; i < N; i++) pub.send('SEND', { destination: '/queue/full', receipt: `r${i}` }, `p${i}`);
    await waitFor('the publisher to be paused', async () =>
      sample(await metricsText(broker), 'stompws_publishers_paused') === 1, 3000);
    const depth = sample(await metricsText(broker), 'stompws_queue_depth');
    assert.ok(depth >= 10 && depth < N, `queue held at its limit: ${depth}`);
    assert.equal(await pub.inbox.quiet(300, (f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === `r${N - 1}`), null,
      'the last SEND is not read while the queue is full');
    await consumer.subscribe('/queue/full', 'f');
    const got = await consumer.messages(N, 'f', 10000);
    assert.deepEqual(got.map((m) => m.text), Array.from({ length: N }, (_, i) => `p${i}`));
    await pub.inbox.take((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === `r${N - 1}`, 5000);
    await waitFor('the pause to end in the figures', async () =>
      sample(await metricsText(broker), 'stompws_publishers_paused') === 0, 3000);
  });

brokerTest('threads: overflow = reject refuses a SEND past the limit whichever loop holds the queue',
  threads({ set: { 'queue.max_messages': 5, 'queue.overflow': 'reject' } }), async (broker) => {
    const pub = await tcpStomp(broker, { label: 'pub' });
    for (let i = 0; i < 5; i++) await pub.sendWithReceipt('SEND', { destination: '/queue/rej' }, `x${i}`);
    pub.send('SEND', { destination: '/queue/rej', receipt: 'over' }, 'over');
    const err = await pub.error();
    assert.match(err.headers.message, /queue \/queue\/rej is full \(queue.max_messages = 5\)/);
  });

brokerTest('threads: request/reply through /temp-queue/ with requester and responder on different loops', threads(), async (broker) => {
  const byLoop = await clientsOnLoops(broker, 2, { kinds: ['tcp', 'ws'] });
  for (const [requester, responder] of [[byLoop[0][0], byLoop[1][0]], [byLoop[1][1], byLoop[0][1]]]) {
    const service = uniq('/queue/svc');
    await responder.subscribe(service, 'svc');
    await requester.subscribe('/temp-queue/answers', 'ans');
    await requester.sendWithReceipt('SEND', { destination: service, 'reply-to': '/temp-queue/answers' }, 'question');
    const req = await responder.message('svc');
    assert.match(req.headers['reply-to'], /^\/reply-queue\/sess-/);
    await responder.sendWithReceipt('SEND', { destination: req.headers['reply-to'] }, `answer from ${loopOf(responder)}`);
    const answer = await requester.message('ans');
    assert.equal(answer.text, `answer from ${loopOf(responder)}`);
    await requester.sendWithReceipt('UNSUBSCRIBE', { id: 'ans' });
  }
  // The requester gone, an answer to its queue is dropped by the loop that owned it, once.
  const requester = byLoop[0][0];
  const responder = byLoop[1][0];
  const service = uniq('/queue/svc');
  await responder.subscribe(service, 'svc2');
  await requester.sendWithReceipt('SEND', { destination: service, 'reply-to': '/temp-queue/late' }, 'q');
  const req = await responder.message('svc2');
  // The reply queue was made on the requester's loop a moment ago; a scrape that another loop
  // answers shows that loop's figures as of its last 250 ms tick. Two ticks later every loop's
  // figures count it, so the drop below is measured from a count that includes it.
  await sleep(600);
  const queuesBefore = sample(await metricsText(broker), 'stompws_queues');
  await requester.disconnect();
  // Its reply queue goes when the connection is freed, a moment after the DISCONNECT's RECEIPT.
  await waitFor('the requester\'s reply queue to go', async () =>
    sample(await metricsText(broker), 'stompws_queues') < queuesBefore, 3000);
  await responder.sendWithReceipt('SEND', { destination: req.headers['reply-to'] }, 'too late');
  await waitFor('the drop to be counted once', async () =>
    sample(await metricsText(broker), 'stompws_messages_dropped_total{reason="reply_queue_gone"}') === 1, 3000);
});

// ---- process-wide ----

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-threads-'));
const users = path.join(dir, 'users');
execFileSync(STOMPWS_BIN, ['passwd', users, 'alice'], { input: 'alice-pw\n' });

brokerTest('threads: SIGHUP reloads the users file on every loop', threads({ args: ['--users', users] }), async (broker) => {
  const login = async (user, pass) => {
    const c = broker.track(await tcpClient(broker.tcpPort, user));
    c.send('CONNECT', { 'accept-version': '1.2', host: '127.0.0.1', login: user, passcode: pass });
    const f = await c.inbox.take((x) => x.command === 'CONNECTED' || x.command === 'ERROR', 5000, 'CONNECTED or ERROR');
    if (f.command === 'CONNECTED') c.connected = f;
    return { c, ok: f.command === 'CONNECTED' };
  };
  assert.equal((await login('bob', 'bob-pw')).ok, false);
  execFileSync(STOMPWS_BIN, ['passwd', users, 'bob'], { input: 'bob-pw\n' });
  broker.child.kill('SIGHUP');
  await waitFor('every loop to reload', () => (broker.stderr.match(/auth files reloaded/g) ?? []).length === LOOPS, 3000);
  const loops = new Set();
  for (let i = 0; i < 40 && loops.size < LOOPS; i++) {
    const { c, ok } = await login('bob', 'bob-pw');
    assert.ok(ok, 'bob logs in after the reload');
    loops.add(loopOf(c));
    c.destroy();
  }
  assert.equal(loops.size, LOOPS, 'bob logged in on every loop');
  assert.equal((broker.stderr.match(/log file .* reopened/g) ?? []).length, 0, 'no log file: nothing reopened');
});

brokerTest('threads: SIGTERM tells every client on every loop and exits 0 within the timeout',
  threads({ set: { 'server.shutdown_timeout_ms': 3000 } }), async (broker) => {
    const byLoop = await clientsOnLoops(broker, 3);
    const all = byLoop.flat();
    const started = Date.now();
    broker.child.kill('SIGTERM');
    for (const c of all) {
      const err = await c.error(5000);
      assert.equal(err.headers.message, 'broker shutting down');
      await c.closed(5000);
    }
    const exit = await withTimeout(broker.exited, 5000, 'the broker to exit');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(Date.now() - started < 3000, `exited in ${Date.now() - started} ms`);
  });

// ---- with Redis: each loop is a cluster node ----

useSharedRedis();

const linksOfAllLoops = (node) => Promise.all(['publish', 'subscribe', 'queue', 'queue-reader'].map((link) =>
  waitFor(`${node.nodeId}: the ${link} links of every loop`,
    () => (node.stderr.match(new RegExp(`redis ${link} link up`, 'g')) ?? []).length >= LOOPS, 10000)));

clusterTest('threads: 2 processes x 2 loops behave as 4 nodes: topics to every subscriber once, queue messages to one consumer',
  { ids: ['tA', 'tB'], broker: threads(), waitLinks: false, timeout: 60000 }, async ({ nodes }) => {
    await Promise.all(nodes.map(linksOfAllLoops));
    await Promise.all(nodes.map((n) => waitLog(n, /cluster node tA\.1|cluster node tB\.1/, 5000, 'the id of loop 1')));
    const subs = [];
    const consumers = [];
    for (const node of nodes) {
      const byLoop = await clientsOnLoops(node, 2, { label: node.nodeId });
      for (const l of byLoop) {
        await l[0].subscribe('/topic/cl', 't');
        subs.push(l[0]);
        await l[1].subscribe('/queue/cl', 'q', { ack: 'client-individual' });
        consumers.push(l[1]);
      }
    }
    // Interest reaches Redis asynchronously: probe until every subscriber hears.
    const pub = nodes[0].clients.values().next().value;
    await waitFor('every subscriber to hear a probe', async () => {
      pub.send('SEND', { destination: '/topic/cl' }, 'probe');
      await sleep(100);
      return subs.every((c) => c.inbox.items.some((f) => f.text === 'probe'));
    }, 10000);
    await sleep(300);
    for (const c of subs) c.inbox.items = [];
    for (let i = 0; i < 20; i++) pub.send('SEND', { destination: '/topic/cl' }, `t${i}`);
    for (const c of subs) {
      const got = await c.messages(20, 't', 10000);
      assert.deepEqual(got.map((m) => m.text), Array.from({ length: 20 }, (_, i) => `t${i}`), c.inbox.label);
      assert.equal(await c.inbox.quiet(100, 'MESSAGE'), null, `${c.inbox.label}: once`);
    }
    const seen = new Map();
    for (const c of consumers) {
      c.inbox.push = (f) => {
        if (f.command !== 'MESSAGE') { c.inbox.items.push(f); c.inbox.wake(); return; }
        seen.set(f.text, (seen.get(f.text) ?? 0) + 1);
        c.send('ACK', { id: f.headers.ack });
      };
    }
    const qpub = await tcpStomp(nodes[1], { label: 'qpub' });
    for (let i = 0; i < 200; i++) qpub.send('SEND', { destination: '/queue/cl' }, `q${i}`);
    await qpub.sendWithReceipt('SEND', { destination: '/queue/cl-flush' }, 'x');
    await waitFor('every queue message consumed', () => seen.size === 200, 15000);
    await sleep(500);
    assert.equal([...seen.values()].filter((n) => n !== 1).length, 0, 'each queue message to one consumer');
  });
