// Cross-node topic fan-out through Redis: throughput and end-to-end latency
// (docs/PERFORMANCE.md, "## cluster"). Not a test: prints figures.
//
//   node bench/cluster_throughput.mjs [options]
//
//   --bin PATH          broker binary (default build/server/stompws)
//   --nodes K           brokers joined through one Redis (default 3): the publisher is on the
//                       first (nA); subscribers are spread round-robin over the others (nB, nC..)
//                       or all on nA when K = 1
//   --subscribers S     remote subscribers, one STOMP/TCP socket each (default 1000)
//   --local L           extra subscribers on nA, next to the publisher (default 0)
//   --messages N        SENDs published to /topic/bench (default 2000)
//   --body B            body bytes (default 100; at least 40, it carries the stamp)
//   --rate R            SENDs per second; 0 = saturating, with at most --window bytes of SEND
//                       frames outstanding (published but not yet delivered to every subscriber,
//                       counted as sent - deliveries / subscribers)   (default 1000)
//   --window BYTES      outstanding-bytes bound for --rate 0 (default 65536)
//   --high-water BYTES  sets limits.outbound_high_water on the brokers (default: broker default)
//   --timeout SECS      the whole run, start-up included, must end within this (default 300)
//
// Old form, still accepted: node bench/cluster_throughput.mjs BROKER_BIN MESSAGES BODY
// (= --nodes 2 --subscribers 1 --local 1 --rate 0 --window 1e15 --high-water 268435456, the
// unbounded two-node flood of the earlier version of this script).
//
// A throw-away redis-server on a free loopback port; K brokers with --redis/--node-id and the
// admission and publish limits off (limits.publish_rate=0, limits.connection_rate=0,
// limits.max_connections_per_address=100000). The publisher stamps each body with a sequence
// number and performance.now() at the moment the frame is written; the subscribers live in the
// same process (same clock) and record end-to-end latency into 10 us buckets, per node, plus a
// per-subscriber bitmap for loss, duplicates and reordering (a sequence number below one already
// seen). CPU: this process (process.cpuUsage), each broker and Redis (/proc/PID/stat utime+stime)
// over the flood, and their RSS at the end. Only node's standard library is used.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const here = path.dirname(new URL(import.meta.url).pathname);
const opt = {
  bin: path.join(here, '../build/server/stompws'), nodes: 3, subscribers: 1000, local: 0,
  messages: 2000, body: 100, rate: 1000, window: 65536, 'high-water': null, timeout: 300,
};
{
  const argv = process.argv.slice(2);
  if (argv.length && !argv[0].startsWith('--')) { // old positional form
    Object.assign(opt, { bin: argv[0], nodes: 2, subscribers: 1, local: 1, rate: 0, window: 1e15, 'high-water': 268435456 });
    if (argv[1]) opt.messages = Number(argv[1]);
    if (argv[2]) opt.body = Number(argv[2]);
  } else {
    for (let i = 0; i < argv.length; i += 2) {
      const k = argv[i].replace(/^--/, '');
      if (!(k in opt) || argv[i + 1] === undefined) { console.error(`unknown or incomplete option ${argv[i]}`); process.exit(2); }
      opt[k] = k === 'bin' ? argv[i + 1] : Number(argv[i + 1]);
    }
  }
}
const BIN = path.resolve(opt.bin);
const N = opt.messages;
const BODY = Math.max(40, opt.body);
const DEST = '/topic/bench';

const children = [];
let redisDir = null;
const cleanup = () => {
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  if (redisDir) { try { fs.rmSync(redisDir, { recursive: true, force: true }); } catch { /* */ } }
};
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
process.on('uncaughtException', (e) => { console.error(e); process.exit(1); });
process.on('unhandledRejection', (e) => { console.error(e); process.exit(1); });
setTimeout(() => { console.error(`run exceeded --timeout ${opt.timeout}s`); process.exit(1); }, opt.timeout * 1000).unref();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function redisCommand(port, args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
    const t = setTimeout(() => { sock.destroy(); reject(new Error('redis command timed out')); }, 2000);
    let buf = '';
    sock.on('data', (d) => { buf += d; if (buf.endsWith('\r\n')) { clearTimeout(t); sock.destroy(); resolve(buf); } });
    sock.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

async function startRedis() {
  const port = await freePort();
  redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-bench-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', redisDir, '--loglevel', 'warning'], { stdio: 'ignore' });
  children.push(child);
  for (let i = 0; i < 100; i++) {
    try { if ((await redisCommand(port, ['PING'])).startsWith('+PONG')) return { port, child }; } catch { /* not yet */ }
    await sleep(50);
  }
  throw new Error('redis-server did not start');
}

async function startBroker(redisPort, id) {
  const args = ['--ws', '127.0.0.1:0', '--tcp', '127.0.0.1:0', '--log-level', 'warn',
    '--redis', `redis://127.0.0.1:${redisPort}`, '--node-id', id,
    '--set', 'limits.publish_rate=0', '--set', 'limits.max_connections_per_address=100000',
    '--set', 'limits.connection_rate=0'];
  if (opt['high-water'] !== null) args.push('--set', `limits.outbound_high_water=${opt['high-water']}`);
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  let lines = 0;
  child.stderr.on('data', (d) => { if (lines++ < 20) process.stderr.write(`[${id}] ${d}`); });
  for (let i = 0; i < 200; i++) {
    const m = /^listening tcp 127\.0\.0\.1:(\d+)/m.exec(out);
    if (m) return { id, child, tcp: Number(m[1]) };
    if (child.exitCode !== null) break;
    await sleep(25);
  }
  throw new Error(`broker ${id} did not start`);
}

// ---- /proc ---------------------------------------------------------------------------------
let CLK_TCK = 100;
try { CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100; } catch { /* 100 */ }
function cpuSecs(pid) { // utime + stime of the process, seconds
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
function rssMiB(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s) ?? [0, 0])[1]);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

