// The Redis Cluster of the tests' own (lib/rediscluster.mjs), checked alone with no broker, so
// that cluster_rediscluster.test.mjs can trust it: Redis agrees with slotOf(), the cluster comes
// up with 3 masters and a replica each, a slot migrates with its keys (ASK while it moves, MOVED
// after), and a SIGKILLed master's replica takes over with the writes WAIT confirmed and without
// one made while it was cut off (the lag cluster_rediscluster.test.mjs makes under a queue load).
//
// One cluster for the whole file (six redis-server processes), stopped even on failure. The
// figures are printed: "rediscluster-lib {json}".
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test, before, after } from 'node:test';
import { REDIS_CLI, REDIS_SERVER, redisCommand } from './lib/cluster.mjs';
import { SLOTS, slotOf, startRedisCluster } from './lib/rediscluster.mjs';

const missing = [REDIS_SERVER, REDIS_CLI].find((f) => !fs.existsSync(f));
const skip = missing ? `${missing} not found (apt install redis-server redis-tools)` : false;

let cluster = null;
before(async () => { if (!skip) cluster = await startRedisCluster(); });
after(async () => { if (cluster) await cluster.stop(); });

const report = (name, figures) => console.log(`rediscluster-lib ${name} ${JSON.stringify(figures)}`);

test('slotOf agrees with CLUSTER KEYSLOT, hash tags included', { skip, timeout: 30000 }, async () => {
  assert.equal(slotOf('foo'), 12182);
  const names = ['foo', 'bar', '', '{', '}', '{}', 'a{}b', 'foo{}{bar}', 'foo{{bar}}zap', 'foo{bar}{zap}',
    '{user1000}.following', 'user1000', 'stompws:/topic/news.eu', 'stompws:{q}/queue/jobs',
    'stompws:{eu}/queue/{eu}.orders', 'héllo wörld', '\u{1F600}{\u{1F600}}'];
  for (let i = 0; i < 200; i++) names.push(`/topic/t${i}.${(i * 7919) % 1000}`);
  const [first] = cluster.live();
  for (const name of names) {
    assert.equal(slotOf(name), await redisCommand(first.port, ['CLUSTER', 'KEYSLOT', name]), `slot of ${JSON.stringify(name)}`);
  }
  assert.equal(slotOf('{user1000}.following'), slotOf('user1000'));
});

test('the cluster: 3 masters owning every slot, a replica each', { skip, timeout: 30000 }, async () => {
  const nodes = await cluster.nodes();
  const masters = nodes.filter((n) => n.master);
  assert.equal(masters.length, 3);
  assert.equal(masters.reduce((sum, m) => sum + m.ranges.reduce((s, [a, b]) => s + b - a + 1, 0), 0), SLOTS);
  for (const m of masters) assert.equal(nodes.filter((n) => n.masterId === m.id).length, 1, `one replica of ${m.port}`);
  const owners = new Set();
  for (const slot of [0, 8000, SLOTS - 1]) owners.add((await cluster.ownerOf(slot)).port);
  assert.equal(owners.size, 3, 'the slots spread over the 3 masters');
  assert.equal(cluster.seeds().split(',').length, 6);
});

test('migrateSlot moves a slot with its keys: ASK while it moves, MOVED after', { skip, timeout: 60000 }, async () => {
  const tag = '{mig}';
  const slot = slotOf(tag);
  const from = await cluster.ownerOf(slot);
  const to = (await cluster.masters()).find((m) => m !== from);
  const keys = Array.from({ length: 250 }, (_, i) => `${tag}k${i}`);
  for (const k of keys) assert.equal(await redisCommand(from.port, ['SET', k, `v-${k}`]), 'OK');
  await redisCommand(from.port, ['XADD', `${tag}stream`, '*', 'f', 'v']);
  await redisCommand(from.port, ['XGROUP', 'CREATE', `${tag}stream`, 'g', '0']);
  let ask = null;
  let servedDuring = null;
  const started = Date.now();
  const { keys: moved } = await cluster.migrateSlot(slot, to, {
    batch: 50,
    onMigrating: async () => {
      // A key the source still has is served there; a key it has not is for the target: ASK.
      servedDuring = String(await redisCommand(from.port, ['GET', keys[0]]));
      ask = await redisCommand(from.port, ['SET', `${tag}new`, 'x']);
    },
  });
  const ms = Date.now() - started;
  assert.equal(servedDuring, `v-${keys[0]}`);
  assert.ok(ask instanceof Error, `an error reply, got ${ask}`);
  assert.equal(ask.message, `ASK ${slot} 127.0.0.1:${to.port}`);
  assert.equal(moved, keys.length + 1);
  assert.equal(cluster.serverOnPort((await cluster.ownerOf(slot)).port), to);
  const movedReply = await redisCommand(from.port, ['GET', keys[1]]);
  assert.equal(movedReply.message, `MOVED ${slot} 127.0.0.1:${to.port}`);
  for (const k of keys) assert.equal(String(await redisCommand(to.port, ['GET', k])), `v-${k}`);
  const groups = await redisCommand(to.port, ['XINFO', 'GROUPS', `${tag}stream`]);
  assert.equal(String(groups[0][1]), 'g', 'the consumer group moved with the stream');
  await cluster.waitHealthy();
  report('migrate', { slot, keys: moved, ms });
});

test('failover: SIGKILL of a lagging master, its replica takes the slots with what WAIT confirmed only', { skip, timeout: 90000 }, async () => {
  const tag = '{fo}';
  const slot = slotOf(tag);
  const master = await cluster.ownerOf(slot);
  for (let i = 0; i < 100; i++) await redisCommand(master.port, ['SET', `${tag}${i}`, String(i)]);
  assert.equal(await redisCommand(master.port, ['WAIT', '1', '2000']), 1, 'the replica has every write');
  // Written while the replica is cut off: WAIT says no replica has it, and the failover loses it.
  let lagWait = null;
  const { promoted, ms } = await cluster.failover(master, {
    cutReplicasMs: 400,
    onCut: async () => {
      await redisCommand(master.port, ['SET', `${tag}lag`, 'x']);
      lagWait = await redisCommand(master.port, ['WAIT', '1', '100']);
    },
  });
  assert.equal(lagWait, 0, 'WAIT: no replica took the write made in the cut');
  assert.notEqual(promoted, master);
  assert.equal(await cluster.ownerOf(slot), promoted);
  for (let i = 0; i < 100; i++) assert.equal(String(await redisCommand(promoted.port, ['GET', `${tag}${i}`])), String(i));
  assert.equal(await redisCommand(promoted.port, ['GET', `${tag}lag`]), null, 'the unconfirmed write is lost');
  const restartedAt = Date.now();
  await cluster.restart(master);
  const me = (await cluster.nodes(master)).find((n) => n.flags.has('myself'));
  assert.equal(me.masterId, await cluster.idOf(promoted), 'the old master is the new one\'s replica');
  assert.equal(String(await redisCommand(master.port, ['ROLE']).then((r) => r[0])), 'slave');
  report('failover', { killToHealthyMs: ms, rejoinMs: Date.now() - restartedAt });
});
