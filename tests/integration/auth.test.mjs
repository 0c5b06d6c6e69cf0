// Authentication and authorization end to end: users files written by `stompws passwd` (at its
// default iteration count) and by a provisioning tool (at the minimum), ACLs with wildcards, JWT
// (HS256, RS256, ES256) as passcode, Authorization header or access_token query, the Origin
// allow-list, anonymous access, and the failed-login slow-down. After every refusal
// the broker still serves other clients. Users-file passcodes are hashed on worker threads
// (auth.workers): frames pipelined behind a CONNECT wait for it in order, a client that goes away
// meanwhile harms nothing, and connected clients are served while logins hash.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { test } from 'node:test';
import { brokerTest, sleep, startBroker, STOMPWS_BIN, TIME_SCALE, writeUsersFile } from './lib/broker.mjs';
import { httpRequest, upgradeRequest } from './lib/rawws.mjs';
import { encodeFrame, tcpClient, tcpStomp, wsOpen, WsStomp, withTimeout } from './lib/stomp.mjs';

// Files every test here shares. `users` is made once with the real CLI, at its default iteration
// count (210,000); `fastUsers` has the same logins at the broker's minimum (1,000), for the tests
// that are not about the hashing: under valgrind one login at the default costs 10-15 s.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-auth-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const users = path.join(dir, 'users');
execFileSync(STOMPWS_BIN, ['passwd', users, 'alice'], { input: 'alice-pw\n' });
execFileSync(STOMPWS_BIN, ['passwd', users, 'bob'], { input: 'bob-pw\n' });
const fastUsers = writeUsersFile(path.join(dir, 'users-fast'), { alice: 'alice-pw', bob: 'bob-pw' });
// A login (or a refusal) against `users`: about 70 ms natively, 10-15 s under valgrind.
const SLOW_LOGIN_MS = 8000 * TIME_SCALE;
const acl = path.join(dir, 'acl');
fs.writeFileSync(acl, [
  '# user  verbs       pattern',
  'alice   read        /topic/stocks.*',
  'alice   read,write  /queue/alice.#',
  '*       read        /topic/public.#',
  'bob     write       /topic/stocks.#',
  '',
].join('\n'));
const secretFile = path.join(dir, 'hs256');
const secret = crypto.randomBytes(32).toString('hex');
fs.writeFileSync(secretFile, `${secret}\n`);
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPub = path.join(dir, 'rsa.pem');
fs.writeFileSync(rsaPub, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ecPub = path.join(dir, 'ec.pem');
fs.writeFileSync(ecPub, ec.publicKey.export({ type: 'spki', format: 'pem' }));

const b64url = (x) => Buffer.from(x).toString('base64url');
function jwt(alg, claims, { key = null, tamper = false } = {}) {
  const head = b64url(JSON.stringify({ alg, typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const input = `${head}.${body}`;
  let sig;
  if (alg === 'HS256') sig = crypto.createHmac('sha256', key ?? secret).update(input).digest();
  else if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(input), rsa.privateKey);
  else sig = crypto.sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
  if (tamper) sig[0] ^= 1;
  return `${input}.${b64url(sig)}`;
}
const now = () => Math.floor(Date.now() / 1000);
const grants = { read: ['/topic/tok.*'], write: ['/topic/tok.#'] };

const usersArgs = { args: ['--users', fastUsers, '--acl', acl] };

// Expects CONNECT with these headers to be refused with "authentication failed".
async function refused(broker, headers, timeout = 8000) {
  const c = broker.track(await tcpClient(broker.tcpPort, 'refused'));
  c.send('CONNECT', { 'accept-version': '1.2', host: 'x', ...headers });
  const err = await c.error(timeout);
  assert.equal(err.headers.message, 'authentication failed');
  assert.doesNotMatch(err.body.toString(), /pw|passcode:[^*]/, 'ERROR must not echo the passcode');
  await c.closed(8000);
}

async function wsWith(broker, { headers = {}, query = '', origin, connect = {} } = {}) {
  const ws = new WebSocket(`${broker.url('/ws')}${query}`, ['v12.stomp'], { headers, origin, perMessageDeflate: false });
  const client = broker.track(new WsStomp(ws, 'ws-auth'));
  await withTimeout(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 5000, 'ws open');
  await client.connect({ 'accept-version': '1.2', host: 'x', ...connect });
  return client;
}

brokerTest('users file: good login connects, bad password and unknown user are refused',
  { args: ['--users', users, '--acl', acl], timeout: 4 * SLOW_LOGIN_MS }, async (broker) => {
    const alice = await tcpStomp(broker, { headers: { login: 'alice', passcode: 'alice-pw' }, timeout: SLOW_LOGIN_MS });
    await refused(broker, { login: 'alice', passcode: 'wrong' }, SLOW_LOGIN_MS);
    await refused(broker, { login: 'mallory', passcode: 'alice-pw' }, SLOW_LOGIN_MS);
    await refused(broker, {}); // anonymous is off once a users file is given
    await alice.subscribe('/topic/stocks.ibm', 's'); // still served
    assert.match(broker.stderr, /authentication failed for 127\.0\.0\.1:\d+: bad login or passcode for 'mallory'/);
  });

brokerTest('passwd writes salted PBKDF2 entries at 210,000 iterations, never the password', {}, async () => {
  const text = fs.readFileSync(users, 'utf8');
  assert.match(text, /^alice:\$pbkdf2-sha256\$210000\$[A-Za-z0-9+/_-]+\$[A-Za-z0-9+/_-]+$/m);
  assert.match(text, /^bob:\$pbkdf2-sha256\$210000\$/m);
  assert.doesNotMatch(text, /alice-pw|bob-pw/);
  assert.equal(fs.statSync(users).mode & 0o777, 0o600);
});

brokerTest('ACL: read and write allowed and denied per user, with wildcards', usersArgs, async (broker) => {
  const alice = await tcpStomp(broker, { label: 'alice', headers: { login: 'alice', passcode: 'alice-pw' } });
  await alice.subscribe('/topic/stocks.ibm', 'a1');
  await alice.subscribe('/topic/public.news.today', 'a2'); // the '*' user line
  await alice.sendWithReceipt('SEND', { destination: '/queue/alice.inbox.x' }, 'self');
  const bob = await tcpStomp(broker, { label: 'bob', headers: { login: 'bob', passcode: 'bob-pw' } });
  await bob.sendWithReceipt('SEND', { destination: '/topic/stocks.ibm' }, '142.10');
  assert.equal((await alice.message('a1')).body.toString(), '142.10');

  bob.send('SUBSCRIBE', { id: 'b1', destination: '/topic/stocks.ibm', receipt: 'rb' });
  const denyRead = await bob.error();
  assert.equal(denyRead.headers.message, 'permission denied: cannot read (SUBSCRIBE to) /topic/stocks.ibm');
  assert.equal(denyRead.headers['receipt-id'], 'rb');
  await bob.closed();

  alice.send('SEND', { destination: '/topic/stocks.ibm' }, 'nope');
  const denyWrite = await alice.error();
  assert.match(denyWrite.headers.message, /^permission denied: cannot write \(SEND to\) \/topic\/stocks\.ibm$/);
  await alice.closed();

  // Wildcard subscriptions must be covered by an allowed pattern.
  const alice2 = await tcpStomp(broker, { label: 'alice2', headers: { login: 'alice', passcode: 'alice-pw' } });
  alice2.send('SUBSCRIBE', { id: 'w', destination: '/topic/stocks.#' });
  assert.match((await alice2.error()).headers.message, /permission denied/);
  const alice3 = await tcpStomp(broker, { label: 'alice3', headers: { login: 'alice', passcode: 'alice-pw' } });
  await alice3.subscribe('/topic/stocks.*', 'ok');
});

const jwtArgs = { args: ['--jwt-hs256-secret-file', secretFile, '--set', 'auth.jwt_audience=stompws'] };

brokerTest('JWT HS256 as passcode: valid token with grants; expired, bad signature, wrong audience refused', jwtArgs, async (broker) => {
  const good = jwt('HS256', { sub: 'carol', aud: 'stompws', exp: now() + 60, stomp: grants });
  const carol = await tcpStomp(broker, { label: 'carol', headers: { passcode: good } });
  await carol.subscribe('/topic/tok.a', 's');
  await carol.sendWithReceipt('SEND', { destination: '/topic/tok.a' }, 'hi');
  assert.equal((await carol.message('s')).body.toString(), 'hi');
  await refused(broker, { passcode: jwt('HS256', { sub: 'c', aud: 'stompws', exp: now() - 3600 }) });
  await refused(broker, { passcode: jwt('HS256', { sub: 'c', aud: 'stompws', exp: now() + 60 }, { tamper: true }) });
  await refused(broker, { passcode: jwt('HS256', { sub: 'c', aud: 'other', exp: now() + 60 }) });
  await refused(broker, { login: 'jwt', passcode: jwt('HS256', { sub: 'c', aud: 'stompws', exp: now() + 60 }, { key: 'not-the-secret' }) });
  // Grants bound what the token may do.
  carol.send('SUBSCRIBE', { id: 'x', destination: '/topic/other' });
  assert.match((await carol.error()).headers.message, /permission denied: cannot read/);
  assert.match(broker.stderr, /token expired/);
});

brokerTest('JWT at the handshake: Authorization: Bearer and access_token query', jwtArgs, async (broker) => {
  const token = jwt('HS256', { sub: 'dave', aud: 'stompws', exp: now() + 60, stomp: grants });
  const viaHeader = await wsWith(broker, { headers: { Authorization: `Bearer ${token}` } });
  await viaHeader.subscribe('/topic/tok.h', 'h');
  const viaQuery = await wsWith(broker, { query: `?access_token=${token}` });
  await viaQuery.sendWithReceipt('SEND', { destination: '/topic/tok.h' }, 'q');
  assert.equal((await viaHeader.message('h')).body.toString(), 'q');
});

brokerTest('JWT RS256 and ES256 with a public key; HS256 is not accepted then (alg confusion)',
  { args: ['--jwt-public-key', rsaPub] }, async (broker) => {
    const rs = jwt('RS256', { sub: 'erin', exp: now() + 60 });
    await tcpStomp(broker, { label: 'erin', headers: { passcode: rs } });
    const pem = fs.readFileSync(rsaPub, 'utf8');
    await refused(broker, { passcode: jwt('HS256', { sub: 'x', exp: now() + 60 }, { key: pem }) });
    await refused(broker, { passcode: jwt('RS256', { sub: 'x', exp: now() + 60 }, { tamper: true }) });
  });

brokerTest('JWT ES256', { args: ['--jwt-public-key', ecPub] }, async (broker) => {
  await tcpStomp(broker, { label: 'frank', headers: { passcode: jwt('ES256', { sub: 'frank', exp: now() + 60 }) } });
  await refused(broker, { passcode: jwt('ES256', { sub: 'x', exp: now() + 60 }, { tamper: true }) });
});

brokerTest('a session ends when its token expires', jwtArgs, async (broker) => {
  const c = await tcpStomp(broker, { headers: { passcode: jwt('HS256', { sub: 'g', aud: 'stompws', exp: now() + 2 }) } });
  const err = await c.error(6000);
  assert.equal(err.headers.message, 'token expired');
  await c.closed();
});

brokerTest('Origin allow-list: a listed Origin connects, another gets 403',
  { args: ['--allow-origin', 'https://app.example', '--allow-origin', 'https://admin.example'] }, async (broker) => {
    await wsWith(broker, { origin: 'https://admin.example' });
    const r = await httpRequest(broker.wsPort, upgradeRequest({ extra: ['Origin: https://evil.example'] }).text);
    broker.track(r.socket);
    assert.equal(r.status, 403, r.statusLine);
    await wsWith(broker, { origin: 'https://app.example' }); // still serving
  });

brokerTest('anonymous off without credentials files refuses everyone; on lets them in',
  { args: ['--anonymous', 'off'] }, async (broker) => {
    await refused(broker, {});
  });

brokerTest('users file with --anonymous on: anonymous clients get the ACL\'s * lines',
  { args: ['--users', fastUsers, '--acl', acl, '--anonymous', 'on'] }, async (broker) => {
    const anon = await tcpStomp(broker, { label: 'anon' });
    await anon.subscribe('/topic/public.x', 'p');
    anon.send('SUBSCRIBE', { id: 'q', destination: '/topic/stocks.ibm' });
    assert.match((await anon.error()).headers.message, /permission denied/);
  });

brokerTest('repeated failures from one address are slowed down', { ...usersArgs, timeout: 30000 }, async (broker) => {
  for (let i = 0; i < 5; i++) await refused(broker, { login: 'alice', passcode: `bad${i}` });
  const started = Date.now();
  await refused(broker, { login: 'alice', passcode: 'bad-again' });
  // The delay (1 s) runs from the 5th failure, a little before this attempt was sent.
  assert.ok(Date.now() - started >= 500, `the 6th failure was answered after ${Date.now() - started} ms`);
  assert.match(broker.stderr, /too many failed logins from this address: slowed down/);
  // Once the delay (now 2 s, it doubles) has passed, a good login works and resets the count.
  await sleep(2300);
  await tcpStomp(broker, { headers: { login: 'alice', passcode: 'alice-pw' } });
});

// ---- logins hashed off the event loop (auth.workers) ----

const slowArgs = { args: ['--users', users, '--acl', acl], timeout: 6 * SLOW_LOGIN_MS };

// CONNECT, SUBSCRIBE (with receipt) and SEND in one write: handled in that order once the hash is
// done, as if the hash had taken no time.
async function pipelined(client, send, label) {
  const queue = `/queue/alice.${label.replaceAll(' ', '-')}`;
  send(Buffer.concat([
    encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'x', login: 'alice', passcode: 'alice-pw' }),
    encodeFrame('SUBSCRIBE', { id: 's', destination: queue, receipt: 'sub' }),
    encodeFrame('SEND', { destination: queue, receipt: 'sent' }, label),
  ]));
  const frames = await client.inbox.takeN(4, () => true, SLOW_LOGIN_MS, 'CONNECTED, RECEIPTs, MESSAGE');
  const order = frames.map((f) => (f.command === 'RECEIPT' ? `RECEIPT ${f.headers['receipt-id']}` : f.command));
  assert.deepEqual(order.slice(0, 2), ['CONNECTED', 'RECEIPT sub'], order.join(', '));
  assert.deepEqual(new Set(order.slice(2)), new Set(['RECEIPT sent', 'MESSAGE']), order.join(', '));
  assert.equal(frames.find((f) => f.command === 'MESSAGE').body.toString(), label);
}

brokerTest('users-file login: CONNECT + SUBSCRIBE + SEND in one write are handled in order after the hash',
  slowArgs, async (broker) => {
    const tcp = broker.track(await tcpClient(broker.tcpPort, 'pipelined-tcp'));
    await pipelined(tcp, (buf) => tcp.sendBytes(buf), 'over tcp');
    // Over WebSocket: all three frames in one message (the rest of it waits for the hash) ...
    const ws1 = await wsOpen(broker, { label: 'pipelined-ws-one', protocols: ['v12.stomp'] });
    await pipelined(ws1, (buf) => ws1.sendBytes(buf), 'one ws message');
    // ... and one frame per message, sent without waiting (the later messages wait unread).
    const ws2 = await wsOpen(broker, { label: 'pipelined-ws-three', protocols: ['v12.stomp'] });
    await pipelined(ws2, (buf) => {
      for (let at = 0; at < buf.length;) {
        const end = buf.indexOf(0, at) + 1;
        ws2.sendBytes(buf.subarray(at, end));
        at = end;
      }
    }, 'three ws messages');
  });

// The fast users file: this is about where results go, not what a hash costs (at the default
// iterations 8 hashes on workers at nice +10 starved for over 8 s once, under ASan, beside other
// busy processes). A connection id modulo 2 is its loop (conn.c): clients are opened until
// both loops hold some (the second loop may still be binding when the first prints its port).
brokerTest('--threads 2: every loop gets its own logins back (one pool for the process)',
  { args: ['--users', fastUsers, '--acl', acl, '--threads', '2'], timeout: 6 * SLOW_LOGIN_MS }, async (broker) => {
    const loops = () => new Set([...broker.stderr.matchAll(/\[c(\d+) [^\]]*\] tcp connection from/g)]
      .map((m) => Number(m[1]) % 2));
    const clients = [];
    for (let i = 0; i < 40 && (clients.length < 8 || loops().size < 2); i++) {
      clients.push(broker.track(await tcpClient(broker.tcpPort, `loop-${i}`)));
      await sleep(20);
    }
    assert.equal(loops().size, 2, 'clients on both loops');
    await Promise.all(clients.map((c, i) => pipelined(c, (buf) => c.sendBytes(buf), `threads ${i}`)));
  });

