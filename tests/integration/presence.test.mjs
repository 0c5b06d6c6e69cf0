// Presence (docs/PRESENCE.md): --presence PATTERN tracks who is subscribed to the matching /topic/
// destinations. A SUBSCRIBE to /presence/topic/NAME gets a snapshot, then one MESSAGE per join or
// leave; GET /api/presence?destination=D answers {destination, count, users, truncated}. Covered
// here on one node (one loop and --threads 2): the snapshot and the order of events, a user with
// several sessions joining and leaving once, a session that closes without UNSUBSCRIBE, wildcard
// and anonymous subscriptions (not counted), the ACL on /presence/, untracked names, and the HTTP
// route with its errors and presence.max_users.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { brokerTest, writeUsersFile } from './lib/broker.mjs';
import { tcpStomp } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';
import { apiKeyFile } from './lib/api.mjs';
import { httpCall } from './lib/http.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-presence-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const users = writeUsersFile(path.join(dir, 'users'), {
  alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw', dave: 'dave-pw', eve: 'eve-pw',
});
// eve may read /topic/room.* but not /topic/secret.*; everyone else reads and writes everything.
const acl = path.join(dir, 'acl');
fs.writeFileSync(acl, [
  'eve     read        /topic/room.#',
  'alice   read,write  /topic/#',
  'bob     read,write  /topic/#',
  'carol   read,write  /topic/#',
  'dave    read,write  /topic/#',
  '',
].join('\n'));
const { key: apiKey, file: keyFile } = apiKeyFile();
const baseArgs = ['--users', users, '--acl', acl, '--api-key-file', keyFile,
  '--presence', '/topic/room.*', '--presence', '/topic/secret.*'];

const login = (name) => ({ login: name, passcode: `${name}-pw` });
const tcpAs = (broker, name, label = name) => tcpStomp(broker, { label, headers: login(name) });
const jsAs = (broker, name) => stompjs(broker, { label: `js-${name}`, connectHeaders: login(name) });

// GET /api/presence{query} on the broker's WebSocket port: httpCall's answer.
const presenceGet = (broker, query, { key = apiKey, method = 'GET' } = {}) =>
  httpCall(broker.wsPort, method, `/api/presence${query}`, { key });
const presenceOf = (broker, dest) => presenceGet(broker, `?destination=${encodeURIComponent(dest)}`);

// The next presence event of a stompjs subscription, as { event, user, count, body }.
async function nextEvent(js, sub, timeout = 5000) {
  const m = await js.message(sub, timeout);
  return {
    event: m.headers['x-presence-event'],
    user: m.headers['x-presence-user'],
    count: Number(m.headers['x-presence-count']),
    body: m.body,
  };
}

async function refusedWith(c, re) {
  const err = await c.error(5000);
  assert.match(`${err.headers.message} ${err.text ?? ''}`, re);
  await c.closed(5000);
}

brokerTest('a /presence/ subscriber gets the snapshot, then each join and leave in order, with the count',
  { args: baseArgs }, async (broker) => {
    const alice = await tcpAs(broker, 'alice');
    await alice.subscribe('/topic/room.1', 'r');

    const watcher = await jsAs(broker, 'dave');
    const sub = await watcher.subscribe('/presence/topic/room.1');
    const snap = await watcher.message(sub);
    assert.equal(snap.headers['x-presence-event'], 'snapshot');
    assert.equal(snap.headers['x-presence-count'], '1');
    assert.equal(snap.headers.destination, '/presence/topic/room.1');
    assert.deepEqual(JSON.parse(snap.body), { count: 1, users: ['alice'], truncated: false });

    const bob = await tcpAs(broker, 'bob');
    await bob.subscribe('/topic/room.1', 'r');
    const carol = await tcpAs(broker, 'carol');
    await carol.subscribe('/topic/room.1', 'r');
    await bob.sendWithReceipt('UNSUBSCRIBE', { id: 'r' });
    await alice.disconnect(); // a session that goes: its subscription leaves with it

    const events = [];
    for (let i = 0; i < 4; i++) events.push(await nextEvent(watcher, sub));
    assert.deepEqual(events.map(({ event, user, count }) => [event, user, count]), [
      ['join', 'bob', 2], ['join', 'carol', 3], ['leave', 'bob', 2], ['leave', 'alice', 1],
    ]);
    const answer = await presenceOf(broker, '/topic/room.1');
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(answer.json, { destination: '/topic/room.1', count: 1, users: ['carol'], truncated: false });
    // Events of other destinations do not reach this subscription.
    await bob.subscribe('/topic/room.2', 'r2');
    assert.equal(await watcher.inbox.quiet(300, (f) => f.command === 'MESSAGE'), null);
  });

