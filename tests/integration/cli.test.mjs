// Command line and configuration file: --version, --help, port 0, --tcp off, --ws-path,
// config file keys, --set overrides, unknown keys; --check-config, --print-config and the example
// configuration docs/stompws.conf.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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

// ---- --check-config, --print-config and the example configuration (docs/stompws.conf) ----

const EXAMPLE_CONF = fileURLToPath(new URL('../../docs/stompws.conf', import.meta.url));

// "section.key" of every key = value line; commented (';key = value') lines too when asked.
function iniKeys(text, { commented = false } = {}) {
  const keys = [];
  let section = '';
  for (const line of text.split('\n')) {
    const head = /^\[([a-z_]+)\]\s*$/.exec(line);
    if (head) section = head[1];
    const kv = (commented ? /^;?([a-z][a-z0-9_]*) =/ : /^([a-z][a-z0-9_]*) =/).exec(line);
    if (kv) keys.push(`${section}.${kv[1]}`);
  }
  return keys;
}

test('--check-config with docs/stompws.conf prints "configuration ok", exits 0 and binds nothing', async () => {
  // A port in use: a broker that tried to listen would fail on it.
  const busy = net.createServer();
  await new Promise((resolve) => busy.listen(0, '127.0.0.1', resolve));
  try {
    const r = await runBroker(['--check-config', '--config', EXAMPLE_CONF,
      '--ws', `127.0.0.1:${busy.address().port}`]);
    assert.equal(r.code, 0, `exit code; stderr: ${r.stderr}`);
    assert.equal(r.stdout, 'configuration ok\n');
    assert.equal(r.stderr, '');
  } finally {
    busy.close();
  }
});

test('docs/stompws.conf lists every key (from --print-config) in its section, with its default', async () => {
  const defaults = await runBroker(['--print-config']);
  assert.equal(defaults.code, 0, defaults.stderr);
  const allKeys = iniKeys(defaults.stdout);
  assert.ok(allKeys.length >= 50 && allKeys.includes('server.log_format'), defaults.stdout);
  const listed = iniKeys(fs.readFileSync(EXAMPLE_CONF, 'utf8'), { commented: true });
  const missing = allKeys.filter((k) => !listed.includes(k));
  const unknown = listed.filter((k) => !allKeys.includes(k));
  assert.deepEqual(missing, [], `keys missing from docs/stompws.conf: ${missing.join(', ')}`);
  assert.deepEqual(unknown, [], `docs/stompws.conf names keys that do not exist: ${unknown.join(', ')}`);
  assert.equal(new Set(listed).size, listed.length, 'each key once');
  // Every value written in the file is the default: loading it changes nothing.
  const loaded = await runBroker(['--print-config', '--config', EXAMPLE_CONF]);
  assert.equal(loaded.code, 0, loaded.stderr);
  assert.equal(loaded.stdout, defaults.stdout);
});

test('the example values of the keys commented out in docs/stompws.conf are valid', async () => {
  const text = fs.readFileSync(EXAMPLE_CONF, 'utf8').replace(/^;([a-z][a-z0-9_]*) =/gm, '$1 =');
  const file = tmpFile('uncommented.conf', text);
  const r = await runBroker(['--print-config', '--config', file]);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  assert.equal(r.code, 0, `stderr: ${r.stderr}`);
  assert.match(r.stdout, /^log_file = \/var\/log\/stompws\/stompws\.log$/m);
});

test('--print-config shows file and flag values and hides the Redis password', async () => {
  const file = tmpFile('print.conf', '[limits]\nmax_body = 4m\n[server]\nlog_format = json\n');
  const r = await runBroker(['--print-config', '--config', file, '--set', 'queue.prefetch=7',
    '--redis', 'redis://:s3cret@127.0.0.1:6380/2', '--log-file', 'broker.log']);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  assert.equal(r.code, 0, r.stderr);
  for (const line of ['max_body = 4194304', 'log_format = json', 'prefetch = 7',
    'redis = redis://:***@127.0.0.1:6380/2', 'log_file = broker.log', 'ws = 127.0.0.1:15674']) {
    assert.ok(r.stdout.split('\n').includes(line), `"${line}" in:\n${r.stdout}`);
  }
  assert.ok(!r.stdout.includes('s3cret'));
});

