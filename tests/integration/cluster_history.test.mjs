// History in a cluster (--history with --redis, docs/CLUSTER.md "History in Redis"): three nodes
// and the test's own Redis. Offsets are the same on every node, a client resumes on another node
// and after a node's restart, a raw PUBLISH is delivered but not kept, and Redis going away
// during a replay neither crashes a node nor stops live traffic.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { sleep } from './lib/broker.mjs';
import {
  PREFIX, RedisServer, clusterTest, linksUp, metricsText, pollReady, startNode, useSharedRedis,
} from './lib/cluster.mjs';
import { encodeFrame, tcpStomp, uniq, wsStomp } from './lib/stomp.mjs';
import { apiKeyFile, apiPost } from './lib/api.mjs';

useSharedRedis();

const { key: KEY, file: keyFile } = apiKeyFile();

const broker = {
  args: ['--history', '/topic/h.flat.#=100000', '--history', '/topic/h.#=100', '--api-key-file', keyFile],
};
const offsetOf = (m) => Number(m.headers['x-stream-offset']);
const channel = (dest) => `${PREFIX}:${dest}`;

// Publishes n messages (bodies prefix-0 ...) and waits for the last one's RECEIPT.
async function publishN(client, destination, n, prefix) {
  for (let i = 0; i < n - 1; i++) client.send('SEND', { destination }, `${prefix}-${i}`);
  await client.sendWithReceipt('SEND', { destination }, `${prefix}-${n - 1}`);
}

// POST /api/publish on node's WebSocket port: { status, json }. query: '?destination=...' or ''.
const apiPublish = (node, query, body, contentType = 'text/plain') =>
  apiPost(node.wsPort, KEY, query, body, { contentType });

// Waits until Redis keeps n entries for dest (the script runs after the publisher's RECEIPT).
async function waitKept(redis, dest, n, timeout = 5000) {
  const key = `${PREFIX}:{${dest}}:stream`;
  const deadline = Date.now() + timeout;
  let last;
  while ((last = await redis.command('XLEN', key)) !== n) {
    if (Date.now() > deadline) throw new Error(`XLEN ${key}: ${last}, expected ${n} within ${timeout} ms`);
    await sleep(20);
  }
}

