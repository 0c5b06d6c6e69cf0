// The admin API (docs/API.md, "Admin API"; issue #15) on one node: list connections and
// destinations, disconnect a session or every session of a user, over every transport a STOMP
// session comes by (WebSocket with stompjs, TCP, GET /sse), with one loop and with two.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import tls from 'node:tls';
import WebSocket from 'ws';
import { brokerTest, sleep, withTimeout, writeUsersFile } from './lib/broker.mjs';
import { TcpStomp, tcpStomp } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';
import { sseOpen } from './lib/sse.mjs';
import { apiKeyFile } from './lib/api.mjs';
import { adminKeyFile, adminRequest, connections } from './lib/admin.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-admin-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const users = writeUsersFile(path.join(dir, 'users'), { alice: 'alice-pw', bob: 'bob-pw' });
const admin = adminKeyFile();
const publishKey = apiKeyFile(); // a publish key is no admin key
const args = ['--users', users, '--anonymous', 'off', ...admin.args, '--api-key-file', publishKey.file];

const login = (name) => ({ login: name, passcode: `${name}-pw` });
const tcpAs = (broker, name, label = name) => tcpStomp(broker, { label, headers: login(name) });
const jsAs = (broker, name) => stompjs(broker, { label: `js-${name}`, connectHeaders: login(name) });
const basic = (name) => `Basic ${Buffer.from(`${name}:${name}-pw`).toString('base64')}`;
const req = (broker, method, p, key = admin.key) => adminRequest(broker.wsPort, key, method, p);

async function sseAs(broker, name, destination) {
  const r = await sseOpen(broker.wsPort, `/sse?destination=${encodeURIComponent(destination)}`,
    { headers: { Authorization: basic(name) } });
  broker.track({ close: () => r.close() });
  assert.equal(r.status, 200, r.raw);
  return r;
}

// The listed connections of user, polled until there are n (sessions appear once CONNECTED).
async function listed(broker, user, n) {
  for (let i = 0; i < 100; i++) {
    const list = await connections(broker.wsPort, admin.key, user);
    if (list.connections.length === n) return list;
    await sleep(50);
  }
  throw new Error(`${user}: never ${n} connections listed`);
}

function assertJson(r, status) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.headers['content-type'], 'application/json');
}

brokerTest('keys, routes and parameters: 401, 404, 405 and 400 answers are JSON', { args }, async (broker) => {
  for (const key of [null, publishKey.key, 'not-a-key-of-this-broker']) {
    const r = await req(broker, 'GET', '/api/connections', key);
    assertJson(r, 401);
    assert.match(r.json.error, /admin key/);
    assert.match(r.headers['www-authenticate'], /^Bearer/);
  }
  const cases = [
    ['GET', '/api/connections?user=', 400, /empty user/],
    ['GET', '/api/connections?user=a&user=b', 400, /more than once/],
    ['GET', '/api/connections?login=a', 400, /unknown query parameter/],
    ['GET', '/api/connections?user=%zz', 400, /bad query value/],
    ['GET', '/api/connections?user=%0a', 400, /control character/],
    ['GET', '/api/destinations?user=a', 400, /unknown query parameter/],
    ['DELETE', '/api/connections/nodash', 400, /bad connection id/],
    ['DELETE', '/api/connections/local-01', 400, /bad connection id/],
    ['DELETE', '/api/connections/local-1?x=1', 400, /no query parameter/],
    ['POST', '/api/users/%2F/disconnect', 400, /bad login/],
    ['POST', '/api/users//disconnect', 404, /no admin route/],
    ['DELETE', '/api/connections/local-999999', 404, /no such connection/],
    ['GET', '/api/connections/a/b', 404, /no admin route/],
    ['GET', '/api/users/alice', 404, /no admin route/],
    ['POST', '/api/connections', 405, /not allowed/],
    ['GET', '/api/users/alice/disconnect', 405, /not allowed/],
  ];
  for (const [method, p, status, re] of cases) {
    const r = await req(broker, method, p);
    assertJson(r, status);
    assert.match(r.json.error, re, `${method} ${p}`);
  }
  const allow = await req(broker, 'PUT', '/api/connections/local-1');
  assert.equal(allow.headers.allow, 'DELETE');
  const ok = await req(broker, 'GET', '/api/destinations?prefix=');
  assertJson(ok, 200);
  assert.deepEqual(ok.json, { destinations: [], partial: false });
  // the publish API is still there, and refuses the admin key
  assert.equal((await req(broker, 'POST', '/api/publish?destination=/topic/x', admin.key)).status, 401);
});

brokerTest('without --admin-key-file the admin routes answer 404 in JSON', { args: ['--api-key-file', publishKey.file] }, async (broker) => {
  const r = await req(broker, 'GET', '/api/connections');
  assertJson(r, 404);
  assert.match(r.json.error, /admin API is disabled/);
});

