// A Redis Cluster of the test's own (issue #17, docs/CLUSTER.md "Redis Cluster"): three masters
// and one replica each, six redis-server processes with --cluster-enabled on free loopback ports,
// each in a temp dir of its own, no persistence, joined by `redis-cli --cluster create`.
//
// startRedisCluster() returns once every node says cluster_state:ok, every node names the same
// master for every slot and every replica's link to its master is up; stop() ends every process,
// also after a failure, and the process 'exit' hook of cluster.mjs kills what a crashed test left.
//
// What tests do with it, the way an operator would:
//   - slotOf(key): the hash slot Redis puts a key or a sharded channel in (CRC16-XMODEM of the
//     hash tag, or of the whole key, mod 16384);
//   - ownerOf(slot): the master serving a slot now;
//   - migrateSlot(slot, to): what `redis-cli --cluster reshard` does for one slot (SETSLOT
//     IMPORTING on the target, MIGRATING on the source, MIGRATE the keys in batches of
//     GETKEYSINSLOT, then SETSLOT NODE on every master, target first);
//   - failover(master): SIGKILL of a master (optionally after its replicas fell behind), then
//     waits until a replica took its slots and the cluster is ok again; restart(server) brings
//     a killed node back (as a replica).
//
// Timing: --cluster-node-timeout 1000 ms, so a dead master is flagged FAIL about 1-2 s after the
// kill and its replica is elected about 1 s after that (measured: printed by the lib's test,
// rediscluster_lib.test.mjs). Every wait here is bounded and says what it waited for.
import { spawn } from 'node:child_process';
import { sleep, until } from './broker.mjs';
import { REDIS_CLI, RedisServer, freePort, redisCommand } from './cluster.mjs';

export const SLOTS = 16384;
const NODE_TIMEOUT_MS = 1000;

// ---- the key space ----------------------------------------------------------------------

