// stompws-cli's admin commands (docs/CLI.md; issue #15) against a real broker: connections,
// destinations, kick by id and kick --user, the key from $STOMPWS_ADMIN_KEY or
// --admin-key-file, and the failures (no key, wrong key, unknown id, usage) with their exit codes.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { brokerTest, writeUsersFile } from './lib/broker.mjs';
import { tcpStomp } from './lib/stomp.mjs';
import { adminKeyFile } from './lib/admin.mjs';

const CLI = process.env.STOMPWS_CLI
  ? path.resolve(process.env.STOMPWS_CLI)
  : path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../build/cli/stompws-cli');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-admin-cli-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const users = writeUsersFile(path.join(dir, 'users'), { alice: 'alice-pw', bob: 'bob-pw' });
const admin = adminKeyFile();
const args = ['--users', users, '--anonymous', 'off', ...admin.args];
const tcpAs = (broker, name) => tcpStomp(broker, { label: name, headers: { login: name, passcode: `${name}-pw` } });

// Runs stompws-cli to its end (killed after 15 s): { code, stdout, stderr }.
function cli(cliArgs, env = {}) {
  const base = { ...process.env };
  delete base.STOMPWS_ADMIN_KEY;
  return new Promise((resolve) => {
    execFile(CLI, cliArgs, { env: { ...base, ...env }, timeout: 15000 }, (error, stdout, stderr) => {
      resolve({ code: error ? error.code : 0, stdout, stderr });
    });
  });
}

brokerTest('stompws-cli connections, destinations and kick', { args }, async (broker) => {
  const url = `http://127.0.0.1:${broker.wsPort}`;
  const env = { STOMPWS_ADMIN_KEY: admin.key };
  const alice = await tcpAs(broker, 'alice');
  await alice.subscribe('/topic/a b', 's');
  const alice2 = await tcpAs(broker, 'alice');
  const bob = await tcpAs(broker, 'bob');

  const all = await cli(['connections', url], env);
  assert.equal(all.code, 0, all.stderr);
  assert.equal(JSON.parse(all.stdout).connections.length, 3);
  const mine = await cli(['connections', '--user', 'alice', '--admin-key-file', admin.file, url]);
  assert.equal(mine.code, 0, mine.stderr);
  const list = JSON.parse(mine.stdout).connections;
  assert.deepEqual(list.map((c) => c.user), ['alice', 'alice']);
  const dests = await cli(['destinations', '--prefix', '/topic/a', url], env);
  assert.equal(dests.code, 0, dests.stderr);
  assert.deepEqual(JSON.parse(dests.stdout).destinations, [{ destination: '/topic/a b', subscribers: 1 }]);

  const target = list.find((c) => c.remote === `127.0.0.1:${alice2.socket.localPort}`);
  const kicked = await cli(['kick', url, target.id], env);
  assert.equal(kicked.code, 0, kicked.stderr);
  assert.equal(kicked.stdout, `disconnected ${target.id}\n`);
  assert.equal((await alice2.error(5000)).headers.message, 'disconnected by administrator');
  const again = await cli(['kick', url, target.id], env);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /404.*no such connection/);

  const user = await cli(['kick', '--user', 'alice', url], env);
  assert.equal(user.code, 0, user.stderr);
  assert.deepEqual(JSON.parse(user.stdout), { disconnected: 1, partial: false });
  await alice.closed(5000);
  await bob.sendWithReceipt('SUBSCRIBE', { id: 'x', destination: '/topic/x' });
});

brokerTest('stompws-cli admin failures: no key, wrong key, usage', { args }, async (broker) => {
  const url = `http://127.0.0.1:${broker.wsPort}`;
  const none = await cli(['connections', url]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /STOMPWS_ADMIN_KEY/);
  const wrong = await cli(['connections', url], { STOMPWS_ADMIN_KEY: 'wrong-key-0123456789abc' });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /401.*invalid admin key/);
  for (const bad of [['kick', url], ['kick', '--user', 'a', url, 'x'], ['connections'],
    ['destinations', '--user', 'a', url], ['connections', 'ftp://x']]) {
    const r = await cli(bad, { STOMPWS_ADMIN_KEY: admin.key });
    assert.equal(r.code, 2, `${bad.join(' ')}: ${r.stderr}`);
  }
  const refused = await cli(['connections', '--wait', '2', 'http://127.0.0.1:1'], { STOMPWS_ADMIN_KEY: admin.key });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /cannot connect/);
});

// A self-signed certificate for 127.0.0.1, its own CA: --cafile trusts it.
function selfSigned() {
  const key = path.join(dir, 'tls.key');
  const cert = path.join(dir, 'tls.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=stompws admin test', '-days', '2',
    '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { cert, args: ['--wss', '127.0.0.1:0', '--tls-cert', cert, '--tls-key', key] };
}
const tlsFiles = selfSigned();

brokerTest('stompws-cli admin commands over https:// (the wss port), verified', { args: [...args, ...tlsFiles.args] }, async (broker) => {
  const url = `https://127.0.0.1:${broker.wssPort}`;
  const env = { STOMPWS_ADMIN_KEY: admin.key };
  await tcpAs(broker, 'alice');
  const ok = await cli(['connections', '--cafile', tlsFiles.cert, url], env);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).connections.length, 1);
  const untrusted = await cli(['connections', url], env);
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stderr, /certificate verification failed/);
  const insecure = await cli(['kick', '--insecure', '--user', 'alice', url], env);
  assert.equal(insecure.code, 0, insecure.stderr);
  assert.deepEqual(JSON.parse(insecure.stdout), { disconnected: 1, partial: false });
  const mixed = await cli(['connections', '--insecure', `http://127.0.0.1:${broker.wsPort}`], env);
  assert.equal(mixed.code, 2);
});