// ---- latency: 10 us buckets up to 10 s, per node --------------------------------------------
const BUCKET_US = 10;
const NBUCKETS = 1_000_000;
function newStats(name, subs) {
  return { name, subs, hist: new Uint32Array(NBUCKETS + 1), max: 0, deliveries: 0, unique: 0, dups: 0, reordered: 0, firstAt: 0, lastAt: 0 };
}
function pct(st, p) {
  const want = Math.ceil(st.deliveries * p);
  let acc = 0;
  for (let i = 0; i <= NBUCKETS; i++) {
    acc += st.hist[i];
    if (acc >= want) return i === NBUCKETS ? st.max : (i + 1) * BUCKET_US / 1000; // upper bound, ms
  }
  return st.max;
}

// ---- STOMP/TCP clients -------------------------------------------------------------------
let totalDeliveries = 0;
let wake = null; // the saturating publisher waits on this
const NUL = 0;
const LF2 = Buffer.from('\n\n');

function stompClient(port, stats) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    const c = { sock, stats, control: [], errors: 0, seen: stats ? new Uint8Array((N + 7) >> 3) : null, last: -1, buf: null };
    sock.on('data', (d) => {
      const now = performance.now();
      let buf = c.buf ? Buffer.concat([c.buf, d]) : d;
      let at = 0;
      for (;;) {
        const nul = buf.indexOf(NUL, at);
        if (nul < 0) break;
        while (buf[at] === 10 || buf[at] === 13) at++; // heart-beat EOLs
        if (at < nul) {
          if (buf[at] === 77 /* M */ && c.stats) {
            const hb = buf.indexOf(LF2, at);
            // body: "<seq> <t ms> xxxx"
            const sp1 = buf.indexOf(32, hb + 2);
            const sp2 = buf.indexOf(32, sp1 + 1);
            const seq = Number(buf.toString('latin1', hb + 2, sp1));
            const t = Number(buf.toString('latin1', sp1 + 1, sp2));
            const st = c.stats;
            const lat = now - t;
            st.deliveries++;
            totalDeliveries++;
            if (!st.firstAt) st.firstAt = now;
            st.lastAt = now;
            const b = Math.min(NBUCKETS, Math.floor(lat * 1000 / BUCKET_US));
            st.hist[b]++;
            if (lat > st.max) st.max = lat;
            const bit = 1 << (seq & 7);
            if (c.seen[seq >> 3] & bit) st.dups++;
            else { c.seen[seq >> 3] |= bit; st.unique++; if (seq < c.last) st.reordered++; }
            if (seq > c.last) c.last = seq;
          } else {
            const head = buf.toString('latin1', at, Math.min(nul, at + 200));
            if (head.startsWith('ERROR')) { c.errors++; if (c.errors <= 3) process.stderr.write(`ERROR frame: ${head.split('\n').slice(0, 3).join(' | ')}\n`); }
            c.control.push(head);
          }
        }
        at = nul + 1;
      }
      c.buf = at < buf.length ? buf.subarray(at) : null;
      if (wake) { const w = wake; wake = null; w(); }
    });
    sock.once('error', reject);
    sock.on('connect', () => {
      sock.write('CONNECT\naccept-version:1.2\nhost:127.0.0.1\n\n\0');
      resolve(c);
    });
  });
}

