// A real redis-server of the test's own and brokers joined through it (docs/CLUSTER.md), for
// cluster.test.mjs (topics) and cluster_queues.test.mjs (queues).
//
// A test file calls useSharedRedis() once: it starts one redis-server on a free loopback port
// (no persistence, a temp dir) before its tests and stops it after them, even on failure.
// clusterTest() starts brokers with --redis redis://127.0.0.1:PORT --node-id nX, waits until
// their Redis links are up, runs the body, and stops every broker (each must exit 0 on SIGTERM).
import { spawn } from 'node:child_process';
import { test, before, after } from 'node:test';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TIME_SCALE, startBroker, withTimeout, sleep } from './broker.mjs';
import { httpExchange } from './rawws.mjs';

export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
export const REDIS_CLI = process.env.REDIS_CLI ?? '/usr/bin/redis-cli';
export const PREFIX = 'stompws';

// ---- a redis-server of our own ------------------------------------------------------------

const liveRedis = new Set();
process.on('exit', () => {
  for (const child of liveRedis) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Encodes one command as RESP (arguments: strings or Buffers).
export function resp(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

// Parses one RESP reply at buf[off..]; returns { value, end } or null when incomplete.
export function parseReply(buf, off = 0) {
  const eol = buf.indexOf('\r\n', off);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[off]);
  const line = buf.toString('utf8', off + 1, eol);
  switch (type) {
    case '+': return { value: line, end: eol + 2 };
    case '-': return { value: new Error(line), end: eol + 2 };
    case ':': return { value: Number(line), end: eol + 2 };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: eol + 2 };
      if (buf.length < eol + 2 + n + 2) return null;
      return { value: buf.subarray(eol + 2, eol + 2 + n), end: eol + 2 + n + 2 };
    }
    case '*': {
      const n = Number(line);
      const items = [];
      let at = eol + 2;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, at);
        if (!r) return null;
        items.push(r.value);
        at = r.end;
      }
      return { value: items, end: at };
    }
    default: throw new Error(`bad RESP reply: ${buf.toString('utf8', off, Math.min(buf.length, off + 40))}`);
  }
}

// One command on a fresh connection; resolves with the reply (Error objects for -ERR).
export function redisCommand(port, args, timeout = 3000) {
  return withTimeout(new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    sock.on('connect', () => sock.write(resp(args)));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseReply(buf);
      if (r) { sock.destroy(); resolve(r.value); }
    });
    sock.on('error', (e) => { sock.destroy(); reject(e); });
  }), timeout, `redis ${args[0]} on port ${port}`);
}

export class RedisServer {
  // extraArgs go after the defaults and win over them (e.g. --appendonly yes for persistence).
  constructor(port, extraArgs = []) {
    this.port = port;
    this.extraArgs = extraArgs;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-redis-'));
    this.child = null;
    this.log = '';
  }

  get url() { return `redis://127.0.0.1:${this.port}`; }

  static async start(extraArgs = []) {
    const r = new RedisServer(await freePort(), extraArgs);
    await r.spawn();
    return r;
  }

  async spawn() {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.dir, '--loglevel', 'warning', ...this.extraArgs];
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    liveRedis.add(child);
    child.stdout.on('data', (d) => { this.log += d; });
    child.stderr.on('data', (d) => { this.log += d; });
    this.exited = new Promise((resolve) => child.on('exit', () => { liveRedis.delete(child); resolve(); }));
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        if (await redisCommand(this.port, ['PING'], 500) === 'PONG') return;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not answer PING within 5 s:\n${this.log}`);
      await sleep(25);
    }
  }

  async kill(signal = 'SIGKILL') {
    if (!this.child) return;
    const child = this.child;
    this.child = null;
    child.kill(signal);
    const timer = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, 3000);
    await this.exited;
    clearTimeout(timer);
  }

  async stop() {
    await this.kill('SIGTERM');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  command(...args) { return redisCommand(this.port, args); }

  // Waits until Redis reports n subscribers on the exact channel (PUBSUB NUMSUB).
  async waitNumsub(channel, n, timeout = 5000) {
    const deadline = Date.now() + timeout;
    let last;
    while (Date.now() < deadline) {
      const reply = await this.command('PUBSUB', 'NUMSUB', channel);
      last = reply[1];
      if (last === n) return;
      await sleep(20);
    }
    throw new Error(`PUBSUB NUMSUB ${channel}: ${last}, expected ${n} within ${timeout} ms`);
  }

  // Waits until Redis counts n PSUBSCRIBE patterns in all (PUBSUB NUMPAT).
  async waitNumpat(n, timeout = 5000) {
    const deadline = Date.now() + timeout;
    let last;
    while (Date.now() < deadline) {
      last = await this.command('PUBSUB', 'NUMPAT');
      if (last === n) return;
      await sleep(20);
    }
    throw new Error(`PUBSUB NUMPAT: ${last}, expected ${n} within ${timeout} ms`);
  }
}

// ---- a cluster of brokers ---------------------------------------------------------------

export async function waitLog(broker, re, timeout, what) {
  const deadline = Date.now() + timeout;
  while (!re.test(broker.stderr)) {
    if (broker.exit) throw new Error(`broker exited while waiting for ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(20);
  }
}