clusterTest('publish on A, the same offsets live on A and replayed on C; resume by offset', { broker }, async ({ nodes, redis }) => {
  const [a, b, c] = nodes;
  const dest = `/topic/h.${uniq('a')}`;
  const live = await tcpStomp(a);
  await live.subscribe(dest, 'live');
  await redis.waitNumsub(channel(dest), 1);
  const pub = await tcpStomp(a);
  await publishN(pub, dest, 5, 'm');
  const onA = await live.messages(5, 'live');
  assert.deepEqual(onA.map(offsetOf), [1, 2, 3, 4, 5]);
  const epoch = onA[0].headers['x-stream-epoch'];
  assert.match(epoch, /^[0-9a-f]{8}$/);
  await waitKept(redis, dest, 5);

  const onC = await tcpStomp(c);
  const r = await onC.subscribe(dest, 'first', { 'x-stream-offset': 'first', receipt: 'r1' });
  assert.equal(r.headers['x-stream-recovered'], 'true');
  const replayed = await onC.messages(5, 'first');
  assert.deepEqual(replayed.map((m) => [offsetOf(m), m.headers['x-stream-epoch'], m.text]),
    onA.map((m) => [offsetOf(m), epoch, m.text]));

  const resumed = await onC.subscribe(dest, 'resume',
    { 'x-stream-offset': 'offset=4', 'x-stream-epoch': epoch, receipt: 'r2' });
  assert.equal(resumed.headers['x-stream-recovered'], 'true');
  assert.deepEqual((await onC.messages(2, 'resume')).map(offsetOf), [4, 5]);

  // A wrong epoch: not recovered, everything kept is replayed.
  const wrong = await onC.subscribe(dest, 'wrong',
    { 'x-stream-offset': 'offset=4', 'x-stream-epoch': '0123456789abcdef', receipt: 'r3' });
  assert.equal(wrong.headers['x-stream-recovered'], 'false');
  assert.deepEqual((await onC.messages(5, 'wrong')).map(offsetOf), [1, 2, 3, 4, 5]);

  // Live from B: offset 6 once on every subscription of C, and on A.
  await redis.waitNumsub(channel(dest), 2);
  const pubB = await tcpStomp(b);
  await pubB.sendWithReceipt('SEND', { destination: dest }, 'from-b');
  for (const sub of ['first', 'resume', 'wrong']) {
    const m = await onC.message(sub);
    assert.equal(offsetOf(m), 6);
    assert.equal(m.text, 'from-b');
  }
  assert.equal(offsetOf(await live.message('live')), 6);
  await onC.inbox.quiet(200, (f) => f.command === 'MESSAGE');

  // Wildcard last on B: each destination's newest.
  const other = `/topic/h.${uniq('b')}`;
  await publishN(pub, other, 2, 'o');
  await waitKept(redis, other, 2);
  const w = await tcpStomp(b);
  const wr = await w.subscribe('/topic/h.*', 'w', { 'x-stream-offset': 'last', receipt: 'r4' });
  assert.equal(wr.headers['x-stream-recovered'], 'true');
  const lasts = await w.messages(2, 'w');
  assert.deepEqual(lasts.map((m) => `${m.headers.destination}#${offsetOf(m)}`).sort(),
    [`${dest}#6`, `${other}#2`].sort());

  // A raw PUBLISH is delivered, without offset, and not kept.
  await redis.command('PUBLISH', channel(dest), 'raw');
  const raw = await live.message('live');
  assert.equal(raw.text, 'raw');
  assert.equal(raw.headers['x-stream-offset'], undefined);
  assert.equal(await redis.command('XLEN', `${PREFIX}:{${dest}}:stream`), 6);

  // The redis-cli command of docs/CLUSTER.md: the broker's own script (Redis has it under the
  // same SHA1), kept and delivered with the next offset.
  const doc = fs.readFileSync(new URL('../../docs/CLUSTER.md', import.meta.url), 'utf8');
  const script = doc.match(/```lua\n([\s\S]*?)```/)[1];
  const sha = crypto.createHash('sha1').update(script).digest('hex');
  assert.deepEqual(await redis.command('SCRIPT', 'EXISTS', sha), [1]);
  const key = (what) => `${PREFIX}:{${dest}}:${what}`;
  await redis.command('EVAL', script, '4', key('stream'), key('seq'), key('epoch'), `${PREFIX}:history`,
    channel(dest), 'from-redis-cli', '100', '0', '0123456789abcdef', dest);
  const viaCli = await live.message('live');
  assert.equal(viaCli.text, 'from-redis-cli');
  assert.equal(offsetOf(viaCli), 7);
  assert.equal(viaCli.headers['x-stream-epoch'], epoch);
  assert.equal(await redis.command('XLEN', key('stream')), 7);

  // Redis forgot the scripts (SCRIPT FLUSH): NOSCRIPT, then EVAL; numbering goes on.
  await redis.command('SCRIPT', 'FLUSH');
  await publishN(pub, dest, 2, 'after-flush');
  assert.deepEqual((await live.messages(2, 'live')).map(offsetOf), [8, 9]);
  await waitKept(redis, dest, 9);
});

clusterTest('no gap, no duplicate: a replay on C while A publishes flat out', { broker }, async ({ nodes }) => {
  const [a, , c] = nodes;
  const dest = `/topic/h.flat.${uniq('f')}`;
  const pub = await tcpStomp(a);
  await publishN(pub, dest, 20, 'p');
  let sent = 20;
  let stop = false;
  const flood = (async () => {
    while (!stop && sent < 2000) {
      for (let i = 0; i < 20; i++) pub.send('SEND', { destination: dest }, `p-${sent++}`);
      await sleep(1);
    }
    await pub.sendWithReceipt('SEND', { destination: dest }, `p-${sent++}`);
  })();
  await sleep(20);
  const sub = await tcpStomp(c);
  const r = await sub.subscribe(dest, 's', { 'x-stream-offset': 'first', receipt: 'r' });
  assert.equal(r.headers['x-stream-recovered'], 'true');
  await sleep(100);
  stop = true;
  await flood;
  const got = await sub.messages(sent, 's', 10000);
  assert.deepEqual(got.map(offsetOf), Array.from({ length: sent }, (_, i) => i + 1));
  await sub.inbox.quiet(200, (f) => f.command === 'MESSAGE');
});