async function subscribeAll(specs) { // specs: [{port, stats}], 100 at a time
  const out = [];
  for (let i = 0; i < specs.length; i += 100) {
    const batch = await Promise.all(specs.slice(i, i + 100).map((s) => stompClient(s.port, s.stats)));
    await waitFor(() => batch.every((c) => c.control.some((h) => h.startsWith('CONNECTED')) || c.errors), 10000, 'CONNECTED');
    for (const c of batch) c.sock.write(`SUBSCRIBE\nid:0\ndestination:${DEST}\nreceipt:s\n\n\0`);
    await waitFor(() => batch.every((c) => c.control.some((h) => h.startsWith('RECEIPT')) || c.errors), 10000, 'subscription RECEIPT');
    if (batch.some((c) => c.errors)) throw new Error('a subscriber got an ERROR frame');
    out.push(...batch);
  }
  return out;
}

// ---- run -----------------------------------------------------------------------------------
const redis = await startRedis();
const names = Array.from({ length: opt.nodes }, (_, i) => `n${String.fromCharCode(65 + i)}`);
const brokers = [];
for (const id of names) brokers.push(await startBroker(redis.port, id));
await sleep(300); // Redis links up

const subNodes = opt.nodes > 1 ? brokers.slice(1) : brokers;
const stats = new Map(); // node id -> stats
const specs = [];
for (let i = 0; i < opt.subscribers; i++) {
  const b = subNodes[i % subNodes.length];
  if (!stats.has(b.id)) stats.set(b.id, newStats(b.id, 0));
  stats.get(b.id).subs++;
  specs.push({ port: b.tcp, stats: stats.get(b.id) });
}
if (opt.local > 0) {
  const st = newStats(`${brokers[0].id} (local)`, opt.local);
  stats.set('local', st);
  for (let i = 0; i < opt.local; i++) specs.push({ port: brokers[0].tcp, stats: st });
}
const totalSubs = specs.length;
const tConn = performance.now();
const subs = await subscribeAll(specs);
const connectSecs = (performance.now() - tConn) / 1000;

// Every remote node with subscribers must hold the Redis channel before the first SEND.
const remoteWithSubs = opt.nodes > 1 ? [...stats.keys()].filter((k) => k !== 'local').length : 0;
for (let i = 0; remoteWithSubs && i < 500; i++) {
  const r = await redisCommand(redis.port, ['PUBSUB', 'NUMSUB', `stompws:${DEST}`]);
  const m = /:(\d+)\r\n$/.exec(r);
  if (m && Number(m[1]) >= remoteWithSubs) break;
  if (i === 499) throw new Error(`Redis shows ${r.trim()} subscriptions to stompws:${DEST}`);
  await sleep(10);
}
const pub = await stompClient(brokers[0].tcp, null);
await waitFor(() => pub.control.some((h) => h.startsWith('CONNECTED')), 5000, 'publisher CONNECTED');

const pad = (s) => s + 'x'.repeat(Math.max(0, BODY - s.length));
const sendFrame = (seq) => {
  const body = pad(`${seq} ${performance.now().toFixed(4)} `);
  return `SEND\ndestination:${DEST}\ncontent-length:${BODY}\n\n${body}\0`;
};
const frameLen = Buffer.byteLength(sendFrame(0));
const expected = N * totalSubs;