brokerTest('GET /api/connections lists ws, tcp and sse sessions with their fields; ?user= filters', { args }, async (broker) => {
  const js = await jsAs(broker, 'alice');
  await js.subscribe('/topic/a');
  await js.subscribe('/topic/b');
  const tcp = await tcpAs(broker, 'alice', 'alice-tcp');
  await tcp.subscribe('/topic/a', 's1');
  await sseAs(broker, 'bob', '/topic/a');
  const alice = await listed(broker, 'alice', 2);
  assert.equal(alice.partial, false);
  for (const c of alice.connections) {
    assert.deepEqual(Object.keys(c).sort(), ['connected_at', 'id', 'node', 'remote', 'subscriptions', 'transport', 'user']);
    assert.equal(c.user, 'alice');
    assert.equal(c.node, 'local');
    assert.match(c.id, /^local-\d+$/);
    assert.match(c.remote, /^127\.0\.0\.1:\d+$/);
    assert.match(c.connected_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Math.abs(Date.parse(c.connected_at) - Date.now()) < 60000, c.connected_at);
  }
  const byTransport = Object.fromEntries(alice.connections.map((c) => [c.transport, c]));
  assert.equal(byTransport.ws.subscriptions, 2);
  assert.equal(byTransport.tcp.subscriptions, 1);
  const bob = await listed(broker, 'bob', 1);
  assert.equal(bob.connections[0].transport, 'sse');
  assert.equal((await connections(broker.wsPort, admin.key)).connections.length, 3);
  assert.equal((await listed(broker, 'nobody', 0)).connections.length, 0);

  const all = await req(broker, 'GET', '/api/destinations');
  assertJson(all, 200);
  assert.deepEqual(all.json, { destinations: [{ destination: '/topic/a', subscribers: 3 }, { destination: '/topic/b', subscribers: 1 }], partial: false });
  const some = await req(broker, 'GET', '/api/destinations?prefix=%2Ftopic%2Fb');
  assert.deepEqual(some.json.destinations, [{ destination: '/topic/b', subscribers: 1 }]);
});

brokerTest('DELETE /api/connections/ID: stompjs gets the ERROR, then close 1008; 204, then 404', { args }, async (broker) => {
  const js = await jsAs(broker, 'alice');
  const other = await jsAs(broker, 'alice');
  const list = await listed(broker, 'alice', 2);
  const before = (await req(broker, 'GET', '/metrics')).text;
  assert.match(before, /^stompws_admin_disconnects_total 0$/m);
  // which listed connection is js: the one whose remote port is its socket's
  const port = js.client.webSocket._socket.localPort;
  const target = list.connections.find((c) => c.remote === `127.0.0.1:${port}`);
  assert.ok(target, JSON.stringify(list));
  const r = await req(broker, 'DELETE', `/api/connections/${encodeURIComponent(target.id)}`);
  assert.equal(r.status, 204, r.text);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.text, '');
  const closed = await js.inbox.closed(5000);
  assert.equal(closed.code, 1008);
  assert.equal(js.errors.length, 1);
  assert.equal(js.errors[0].headers.message, 'disconnected by administrator');
  assertJson(await req(broker, 'DELETE', `/api/connections/${target.id}`), 404);
  assert.equal(other.errors.length, 0);
  const left = await listed(broker, 'alice', 1);
  assert.notEqual(left.connections[0].id, target.id);
  assert.match((await req(broker, 'GET', '/metrics')).text, /^stompws_admin_disconnects_total 1$/m);
});

brokerTest('POST /api/users/LOGIN/disconnect ends her ws, tcp and sse sessions, nobody else\'s', { args }, async (broker) => {
  const js = await jsAs(broker, 'alice');
  const tcp = await tcpAs(broker, 'alice', 'alice-tcp');
  const sse = await sseAs(broker, 'alice', '/topic/a');
  const bob = await tcpAs(broker, 'bob');
  await listed(broker, 'alice', 3);
  const r = await req(broker, 'POST', '/api/users/alice/disconnect');
  assertJson(r, 200);
  assert.deepEqual(r.json, { disconnected: 3, partial: false });
  const err = await tcp.error(5000);
  assert.equal(err.headers.message, 'disconnected by administrator');
  await tcp.closed(5000);
  assert.equal((await js.inbox.closed(5000)).code, 1008);
  await sse.closed(5000);
  assert.ok(sse.comments.some((c) => c === ' error: disconnected by administrator'), JSON.stringify(sse.comments));
  await listed(broker, 'alice', 0);
  await bob.sendWithReceipt('SUBSCRIBE', { id: 'x', destination: '/topic/x' });
  const again = await req(broker, 'POST', '/api/users/alice/disconnect');
  assert.deepEqual(again.json, { disconnected: 0, partial: false });
});