brokerTest('a refused pipelined login: ERROR quoting the CONNECT, nothing after it is handled',
  slowArgs, async (broker) => {
    const c = broker.track(await tcpClient(broker.tcpPort, 'refused-pipelined'));
    c.sendBytes(Buffer.concat([
      encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'x', login: 'alice', passcode: 'nope', receipt: 'c1' }),
      encodeFrame('SEND', { destination: '/queue/alice.in', receipt: 'never' }, 'x'),
    ]));
    const err = await c.error(SLOW_LOGIN_MS);
    assert.equal(err.headers.message, 'authentication failed');
    assert.equal(err.headers['receipt-id'], 'c1');
    assert.match(err.body.toString(), /CONNECT\n(.*\n)*login:alice\npasscode:\*\*\*\n/);
    await c.closed(SLOW_LOGIN_MS);
    assert.ok(!c.inbox.all.some((f) => f.command === 'RECEIPT'));
    assert.match(broker.stderr, /authentication failed for 127\.0\.0\.1:\d+: bad login or passcode for 'alice'/);
  });

brokerTest('clients that close while their passcode is hashed harm nothing; a later login works',
  slowArgs, async (broker) => {
    for (let i = 0; i < 10; i++) {
      const c = await tcpClient(broker.tcpPort, `gone-${i}`);
      c.send('CONNECT', { 'accept-version': '1.2', host: 'x', login: 'alice', passcode: 'alice-pw' });
      if (i % 2 === 0) c.destroy(); // at once: likely still queued
      else setTimeout(() => c.destroy(), 30); // a little later: likely hashing
    }
    const ws = await wsOpen(broker, { label: 'gone-ws', protocols: ['v12.stomp'] });
    ws.send('CONNECT', { 'accept-version': '1.2', host: 'x', login: 'alice', passcode: 'alice-pw' });
    ws.destroy();
    await sleep(200);
    const alice = await tcpStomp(broker, { headers: { login: 'alice', passcode: 'alice-pw' }, timeout: 3 * SLOW_LOGIN_MS });
    await alice.subscribe('/topic/stocks.ibm', 's');
  });