const cpu0 = { self: process.cpuUsage(), procs: children.map((c) => cpuSecs(c.pid)) };
const start = performance.now();
let sent = 0;
if (opt.rate > 0) {
  // Paced: at every turn of the event loop, send what is due by now (stamped when written).
  while (sent < N) {
    const due = Math.min(N, Math.floor((performance.now() - start) * opt.rate / 1000) + 1);
    if (due > sent) {
      let chunk = '';
      while (sent < due) chunk += sendFrame(sent++);
      if (!pub.sock.write(chunk)) await new Promise((r) => pub.sock.once('drain', r));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
} else {
  const maxOut = Math.max(1, Math.floor(opt.window / frameLen));
  let lastProgress = -1;
  let lastProgressAt = performance.now();
  while (sent < N) {
    if (totalDeliveries !== lastProgress) { lastProgress = totalDeliveries; lastProgressAt = performance.now(); }
    const out = sent - totalDeliveries / totalSubs;
    if (out >= maxOut) {
      await Promise.race([new Promise((r) => { wake = r; }), sleep(5)]);
      if (performance.now() - lastProgressAt > 3000) break; // deliveries stopped (loss): stop publishing
      continue;
    }
    const n = Math.min(N - sent, Math.ceil(maxOut - out), 256);
    let chunk = '';
    for (let i = 0; i < n; i++) chunk += sendFrame(sent++);
    if (!pub.sock.write(chunk)) await new Promise((r) => pub.sock.once('drain', r));
  }
}
const sendEnd = performance.now();
// Wait for everything, or until nothing has arrived for 3 s (loss), bounded overall.
{
  const deadline = Date.now() + Math.max(30000, opt.timeout * 500);
  let lastSeen = -1;
  let stillSince = Date.now();
  while (totalDeliveries < expected && Date.now() < deadline) {
    if (totalDeliveries !== lastSeen) { lastSeen = totalDeliveries; stillSince = Date.now(); }
    if (Date.now() - stillSince > 3000) break;
    await sleep(10);
  }
}
const lastAt = Math.max(...[...stats.values()].map((s) => s.lastAt));
const elapsed = (lastAt - start) / 1000;
const selfCpu = process.cpuUsage(cpu0.self);
const procCpu = children.map((c, i) => cpuSecs(c.pid) - cpu0.procs[i]);
const rss = children.map((c) => rssMiB(c.pid));

// ---- report --------------------------------------------------------------------------------
const f0 = (x) => Math.round(x).toLocaleString('en-US').replace(/,/g, ' ');
const ms = (x) => x.toFixed(x < 10 ? 2 : 1);
console.log(`stompws cluster fan-out: ${opt.nodes} node(s) + Redis on 127.0.0.1; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'})`);
console.log(`publisher on ${brokers[0].id}; ${opt.subscribers} subscribers on ${subNodes.map((b) => b.id).join('+')}${opt.local ? `, ${opt.local} on ${brokers[0].id}` : ''}; ` +
  `${N} SENDs x ${BODY} B to ${DEST}; ${opt.rate > 0 ? `paced at ${opt.rate}/s` : `saturating, window ${opt.window} B (${Math.max(1, Math.floor(opt.window / frameLen))} SENDs)`}`);
console.log(`subscribers connected+subscribed in ${connectSecs.toFixed(2)} s`);
console.log(`publish: ${N} SENDs in ${((sendEnd - start) / 1000).toFixed(3)} s = ${f0(N / ((sendEnd - start) / 1000))} SENDs/s`);
console.log(`deliver: ${f0(totalDeliveries)} of ${f0(expected)} in ${elapsed.toFixed(3)} s (first SEND to last MESSAGE) = ${f0(totalDeliveries / elapsed)} deliveries/s`);
console.log('');
console.log('node        subs   deliveries   lost  dups  reord   deliv/s    p50     p90     p99    p99.9     max  (latency ms)');
for (const st of stats.values()) {
  const exp = st.subs * N;
  const secs = (st.lastAt - start) / 1000;
  console.log(`${st.name.padEnd(10)} ${String(st.subs).padStart(5)} ${String(st.deliveries).padStart(12)} ${String(exp - st.unique).padStart(6)} ${String(st.dups).padStart(5)} ${String(st.reordered).padStart(6)} ${f0(st.deliveries / secs).padStart(9)} ` +
    [0.5, 0.9, 0.99, 0.999].map((p) => ms(pct(st, p)).padStart(7)).join(' ') + ` ${ms(st.max).padStart(7)}`);
}
console.log('');
const selfSecs = (selfCpu.user + selfCpu.system) / 1e6;
console.log(`CPU seconds over the flood (${elapsed.toFixed(2)} s wall):`);
console.log(`  bench (node, publisher + all subscribers)  ${selfSecs.toFixed(2)} s  = ${(100 * selfSecs / elapsed).toFixed(0)}% of a core  rss ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB`);
const label = ['redis-server', ...brokers.map((b) => `broker ${b.id}`)];
children.forEach((c, i) => console.log(`  ${label[i].padEnd(41)}  ${procCpu[i].toFixed(2)} s  = ${(100 * procCpu[i] / elapsed).toFixed(0)}% of a core  rss ${rss[i].rss.toFixed(1)} MiB (peak ${rss[i].hwm.toFixed(1)})`));
const allCpu = selfSecs + procCpu.reduce((a, b) => a + b, 0);
console.log(`  total ${allCpu.toFixed(2)} s = ${(100 * allCpu / elapsed / os.cpus().length).toFixed(0)}% of ${os.cpus().length} CPUs`);
if (selfSecs / elapsed > 0.85) console.log('  NOTE: the bench process was near one full core: the generator/receiver is (one of) the bottleneck(s).');
if (allCpu / elapsed > 0.85 * os.cpus().length) console.log('  NOTE: the machine\'s CPUs were near saturation: figures are bounded by CPU sharing.');

for (const c of [...subs, pub]) c.sock.destroy();
for (const c of children.slice(1)) c.kill('SIGTERM'); // brokers first, then Redis (no "link down")
await sleep(300);
children[0].kill('SIGTERM');
process.exit(totalDeliveries === expected ? 0 : 3);