brokerTest('--threads 2: every loop\'s connections are listed and kickable from any loop', { args, threads: 2 }, async (broker) => {
  // Connections land on a loop by the kernel's hash of the address and port: open some until
  // both loops hold one (connection ids are N * 2 + loop).
  const clients = [];
  const loops = () => new Set(clients.map((c) => c.id % 2));
  for (let i = 0; i < 40 && (clients.length < 4 || loops().size < 2); i++) {
    const c = await tcpAs(broker, i % 2 === 0 ? 'alice' : 'bob', `c${i}`);
    await c.subscribe(`/topic/t${i % 3}`, 's');
    const list = await connections(broker.wsPort, admin.key);
    const port = c.socket.localPort;
    const me = list.connections.find((x) => x.remote === `127.0.0.1:${port}`);
    assert.ok(me, `client ${i} not listed: ${JSON.stringify(list)}`);
    clients.push({ c, id: Number(me.id.split('-')[1]), user: i % 2 === 0 ? 'alice' : 'bob', conn: me });
  }
  assert.equal(loops().size, 2, 'both loops hold a connection');
  // Many requests, so that they land on both loops too: each must see every connection.
  for (let i = 0; i < 6; i++) {
    const list = await connections(broker.wsPort, admin.key);
    assert.equal(list.connections.length, clients.length);
    assert.equal(list.partial, false);
    const dests = (await req(broker, 'GET', '/api/destinations')).json;
    assert.equal(dests.destinations.reduce((n, d) => n + d.subscribers, 0), clients.length);
  }
  // One kicked by id on each loop.
  for (const loop of [0, 1]) {
    const victim = clients.find((x) => x.id % 2 === loop && !x.kicked);
    const r = await req(broker, 'DELETE', `/api/connections/${victim.conn.id}`);
    assert.equal(r.status, 204, r.text);
    assert.equal((await victim.c.error(5000)).headers.message, 'disconnected by administrator');
    victim.kicked = true;
  }
  const alice = clients.filter((x) => x.user === 'alice' && !x.kicked);
  const r = await req(broker, 'POST', '/api/users/alice/disconnect');
  assert.deepEqual(r.json, { disconnected: alice.length, partial: false });
  for (const x of alice) await x.c.closed(5000);
  const left = await connections(broker.wsPort, admin.key);
  assert.equal(left.connections.length, clients.filter((x) => x.user === 'bob' && !x.kicked).length);
  // other loops publish their figures every 250 ms: poll
  const want = new RegExp(`^stompws_admin_disconnects_total ${2 + alice.length}$`, 'm');
  let text = '';
  for (let i = 0; i < 40 && !want.test(text); i++, await sleep(50)) text = (await req(broker, 'GET', '/metrics')).text;
  assert.match(text, want);
});

brokerTest('SIGHUP reloads the admin keys', { args }, async (broker) => {
  const fresh = 'a-fresh-admin-key-0123456789';
  assert.equal((await req(broker, 'GET', '/api/connections', fresh)).status, 401);
  fs.writeFileSync(admin.file, `${admin.key}\n${fresh}\n`);
  try {
    broker.child.kill('SIGHUP');
    for (let i = 0; i < 100 && (await req(broker, 'GET', '/api/connections', fresh)).status !== 200; i++) await sleep(50);
    assert.equal((await req(broker, 'GET', '/api/connections', fresh)).status, 200);
  } finally {
    fs.writeFileSync(admin.file, `${admin.key}\n`);
  }
});

// A self-signed certificate for 127.0.0.1 (the clients below do not verify it: the TLS tests do).
function selfSigned() {
  const key = path.join(dir, 'tls.key');
  const cert = path.join(dir, 'tls.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-days', '2'], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return ['--wss', '127.0.0.1:0', '--stomp-tls', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key];
}
const tlsArgs = selfSigned();

brokerTest('wss and stomp-tls sessions are listed with their transport and kicked like the others', { args: [...args, ...tlsArgs] }, async (broker) => {
  const js = await stompjs(broker, {
    label: 'js-wss', connectHeaders: login('alice'),
    webSocketFactory: () => new WebSocket(broker.wssUrl(), ['v12.stomp'], { rejectUnauthorized: false }),
  });
  const socket = tls.connect({ host: '127.0.0.1', port: broker.stompTlsPort, rejectUnauthorized: false });
  await withTimeout(new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject); }), 5000, 'stomp-tls handshake');
  const st = broker.track(new TcpStomp(socket, 'stomp-tls'));
  await st.connect({ 'accept-version': '1.2', host: '127.0.0.1', ...login('alice') });
  const list = await listed(broker, 'alice', 2);
  assert.deepEqual(list.connections.map((c) => c.transport).sort(), ['stomp-tls', 'wss']);
  const r = await req(broker, 'POST', '/api/users/alice/disconnect');
  assert.deepEqual(r.json, { disconnected: 2, partial: false });
  assert.equal((await st.error(5000)).headers.message, 'disconnected by administrator');
  await st.closed(5000);
  assert.equal((await js.inbox.closed(5000)).code, 1008);
});