clusterTest('A and B publish at once: one offset sequence, in order on every node', { broker }, async ({ nodes, redis }) => {
  const [a, b, c] = nodes;
  const dest = `/topic/h.flat.${uniq('two')}`;
  const subs = [];
  for (const n of [a, c]) {
    const cl = await tcpStomp(n);
    await cl.subscribe(dest, 's');
    subs.push(cl);
  }
  await redis.waitNumsub(channel(dest), 2);
  const pa = await tcpStomp(a);
  const pb = await tcpStomp(b);
  await Promise.all([publishN(pa, dest, 300, 'A'), publishN(pb, dest, 300, 'B')]);
  for (const cl of subs) {
    const got = await cl.messages(600, 's', 10000);
    assert.deepEqual(got.map(offsetOf), Array.from({ length: 600 }, (_, i) => i + 1));
    // Each publisher's own order holds inside the one sequence.
    for (const label of ['A', 'B']) {
      const mine = got.filter((m) => m.text.startsWith(`${label}-`)).map((m) => Number(m.text.slice(2)));
      assert.deepEqual(mine, Array.from({ length: 300 }, (_, i) => i));
    }
  }
});

clusterTest('a client resumes on B after B restarts', { broker }, async ({ nodes, redis }) => {
  const [a, b] = nodes;
  const dest = `/topic/h.${uniq('restart')}`;
  const pub = await tcpStomp(a);
  await publishN(pub, dest, 3, 'x');
  await waitKept(redis, dest, 3);
  const first = await tcpStomp(b);
  await first.subscribe(dest, 's', { 'x-stream-offset': 'first', receipt: 'r' });
  const seen = await first.messages(3, 's');
  const epoch = seen[0].headers['x-stream-epoch'];
  await first.disconnect();

  await b.stop();
  const b2 = await startNode(redis, 'nB', broker);
  nodes[1] = b2; // stopped by clusterTest
  await linksUp(b2);
  await publishN(pub, dest, 2, 'y');
  await waitKept(redis, dest, 5);
  const again = await tcpStomp(b2);
  const r = await again.subscribe(dest, 's',
    { 'x-stream-offset': 'offset=4', 'x-stream-epoch': epoch, receipt: 'r' });
  assert.equal(r.headers['x-stream-recovered'], 'true');
  const got = await again.messages(2, 's');
  assert.deepEqual(got.map((m) => [offsetOf(m), m.headers['x-stream-epoch'], m.text]),
    [[4, epoch, 'y-0'], [5, epoch, 'y-1']]);
});

// The calls of one Redis command so far (INFO commandstats), 0 when never called.
async function commandCalls(redis, name) {
  const info = await redis.command('INFO', 'commandstats');
  const m = new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(info);
  return m ? Number(m[1]) : 0;
}

clusterTest('the history index: one SADD per destination, again after FLUSHALL', { broker, ids: ['nA'], redis: () => RedisServer.start() }, async ({ nodes, redis }) => {
  const [a] = nodes;
  const base = uniq('idx');
  const pub = await tcpStomp(a);
  const before = await commandCalls(redis, 'sadd');
  await publishN(pub, `/topic/h.${base}.one`, 20, 'x');
  await waitKept(redis, `/topic/h.${base}.one`, 20);
  assert.equal(await commandCalls(redis, 'sadd') - before, 1);

  // Redis loses everything without the link dropping: the next publish starts a new stream and
  // indexes it again, so a wildcard replay still finds it.
  await redis.command('FLUSHALL');
  await publishN(pub, `/topic/h.${base}.one`, 1, 'after');
  await waitKept(redis, `/topic/h.${base}.one`, 1);
  const sub = await tcpStomp(a);
  const r = await sub.subscribe(`/topic/h.${base}.*`, 's', { 'x-stream-offset': 'last', receipt: 'r' });
  assert.equal(r.headers['x-stream-recovered'], 'true');
  const m = await sub.message('s');
  assert.deepEqual([m.text, offsetOf(m)], ['after-0', 1]);
});