// SIGTERM with hashes queued and running: the drain ends them (queued ones are dropped, not
// run), the workers are joined, exit 0.
test('SIGTERM while logins are being hashed: clean exit', { timeout: 120000 * TIME_SCALE }, async () => {
  const slow = writeUsersFile(path.join(dir, 'users-slow'), { alice: 'alice-pw' }, 1000000);
  const broker = await startBroker({ args: ['--users', slow] });
  try {
    let started = Date.now();
    await tcpStomp(broker, { headers: { login: 'alice', passcode: 'alice-pw' }, timeout: 60000 * TIME_SCALE });
    const hashMs = Date.now() - started; // one hash, as this build runs it
    for (let i = 0; i < 20; i++) {
      const c = broker.track(await tcpClient(broker.tcpPort, `hashing-${i}`));
      c.send('CONNECT', { 'accept-version': '1.2', host: 'x', login: 'alice', passcode: i % 2 ? 'alice-pw' : 'bad' });
    }
    await sleep(hashMs / 2);
    started = Date.now();
    const exit = await broker.stop(60000 * TIME_SCALE);
    assert.deepEqual(exit, { code: 0, signal: null }, broker.logTail());
    // All 20 hashes on 2 workers would take 10 hashes' time; the drain waits for the running ones.
    const took = Date.now() - started;
    assert.ok(took < 5 * hashMs + 1000, `exit took ${took} ms (one hash: ${hashMs} ms)`);
  } finally {
    await broker.closeClients();
    await broker.stop(1000);
  }
});

