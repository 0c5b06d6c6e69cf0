// User destinations (docs/ARCHITECTURE.md, "User destinations"): a session SUBSCRIBEs to
// /user/queue/NAME or /user/topic/NAME and receives what is sent to /user/LOGIN/queue/NAME (or
// topic) for its own login, on all of that user's sessions, with the destination it subscribed
// to. Covered here: one node, --threads 2 (sessions on both loops), three nodes through Redis,
// stompjs and raw STOMP clients (stomp.py: python/test_stomppy.py), the ACL (sending needs write
// permission, a user reads only their own), anonymous sessions, malformed names, /topic/
// wildcards that must not see /user/ traffic, and the HTTP publish API.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { brokerTest, writeUsersFile } from './lib/broker.mjs';
import { PREFIX, clusterTest, useSharedRedis } from './lib/cluster.mjs';
import { tcpStomp, wsStomp } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';
import { apiKeyFile, apiPublishTo } from './lib/api.mjs';

useSharedRedis();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-user-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const users = writeUsersFile(path.join(dir, 'users'), {
  alice: 'alice-pw', bob: 'bob-pw', svc: 'svc-pw', 'j.doe': 'j.doe-pw', 'a/b': 'a/b-pw',
});
// svc (a backend) may write every user's queue and topic destinations; alice may write bob's
// "chat" queue only; nobody else may write any /user/ destination.
const acl = path.join(dir, 'acl');
fs.writeFileSync(acl, [
  'svc     write       /user/*/queue/#',
  'svc     write       /user/*/topic/#',
  'alice   write       /user/bob/queue/chat',
  '*       read,write  /topic/#',
  '',
].join('\n'));
const { key: apiKey, file: keyFile } = apiKeyFile();
const authArgs = ['--users', users, '--acl', acl, '--api-key-file', keyFile];

const login = (name, pw = `${name}-pw`) => ({ login: name, passcode: pw });
const tcpAs = (broker, name, label = name) => tcpStomp(broker, { label, headers: login(name) });
const wsAs = (broker, name, label = name) => wsStomp(broker, { label, headers: login(name) });
const jsAs = (broker, name) => stompjs(broker, { label: `js-${name}`, connectHeaders: login(name) });

// Expects the next frame of client c to be an ERROR whose message matches re, then the close.
async function refusedWith(c, re) {
  const err = await c.error(5000);
  assert.match(`${err.headers.message} ${err.text ?? ''}`, re);
  await c.closed(5000);
}

// POST /api/publish?destination=... with the key; resolves { status, json }.
const apiPublish = (broker, destination, body) => apiPublishTo(broker.wsPort, apiKey, destination, body);

// ---- one node ---------------------------------------------------------------------------------

brokerTest('every session of the user gets a /user/ message with the destination it subscribed to; others none',
  { args: authArgs }, async (broker) => {
    const js = await jsAs(broker, 'alice');
    const jsSub = await js.subscribe('/user/queue/updates');
    const tcp = await tcpAs(broker, 'alice', 'alice-tcp');
    await tcp.subscribe('/user/queue/updates', 'q');
    await tcp.subscribe('/user/topic/news', 't');
    await tcp.subscribe('/user/alice/queue/updates', 'full'); // its own login spelled out
    const bob = await tcpAs(broker, 'bob');
    await bob.subscribe('/user/queue/updates', 'q');
    await bob.subscribe('/user/topic/news', 't');
    const wild = await tcpAs(broker, 'svc', 'wildcard');
    await wild.subscribe('/topic/#', 'w'); // a /topic/ pattern never matches a /user/ route

    const svc = await tcpAs(broker, 'svc', 'svc-pub');
    await svc.sendWithReceipt('SEND', { destination: '/user/alice/queue/updates' }, 'u1');
    await svc.sendWithReceipt('SEND', { destination: '/user/alice/topic/news' }, 'n1');

    const m = await js.message(jsSub);
    assert.equal(m.body, 'u1');
    assert.equal(m.headers.destination, '/user/queue/updates');
    const q = await tcp.message('q');
    assert.equal(q.text, 'u1');
    assert.equal(q.headers.destination, '/user/queue/updates');
    const full = await tcp.message('full');
    assert.equal(full.text, 'u1');
    assert.equal(full.headers.destination, '/user/alice/queue/updates');
    assert.equal(full.headers['message-id'], q.headers['message-id'], 'one message, two subscriptions');
    const t = await tcp.message('t');
    assert.equal(t.text, 'n1');
    assert.equal(t.headers.destination, '/user/topic/news');

    assert.equal(await bob.inbox.quiet(300, (f) => f.command === 'MESSAGE'), null, 'bob gets none of alice\'s');
    assert.equal(await wild.inbox.quiet(100, (f) => f.command === 'MESSAGE'), null, '/topic/# gets no /user/ message');
    assert.equal(await tcp.inbox.quiet(100, (f) => f.command === 'MESSAGE'), null, 'one copy per subscription');

    // The same user's "queue" reaches every subscribed session, not one of them.
    await svc.sendWithReceipt('SEND', { destination: '/user/bob/queue/updates' }, 'b1');
    assert.equal((await bob.message('q')).text, 'b1');
    assert.equal(await tcp.inbox.quiet(200, (f) => f.command === 'MESSAGE'), null);
  });

