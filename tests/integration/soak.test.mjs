// Soak: connections churn (connect, subscribe, receive, disconnect) round after round while a
// steady publisher feeds a probe subscriber. After every round the broker must be back where it
// started: client connections and subscriptions in /metrics, open fds in /proc/PID/fd, and
// resident memory (VmRSS) within a tolerance of the level the first round settled at; the probe's
// latency stays bounded throughout. docs/RELIABILITY.md ("Soak") has the results.
//
//   SOAK_SECONDS  run rounds until this many seconds have passed (default 60; at least 4 rounds)
//   SOAK_CLIENTS  connections open at once in each round (default 2500: half TCP, half WebSocket)
//   IT_DEBUG=1    print each round's figures as they come
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { brokerTest, sleep, withTimeout } from './lib/broker.mjs';
import { metricsText } from './lib/cluster.mjs';
import { tcpClient, tcpStomp, wsOpen } from './lib/stomp.mjs';
import { fdCount, rssBytes, rssComparable, sample } from './lib/proc.mjs';

const SOAK_SECONDS = Number(process.env.SOAK_SECONDS) || 60;
const CLIENTS = Number(process.env.SOAK_CLIENTS) || 2500;
const MIN_ROUNDS = 4;
const OPEN_AT_ONCE = 250; // connection attempts in flight at a time
const MESSAGES_PER_ROUND = 3; // each churning client must receive all of them
const PROBE_EVERY_MS = 20;
const MiB = 1024 * 1024;

// Memory the broker may hold after a round over what it held after the first one. The first
// round leaves behind what is kept for reuse, not leaked: malloc's free lists and arenas sized for
// CLIENTS connections and their output buffers, and libevent's fd-indexed tables grown to the
// highest fd. What later rounds add on top is a leak. 4 MiB: a leak of 1 KiB per connection
// (2.4 MiB a round) crosses it by round 3, while in the runs recorded in docs/RELIABILITY.md later
// rounds stayed within 0.3 MiB of the first but for one reading 2.6 MiB over (back the next round:
// memory malloc had not handed back yet).
const RSS_TOLERANCE = 4 * MiB;
// Probe latency bounds: a message normally takes about a millisecond, and the worst seen was
// under 500 ms (while a round's message went out to its 2,500 subscribers; docs/RELIABILITY.md).
// The probe has an event loop of its own but shares two cores with the broker and the churning
// clients (and, in CI, whatever else runs): the bounds leave room for that; a broker that stalls
// for seconds behind a round's connects and disconnects misses them.
const PROBE_P99_MS = 1000;
const PROBE_MAX_MS = 2500;

// The value of one series ("name" or "name{labels}") in Prometheus text; 0 when absent.
async function gauges(broker) {
  const text = await metricsText(broker);
  return {
    connections: sample(text, 'stompws_connections{transport="ws"}', 0) + sample(text, 'stompws_connections{transport="tcp"}', 0),
    subscriptions: sample(text, 'stompws_subscriptions', 0),
    queues: sample(text, 'stompws_queues', 0),
    // The broker's own view of stalls: its 250 ms ticks that ran more than 100 ms late.
    lateTicks: sample(text, 'stompws_event_loop_tick_lag_seconds_count', 0)
      - sample(text, 'stompws_event_loop_tick_lag_seconds_bucket{le="0.1"}', 0),
  };
}