// CRC16 as Redis Cluster computes it: XMODEM (polynomial 0x1021, initial value 0, no reflection).
function crc16(bytes) {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

// The hash slot of a key or sharded channel: only the bytes between the first '{' and the first
// '}' after it are hashed, when there are any.
export function slotOf(key) {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf('{');
  if (open >= 0) {
    const close = bytes.indexOf('}', open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  return crc16(bytes) % SLOTS;
}

// ---- waiting ----------------------------------------------------------------------------

export { until }; // the tests of this lib import it from here

// A command that must succeed: a -ERR reply is thrown.
async function must(port, args, timeout) {
  const reply = await redisCommand(port, args, timeout);
  if (reply instanceof Error) throw new Error(`${args.join(' ')} on port ${port}: ${reply.message}`);
  return reply;
}

// "k1:v1\r\nk2:v2" (CLUSTER INFO, INFO) as an object of strings.
const infoFields = (text) => Object.fromEntries(String(text).split('\r\n')
  .filter((l) => l.includes(':') && !l.startsWith('#'))
  .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));

// One line of CLUSTER NODES: "<id> <ip:port@bus> <flags> <master-id|-> <ping> <pong> <epoch>
// <link> <slot ranges...>". Slots being migrated ("[...]") are not ranges and are skipped.
function parseNodeLine(line) {
  const [id, addr, flags, masterId, , , epoch, link, ...slots] = line.split(' ');
  const port = Number(addr.split('@')[0].split(':').pop());
  const ranges = slots.filter((s) => !s.startsWith('[')).map((s) => {
    const [from, to = from] = s.split('-').map(Number);
    return [from, to];
  });
  const flagSet = new Set(flags.split(','));
  return {
    id, port, flags: flagSet, masterId: masterId === '-' ? null : masterId, epoch: Number(epoch), link, ranges,
    master: flagSet.has('master'), failed: flagSet.has('fail') || flagSet.has('fail?'),
  };
}

// ---- the cluster --------------------------------------------------------------------------

export class RedisCluster {
  constructor() {
    this.servers = []; // RedisServer, in creation order (redis-cli makes the first 3 masters)
    this.ids = new Map(); // port -> node id, learnt once the cluster is created
  }

  live() { return this.servers.filter((s) => s.child); }

  serverOnPort(port) { return this.servers.find((s) => s.port === port); }

  // "127.0.0.1:P1,127.0.0.1:P2,..." of every node (masters first): a seed list for brokers.
  seeds(servers = this.servers) { return servers.map((s) => `127.0.0.1:${s.port}`).join(','); }

  // CLUSTER NODES as seen by server (default: the first live node that answers).
  async nodes(server = null) {
    const asked = server ? [server] : this.live();
    let lastError = null;
    for (const s of asked) {
      try {
        return String(await must(s.port, ['CLUSTER', 'NODES'])).trim().split('\n').map(parseNodeLine);
      } catch (e) { lastError = e; }
    }
    throw lastError ?? new Error('no live cluster node');
  }

  // Who owns each slot according to server: an array of SLOTS ports (0: nobody).
  async slotOwners(server) {
    const owners = new Array(SLOTS).fill(0);
    for (const [from, to, [, port]] of await must(server.port, ['CLUSTER', 'SLOTS'])) {
      for (let slot = from; slot <= to; slot++) owners[slot] = port;
    }
    return owners;
  }

  // The RedisServer that is master of slot now (as the first live node that answers sees it).
  async ownerOf(slot) {
    const master = (await this.nodes()).find((n) => n.master && !n.failed
      && n.ranges.some(([from, to]) => slot >= from && slot <= to));
    if (!master) throw new Error(`no master serves slot ${slot}`);
    return this.serverOnPort(master.port);
  }

  // Live masters, as RedisServers, in creation order.
  async masters() {
    const ports = new Set((await this.nodes()).filter((n) => n.master && !n.failed && n.ranges.length > 0).map((n) => n.port));
    return this.live().filter((s) => ports.has(s.port));
  }

  async idOf(server) {
    if (!this.ids.has(server.port)) this.ids.set(server.port, String(await must(server.port, ['CLUSTER', 'MYID'])));
    return this.ids.get(server.port);
  }

  // Until every live node says cluster_state:ok and names the same master for every slot, every
  // slot is served, and every live replica's link to its master is up.
  async waitHealthy(timeoutMs = 20000) {
    await until(async () => {
      const live = this.live();
      let reference = null;
      // A reason thrown counts as "not yet" and ends up in the timeout's message.
      for (const s of live) {
        const info = infoFields(await must(s.port, ['CLUSTER', 'INFO'], 1000));
        if (info.cluster_state !== 'ok') throw new Error(`port ${s.port}: cluster_state ${info.cluster_state}`);
        const owners = await this.slotOwners(s);
        const unserved = owners.indexOf(0);
        if (unserved >= 0) throw new Error(`port ${s.port}: slot ${unserved} unserved`);
        if (reference === null) reference = owners.join(',');
        if (owners.join(',') !== reference) throw new Error(`port ${s.port}: another slot map than port ${live[0].port}`);
        const repl = infoFields(await must(s.port, ['INFO', 'replication'], 1000));
        if (repl.role === 'slave' && repl.master_link_status !== 'up') throw new Error(`port ${s.port}: replica link ${repl.master_link_status}`);
      }
      return true;
    }, timeoutMs, 'cluster_state:ok and one slot map on every live node, replicas in sync');
  }

  // Moves slot from its owner to master `to` the way redis-cli --cluster reshard does. Options:
  // batch (keys per MIGRATE), pauseMs (a wait after the slot is marked MIGRATING and after each
  // batch: the window in which clients get ASK), onMigrating (awaited once the slot is marked,
  // before any key moves). Resolves with { from, keys } (the source and the keys moved).
  async migrateSlot(slot, to, { batch = 100, pauseMs = 0, onMigrating = null } = {}) {
    const from = await this.ownerOf(slot);
    if (from === to) throw new Error(`slot ${slot} is already on port ${to.port}`);
    const [fromId, toId] = [await this.idOf(from), await this.idOf(to)];
    await must(to.port, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId]);
    await must(from.port, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId]);
    if (onMigrating) await onMigrating();
    if (pauseMs) await sleep(pauseMs);
    let moved = 0;
    for (;;) {
      const keys = (await must(from.port, ['CLUSTER', 'GETKEYSINSLOT', slot, batch])).map(String);
      if (keys.length === 0) break;
      await must(from.port, ['MIGRATE', '127.0.0.1', to.port, '', '0', '5000', 'KEYS', ...keys], 10000);
      moved += keys.length;
      if (pauseMs) await sleep(pauseMs);
    }
    // The target first: it ends IMPORTING and bumps its epoch, so its claim wins everywhere.
    await must(to.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]);
    await must(from.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]);
    const others = (await this.nodes()).filter((n) => n.master && !n.failed && n.port !== to.port && n.port !== from.port);
    for (const n of others) await must(n.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]);
    await until(async () => {
      for (const s of this.live()) if ((await this.slotOwners(s))[slot] !== to.port) return false;
      return true;
    }, 10000, `every node to name port ${to.port} as owner of slot ${slot}`);
    return { from, keys: moved };
  }

  // SIGKILLs master and waits until one of its replicas serves its slots and the cluster is ok
  // again on every live node. Resolves with { promoted (RedisServer), killedAt (Date.now() at
  // the kill), ms (kill to healthy) }.
  //
  // cutReplicasMs: for that long before the kill, the master's replicas are stopped (SIGSTOP)
  // and their replication links cut (CLIENT KILL TYPE replica; what a kernel buffer held would
  // still reach them otherwise): what the master answers in that window no replica has, and the
  // promoted one comes up without it, as after a real replication lag. Only a write that WAIT
  // confirmed survives that. onCut: awaited once the links are cut (inside the window).
  async failover(master, { timeoutMs = 20000, cutReplicasMs = 0, onCut = null } = {}) {
    const id = await this.idOf(master);
    const before = await this.nodes();
    const replicaPorts = before.filter((n) => n.masterId === id).map((n) => n.port);
    if (replicaPorts.length === 0) throw new Error(`port ${master.port} has no replica to promote`);
    const replicas = replicaPorts.map((port) => this.serverOnPort(port));
    let killedAt;
    if (cutReplicasMs > 0) {
      for (const r of replicas) r.child.kill('SIGSTOP');
      try {
        await must(master.port, ['CLIENT', 'KILL', 'TYPE', 'replica']);
        const cutAt = Date.now();
        if (onCut) await onCut();
        await sleep(Math.max(0, cutReplicasMs - (Date.now() - cutAt)));
        killedAt = Date.now();
        await master.kill('SIGKILL');
      } finally {
        for (const r of replicas) r.child?.kill('SIGCONT');
      }
    } else {
      killedAt = Date.now();
      await master.kill('SIGKILL');
    }
    const promoted = await until(async () => {
      const view = await this.nodes();
      const p = view.find((n) => replicaPorts.includes(n.port) && n.master && !n.failed && n.ranges.length > 0);
      return p ? this.serverOnPort(p.port) : false;
    }, timeoutMs, `a replica of port ${master.port} (${replicaPorts.join(', ')}) to be promoted`);
    await this.waitHealthy(timeoutMs);
    return { promoted, killedAt, ms: Date.now() - killedAt };
  }

  // Starts a killed node again on its port and dir: it reads its nodes.conf, learns its slots
  // went to its replica, and rejoins as that one's replica (empty: no persistence).
  async restart(server, timeoutMs = 20000) {
    await server.spawn();
    await until(async () => {
      const me = (await this.nodes(server)).find((n) => n.flags.has('myself'));
      return !me.master;
    }, timeoutMs, `port ${server.port} to rejoin as a replica`);
    await this.waitHealthy(timeoutMs);
  }

  async stop() {
    for (const s of this.servers) await s.stop();
  }
}

