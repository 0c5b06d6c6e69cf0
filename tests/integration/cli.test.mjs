// Command line and configuration file: --version, --help, port 0, --tcp off, --ws-path,
// config file keys, --set overrides, unknown keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runBroker, brokerTest } from './lib/broker.mjs';
import { wsOpen, wsStomp, tcpStomp } from './lib/stomp.mjs';
import { httpRequest } from './lib/rawws.mjs';

function tmpFile(name, text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-cli-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

test('--version prints the version and exits 0', async () => {
  const r = await runBroker(['--version']);
  assert.equal(r.code, 0, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stdout + r.stderr, /\d+\.\d+\.\d+/, 'a version number is printed');
});

test('--help documents the main flags and exits 0', async () => {
  const r = await runBroker(['--help']);
  assert.equal(r.code, 0, `exit code; stderr: ${r.stderr}`);
  const out = r.stdout + r.stderr;
  for (const flag of ['--ws', '--ws-path', '--tcp', '--config', '--log-level', '--set', '--version']) {
    assert.ok(out.includes(flag), `--help mentions ${flag}:\n${out}`);
  }
});

test('an unknown --set key exits non-zero naming the key', async () => {
  const r = await runBroker(['--ws', '127.0.0.1:0', '--tcp', 'off', '--set', 'limits.no_such_key=5']);
  assert.notEqual(r.code, 0, 'exit code is non-zero');
  assert.equal(r.timedOut, false, 'the broker exits instead of running');
  assert.match(r.stdout + r.stderr, /no_such_key/, 'the error names the unknown key');
});

test('an unknown key in the config file exits non-zero naming the key', async () => {
  const file = tmpFile('bad.ini', '[server]\nlog_level = info\n\n[queue]\nbogus_setting = 1\n');
  const r = await runBroker(['--ws', '127.0.0.1:0', '--tcp', 'off', '--config', file]);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  assert.notEqual(r.code, 0, 'exit code is non-zero');
  assert.equal(r.timedOut, false, 'the broker exits instead of running');
  assert.match(r.stdout + r.stderr, /bogus_setting/, 'the error names the unknown key');
});

test('a non-numeric value for a numeric limit is rejected', async () => {
  // Not spelled out in the spec; a production broker refuses to start on a malformed limit.
  const r = await runBroker(['--ws', '127.0.0.1:0', '--tcp', 'off', '--set', 'limits.max_body=lots']);
  assert.notEqual(r.code, 0, 'exit code is non-zero');
  assert.equal(r.timedOut, false, 'the broker exits instead of running');
});

test('a missing config file exits non-zero', async () => {
  const r = await runBroker(['--ws', '127.0.0.1:0', '--tcp', 'off', '--config', '/nonexistent/stompws.ini']);
  assert.notEqual(r.code, 0, 'exit code is non-zero');
  assert.equal(r.timedOut, false, 'the broker exits instead of running');
});

brokerTest('port 0 listens on free ports printed on stdout; both accept STOMP', {}, async (broker) => {
  assert.ok(broker.wsPort > 0 && broker.tcpPort > 0);
  assert.notEqual(broker.wsPort, broker.tcpPort);
  const ws = await wsStomp(broker);
  const tcp = await tcpStomp(broker);
  assert.equal(ws.connected.command, 'CONNECTED');
  assert.equal(tcp.connected.command, 'CONNECTED');
});

brokerTest('--tcp off opens no TCP listener', { tcp: 'off' }, async (broker) => {
  await wsStomp(broker);
  assert.doesNotMatch(broker.stdout, /listening tcp/, `stdout: ${broker.stdout}`);
});

brokerTest('--ws-path moves the WebSocket endpoint', { args: ['--ws-path', '/stomp'] }, async (broker) => {
  const c = await wsStomp(broker, { path: '/stomp' });
  assert.equal(c.connected.command, 'CONNECTED');
  const r = await httpRequest(broker.wsPort,
    'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
    + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  r.socket.destroy();
  assert.equal(r.status, 404, 'the old path is not the endpoint any more');
});

brokerTest('config file sections set server and limit keys', {
  config: '; stompws test config\n[server]\nws_path = /cfg\n\n[queue]\nprefetch = 1\n',
}, async (broker) => {
  // ws_path from the file
  const c = await wsStomp(broker, { path: '/cfg' });
  // queue.prefetch = 1 from the file: an unacked client-individual consumer holds one message.
  const pub = await tcpStomp(broker);
  await c.subscribe('/queue/cfg', 's1', { ack: 'client-individual' });
  for (let i = 0; i < 3; i++) await pub.sendWithReceipt('SEND', { destination: '/queue/cfg' }, `m${i}`);
  const m = await c.message();
  assert.equal(m.text, 'm0');
  assert.equal(await c.inbox.quiet(400, 'MESSAGE'), null, 'prefetch 1: no second message before the ACK');
  c.send('ACK', { id: m.headers.ack });
  assert.equal((await c.message()).text, 'm1');
});

brokerTest('command line flags override the config file', {
  config: '[server]\nws_path = /from-file\n',
  args: ['--ws-path', '/from-flag'],
}, async (broker) => {
  // Precedence is not spelled out in the spec; the usual rule (flags beat the file) is assumed.
  const c = await wsOpen(broker, { path: '/from-flag' });
  assert.ok(c);
});

brokerTest('--set overrides a config file value', {
  config: '[limits]\nmax_body = 100000\n',
  set: { 'limits.max_body': 16 },
}, async (broker) => {
  const c = await tcpStomp(broker);
  c.send('SEND', { destination: '/topic/x', 'content-length': 32 }, 'x'.repeat(32));
  const e = await c.error();
  assert.ok(e.headers.message, 'ERROR has a message header');
  await c.closed();
});