export const linksUp = (broker) => Promise.all([
  waitLog(broker, /redis publish link up/, 10000 * TIME_SCALE, 'the Redis publish link'),
  waitLog(broker, /redis subscribe link up/, 10000 * TIME_SCALE, 'the Redis subscribe link'),
  waitLog(broker, /redis queue link up/, 10000 * TIME_SCALE, 'the Redis queue link'),
  waitLog(broker, /redis queue-reader link up/, 10000 * TIME_SCALE, 'the Redis queue-reader link'),
]);

export async function startNode(redis, id, options = {}) {
  const broker = await startBroker({
    ...options,
    args: ['--redis', redis.url, '--node-id', id, ...(options.args ?? [])],
  });
  broker.nodeId = id;
  return broker;
}

// Starts a broker per id (start(id) returns it), waits for ready(node) on each, runs fn(nodes),
// then stops them all: each must exit 0 on SIGTERM unless the test killed it (killNode). On
// success their directories are removed; on failure the tail of each broker's log is attached.
export async function withBrokers(ids, start, ready, fn) {
  const nodes = [];
  let error = null;
  try {
    for (const id of ids) {
      const node = await start(id);
      node.nodeId = id;
      nodes.push(node);
    }
    await Promise.all(nodes.map(ready));
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
  if (!(error instanceof Error)) error = new Error(String(error));
  for (const n of nodes) error.message += `\n=== node ${n.nodeId} ===\n${n.logTail(60)}`;
  throw error;
}

// Registers a test that runs fn({ nodes, redis }) against fresh brokers joined through redis
// (the shared one unless options.redis gives a function returning another), as withBrokers
// runs them. options.skip: a reason to skip the test (a missing tool or kernel feature).
export function clusterTest(name, options, fn) {
  const { ids = ['nA', 'nB', 'nC'], timeout = 30000 } = options;
  const skip = fs.existsSync(REDIS_SERVER) ? (options.skip ?? false) : `${REDIS_SERVER} not found (apt install redis-server)`;
  test(name, { timeout: timeout + 30000, skip }, async () => {
    const redis = options.redis ? await options.redis() : sharedRedis;
    try {
      await withBrokers(ids, (id) => startNode(redis, id, options.broker),
        options.waitLinks !== false ? linksUp : () => {},
        (nodes) => withTimeout(Promise.resolve().then(() => fn({ nodes, redis })), timeout, `test body "${name}"`));
    } finally {
      if (options.redis) await redis.stop();
    }
  });
}

// Waits until the consumer group of queue dest's stream exists: some node's consumers read it.
export async function waitStreamGroup(redis, dest, timeout = 10000) {
  const key = `${PREFIX}:${dest}`;
  const deadline = Date.now() + timeout;
  for (;;) {
    const reply = await redis.command('XINFO', 'GROUPS', key);
    if (Array.isArray(reply) && reply.length > 0) return;
    if (Date.now() > deadline) throw new Error(`no consumer group on ${key} within ${timeout} ms`);
    await sleep(50);
  }
}

// Waits until queue dest's stream holds n entries (XLEN): 0 once everything was acked.
export async function waitStreamLength(redis, dest, n, timeout = 10000) {
  const key = `${PREFIX}:${dest}`;
  const deadline = Date.now() + timeout;
  let last;
  while ((last = await redis.command('XLEN', key)) !== n) {
    if (Date.now() > deadline) throw new Error(`XLEN ${key}: ${last}, expected ${n} within ${timeout} ms`);
    await sleep(50);
  }
}

// SIGKILLs a node (no clean-up of any kind) and waits until it is gone.
export async function killNode(node) {
  node.killedOnPurpose = true;
  node.child.kill('SIGKILL');
  await node.exited;
}

// GET path on a node's WebSocket port: { status, body } once the broker closes.
export async function httpGet(node, path) {
  const { status, body } = await httpExchange(node, node.wsPort, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  return { status, body };
}
export const readyz = (node) => httpGet(node, '/readyz');
export const metricsText = async (node) => (await httpGet(node, '/metrics')).body;

export async function pollReady(node, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await readyz(node);
    if (r.status === 200) return;
    if (Date.now() > deadline) throw new Error(`/readyz still ${r.status} (${r.body.trim()}) after ${timeoutMs} ms`);
    await sleep(200);
  }
}

let sharedRedis = null;

// Starts the file's redis-server before its tests and stops it after them.
export function useSharedRedis() {
  before(async () => { if (fs.existsSync(REDIS_SERVER)) sharedRedis = await RedisServer.start(); });
  after(async () => { if (sharedRedis) await sharedRedis.stop(); });
}