brokerTest('a login with a dot is addressable; a login with a slash is refused /user/ with a reason',
  { args: authArgs }, async (broker) => {
    const jd = await tcpAs(broker, 'j.doe');
    await jd.subscribe('/user/queue/in', 's');
    const svc = await tcpAs(broker, 'svc');
    await svc.sendWithReceipt('SEND', { destination: '/user/j.doe/queue/in' }, 'hi');
    const m = await jd.message('s');
    assert.equal(m.text, 'hi');
    assert.equal(m.headers.destination, '/user/queue/in');

    const ab = await tcpAs(broker, 'a/b', 'a-slash-b');
    ab.send('SUBSCRIBE', { id: 's', destination: '/user/queue/in' });
    await refusedWith(ab, /login cannot be addressed/);
  });

brokerTest('ACL: sending to /user/ needs write permission; nobody subscribes to another user\'s',
  { args: authArgs }, async (broker) => {
    const bob = await tcpAs(broker, 'bob');
    await bob.subscribe('/user/queue/chat', 'c');
    const alice = await tcpAs(broker, 'alice');
    await alice.sendWithReceipt('SEND', { destination: '/user/bob/queue/chat' }, 'hello bob');
    assert.equal((await bob.message('c')).text, 'hello bob');

    alice.send('SEND', { destination: '/user/bob/queue/other' }, 'x');
    await refusedWith(alice, /permission denied: cannot write \(SEND to\) \/user\/bob\/queue\/other/);

    const bob2 = await tcpAs(broker, 'bob', 'bob-writes-own');
    bob2.send('SEND', { destination: '/user/bob/queue/chat' }, 'x'); // not even their own: no grant
    await refusedWith(bob2, /permission denied: cannot write/);

    const peek = await tcpAs(broker, 'alice', 'alice-peeks');
    peek.send('SUBSCRIBE', { id: 'p', destination: '/user/bob/queue/chat' });
    await refusedWith(peek, /cannot SUBSCRIBE to another user's destination/);

    const js = await jsAs(broker, 'alice');
    await assert.rejects(js.subscribe('/user/bob/topic/x'), /another user's destination/);
  });

brokerTest('anonymous sessions get an ERROR that says /user/ needs a login', { args: ['--acl', acl] }, async (broker) => {
  const sub = await tcpStomp(broker, { label: 'anon-sub' });
  sub.send('SUBSCRIBE', { id: 's', destination: '/user/queue/x' });
  await refusedWith(sub, /anonymous sessions cannot use \/user\//);
  const pub = await wsStomp(broker, { label: 'anon-pub' });
  pub.send('SEND', { destination: '/user/alice/queue/x' }, 'x');
  await refusedWith(pub, /anonymous sessions cannot use \/user\//);
});

brokerTest('malformed /user/ destinations are refused with the form expected', { args: authArgs }, async (broker) => {
  const cases = [
    ['SEND', '/user/alice/foo/x', /invalid user destination .*expected \/user\/LOGIN\/queue\/NAME/],
    ['SEND', '/user/alice/queue/', /invalid user destination .*name must be/],
    ['SEND', '/user/alice', /invalid user destination/],
    ['SEND', '/user//queue/x', /invalid user destination .*login must be/],
    ['SUBSCRIBE', '/user/queue/', /invalid user destination .*name must be/],
    ['SUBSCRIBE', '/user/whatever', /invalid user destination/],
    // Too long for the broker's routes: the refusal names the limit.
    ['SEND', `/user/alice/queue/${'x'.repeat(1100)}`, /invalid user destination .*too long \(destinations are at most 1023 bytes\)/],
    ['SUBSCRIBE', `/user/queue/${'x'.repeat(1100)}`, /invalid user destination .*too long \(destinations are at most 1023 bytes\)/],
  ];
  for (const [verb, destination, re] of cases) {
    const c = await tcpAs(broker, 'svc', `${verb} ${destination}`);
    c.send(verb, { id: 's', destination }, verb === 'SEND' ? 'x' : '');
    await refusedWith(c, re);
  }
  // The broker is still fine.
  const alice = await tcpAs(broker, 'alice');
  await alice.subscribe('/user/queue/ok', 's');
});

brokerTest('the HTTP publish API accepts /user/LOGIN/ destinations and refuses malformed ones',
  { args: authArgs }, async (broker) => {
    const js = await jsAs(broker, 'alice');
    const sub = await js.subscribe('/user/topic/alerts');
    const r = await apiPublish(broker, '/user/alice/topic/alerts', 'from a backend');
    assert.equal(r.status, 202, r.text);
    const m = await js.message(sub);
    assert.equal(m.body, 'from a backend');
    assert.equal(m.headers.destination, '/user/topic/alerts');
    assert.equal(m.headers['message-id'], r.json.id);

    const bad = await apiPublish(broker, '/user/topic/alerts', 'x'); // login "topic", then "alerts"
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.json.error, /invalid user destination/);
  });

brokerTest('--threads 2: a /user/ message reaches the user\'s sessions on both loops',
  { args: [...authArgs, '--threads', '2'] }, async (broker) => {
    const alices = [];
    for (let i = 0; i < 4; i++) { // connections go to the loops in turn: both loops hold some
      const c = await tcpAs(broker, 'alice', `alice-${i}`);
      await c.subscribe('/user/queue/updates', 'q');
      alices.push(c);
    }
    const bob = await tcpAs(broker, 'bob');
    await bob.subscribe('/user/queue/updates', 'q');
    const svc = await tcpAs(broker, 'svc');
    for (let i = 0; i < 20; i++) svc.send('SEND', { destination: '/user/alice/queue/updates' }, `m${i}`);
    await svc.sendWithReceipt('SEND', { destination: '/topic/fence' }, 'fence');
    for (const a of alices) {
      const got = await a.messages(20, 'q', 5000);
      assert.deepEqual(got.map((f) => f.text), Array.from({ length: 20 }, (_, i) => `m${i}`));
      assert.ok(got.every((f) => f.headers.destination === '/user/queue/updates'));
    }
    assert.equal(await bob.inbox.quiet(300, (f) => f.command === 'MESSAGE'), null);
  });

// ---- three nodes ------------------------------------------------------------------------------

clusterTest('3 nodes: alice on A and C gets a message sent on B, bob gets none', {
  timeout: 40000, broker: { args: authArgs },
}, async ({ nodes, redis }) => {
  const [a, b, c] = nodes;
  const aliceA = await jsAs(a, 'alice');
  const subA = await aliceA.subscribe('/user/queue/updates');
  const aliceC = await tcpAs(c, 'alice');
  await aliceC.subscribe('/user/queue/updates', 'q');
  const bobA = await tcpAs(a, 'bob');
  await bobA.subscribe('/user/queue/updates', 'q');
  const bobB = await wsAs(b, 'bob');
  await bobB.subscribe('/user/queue/updates', 'q');
  // One Redis subscription per node with alice's sessions: A and C.
  await redis.waitNumsub(`${PREFIX}:/user/alice/queue/updates`, 2);

  const svc = await tcpAs(b, 'svc');
  await svc.sendWithReceipt('SEND', { destination: '/user/alice/queue/updates' }, 'for alice');
  const m = await aliceA.message(subA, 10000);
  assert.equal(m.body, 'for alice');
  assert.equal(m.headers.destination, '/user/queue/updates');
  const q = await aliceC.message('q', 10000);
  assert.equal(q.text, 'for alice');
  assert.equal(q.headers.destination, '/user/queue/updates');
  for (const bob of [bobA, bobB]) assert.equal(await bob.inbox.quiet(300, (f) => f.command === 'MESSAGE'), null);

  // And the HTTP API of a node without alice reaches her on the others.
  const r = await apiPublish(b, '/user/alice/queue/updates', 'api');
  assert.equal(r.status, 202, r.text);
  assert.equal((await aliceA.message(subA, 10000)).body, 'api');
  assert.equal((await aliceC.message('q', 10000)).text, 'api');
});
