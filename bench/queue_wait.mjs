// What cluster.min_replicas_ack costs a queue publisher (docs/PERFORMANCE.md, "Queue SENDs
// with min_replicas_ack"). Not a test: prints figures.
//
//   STOMPWS_BIN=build-rel/server/stompws node bench/queue_wait.mjs [MESSAGES] [WINDOWS] [RUNS]
//
// A throw-away master and replica (redis-server, loopback, no persistence), then for each
// window W (default "1,100") and each min_replicas_ack K in 0, 1 (alternating, RUNS times, default
// 3): one broker joined through the master with --set cluster.min_replicas_ack=K, two queue
// consumers (ack:auto) on it, and one STOMP/TCP publisher sending MESSAGES (default 20000) SENDs
// with a receipt each, at most W without their RECEIPT. Prints, per run: receipted SENDs per
// second and the SEND -> RECEIPT latency (p50, p99, in ms). Uses the helpers of
// tests/integration/lib (node's standard library only).
import { startBroker } from '../tests/integration/lib/broker.mjs';
import { RedisServer } from '../tests/integration/lib/cluster.mjs';
import { tcpStomp } from '../tests/integration/lib/stomp.mjs';

const MESSAGES = Number(process.argv[2] ?? 20000);
const WINDOWS = String(process.argv[3] ?? '1,100').split(',').map(Number);
const RUNS = Number(process.argv[4] ?? 3);

const percentile = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function run(master, ack, window) {
  const broker = await startBroker({
    args: ['--redis', master.url, '--log-level', 'warn', '--set', `cluster.min_replicas_ack=${ack}`,
      '--set', 'limits.publish_rate=0'],
  });
  try {
    const queue = `/queue/wait-${ack}-${window}-${Date.now()}`;
    for (let i = 0; i < 2; i++) {
      const c = broker.track(await tcpStomp(broker, { label: `c${i}` }));
      const push = c.inbox.push.bind(c.inbox);
      c.inbox.push = (f) => { if (f.command !== 'MESSAGE') push(f); };
      await c.subscribe(queue, 'q');
    }
    const pub = broker.track(await tcpStomp(broker, { label: 'pub' }));
    const sentAt = new Float64Array(MESSAGES);
    const latency = [];
    let next = 0;
    let done = 0;
    let wake = null;
    const push = pub.inbox.push.bind(pub.inbox);
    pub.inbox.push = (f) => {
      if (f.command === 'RECEIPT') {
        latency.push(performance.now() - sentAt[Number(f.headers['receipt-id'])]);
        done++;
        if (wake) wake();
        return;
      }
      push(f);
    };
    const body = 'x'.repeat(100);
    const start = performance.now();
    while (done < MESSAGES) {
      while (next < MESSAGES && next - done < window) {
        sentAt[next] = performance.now();
        pub.send('SEND', { destination: queue, receipt: String(next) }, body);
        next++;
      }
      await new Promise((resolve) => { wake = resolve; setTimeout(resolve, 1000); });
      if (pub.inbox.closedInfo) throw new Error(`publisher closed: ${JSON.stringify(pub.inbox.closedInfo)}`);
    }
    const secs = (performance.now() - start) / 1000;
    latency.sort((x, y) => x - y);
    return { rate: Math.round(MESSAGES / secs), p50: percentile(latency, 50), p99: percentile(latency, 99) };
  } finally {
    await broker.closeClients();
    await broker.stop();
  }
}

const master = await RedisServer.start();
const replica = await RedisServer.start(['--replicaof', '127.0.0.1', String(master.port)]);
try {
  for (;;) { // the replica in sync first
    const info = String(await master.command('INFO', 'replication'));
    if (/state=online/.test(info)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const window of WINDOWS) {
    for (let r = 0; r < RUNS; r++) {
      for (const ack of [0, 1]) {
        const f = await run(master, ack, window);
        console.log(`window ${window} min_replicas_ack ${ack} run ${r + 1}: ${f.rate} receipted SEND/s, ` +
          `latency p50 ${f.p50.toFixed(3)} ms p99 ${f.p99.toFixed(3)} ms`);
      }
    }
  }
} finally {
  await replica.stop();
  await master.stop();
}