clusterTest('a replayed SUBSCRIBE\'s RECEIPT comes before the RECEIPTs of the frames after it', { broker }, async ({ nodes, redis }) => {
  const [a, , c] = nodes;
  const dest = `/topic/h.${uniq('order')}`;
  await publishN(await tcpStomp(a), dest, 3, 'o');
  await waitKept(redis, dest, 3);
  // Redis answers the replay after a round trip or two; the frames after it need none. Over
  // TCP both frames come in one write; over WebSocket, in one message.
  for (const open of [tcpStomp, wsStomp]) {
    const cl = await open(c);
    const frames = Buffer.concat([
      encodeFrame('SUBSCRIBE', { destination: dest, id: 's', 'x-stream-offset': 'first', receipt: 'replay' }),
      encodeFrame('SEND', { destination: '/topic/no-policy', receipt: 'send' }, 'x'),
      encodeFrame('UNSUBSCRIBE', { id: 's', receipt: 'unsub' }),
    ].map((f) => Buffer.from(f)));
    cl.sendBytes(frames);
    await cl.inbox.take((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'unsub', 5000, 'the last RECEIPT');
    assert.deepEqual(cl.inbox.all.filter((f) => f.command !== 'CONNECTED').map((f) => f.headers['receipt-id'] ?? f.text),
      ['replay', 'o-0', 'o-1', 'o-2', 'send', 'unsub'], open.name);
    assert.equal(cl.inbox.all.find((f) => f.headers['receipt-id'] === 'replay').headers['x-stream-recovered'], 'true');
  }
});

clusterTest('the HTTP publish API on any node answers the offset Redis gave', { broker }, async ({ nodes }) => {
  const [a, b, c] = nodes;
  const dest = `/topic/h.${uniq('api')}`;
  const sub = await tcpStomp(c);
  await sub.subscribe(dest, 's');
  const first = await apiPublish(a, `?destination=${encodeURIComponent(dest)}`, 'one');
  assert.equal(first.status, 202);
  assert.equal(first.json.offset, 1);
  const r = await apiPublish(b, '', JSON.stringify({ messages: [
    { destination: dest, body: 'two' }, { destination: '/topic/no-policy', body: 'x' }, { destination: dest, body: 'three' },
  ] }), 'application/json');
  assert.equal(r.status, 202);
  assert.deepEqual(r.json.offsets, [2, null, 3]);
  const live = await sub.messages(3, 's');
  assert.deepEqual(live.map((m) => [m.text, offsetOf(m)]), [['one', 1], ['two', 2], ['three', 3]]);
});

clusterTest('an HTTP publish whose client leaves before Redis answers', { broker, ids: ['nA'] }, async ({ nodes, redis }) => {
  const [a] = nodes;
  const dest = `/topic/h.${uniq('gone')}`;
  await redis.command('CLIENT', 'PAUSE', '800', 'ALL'); // the script waits in Redis meanwhile
  const req = http.request({
    host: '127.0.0.1', port: a.wsPort, method: 'POST', agent: false,
    path: `/api/publish?destination=${encodeURIComponent(dest)}`,
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Length': 4 },
  });
  let answered = false;
  req.on('response', () => { answered = true; });
  const gone = new Promise((resolve) => { req.on('error', resolve); req.on('close', resolve); });
  req.end('left');
  await sleep(300);
  req.destroy();
  await gone;
  assert.equal(answered, false, 'answered while Redis was paused');
  // Once Redis runs again the first message is kept (offset 1) and the node goes on answering.
  const r = await apiPublish(a, `?destination=${encodeURIComponent(dest)}`, 'next');
  assert.equal(r.status, 202);
  assert.equal(r.json.offset, 2);
});

clusterTest('Redis restarted during a replay: no crash, then a new epoch and live traffic',
  { broker, redis: () => RedisServer.start() }, async ({ nodes, redis }) => {
    const [a, , c] = nodes;
    const dest = `/topic/h.${uniq('down')}`;
    const pub = await tcpStomp(a);
    await publishN(pub, dest, 50, 'd');
    await waitKept(redis, dest, 50);
    const before = await tcpStomp(c);
    await before.subscribe(dest, 'b', { 'x-stream-offset': 'last', receipt: 'r0' });
    const oldEpoch = (await before.message('b')).headers['x-stream-epoch'];

    // Replays in flight while Redis dies: each is answered, recovered or not.
    const subs = [];
    for (let i = 0; i < 5; i++) {
      const cl = await tcpStomp(c);
      cl.send('SUBSCRIBE', { destination: dest, id: 's', 'x-stream-offset': 'first', receipt: `r${i}` });
      subs.push(cl);
    }
    await redis.kill();
    for (const cl of subs) {
      const r = await cl.inbox.take((f) => f.command === 'RECEIPT', 5000, 'the replay RECEIPT');
      if (r.headers['x-stream-recovered'] === 'true') {
        assert.deepEqual((await cl.messages(50, 's')).map(offsetOf), Array.from({ length: 50 }, (_, i) => i + 1));
      } else {
        assert.equal(r.headers['x-stream-recovered'], 'false');
      }
    }

    // Redis down: a replay answers false at once, and A's own subscribers still get A's messages.
    const down = await tcpStomp(c);
    const r = await down.subscribe(dest, 'd', { 'x-stream-offset': 'first', receipt: 'rd' });
    assert.equal(r.headers['x-stream-recovered'], 'false');
    const localSub = await tcpStomp(a);
    await localSub.subscribe(dest, 'l');
    pub.send('SEND', { destination: dest }, 'while-down');
    const m = await localSub.message('l');
    assert.equal(m.text, 'while-down');
    assert.equal(m.headers['x-stream-offset'], undefined);
    // The HTTP API answers at once, without an offset: the message was delivered, not kept.
    const api = await apiPublish(a, `?destination=${encodeURIComponent(dest)}`, 'api-while-down');
    assert.equal(api.status, 202);
    assert.equal(api.json.offset, null);
    assert.equal((await localSub.message('l')).text, 'api-while-down');
    assert.match(await metricsText(a), /^stompws_cluster_history_not_retained_total [1-9]/m);
    assert.match(await metricsText(c), /^stompws_cluster_history_replays_unreachable_total [1-9]/m);

    // Redis back, empty: a new epoch, offsets from 1, delivered across nodes again.
    await redis.spawn();
    await Promise.all(nodes.map((n) => pollReady(n, 15000)));
    await redis.waitNumsub(channel(dest), 2, 10000);
    await pub.sendWithReceipt('SEND', { destination: dest }, 'after');
    const after = await before.inbox.take((f) => f.command === 'MESSAGE' && f.text === 'after', 5000, 'live after restart');
    assert.equal(offsetOf(after), 1);
    assert.notEqual(after.headers['x-stream-epoch'], oldEpoch);
    const resume = await tcpStomp(c);
    const rr = await resume.subscribe(dest, 'x',
      { 'x-stream-offset': 'offset=51', 'x-stream-epoch': oldEpoch, receipt: 'rx' });
    assert.equal(rr.headers['x-stream-recovered'], 'false');
    assert.equal((await resume.message('x')).text, 'after');
  });

// GET /sse on a cluster (docs/SSE.md): a reader of an exact destination and a wildcard on A gets
// the kept messages, leaves, and comes back on C with the last id: as Last-Event-ID while B
// published: exactly what it missed, then live, nothing twice.
clusterTest('SSE: Last-Event-ID resumes on another node, exact and wildcard destinations', { broker }, async ({ nodes, redis }) => {
  const [a, b, c] = nodes;
  const { sseOpen } = await import('./lib/sse.mjs');
  const open = async (node, headers = {}) => {
    const query = 'destination=/topic/h.sse.x&destination=/topic/h.sse.w.*&x-stream-offset=first';
    const r = await sseOpen(node.wsPort, `/sse?${query}`, { headers });
    node.track({ close: () => r.close() });
    assert.equal(r.status, 200, r.raw);
    return r;
  };
  const bodies = (events) => events.map((e) => JSON.parse(e.data).body).sort();
  const pub = await tcpStomp(b);
  await publishN(pub, '/topic/h.sse.x', 1, 'x');
  await publishN(pub, '/topic/h.sse.w.1', 1, 'w1');
  await waitKept(redis, '/topic/h.sse.x', 1);
  await waitKept(redis, '/topic/h.sse.w.1', 1);
  const first = await open(a);
  const got = await first.eventsN(2, 10000);
  assert.deepEqual(bodies(got), ['w1-0', 'x-0']);
  first.close();

  await publishN(pub, '/topic/h.sse.x', 1, 'x-away');
  await publishN(pub, '/topic/h.sse.w.1', 1, 'w1-away');
  await publishN(pub, '/topic/h.sse.w.2', 1, 'w2-away');
  await waitKept(redis, '/topic/h.sse.w.2', 1);
  const back = await open(c, { 'Last-Event-ID': got[1].id });
  assert.deepEqual(bodies(await back.eventsN(3, 10000)), ['w1-away-0', 'w2-away-0', 'x-away-0']);
  await publishN(pub, '/topic/h.sse.w.2', 1, 'live');
  assert.equal(JSON.parse((await back.event(10000)).data).body, 'live-0');
  await sleep(300);
  assert.equal(back.events.length, 0, 'nothing twice');
});