test('what --print-config writes loads back as a config file (long values included)', async () => {
  const printed = await runBroker(['--print-config', '--set', `auth.allow_origin=${'https://a.example,'.repeat(12)}`]);
  assert.equal(printed.code, 0, printed.stderr);
  assert.match(printed.stdout, /^ciphers = \S{200,}$/m, 'the default cipher list is one long line');
  const file = tmpFile('printed.conf', printed.stdout);
  const back = await runBroker(['--print-config', '--check-config', '--config', file]);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  assert.equal(back.code, 0, `stderr: ${back.stderr}`);
  assert.equal(back.stdout, `${printed.stdout}configuration ok\n`);
});

test('--check-config: an unknown key exits 2 with FILE:LINE', async () => {
  const file = tmpFile('bad-key.conf', '[server]\nlog_level = info\nlog_colour = red\n');
  const r = await runBroker(['--check-config', '--config', file]);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  assert.equal(r.code, 2, `stderr: ${r.stderr}`);
  assert.equal(r.stderr, `stompws: ${file}:3: unknown key 'server.log_colour'\n`);
  assert.doesNotMatch(r.stdout, /configuration ok/);
});

test('--check-config: a bad value exits 2 naming the key and what it expects', async () => {
  const file = tmpFile('bad-value.conf', '[limits]\n\nmax_body = lots\n');
  const r = await runBroker(['--check-config', '--config', file]);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  assert.equal(r.code, 2, `stderr: ${r.stderr}`);
  assert.match(r.stderr, /:3: limits\.max_body: invalid value 'lots' \(expected a byte count/);
});

test('--check-config: a line too long for the config reader exits 2 naming the line and the limit', async () => {
  const file = tmpFile('long.conf', `[auth]\n; ${'a long comment '.repeat(30)}\nallow_origin = ${'https://x.example,'.repeat(250)}\n`);
  const r = await runBroker(['--check-config', '--config', file]);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  assert.equal(r.code, 2, `stderr: ${r.stderr}`);
  assert.match(r.stderr, /long\.conf:3: line longer than 4093 bytes/);
});

test('--check-config: a missing certificate file exits 1 naming it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-cli-'));
  const r = await runBroker(['--check-config', '--wss', '127.0.0.1:0',
    '--tls-cert', path.join(dir, 'missing-cert.pem'), '--tls-key', path.join(dir, 'missing-key.pem')]);
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(r.code, 1, `stderr: ${r.stderr}`);
  assert.match(r.stderr, /^stompws: TLS: cannot load certificate \S*missing-cert\.pem: /);
  assert.doesNotMatch(r.stdout, /configuration ok/);
});

test('--check-config: a users file that does not load, or a bad Redis URL, exits 1', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-cli-'));
  const users = await runBroker(['--check-config', '--users', path.join(dir, 'no-users')]);
  const redis = await runBroker(['--check-config', '--redis', 'http://127.0.0.1:6379']);
  const log = await runBroker(['--check-config', '--log-file', path.join(dir, 'no-dir', 'x.log')]);
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(users.code, 1, `stderr: ${users.stderr}`);
  assert.match(users.stderr, /^stompws: auth: \S*no-users/);
  assert.equal(redis.code, 1, `stderr: ${redis.stderr}`);
  assert.match(redis.stderr, /^stompws: cluster\.redis: bad Redis URL/);
  assert.equal(log.code, 1, `stderr: ${log.stderr}`);
  assert.match(log.stderr, /cannot open log file \S*no-dir\/x\.log: No such file or directory/);
});
