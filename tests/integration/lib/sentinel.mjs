// A Redis Sentinel topology of the test's own (docs/CLUSTER.md, "Sentinel"): one master, one
// replica (replicaof) and three redis-sentinel processes watching the master under the name
// MASTER_NAME with quorum 2, each on a free loopback port in a temp dir of its own. Failover is
// tuned to be quick: down after 1000 ms, failover-timeout 5000 ms.
//
// startSentinelTopology() returns once every sentinel knows the replica and the two other
// sentinels (a failover needs both); stop() ends every process, also after a failure, and the
// process 'exit' hook of cluster.mjs kills what a crashed test left.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sleep, until } from './broker.mjs';
import { RedisServer, freePort, redisCommand } from './cluster.mjs';

export const REDIS_SENTINEL = process.env.REDIS_SENTINEL ?? '/usr/bin/redis-sentinel';
export const MASTER_NAME = 'stompws-test';

const liveSentinels = new Set();
process.on('exit', () => {
  for (const child of liveSentinels) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});


// A flat RESP array [k1, v1, k2, v2, ...] as an object of strings.
const fields = (reply) => {
  const o = {};
  for (let i = 0; i + 1 < reply.length; i += 2) o[String(reply[i])] = String(reply[i + 1]);
  return o;
};

export class Sentinel {
  // password: the sentinel's requirepass (clients must AUTH; command() does not).
  constructor(port, masterPort, { password = '' } = {}) {
    this.port = port;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-sentinel-'));
    this.conf = path.join(this.dir, 'sentinel.conf');
    this.log = '';
    // The file is the sentinel's own: it rewrites it with what it learns.
    fs.writeFileSync(this.conf, [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${this.dir}`,
      ...(password ? [`requirepass ${password}`] : []),
      `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
      `sentinel failover-timeout ${MASTER_NAME} 5000`,
      `sentinel parallel-syncs ${MASTER_NAME} 1`,
      '',
    ].join('\n'));
  }

  async spawn() {
    const child = spawn(REDIS_SENTINEL, [this.conf, '--loglevel', 'notice'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    liveSentinels.add(child);
    child.stdout.on('data', (d) => { this.log += d; });
    child.stderr.on('data', (d) => { this.log += d; });
    this.exited = new Promise((resolve) => child.on('exit', () => { liveSentinels.delete(child); resolve(); }));
    await until(async () => {
      const pong = await this.command('PING');
      return pong === 'PONG' || /NOAUTH/.test(String(pong?.message));
    }, 5000, `redis-sentinel on port ${this.port}`);
  }

  command(...args) { return redisCommand(this.port, args); }

  async master() {
    return fields(await this.command('SENTINEL', 'master', MASTER_NAME));
  }

  async stop() {
    if (this.child) {
      const child = this.child;
      this.child = null;
      child.kill('SIGTERM');
      const timer = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, 3000);
      await this.exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export class SentinelTopology {
  constructor() {
    this.servers = []; // RedisServer: [0] the first master, [1] its replica
    this.sentinels = [];
  }

  // "127.0.0.1:P1,127.0.0.1:P2,..." for --redis-sentinel (extra addresses first when given).
  addrs(extra = []) {
    return [...extra, ...this.sentinels.map((s) => `127.0.0.1:${s.port}`)].join(',');
  }

  // The port of the server the sentinels call master now.
  async masterPort() {
    for (const s of this.sentinels) {
      try {
        const [, port] = await s.command('SENTINEL', 'get-master-addr-by-name', MASTER_NAME);
        return Number(String(port));
      } catch { /* that sentinel is down: ask the next */ }
    }
    throw new Error('no sentinel answered');
  }

  serverOnPort(port) { return this.servers.find((r) => r.port === port); }

  // Until every live sentinel names newPort as master and the server there says ROLE master.
  async waitMaster(port, timeoutMs) {
    await until(async () => {
      for (const s of this.sentinels) {
        if (!s.child) continue;
        const [, p] = await s.command('SENTINEL', 'get-master-addr-by-name', MASTER_NAME);
        if (Number(String(p)) !== port) return false;
      }
      const role = await redisCommand(port, ['ROLE']);
      return String(role[0]) === 'master';
    }, timeoutMs, `master on port ${port}`);
  }

  // Until the master on port has n replicas in sync (INFO replication, state=online) and every
  // sentinel knows them and the other sentinels: what a failover needs.
  async waitReady(port, replicas, timeoutMs) {
    await until(async () => {
      const info = String(await redisCommand(port, ['INFO', 'replication']));
      const online = (info.match(/state=online/g) ?? []).length;
      if (online < replicas) return false;
      for (const s of this.sentinels) {
        if (!s.child) continue;
        const m = await s.master();
        if (Number(m['num-slaves']) < replicas || Number(m['num-other-sentinels']) < this.sentinels.length - 1) return false;
      }
      return true;
    }, timeoutMs, `${replicas} replica(s) online and known to every sentinel`);
  }

  async stop() {
    for (const s of this.sentinels) await s.stop();
    for (const r of this.servers) await r.stop();
  }
}

// Starts the master, its replica and three sentinels; on a failure half-way, stops what started.
export async function startSentinelTopology() {
  const t = new SentinelTopology();
  try {
    const master = await RedisServer.start();
    t.servers.push(master);
    t.servers.push(await RedisServer.start(['--replicaof', '127.0.0.1', String(master.port)]));
    for (let i = 0; i < 3; i++) {
      const s = new Sentinel(await freePort(), master.port);
      t.sentinels.push(s);
      await s.spawn();
    }
    await t.waitReady(master.port, 1, 30000);
    return t;
  } catch (e) {
    await t.stop();
    throw e;
  }
}