brokerTest('a user with several sessions and subscriptions joins once and leaves once',
  { args: baseArgs }, async (broker) => {
    const watcher = await jsAs(broker, 'dave');
    const sub = await watcher.subscribe('/presence/topic/room.x');
    assert.deepEqual(JSON.parse((await watcher.message(sub)).body), { count: 0, users: [], truncated: false });

    const a1 = await tcpAs(broker, 'alice', 'alice-1');
    const a2 = await tcpAs(broker, 'alice', 'alice-2');
    await a1.subscribe('/topic/room.x', 'one');
    await a1.subscribe('/topic/room.x', 'two'); // a second subscription of the same session
    await a2.subscribe('/topic/room.x', 'one');
    assert.deepEqual(await nextEvent(watcher, sub), { event: 'join', user: 'alice', count: 1, body: '' });
    assert.equal(await watcher.inbox.quiet(300, (f) => f.command === 'MESSAGE'), null, 'one join only');
    assert.equal((await presenceOf(broker, '/topic/room.x')).json.count, 1);

    await a1.sendWithReceipt('UNSUBSCRIBE', { id: 'one' });
    a1.destroy(); // gone without DISCONNECT: its other subscription goes too
    await a1.closed();
    assert.equal(await watcher.inbox.quiet(300, (f) => f.command === 'MESSAGE'), null, 'alice is still there');
    await a2.sendWithReceipt('UNSUBSCRIBE', { id: 'one' });
    assert.deepEqual(await nextEvent(watcher, sub), { event: 'leave', user: 'alice', count: 0, body: '' });
    assert.equal(await watcher.inbox.quiet(200, (f) => f.command === 'MESSAGE'), null, 'one leave only');
  });

brokerTest('wildcard subscriptions and anonymous sessions are not counted; untracked names have no presence',
  { args: ['--presence', '/topic/room.*', '--api-key-file', keyFile] }, async (broker) => {
    const watcher = await stompjs(broker, { label: 'watcher' });
    const sub = await watcher.subscribe('/presence/topic/room.1');
    assert.equal((await watcher.message(sub)).headers['x-presence-count'], '0');
    const anon = await tcpStomp(broker, { label: 'anon' });
    await anon.subscribe('/topic/room.*', 'w'); // a pattern: present on no name
    await anon.subscribe('/topic/room.1', 'e'); // anonymous: no user to count
    assert.equal(await watcher.inbox.quiet(300, (f) => f.command === 'MESSAGE'), null);
    assert.deepEqual((await presenceOf(broker, '/topic/room.1')).json,
      { destination: '/topic/room.1', count: 0, users: [], truncated: false });

    anon.send('SUBSCRIBE', { id: 'p', destination: '/presence/topic/other' });
    await refusedWith(anon, /no presence events for '\/presence\/topic\/other'.*presence\.pattern/);
    const wild = await tcpStomp(broker, { label: 'wild' });
    wild.send('SUBSCRIBE', { id: 'p', destination: '/presence/topic/room.*' });
    await refusedWith(wild, /no presence events/);
    const untracked = await presenceOf(broker, '/topic/other');
    assert.equal(untracked.status, 404, untracked.text);
    assert.match(untracked.json.error, /no presence\.pattern matches it/);
  });

// A tracked name too long for the broker's destination limit is refused as too long, naming the
// limit, the same as on /topic/ itself: not as a name that presence does not keep.
brokerTest('a /presence/ name over the destination limit: the ERROR names the limit',
  { args: baseArgs }, async (broker) => {
    const name = `/topic/room.${'x'.repeat(1100)}`;
    const watcher = await tcpAs(broker, 'alice');
    watcher.send('SUBSCRIBE', { id: 'p', destination: `/presence${name}` });
    await refusedWith(watcher, new RegExp(`destination too long: ${9 + name.length} bytes \\(destinations are at most 1023 bytes\\)`));
    const reader = await tcpAs(broker, 'bob');
    reader.send('SUBSCRIBE', { id: 't', destination: name });
    await refusedWith(reader, new RegExp(`destination too long: ${name.length} bytes \\(destinations are at most 1023 bytes\\)`));
  });

brokerTest('ACL: reading /presence/topic/NAME needs read permission on /topic/NAME',
  { args: baseArgs }, async (broker) => {
    const eve = await tcpAs(broker, 'eve');
    await eve.subscribe('/presence/topic/room.1', 'p');
    assert.equal((await eve.message('p')).headers['x-presence-event'], 'snapshot');
    const eve2 = await tcpAs(broker, 'eve', 'eve-2');
    eve2.send('SUBSCRIBE', { id: 'p', destination: '/presence/topic/secret.1' });
    await refusedWith(eve2, /permission denied.*\/topic\/secret\.1/);
  });