// Runs redis-cli --cluster create over the servers (the first third become masters).
function clusterCreate(servers, replicas) {
  return new Promise((resolve, reject) => {
    const args = ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`),
      '--cluster-replicas', String(replicas), '--cluster-yes'];
    const child = spawn(REDIS_CLI, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && /All 16384 slots covered/.test(out)) resolve(out);
      else reject(new Error(`redis-cli --cluster create: code ${code}, signal ${signal}\n${out}`));
    });
  });
}

// Starts masters * (1 + replicas) nodes, creates the cluster, waits until it is healthy; on a
// failure half-way, stops what started. The bus port of each node is a free port of its own
// (--cluster-port), not port + 10000, which may be past 65535 for an ephemeral port.
export async function startRedisCluster({ masters = 3, replicas = 1 } = {}) {
  const cluster = new RedisCluster();
  // freePort() closes the port it found: never hand out one twice here.
  const taken = new Set();
  const port = async () => {
    for (;;) {
      const p = await freePort();
      if (!taken.has(p)) { taken.add(p); return p; }
    }
  };
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const server = new RedisServer(await port(), [
        '--cluster-enabled', 'yes', '--cluster-port', String(await port()),
        '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(NODE_TIMEOUT_MS),
        // A replica may always stand for election, however long it was cut off: tests kill on purpose.
        '--cluster-replica-validity-factor', '0',
        // A replica's first sync starts at once (the default waits 5 s for more replicas to share it).
        '--repl-diskless-sync-delay', '0',
        '--loglevel', 'notice',
      ]);
      cluster.servers.push(server);
      await server.spawn();
    }
    await clusterCreate(cluster.servers, replicas);
    await cluster.waitHealthy(30000);
    for (const s of cluster.servers) await cluster.idOf(s);
    return cluster;
  } catch (e) {
    for (const s of cluster.servers) e.message += `\n=== redis ${s.port} ===\n${s.log.split('\n').slice(-20).join('\n')}`;
    await cluster.stop();
    throw e;
  }
}