// The point of the workers: 50 logins at the default 210,000 iterations cost ~3.5 s of CPU, which
// used to stall every connection of the loop; a connected subscriber now gets its messages at once.
brokerTest('a connected subscriber gets messages promptly while 50 logins are hashed',
  { args: ['--users', users, '--anonymous', 'on'], timeout: 30000 * TIME_SCALE }, async (broker) => {
    const sub = await tcpStomp(broker, { label: 'sub' });
    await sub.subscribe('/topic/ticks', 's');
    const pub = await tcpStomp(broker, { label: 'pub' });
    const logins = [];
    for (let i = 0; i < 50; i++) {
      const c = broker.track(await tcpClient(broker.tcpPort, `storm-${i}`));
      logins.push(c);
    }
    for (const c of logins) c.send('CONNECT', { 'accept-version': '1.2', host: 'x', login: 'alice', passcode: 'alice-pw' });
    const latencies = [];
    for (let i = 0; i < 20; i++) {
      const sent = Date.now();
      pub.send('SEND', { destination: '/topic/ticks' }, String(i));
      const m = await sub.message('s', 10000 * TIME_SCALE);
      assert.equal(m.body.toString(), String(i));
      latencies.push(Date.now() - sent);
      await sleep(20);
    }
    const worst = Math.max(...latencies);
    assert.ok(worst < 200 * TIME_SCALE, `worst delivery ${worst} ms while logins hashed: ${latencies.join(' ')}`);
    // The logins themselves all get in.
    await Promise.all(logins.map((c) => c.inbox.take('CONNECTED', 60000 * TIME_SCALE, 'CONNECTED')));
  });

test('auth.workers = 0 hashes on the loop, with the same answers', { timeout: 30000 }, async () => {
  const broker = await startBroker({ args: ['--users', fastUsers], set: { 'auth.workers': 0 } });
  try {
    const c = broker.track(await tcpClient(broker.tcpPort, 'sync'));
    c.sendBytes(Buffer.concat([
      encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'x', login: 'bob', passcode: 'bob-pw' }),
      encodeFrame('SUBSCRIBE', { id: 's', destination: '/topic/x', receipt: 'r' }),
    ]));
    const frames = await c.inbox.takeN(2, () => true, 5000, 'CONNECTED, RECEIPT');
    assert.deepEqual(frames.map((f) => f.command), ['CONNECTED', 'RECEIPT']);
    await refused(broker, { login: 'bob', passcode: 'nope' });
  } finally {
    await broker.closeClients();
    assert.deepEqual(await broker.stop(), { code: 0, signal: null });
  }
});