brokerTest('GET /api/presence: users in byte order, at most presence.max_users with truncated; errors name the problem',
  { args: [...baseArgs, '--set', 'presence.max_users=2', '--set', 'limits.max_header_line=1024'] }, async (broker) => {
    for (const name of ['dave', 'bob', 'carol', 'alice']) {
      const c = await tcpAs(broker, name);
      await c.subscribe('/topic/room.big', 'r');
    }
    const full = await presenceOf(broker, '/topic/room.big');
    assert.equal(full.status, 200, full.text);
    assert.deepEqual(full.json, { destination: '/topic/room.big', count: 4, users: ['alice', 'bob'], truncated: true });
    // Form encoding: %2F for '/', '+' for a space.
    const encoded = await presenceGet(broker, '?destination=%2Ftopic%2Froom.big');
    assert.equal(encoded.json.count, 4);

    const cases = [
      ['', 400, /missing destination/],
      ['?destination=', 400, /missing destination/],
      ['?destination=/topic/a&destination=/topic/b', 400, /more than once/],
      ['?destination=%zz', 400, /percent escape/],
      ['?destination=/queue/q', 400, /not a \/topic\/ name/],
      ['?destination=/topic/room.*', 400, /wildcard/],
      ['?destination=/topic/a%00b', 400, /control character/],
      [`?destination=/topic/${'x'.repeat(1100)}`, 400, /longer than limits\.max_header_line \(1024 bytes\)/],
    ];
    for (const [query, status, re] of cases) {
      const r = await presenceGet(broker, query);
      assert.equal(r.status, status, `${query}: ${r.text}`);
      assert.match(r.json.error, re, query);
    }
    const noKey = await presenceGet(broker, '?destination=/topic/room.big', { key: null });
    assert.equal(noKey.status, 401);
    const post = await presenceGet(broker, '?destination=/topic/room.big', { method: 'POST' });
    assert.equal(post.status, 405);
  });

brokerTest('presence off (the default): /presence/ is refused and GET /api/presence says how to turn it on',
  { args: ['--api-key-file', keyFile] }, async (broker) => {
    const r = await presenceOf(broker, '/topic/room.1');
    assert.equal(r.status, 404, r.text);
    assert.match(r.json.error, /presence is off.*--presence PATTERN/);
    const c = await tcpStomp(broker, { label: 'c' });
    c.send('SUBSCRIBE', { id: 'p', destination: '/presence/topic/room.1' });
    await refusedWith(c, /no presence events/);
  });

brokerTest('--threads 2: one user on both loops joins once; every watcher sees the same events in order',
  { args: [...baseArgs, '--threads', '2'] }, async (broker) => {
    const watchers = [];
    for (let i = 0; i < 4; i++) { // connections go to the loops in turn: both loops hold some
      const w = await tcpAs(broker, 'dave', `watcher-${i}`);
      await w.subscribe('/presence/topic/room.t', 'p');
      assert.equal((await w.message('p')).headers['x-presence-event'], 'snapshot');
      watchers.push(w);
    }
    const sessions = [];
    for (let i = 0; i < 4; i++) {
      const c = await tcpAs(broker, i % 2 ? 'bob' : 'alice', `user-${i}`);
      await c.subscribe('/topic/room.t', 'r');
      sessions.push(c);
    }
    for (const c of sessions) await c.sendWithReceipt('UNSUBSCRIBE', { id: 'r' });
    const want = [['join', 'alice', '1'], ['join', 'bob', '2'], ['leave', 'alice', '1'], ['leave', 'bob', '0']];
    for (const w of watchers) {
      const got = await w.messages(4, 'p', 5000);
      assert.deepEqual(got.map((f) => [f.headers['x-presence-event'], f.headers['x-presence-user'],
        f.headers['x-presence-count']]), want);
      const offsets = got.map((f) => Number(f.headers['x-stream-offset']));
      assert.deepEqual([...offsets].sort((a, b) => a - b), offsets, 'numbered in order');
      assert.equal(await w.inbox.quiet(100, (f) => f.command === 'MESSAGE'), null);
    }
    // A snapshot taken on either loop while events flow: the events after it continue it.
    const late = await tcpAs(broker, 'dave', 'late');
    await late.subscribe('/presence/topic/room.t', 'p');
    const snap = await late.message('p');
    assert.deepEqual(JSON.parse(snap.text), { count: 0, users: [], truncated: false });
    assert.deepEqual((await presenceOf(broker, '/topic/room.t')).json.count, 0);
  });
