// Token expiry and refresh on a live connection (docs/SECURITY.md, "Token refresh"): a session
// authenticated by a JWT and subscribed to /user/queue/stompws.token gets a MESSAGE there
// refresh.warn_s seconds before its token's exp, with x-token-expires-in; a SEND there with a
// `token` header for the same sub keeps the session past the old exp and applies the new
// token's grants. Without a refresh the session still ends at exp. Refused: another sub's token,
// an invalid token, a session that did not log in with a token, a SEND naming another user's
// token destination. One node with @stomp/stompjs and raw STOMP, and three nodes through Redis.
//
// Tokens are short-lived (a few seconds) and warn_s small, so each test waits seconds, bounded.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { brokerTest, sleep, writeUsersFile } from './lib/broker.mjs';
import { clusterTest, useSharedRedis } from './lib/cluster.mjs';
import { tcpStomp } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';

useSharedRedis();

const TOKEN_DEST = '/user/queue/stompws.token';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-token-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const secret = crypto.randomBytes(32).toString('hex');
const secretFile = path.join(dir, 'hs256');
fs.writeFileSync(secretFile, `${secret}\n`);
const users = writeUsersFile(path.join(dir, 'users'), { ursula: 'ursula-pw' });

// An HS256 token as a backend would issue it; key: another secret (a forged token).
const b64url = (x) => Buffer.from(x).toString('base64url');
function jwt(claims, { key = secret } = {}) {
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(crypto.createHmac('sha256', key).update(input).digest())}`;
}
const now = () => Math.floor(Date.now() / 1000);
// The first token may read /topic/a.* and write /topic/a.#; the refreshed one /topic/b.* only.
const grantsA = { read: ['/topic/a.*'], write: ['/topic/a.#'] };
const grantsB = { read: ['/topic/b.*'], write: ['/topic/b.#'] };

const WARN_S = 2;
const args = ['--jwt-hs256-secret-file', secretFile, '--users', users,
  '--set', `refresh.warn_s=${WARN_S}`];

// A stompjs client logged in with token (as passcode, the way stompjs apps pass one).
const jsWith = (broker, token, label) => stompjs(broker, { label, connectHeaders: { passcode: token } });

// The client code docs/SECURITY.md shows: hand the new token to the broker, with a receipt.
function refresh(client, token) {
  return client.receipt((receipt) => client.client.publish({
    destination: TOKEN_DEST, headers: { token, receipt },
  }));
}

// The next ERROR of a stompjs client, then its close.
async function stompError(client, timeout = 8000) {
  const f = await client.inbox.take('ERROR', timeout, 'an ERROR frame');
  await client.inbox.closed(5000);
  return f.headers.message;
}

function checkWarning(m, exp) {
  assert.equal(m.headers.destination, TOKEN_DEST);
  const left = Number(m.headers['x-token-expires-in']);
  assert.ok(Number.isInteger(left) && left >= 0 && left <= WARN_S, `x-token-expires-in ${left}`);
  assert.equal(m.headers['content-type'], 'application/json');
  const body = JSON.parse(m.body);
  assert.deepEqual(body, { expires_in: left, exp });
}

brokerTest('stompjs: warned before exp, refreshes, stays past the old exp with the new grants', {
  args, timeout: 20000,
}, async (broker) => {
  const exp1 = now() + 4;
  const js = await jsWith(broker, jwt({ sub: 'tina', exp: exp1, stomp: grantsA }), 'tina');
  const warnSub = await js.subscribe(TOKEN_DEST);
  const before = await js.subscribe('/topic/a.x'); // allowed by the first token
  const m = await js.message(warnSub, 6000);
  checkWarning(m, exp1);
  assert.ok(Date.now() >= (exp1 - WARN_S) * 1000 - 1000, 'the warning came early');

  const exp2 = now() + 30;
  await refresh(js, jwt({ sub: 'tina', exp: exp2, stomp: grantsB }));
  // Past the first token's exp (by more than a second): still connected, no ERROR.
  await sleep(Math.max(0, exp1 * 1000 - Date.now()) + 1500);
  assert.equal(js.errors.length, 0, 'no ERROR after the refresh');
  assert.equal(js.inbox.closedInfo, null, 'still connected past the old exp');

  // The new token's grants apply to new SUBSCRIBE and SEND; the subscription made under the old
  // token stays (docs/SECURITY.md), so a message to /topic/a.x still reaches it.
  const pub = await jsWith(broker, jwt({ sub: 'pat', exp: now() + 60, stomp: grantsA }), 'pat');
  await pub.publishWithReceipt({ destination: '/topic/a.x', body: 'old subscription' });
  assert.equal((await js.message(before, 5000)).body, 'old subscription');
  const sub = await js.subscribe('/topic/b.x');
  await js.publishWithReceipt({ destination: '/topic/b.x', body: 'new grants' });
  assert.equal((await js.message(sub, 5000)).body, 'new grants');
  // /topic/a.# is no longer writable: the old grants are gone.
  js.publish({ destination: '/topic/a.x', body: 'old grants' });
  assert.match(await stompError(js), /permission denied: cannot write/);
});

brokerTest('without a refresh the session is warned, then closed at exp', { args, timeout: 20000 }, async (broker) => {
  const exp = now() + 3;
  const js = await jsWith(broker, jwt({ sub: 'uma', exp }), 'uma');
  const warnSub = await js.subscribe(TOKEN_DEST);
  checkWarning(await js.message(warnSub, 6000), exp);
  assert.equal(await stompError(js), 'token expired');
  assert.ok(Date.now() >= exp * 1000 - 100, `closed ${exp * 1000 - Date.now()} ms before exp`);
});

brokerTest('a token for another sub gets ERROR and close', { args }, async (broker) => {
  const js = await jsWith(broker, jwt({ sub: 'vic', exp: now() + 60 }), 'vic');
  js.client.publish({ destination: TOKEN_DEST, headers: { token: jwt({ sub: 'walt', exp: now() + 600 }) } });
  assert.match(await stompError(js), /token refresh refused: the new token is for another user/);
});

brokerTest('an invalid, expired or missing token gets ERROR and close; the ERROR never quotes it', { args }, async (broker) => {
  const forged = jwt({ sub: 'xena', exp: now() + 600 }, { key: 'not-the-secret-not-the-secret-xx' });
  const cases = [
    [{ token: forged }, /token refresh refused: invalid token: bad signature/],
    [{ token: 'not.a.jwt' }, /token refresh refused: invalid token/],
    [{ token: jwt({ sub: 'xena', exp: now() - 3600 }) }, /token refresh refused: invalid token: token expired/],
    [{}, /token refresh refused: a token refresh needs a token header/],
  ];
  for (const [headers, re] of cases) {
    const c = await tcpStomp(broker, { label: 'xena', headers: { passcode: jwt({ sub: 'xena', exp: now() + 60 }) } });
    c.send('SEND', { destination: TOKEN_DEST, ...headers, receipt: 'r1' });
    const err = await c.error(5000);
    assert.match(err.headers.message, re);
    assert.equal(err.headers['receipt-id'], 'r1');
    if (headers.token) assert.ok(!err.text.includes(headers.token.split('.')[2]), 'the ERROR quotes the token');
    await c.closed(5000);
  }
});

brokerTest('a users-file session cannot refresh; nobody may SEND to a token destination naming a login', { args }, async (broker) => {
  const u = await tcpStomp(broker, { label: 'ursula', headers: { login: 'ursula', passcode: 'ursula-pw' } });
  u.send('SEND', { destination: TOKEN_DEST, token: jwt({ sub: 'ursula', exp: now() + 600 }) });
  assert.match((await u.error(5000)).headers.message, /not authenticated by a token/);
  await u.closed(5000);

  // Even with a grant to write every user's queues, nobody forges another session's warning.
  const yara = await jsWith(broker, jwt({ sub: 'yara', exp: now() + 60, stomp: { write: ['/user/*/queue/#'] } }), 'yara');
  yara.client.publish({ destination: '/user/zed/queue/stompws.token', body: '{}' });
  assert.match(await stompError(yara), /only the broker sends to a token destination/);
});

brokerTest('a subscription made after the warning moment gets the warning at once; a refresh rearms it', {
  args: ['--jwt-hs256-secret-file', secretFile, '--set', 'refresh.warn_s=30'], timeout: 20000,
}, async (broker) => {
  const exp = now() + 20; // inside the 30 s window from the start
  const js = await jsWith(broker, jwt({ sub: 'zoe', exp }), 'zoe');
  await sleep(200); // the deadline fired with nobody subscribed
  const sub = await js.subscribe(TOKEN_DEST);
  const m = await js.message(sub, 3000);
  assert.equal(JSON.parse(m.body).exp, exp);
  // A token ending in 31 s: its warning comes about a second after the refresh, not at once.
  const exp2 = now() + 32;
  await refresh(js, jwt({ sub: 'zoe', exp: exp2 }));
  assert.equal(await js.inbox.quiet(500, (f) => f.command === 'MESSAGE'), null);
  const m2 = await js.message(sub, 5000);
  assert.equal(JSON.parse(m2.body).exp, exp2);
  assert.ok(Number(m2.headers['x-token-expires-in']) <= 30);
});

// ---- three nodes ------------------------------------------------------------------------------

clusterTest('3 nodes + Redis: a refresh on a node keeps that session; the user\'s other sessions keep their own clocks', {
  timeout: 30000, broker: { args },
}, async ({ nodes }) => {
  const [a, b, c] = nodes;
  const exp1 = now() + 4;
  // amy on B refreshes; amy on C (another token, same exp) does not; amy on A has a long token.
  const onB = await jsWith(b, jwt({ sub: 'amy', exp: exp1, stomp: grantsA }), 'amy-B');
  const onC = await jsWith(c, jwt({ sub: 'amy', exp: exp1 }), 'amy-C');
  const onA = await jsWith(a, jwt({ sub: 'amy', exp: now() + 600 }), 'amy-A');
  const warnB = await onB.subscribe(TOKEN_DEST);
  const warnA = await onA.subscribe(TOKEN_DEST);
  const updates = await onB.subscribe('/user/queue/updates');
  const warning = await onB.message(warnB, 6000);
  checkWarning(warning, exp1);
  await refresh(onB, jwt({ sub: 'amy', exp: now() + 60, stomp: grantsB }));

  assert.equal(await stompError(onC), 'token expired'); // C was not refreshed
  await sleep(Math.max(0, exp1 * 1000 - Date.now()) + 1000);
  assert.equal(onB.inbox.closedInfo, null, 'B still connected past the old exp');
  // Another user's backend on node A reaches the refreshed session on B through Redis.
  const svc = await jsWith(a, jwt({ sub: 'svc', exp: now() + 60, stomp: { write: ['/user/*/queue/#'] } }), 'svc');
  await svc.publishWithReceipt({ destination: '/user/amy/queue/updates', body: 'after refresh' });
  assert.equal((await onB.message(updates, 10000)).body, 'after refresh');
  // The warnings were B's own: A's session, whose token is far from its end, got none.
  assert.equal(await onA.inbox.quiet(200, (f) => f.command === 'MESSAGE' && f.subscription === warnA.id), null);
});
