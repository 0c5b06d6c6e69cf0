// Topic throughput across two nodes through Redis, next to the same flood on one node
// (docs/PERFORMANCE.md, "## cluster"). Not a test: prints figures.
//
//   node bench/cluster_throughput.mjs [BROKER_BIN] [messages] [body bytes]
//
// Starts a throw-away redis-server on a free loopback port and two brokers (nA, nB) joined
// through it. One STOMP/TCP subscriber on nB, one on nA; one STOMP/TCP publisher on nA floods
// /topic/bench with N SENDs (no receipts, written as fast as the socket takes them). Reports,
// per subscriber, messages received and messages/s from the first SEND to its last MESSAGE.
// Only node's standard library is used (raw STOMP over TCP).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const here = path.dirname(new URL(import.meta.url).pathname);
const BIN = path.resolve(process.argv[2] ?? path.join(here, '../build/broker/stompws'));
const N = Number(process.argv[3] ?? 200000);
const BODY = 'x'.repeat(Number(process.argv[4] ?? 100));
const children = [];
process.on('exit', () => children.forEach((c) => { try { c.kill('SIGKILL'); } catch { /* gone */ } }));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function redisCommand(port, args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
    let buf = '';
    sock.on('data', (d) => { buf += d; if (buf.endsWith('\r\n')) { sock.destroy(); resolve(buf); } });
    sock.on('error', reject);
  });
}

async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-bench-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'], { stdio: 'ignore' });
  children.push(child);
  for (let i = 0; i < 100; i++) {
    try { if ((await redisCommand(port, ['PING'])).startsWith('+PONG')) return { port, child, dir }; } catch { /* not yet */ }
    await sleep(50);
  }
  throw new Error('redis-server did not start');
}

async function startBroker(redisPort, id) {
  const child = spawn(BIN, ['--ws', '127.0.0.1:0', '--tcp', '127.0.0.1:0', '--log-level', 'warn',
    '--redis', `redis://127.0.0.1:${redisPort}`, '--node-id', id,
    // The per-connection publish meter would cap the flood, and this one client process reads
    // its two subscribers while it writes: let the broker buffer rather than drop.
    '--set', 'limits.publish_rate=0', '--set', 'limits.outbound_high_water=268435456'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  let lines = 0;
  child.stderr.on('data', (d) => { if (lines++ < 20) process.stderr.write(`[${id}] ${d}`); });
  for (let i = 0; i < 200; i++) {
    const m = /^listening tcp 127\.0\.0\.1:(\d+)/m.exec(out);
    if (m) return { child, tcp: Number(m[1]) };
    await sleep(25);
  }
  throw new Error(`broker ${id} did not start`);
}

// A STOMP/TCP client that counts MESSAGE frames without parsing more than it must.
function stompClient(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const c = { sock, messages: 0, lastAt: 0, receipts: [], buf: Buffer.alloc(0) };
    sock.on('data', (d) => {
      c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
      let at = 0;
      for (;;) {
        const nul = c.buf.indexOf(0, at);
        if (nul < 0) break;
        const head = c.buf.toString('latin1', at, Math.min(nul, at + 16));
        if (head.startsWith('MESSAGE') || head.startsWith('\nMESSAGE')) { c.messages++; c.lastAt = performance.now(); }
        if (head.includes('RECEIPT') || head.includes('CONNECTED')) c.receipts.push(head);
        at = nul + 1;
      }
      c.buf = c.buf.subarray(at);
    });
    sock.on('connect', () => {
      sock.write('CONNECT\naccept-version:1.2\nhost:127.0.0.1\n\n\0');
      resolve(c);
    });
  });
}

async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
}

const redis = await startRedis();
const a = await startBroker(redis.port, 'nA');
const b = await startBroker(redis.port, 'nB');
await sleep(300); // both links up
const remote = await stompClient(b.tcp);
const local = await stompClient(a.tcp);
for (const s of [remote, local]) {
  await waitFor(() => s.receipts.length >= 1, 5000, 'CONNECTED');
  s.sock.write('SUBSCRIBE\nid:0\ndestination:/topic/bench\nreceipt:r\n\n\0');
  await waitFor(() => s.receipts.length >= 2, 5000, 'RECEIPT');
}
for (let i = 0; i < 200; i++) {
  if ((await redisCommand(redis.port, ['PUBSUB', 'NUMSUB', 'stompws:/topic/bench'])).includes(':2\r\n')) break;
  await sleep(10);
}
const pub = await stompClient(a.tcp);
await waitFor(() => pub.receipts.length >= 1, 5000, 'CONNECTED');

const frame = Buffer.from(`SEND\ndestination:/topic/bench\ncontent-length:${BODY.length}\n\n${BODY}\0`);
const start = performance.now();
for (let sent = 0; sent < N;) {
  const batch = Math.min(1000, N - sent);
  const ok = pub.sock.write(Buffer.concat(Array(batch).fill(frame)));
  sent += batch;
  if (!ok) await new Promise((r) => pub.sock.once('drain', r));
}
const deadline = Date.now() + 120000;
let lastSeen = -1;
let stillSince = Date.now();
while ((remote.messages < N || local.messages < N) && Date.now() < deadline) {
  const seen = remote.messages + local.messages;
  if (seen !== lastSeen) { lastSeen = seen; stillSince = Date.now(); }
  if (Date.now() - stillSince > 3000) break; // nothing more is coming (drops)
  await sleep(10);
}
const line = (name, s) => {
  const secs = (s.lastAt - start) / 1000;
  console.log(`${name.padEnd(28)} ${String(s.messages).padStart(7)} of ${N}  ${(s.messages / secs).toFixed(0).padStart(7)} msg/s  (${(s.messages * BODY.length / secs / 1e6).toFixed(1)} MB/s of body)`);
};
console.log(`${N} SENDs of ${BODY.length} B to /topic/bench on nA; subscribers on nA and nB`);
line('local subscriber (nA)', local);
line('remote subscriber (nB)', remote);
for (const c of [remote, local, pub]) c.sock.destroy();
for (const c of children) c.kill('SIGTERM');
await sleep(500);
fs.rmSync(redis.dir, { recursive: true, force: true });
process.exit(0);