// Polls until connections and subscriptions are back at base and the fd count is at most
// base.fds; returns the ms it took and the late-tick count then. Bounded by timeout.
async function settle(broker, base, timeout) {
  const start = Date.now();
  for (;;) {
    const g = await gauges(broker);
    const fds = fdCount(broker);
    if (g.connections === base.connections && g.subscriptions === base.subscriptions && fds <= base.fds) {
      return { ms: Date.now() - start, lateTicks: g.lateTicks };
    }
    if (Date.now() - start > timeout) {
      throw new Error(`not back to the baseline after ${timeout} ms: ${JSON.stringify({ ...g, fds })}, `
        + `baseline ${JSON.stringify(base)}`);
    }
    await sleep(100);
  }
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

// The probe runs on a worker thread with its own event loop, so the churning clients' work on
// the main thread does not show up as broker latency: a publisher and a subscriber on one topic
// over TCP, each message carrying its send time, latency taken at arrival.
const PROBE_WORKER = `
import { parentPort, workerData } from 'node:worker_threads';
const { tcpClient } = await import(workerData.stompLib);
const sub = await tcpClient(workerData.port, 'probe-sub');
await sub.connect();
await sub.subscribe('/topic/soak.probe', 'p');
const pub = await tcpClient(workerData.port, 'probe-pub');
await pub.connect();
let latencies = [];
let sent = 0;
let received = 0;
let disorder = 0;
sub.inbox.push = (f) => {
  if (f.command !== 'MESSAGE') return;
  const [n, at] = f.text.split(':').map(Number);
  if (n !== received) disorder++;
  received++;
  latencies.push(Date.now() - at);
};
const timer = setInterval(() => pub.send('SEND', { destination: '/topic/soak.probe' }, sent++ + ':' + Date.now()),
  workerData.everyMs);
parentPort.on('message', async (m) => {
  if (m === 'take') {
    parentPort.postMessage({ latencies });
    latencies = [];
  } else if (m === 'stop') {
    clearInterval(timer);
    await pub.sendWithReceipt('SEND', { destination: '/topic/soak.fence' }, 'fence');
    const deadline = Date.now() + 5000;
    while (received < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    sub.destroy();
    pub.destroy();
    parentPort.postMessage({ sent, received, disorder });
  }
});
parentPort.postMessage({ ready: true });
`;

async function startProbe(broker) {
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(PROBE_WORKER)}`), {
    workerData: { port: broker.tcpPort, everyMs: PROBE_EVERY_MS, stompLib: new URL('./lib/stomp.mjs', import.meta.url).href },
  });
  const next = () => withTimeout(new Promise((resolve, reject) => {
    const onMessage = (m) => { worker.off('error', onError); resolve(m); };
    const onError = (e) => { worker.off('message', onMessage); reject(e); };
    worker.once('message', onMessage);
    worker.once('error', onError);
  }), 10000, 'the probe worker');
  worker.unref(); // a failed test must not be kept alive by it
  broker.track({ close: () => worker.terminate() });
  await next(); // ready
  // A publisher for the churning clients' messages; on the main thread, like them.
  const pub = await tcpStomp(broker, { label: 'round-pub' });
  return {
    pub,
    async take() {
      worker.postMessage('take');
      return (await next()).latencies.sort((a, b) => a - b);
    },
    async stop() {
      worker.postMessage('stop');
      const result = await next();
      await worker.terminate();
      return result;
    },
  };
}

// One churning client: connect, subscribe to the round's topic (with a receipt), wait for the
// round's messages. Even ones use plain TCP, odd ones WebSocket (the `ws` package, as stompjs).
async function openClient(broker, i, topic) {
  let c;
  if (i % 2 === 0) {
    c = await tcpClient(broker.tcpPort, `churn-${i}`, 10000);
  } else {
    c = await wsOpen(broker, { label: `churn-${i}`, timeout: 10000 });
    broker.clients.delete(c); // closed by the round itself, not kept for the teardown
  }
  try {
    await c.connect({ 'accept-version': '1.2', host: '127.0.0.1' }, { timeout: 10000 });
    await c.subscribe(topic, 's');
  } catch (e) {
    c.destroy();
    throw e;
  }
  return c;
}

// Ends a client in one of three ways, taken in turn on each transport: DISCONNECT with a
// receipt; a plain close (TCP FIN; WebSocket close 1000); a reset (RST, no goodbye at all).
async function closeClient(c, i) {
  const socket = c.socket ?? c.ws._socket;
  switch (Math.floor(i / 2) % 3) {
    case 0:
      await c.disconnect(10000);
      break;
    case 1:
      if (c.ws) c.ws.close(1000);
      else socket.end();
      break;
    default:
      socket.resetAndDestroy();
  }
}

async function inBatches(items, size, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += size) {
    out.push(...await Promise.all(items.slice(i, i + size).map(fn)));
  }
  return out;
}

async function round(broker, probe, n) {
  const topic = `/topic/soak.round${n}`;
  const started = Date.now();
  const ids = Array.from({ length: CLIENTS }, (_, i) => i);
  const clients = [];
  try {
    await inBatches(ids, OPEN_AT_ONCE, async (i) => { clients[i] = await openClient(broker, i, topic); });
    const openMs = Date.now() - started;
    const peak = { rss: rssBytes(broker), fds: fdCount(broker) };
    for (let m = 0; m < MESSAGES_PER_ROUND; m++) {
      await probe.pub.sendWithReceipt('SEND', { destination: topic }, `round${n}-${m}`, 10000);
    }
    await inBatches(clients, OPEN_AT_ONCE, async (c) => {
      const got = await c.messages(MESSAGES_PER_ROUND, 's', 20000);
      got.forEach((f, m) => assert.equal(f.text, `round${n}-${m}`));
    });
    await inBatches(ids, OPEN_AT_ONCE, (i) => closeClient(clients[i], i));
    return { openMs, roundMs: Date.now() - started, peak };
  } finally {
    for (const c of clients) c?.destroy();
  }
}

brokerTest(`soak: ${CLIENTS} connections a round churn for ${SOAK_SECONDS} s while a probe measures `
  + 'latency; connections, subscriptions, fds and RSS return to the baseline after every round', {
  // Every churning client comes from 127.0.0.1, and a round opens CLIENTS of them in a second or
  // two: the per-address cap and the connection-rate bucket would refuse most (limits.test.mjs
  // covers those), so they are off here.
  set: { 'limits.max_connections_per_address': 0, 'limits.connection_rate': 0 },
  logLevel: 'info',
  timeout: (SOAK_SECONDS + 180) * 1000,
}, async (broker, t) => {
  const probe = await startProbe(broker);
  await sleep(500);
  const base = { ...(await gauges(broker)), fds: fdCount(broker) };
  const rssIdle = rssBytes(broker);
  const deadline = Date.now() + SOAK_SECONDS * 1000;
  const rounds = [];
  let lateBefore = base.lateTicks;
  for (let n = 1; n <= MIN_ROUNDS || Date.now() < deadline; n++) {
    const r = await round(broker, probe, n);
    const { ms: settleMs, lateTicks } = await settle(broker, base, 20000);
    await sleep(200); // the reaped connections' memory is back with malloc a loop turn later
    const lat = await probe.take();
    const rec = {
      n,
      ...r,
      settleMs,
      rss: rssBytes(broker),
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      max: lat.at(-1),
      lateTicks: lateTicks - lateBefore,
    };
    lateBefore = lateTicks;
    rounds.push(rec);
    const msg = `round ${n}: ${CLIENTS} opened in ${r.openMs} ms, round ${r.roundMs} ms, settled ${settleMs} ms; `
      + `peak fds ${r.peak.fds}, RSS ${(r.peak.rss / MiB).toFixed(1)} MiB; after: RSS ${(rec.rss / MiB).toFixed(1)} MiB; `
      + `probe latency p50 ${rec.p50} ms, p99 ${rec.p99} ms, max ${rec.max} ms (${lat.length} messages); `
      + `broker loop ticks over 100 ms late: ${rec.lateTicks}`;
    t.diagnostic(msg);
    if (process.env.IT_DEBUG) console.error(msg);
    assert.ok(rec.p99 <= PROBE_P99_MS, `round ${n}: probe p99 ${rec.p99} ms over ${PROBE_P99_MS} ms`);
    assert.ok(rec.max <= PROBE_MAX_MS, `round ${n}: probe max ${rec.max} ms over ${PROBE_MAX_MS} ms`);
  }
  const { sent, received, disorder } = await probe.stop();
  assert.equal(received, sent, `probe: ${received} of ${sent} messages`);
  assert.equal(disorder, 0, 'probe: every message in order, once');

  const after1 = rounds[0].rss;
  for (const r of rssComparable(broker) ? rounds.slice(1) : []) {
    assert.ok(r.rss <= after1 + RSS_TOLERANCE, `round ${r.n}: RSS ${(r.rss / MiB).toFixed(1)} MiB, `
      + `${((r.rss - after1) / MiB).toFixed(1)} MiB over round 1 (${(after1 / MiB).toFixed(1)} MiB); tolerance 4 MiB`);
  }
  const final = await gauges(broker);
  assert.equal(final.queues, base.queues, 'no queue left behind');
  const later = rounds.slice(1).map((r) => r.rss / MiB);
  const summary = `soak: ${rounds.length} rounds, ${rounds.length * CLIENTS} connections in ${SOAK_SECONDS} s or more; `
    + `RSS idle ${(rssIdle / MiB).toFixed(1)} MiB, after round 1 ${(after1 / MiB).toFixed(1)} MiB, after later rounds `
    + `${Math.min(...later).toFixed(1)} to ${Math.max(...later).toFixed(1)} MiB, after the last ${later.at(-1).toFixed(1)} MiB; `
    + `fds ${base.fds} after every round; probe ${received} messages, worst p99 ${Math.max(...rounds.map((r) => r.p99))} ms, `
    + `worst max ${Math.max(...rounds.map((r) => r.max))} ms; broker loop ticks over 100 ms late: `
    + `${rounds.reduce((a, r) => a + r.lateTicks, 0)}`;
  t.diagnostic(rssComparable(broker) ? summary : `${summary} (RSS not checked: sanitizer or valgrind)`);
  if (process.env.IT_DEBUG) console.error(summary);
});
