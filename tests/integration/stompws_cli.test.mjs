// stompws-cli (cli/) against a real broker: pub -> sub round trips over ws://, tcp://, wss:// and
// ssl://; stdin one message per line (order kept) or whole; -H and --content-type carried;
// --receipt; sub --count with client acks (nothing redelivered after exit); --timeout; SIGINT;
// STOMP 1.0/1.1/1.2; error paths (usage -> 2, connection refused, ACL, bad login, 404, TLS
// verification -> 1 with the reason); a stompjs publisher to a cli subscriber.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { brokerTest, withTimeout, sleep, writeUsersFile } from './lib/broker.mjs';
import { freePort } from './lib/cluster.mjs';
import { tcpStomp, uniq } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';

const CLI = process.env.STOMPWS_CLI
  ? path.resolve(process.env.STOMPWS_CLI)
  : path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../build/cli/stompws-cli');

const DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-cli-it-'));
process.on('exit', () => fs.rmSync(DIR, { recursive: true, force: true }));

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
  }
});

// The environment without a passcode the runner may have: tests set it when they want one.
function cliEnv(extra = {}) {
  const env = { ...process.env, ...extra };
  if (!('STOMPWS_PASSCODE' in extra)) delete env.STOMPWS_PASSCODE;
  return env;
}

// Starts stompws-cli. stdin: input (a string/Buffer) written then closed (left open with
// keepOpen), or a file opened as stdin.
// result resolves { code, signal, stdout, stderr, timedOut } once the process has exited and its
// output is drained; it is killed after timeout ms.
function startCli(args, { input = '', keepOpen = false, file = null, env = {}, timeout = 15000 } = {}) {
  if (!fs.existsSync(CLI)) throw new Error(`stompws-cli not found: ${CLI} (set STOMPWS_CLI)`);
  const stdinFd = file ? fs.openSync(file, 'r') : null;
  const child = spawn(CLI, args, { stdio: [stdinFd ?? 'pipe', 'pipe', 'pipe'], env: cliEnv(env) });
  if (stdinFd !== null) fs.closeSync(stdinFd);
  live.add(child);
  const run = { child, stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => { run.stdout += d; });
  child.stderr.on('data', (d) => { run.stderr += d; });
  if (child.stdin) {
    child.stdin.on('error', () => { /* the cli may exit before reading everything */ });
    if (keepOpen) child.stdin.write(input);
    else child.stdin.end(input);
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
  run.result = new Promise((resolve, reject) => {
    child.on('error', (e) => { clearTimeout(timer); live.delete(child); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, stdout: run.stdout, stderr: run.stderr, timedOut: signal === 'SIGKILL' });
    });
  });
  return run;
}

function cli(args, opts) {
  return startCli(args, opts).result;
}

// Asserts the exit code, showing the cli's output when it differs.
function assertExit(r, code, what) {
  assert.equal(r.code, code, `${what}: exit ${r.code} (signal ${r.signal}, timed out ${r.timedOut})\n`
    + `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

// `stompws-cli sub ...` running in the background, resolved once it says it is subscribed.
async function cliSub(args, opts = {}) {
  const run = startCli(['sub', ...args], opts);
  let exited = null;
  run.result.then((r) => { exited = r; });
  await withTimeout((async () => {
    while (!/subscribed to /.test(run.stderr)) {
      if (exited) throw new Error(`cli sub exited ${exited.code} before subscribing: ${exited.stderr}`);
      await sleep(10);
    }
  })(), 10000, `stompws-cli sub ${args.join(' ')} to subscribe`);
  return run;
}

const tcpUrl = (broker) => `tcp://127.0.0.1:${broker.tcpPort}`;

// ---- usage errors: exit 2, no broker needed ----

test('usage errors exit 2 naming the problem', async () => {
  const cases = [
    [['pub', 'http://127.0.0.1:1/', '/topic/a', 'x'], /unknown scheme 'http'/],
    [['pub', 'ws://', '/topic/a', 'x'], /bad URL 'ws:\/\/': no host/],
    [['pub', 'tcp://127.0.0.1:99999', '/topic/a', 'x'], /port '99999' is not a number in 1\.\.65535/],
    [['pub', '127.0.0.1:61613', '/topic/a', 'x'], /is not a URL/],
    [['pub', 'tcp://u:p@127.0.0.1:1', '/topic/a', 'x'], /credentials in the URL/],
    [['pub', 'tcp://127.0.0.1:1'], /needs a URL and a DESTINATION/],
    [['send', 'tcp://127.0.0.1:1', '/topic/a'], /unknown command 'send'/],
    [[], /no command/],
    [['pub', '--count', '3', 'tcp://127.0.0.1:1', '/topic/a', 'x'], /--count is for sub, not pub/],
    [['sub', '--receipt', 'tcp://127.0.0.1:1', '/topic/a'], /--receipt is for pub, not sub/],
    [['sub', '--ack', 'sometimes', 'tcp://127.0.0.1:1', '/topic/a'], /--ack: 'sometimes'/],
    [['sub', '--timeout', '0', 'tcp://127.0.0.1:1', '/topic/a'], /--timeout: '0'/],
    [['pub', '-H', 'no-colon', 'tcp://127.0.0.1:1', '/topic/a', 'x'], /is not NAME:VALUE/],
    [['pub', '-H', 'destination:/topic/b', 'tcp://127.0.0.1:1', '/topic/a', 'x'], /sets 'destination' itself/],
    [['pub', '--stomp-version', '2.0', 'tcp://127.0.0.1:1', '/topic/a', 'x'], /'2\.0' is not 1\.0, 1\.1 or 1\.2/],
    [['pub', '--heart-beat', '10', 'tcp://127.0.0.1:1', '/topic/a', 'x'], /is not CX,CY/],
    [['pub', '-n', 'tcp://127.0.0.1:1', '/topic/a', 'body'], /give no BODY/],
    [['pub', '--no-such-option', 'tcp://127.0.0.1:1', '/topic/a', 'x'], /no-such-option/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args);
    assertExit(r, 2, `stompws-cli ${args.join(' ')}`);
    assert.match(r.stderr, message, `stompws-cli ${args.join(' ')}`);
    assert.equal(r.stdout, '');
  }
});

test('--help documents both commands and the exit codes; --version prints it', async () => {
  const help = await cli(['--help']);
  assertExit(help, 0, '--help');
  for (const word of ['pub', 'sub', '--count', '--timeout', '--ack', '--receipt', '--stdin-whole',
    '--cafile', '--insecure', 'STOMPWS_PASSCODE', 'ws://', 'wss://', 'tcp://', 'ssl://', 'Exit status']) {
    assert.ok(help.stdout.includes(word), `--help mentions ${word}`);
  }
  const version = await cli(['--version']);
  assertExit(version, 0, '--version');
  assert.match(version.stdout, /^stompws-cli \d+\.\d+\.\d+\n$/);
});

test('connection refused exits 1 naming the address', async () => {
  const port = await freePort();
  for (const url of [`tcp://127.0.0.1:${port}`, `ws://127.0.0.1:${port}/ws`]) {
    const r = await cli(['pub', url, '/topic/a', 'x']);
    assertExit(r, 1, url);
    assert.match(r.stderr, new RegExp(`cannot connect to 127\\.0\\.0\\.1 port ${port}: Connection refused`));
  }
  const sub = await cli(['sub', `tcp://127.0.0.1:${port}`, '/topic/a']);
  assertExit(sub, 1, 'sub');
});

// ---- round trips ----

brokerTest('ws:// and tcp:// round trips: cli pub to cli sub', async (broker) => {
  for (const url of [broker.wsUrl, tcpUrl(broker), `stomp://127.0.0.1:${broker.tcpPort}`]) {
    const dest = `/topic/${uniq('rt')}`;
    const sub = await cliSub([url, dest, '--count', '2']);
    const one = await cli(['pub', url, dest, 'hello']);
    assertExit(one, 0, `pub to ${url}`);
    assert.equal(one.stdout, '');
    assertExit(await cli(['pub', url, dest, 'ünïcödé ✓ : \\ colons']), 0, `second pub to ${url}`);
    const r = await sub.result;
    assertExit(r, 0, `sub on ${url}`);
    assert.equal(r.stdout, 'hello\nünïcödé ✓ : \\ colons\n');
  }
});

brokerTest('a cli pub over ws:// reaches a raw TCP subscriber; one sub takes several destinations', async (broker) => {
  const a = `/topic/${uniq('a')}`;
  const b = `/queue/${uniq('b')}`;
  const sub = await cliSub([broker.wsUrl, a, b, '--count', '2', '-v']);
  const watcher = await tcpStomp(broker, { label: 'watcher' });
  await watcher.subscribe(a, 'w');
  assertExit(await cli(['pub', broker.wsUrl, a, 'to-a']), 0, 'pub a');
  assertExit(await cli(['pub', tcpUrl(broker), b, 'to-b']), 0, 'pub b');
  assert.equal((await watcher.message('w')).body.toString(), 'to-a');
  const r = await sub.result;
  assertExit(r, 0, 'sub');
  assert.match(r.stdout, new RegExp(`^destination:${a}$[^]*^to-a$[^]*^destination:${b}$[^]*^to-b$`, 'm'));
  assert.match(r.stderr, /subscribed to .*\n.*subscribed to /);
});

// ---- stdin ----

brokerTest('pub without BODY: one message per stdin line, in order (pipe over ws, file over tcp)', async (broker) => {
  const lines = [];
  for (let i = 1; i <= 300; i++) lines.push(`line ${i} ${'x'.repeat(i % 50)}`);
  lines[10] = 'ünïcödé ✓';
  lines[20] = ''; // an empty line is an empty message
  lines[30] = 'a:b\\c'; // header-ish characters are body bytes
  const text = `${lines.slice(0, 150).join('\n')}\r\n${lines.slice(150).join('\n')}`; // one CR LF, no final LF
  const file = path.join(DIR, 'lines.txt');
  fs.writeFileSync(file, text);
  for (const [label, url, opts] of [['pipe', broker.wsUrl, { input: text }], ['file', tcpUrl(broker), { file }]]) {
    const dest = `/topic/${uniq('lines')}`;
    const watcher = await tcpStomp(broker, { label: `watcher-${label}` });
    await watcher.subscribe(dest, 's');
    const r = await cli(['pub', url, dest], opts);
    assertExit(r, 0, `pub from a ${label}`);
    const got = await watcher.messages(lines.length, 's', 10000);
    assert.deepEqual(got.map((f) => f.body.toString()), lines, `${label}: N lines -> N messages in order`);
    assert.equal(await watcher.inbox.quiet(300, 'MESSAGE'), null, `${label}: no extra message`);
  }
});

brokerTest('a large stdin (20 000 lines, 4 MB) goes through flow control whole and in order',
  { set: { 'queue.max_messages': 30000 }, timeout: 90000 }, async (broker) => {
    const lines = Array.from({ length: 20000 }, (_, i) => `${String(i).padStart(6, '0')} ${'y'.repeat(190)}`);
    const file = path.join(DIR, 'big.txt');
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    const dest = `/queue/${uniq('big')}`;
    const sub = await cliSub(['--count', String(lines.length), '--ack', 'client', tcpUrl(broker), dest],
      { timeout: 60000 });
    const pub = await cli(['pub', broker.wsUrl, dest], { file, timeout: 60000 });
    assertExit(pub, 0, 'pub of a large file');
    const r = await withTimeout(sub.result, 60000, 'sub of 20 000 messages');
    assertExit(r, 0, 'sub');
    assert.equal(r.stdout, `${lines.join('\n')}\n`);
  });

brokerTest('pub --stdin-whole: all of stdin, bytes as they are, is one message', async (broker) => {
  const dest = `/queue/${uniq('whole')}`;
  const body = Buffer.concat([Buffer.from('first\r\nsecond\n\nthird\n'), Buffer.from([0x00, 0xff, 0x0a])]);
  for (const url of [broker.wsUrl, tcpUrl(broker)]) {
    assertExit(await cli(['pub', '-n', url, dest], { input: body }), 0, `pub -n to ${url}`);
  }
  assertExit(await cli(['pub', '--stdin-whole', tcpUrl(broker), dest], { input: '' }), 0, 'empty stdin');
  const c = await tcpStomp(broker, { label: 'consumer' });
  await c.subscribe(dest, 'q');
  const got = await c.messages(3, 'q');
  assert.deepEqual(got[0].body, body);
  assert.deepEqual(got[1].body, body);
  assert.equal(got[2].body.length, 0);
});

// ---- headers, receipts ----

brokerTest('-H headers and --content-type travel with each message', async (broker) => {
  const dest = `/topic/${uniq('hdr')}`;
  const watcher = await tcpStomp(broker, { label: 'watcher' });
  await watcher.subscribe(dest, 'w');
  const sub = await cliSub([broker.wsUrl, dest, '--count', '2', '-v']);
  const r = await cli(['pub', '-H', 'x-trace:abc-123', '-H', 'x-colons:a:b:c', '--content-type', 'application/json',
    broker.wsUrl, dest], { input: '{"n":1}\n{"n":2}\n' });
  assertExit(r, 0, 'pub');
  for (const n of [1, 2]) {
    const m = await watcher.message('w');
    assert.equal(m.body.toString(), `{"n":${n}}`);
    assert.equal(m.headers['x-trace'], 'abc-123');
    assert.equal(m.headers['x-colons'], 'a:b:c');
    assert.equal(m.headers['content-type'], 'application/json');
  }
  const s = await sub.result;
  assertExit(s, 0, 'sub -v');
  assert.match(s.stdout, /^x-trace:abc-123$/m);
  assert.match(s.stdout, /^content-type:application\/json$/m);
  assert.match(s.stdout, /^\{"n":2\}$/m);
});

brokerTest('--receipt: every message is confirmed; a refusal mid-stream exits 1 with the broker\'s reason',
  { set: { 'queue.max_messages': 3, 'queue.overflow': 'reject' } }, async (broker) => {
    const ok = `/topic/${uniq('rcpt')}`;
    const r = await cli(['pub', '--receipt', '-v', tcpUrl(broker), ok], { input: 'a\nb\nc\n' });
    assertExit(r, 0, 'pub --receipt');
    assert.match(r.stderr, /published 3 messages, each confirmed by a RECEIPT/);

    const full = `/queue/${uniq('full')}`;
    const f = await cli(['pub', '--receipt', broker.wsUrl, full], { input: '1\n2\n3\n4\n5\n' });
    assertExit(f, 1, 'pub into a full queue');
    assert.match(f.stderr, new RegExp(`ERROR from the broker: queue ${full} is full \\(queue\\.max_messages = 3\\)`));
    const c = await tcpStomp(broker, { label: 'consumer' });
    await c.subscribe(full, 'q');
    assert.deepEqual((await c.messages(3, 'q')).map((m) => m.body.toString()), ['1', '2', '3']);
  });

// ---- sub: acks, count, timeout, signals ----

for (const version of ['1.0', '1.1', '1.2']) {
  for (const ack of ['client', 'client-individual']) {
    if (version === '1.0' && ack === 'client-individual') continue; // 1.1+
    brokerTest(`sub --count 3 --ack ${ack} (STOMP ${version}): acked messages are gone, the rest stay queued`, async (broker) => {
      const dest = `/queue/${uniq('work')}`;
      const producer = await tcpStomp(broker, { label: 'producer' });
      for (let i = 1; i <= 5; i++) await producer.sendWithReceipt('SEND', { destination: dest }, `job ${i}`);
      const r = await cli(['sub', '--count', '3', '--ack', ack, '--stomp-version', version, '-v', broker.wsUrl, dest]);
      assertExit(r, 0, 'sub --count 3');
      assert.match(r.stderr, new RegExp(`connected \\(STOMP ${version.replace('.', '\\.')}`));
      assert.deepEqual(r.stdout.split('\n').filter((l) => l.startsWith('job')), ['job 1', 'job 2', 'job 3']);
      // Acked messages are gone for good. 4 and 5 stay queued: the cli may have been handed them
      // (each ACK opens its prefetch window) but never printed or acked them, so they come back.
      const c = await tcpStomp(broker, { label: 'next-consumer' });
      await c.subscribe(dest, 'q');
      const rest = await c.messages(2, 'q');
      assert.deepEqual(rest.map((m) => m.body.toString()), ['job 4', 'job 5']);
      assert.equal(await c.inbox.quiet(500, 'MESSAGE'), null, 'jobs 1-3 are not redelivered');
    });
  }
}

brokerTest('sub --timeout exits 1 when no message comes in time', async (broker) => {
  const started = Date.now();
  const r = await cli(['sub', '--timeout', '0.5', broker.wsUrl, `/topic/${uniq('quiet')}`]);
  assertExit(r, 1, 'sub --timeout');
  assert.match(r.stderr, /no message within 0\.5 s/);
  assert.ok(Date.now() - started < 5000, 'it gave up soon after the timeout');
});

brokerTest('SIGINT: sub disconnects cleanly and exits 0; queue messages it did not ack stay', async (broker) => {
  const dest = `/queue/${uniq('sig')}`;
  const sub = await cliSub(['--ack', 'client', tcpUrl(broker), dest]);
  sub.child.kill('SIGINT');
  const r = await withTimeout(sub.result, 5000, 'sub to exit after SIGINT');
  assertExit(r, 0, 'sub after SIGINT');
  const producer = await tcpStomp(broker, { label: 'producer' });
  await producer.sendWithReceipt('SEND', { destination: dest }, 'after');
  const c = await tcpStomp(broker, { label: 'consumer' });
  await c.subscribe(dest, 'q');
  assert.equal((await c.message('q')).body.toString(), 'after', 'the old subscription is gone');
});

brokerTest('SIGINT: pub still flushes what it sent, and exits 1 as its input was cut short', async (broker) => {
  const dest = `/topic/${uniq('sigpub')}`;
  const watcher = await tcpStomp(broker, { label: 'watcher' });
  await watcher.subscribe(dest, 'w');
  const pub = startCli(['pub', broker.wsUrl, dest], { input: 'one\ntwo\n', keepOpen: true });
  assert.deepEqual((await watcher.messages(2, 'w')).map((m) => m.body.toString()), ['one', 'two']);
  pub.child.kill('SIGINT');
  const r = await withTimeout(pub.result, 5000, 'pub to exit after SIGINT');
  assertExit(r, 1, 'pub after SIGINT');
  assert.match(r.stderr, /interrupted: the rest of stdin was not published/);
});

// ---- interop ----

brokerTest('a stompjs publisher to a cli subscriber', async (broker) => {
  const dest = `/topic/${uniq('interop')}`;
  const sub = await cliSub([broker.wsUrl, dest, '--count', '3']);
  const js = await stompjs(broker, { label: 'stompjs-pub' });
  for (const body of ['from stompjs', 'ünïcödé ✓', 'two\nlines']) {
    await js.publishWithReceipt({ destination: dest, body });
  }
  const r = await sub.result;
  assertExit(r, 0, 'cli sub');
  assert.equal(r.stdout, 'from stompjs\nünïcödé ✓\ntwo\nlines\n');
});

// ---- refusals: exit 1 with the broker's message ----

// Users (at the broker's minimum iteration count: stompws-cli waits 10 s for CONNECTED, and a
// login at stompws passwd's default takes 10-15 s under valgrind) and an ACL, made once.
const users = writeUsersFile(path.join(DIR, 'users'), { alice: 'alice-pw', bob: 'bob-pw' });
const acl = path.join(DIR, 'acl');
fs.writeFileSync(acl, ['alice read /topic/stocks.*', 'bob write /topic/stocks.#', ''].join('\n'));

brokerTest('ACL and login refusals exit 1 printing the broker\'s ERROR message',
  { args: ['--users', users, '--acl', acl] }, async (broker) => {
    const url = tcpUrl(broker);
    const denied = await cli(['pub', '--login', 'alice', '--passcode', 'alice-pw', url, '/topic/stocks.ibm', 'x']);
    assertExit(denied, 1, 'pub where alice may only read');
    assert.match(denied.stderr, /ERROR from the broker: permission denied: cannot write \(SEND to\) \/topic\/stocks\.ibm/);

    const deniedSub = await cli(['sub', '--login', 'bob', broker.wsUrl, '/topic/stocks.ibm'], { env: { STOMPWS_PASSCODE: 'bob-pw' } });
    assertExit(deniedSub, 1, 'sub where bob may only write');
    assert.match(deniedSub.stderr, /ERROR from the broker: permission denied: cannot read \(SUBSCRIBE to\) \/topic\/stocks\.ibm/);

    const badLogin = await cli(['pub', '--login', 'alice', '--passcode', 'wrong', broker.wsUrl, '/topic/stocks.ibm', 'x']);
    assertExit(badLogin, 1, 'bad passcode');
    assert.match(badLogin.stderr, /ERROR from the broker: authentication failed/);

    // Allowed both ways, the passcode from the environment.
    const sub = await cliSub(['--login', 'alice', url, '/topic/stocks.ibm', '--count', '1'], { env: { STOMPWS_PASSCODE: 'alice-pw' } });
    const pub = await cli(['pub', '--login', 'bob', broker.wsUrl, '/topic/stocks.ibm', '142.10'], { env: { STOMPWS_PASSCODE: 'bob-pw' } });
    assertExit(pub, 0, 'bob publishes');
    const got = await sub.result;
    assertExit(got, 0, 'alice receives');
    assert.equal(got.stdout, '142.10\n');
  });

brokerTest('a refused WebSocket upgrade names the HTTP status', async (broker) => {
  const r = await cli(['pub', broker.url('/not-here'), '/topic/a', 'x']);
  assertExit(r, 1, 'wrong path');
  assert.match(r.stderr, /the broker refused the WebSocket upgrade: HTTP 404 Not Found/);
});

// ---- TLS: wss:// and ssl:// ----

// A throwaway PKI made with the openssl CLI, as tls.test.mjs makes its own.
const PKI = path.join(DIR, 'pki');
fs.mkdirSync(PKI);
function openssl(args) {
  const r = spawnSync('openssl', args, { cwd: PKI, encoding: 'utf8', timeout: 10000 });
  if (r.error || r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.error?.message ?? ''}${r.stderr}`);
}
const CNF = path.join(PKI, 'openssl.cnf');
fs.writeFileSync(CNF, ['[req]', 'distinguished_name = dn', '[dn]', '[v3_ca]',
  'basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign', ''].join('\n'));
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
openssl(['req', '-x509', '-new', '-config', CNF, '-extensions', 'v3_ca', ...EC, '-keyout', 'ca.key',
  '-out', 'ca.pem', '-subj', '/CN=stompws-cli test CA', '-days', '2']);
function leaf(name, san) {
  fs.writeFileSync(path.join(PKI, `${name}.ext`), ['basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature', 'extendedKeyUsage = serverAuth', `subjectAltName = ${san}`, ''].join('\n'));
  openssl(['req', '-new', '-config', CNF, ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '0x5A01',
    '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`]);
  return ['--wss', '127.0.0.1:0', '--stomp-tls', '127.0.0.1:0',
    '--tls-cert', path.join(PKI, `${name}.pem`), '--tls-key', path.join(PKI, `${name}.key`)];
}
const CA = path.join(PKI, 'ca.pem');
const goodTls = leaf('server', 'DNS:localhost,IP:127.0.0.1');
const wrongHostTls = leaf('wrong-host', 'DNS:wrong.example');

brokerTest('wss:// and ssl:// round trips with --cafile (name and IP verified)', { args: goodTls }, async (broker) => {
  const dest = `/topic/${uniq('tls')}`;
  const sub = await cliSub([`wss://localhost:${broker.wssPort}/ws`, dest, '--count', '3', '--cafile', CA]);
  assertExit(await cli(['pub', '--cafile', CA, `wss://localhost:${broker.wssPort}/ws`, dest, 'over wss']), 0, 'wss pub');
  assertExit(await cli(['pub', '--cafile', CA, `ssl://127.0.0.1:${broker.stompTlsPort}`, dest, 'over ssl']), 0, 'ssl pub');
  assertExit(await cli(['pub', '--cafile', CA, `stomp+ssl://localhost:${broker.stompTlsPort}`, dest], { input: 'l1\nl2\n' }), 0,
    'stomp+ssl pub');
  const r = await sub.result;
  assertExit(r, 0, 'wss sub');
  assert.equal(r.stdout, 'over wss\nover ssl\nl1\n');
});

brokerTest('TLS verification: an unknown CA fails; --insecure connects with a warning', { args: goodTls }, async (broker) => {
  const url = `wss://localhost:${broker.wssPort}/ws`;
  const unknown = await cli(['pub', url, '/topic/a', 'x']);
  assertExit(unknown, 1, 'no --cafile');
  assert.match(unknown.stderr, /TLS: certificate verification failed: (unable to get local issuer certificate|self.signed)/);
  const insecure = await cli(['pub', '--insecure', `ssl://localhost:${broker.stompTlsPort}`, '/topic/a', 'x']);
  assertExit(insecure, 0, '--insecure');
  assert.match(insecure.stderr, /WARNING: --insecure: the broker's certificate is NOT verified/);
  const quiet = await cli(['pub', '--insecure', '-q', url, '/topic/a', 'x']);
  assertExit(quiet, 0, '--insecure -q');
  assert.equal(quiet.stderr, '');
  const plain = await cli(['pub', '--cafile', CA, `ssl://127.0.0.1:${broker.tcpPort}`, '/topic/a', 'x']);
  assertExit(plain, 1, 'TLS to the plain TCP port');
  assert.match(plain.stderr, /TLS handshake failed/);
});

brokerTest('TLS verification: a certificate for another name fails', { args: wrongHostTls }, async (broker) => {
  for (const url of [`wss://localhost:${broker.wssPort}/ws`, `ssl://127.0.0.1:${broker.stompTlsPort}`]) {
    const r = await cli(['pub', '--cafile', CA, url, '/topic/a', 'x']);
    assertExit(r, 1, url);
    assert.match(r.stderr, /TLS: certificate verification failed: (hostname|IP address) mismatch/);
  }
});

// ---- heart-beats ----

brokerTest('--heart-beat: an idle sub stays connected past the broker\'s heart-beat deadline', {
  set: { 'heartbeat.min_ms': 200, 'heartbeat.send_ms': 200, 'heartbeat.receive_ms': 200 },
}, async (broker) => {
  const dest = `/topic/${uniq('hb')}`;
  const sub = await cliSub(['--heart-beat', '200,200', '--count', '1', tcpUrl(broker), dest]);
  await sleep(1500); // the broker drops a client silent for 400 ms
  assertExit(await cli(['pub', tcpUrl(broker), dest, 'still here']), 0, 'pub');
  const r = await sub.result;
  assertExit(r, 0, 'sub');
  assert.equal(r.stdout, 'still here\n');
});

test('--heart-beat: a broker that falls silent is detected', async () => {
  // A peer that answers CONNECT, promises heart-beats every 100 ms, then says nothing.
  const server = net.createServer((socket) => {
    socket.once('data', () => socket.write('CONNECTED\nversion:1.2\nheart-beat:100,0\n\n\0'));
    socket.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const started = Date.now();
    const r = await cli(['sub', '--heart-beat', '0,100', `tcp://127.0.0.1:${server.address().port}`, '/topic/a'],
      { timeout: 10000 });
    assertExit(r, 1, 'sub to a silent peer');
    assert.match(r.stderr, /nothing from the broker for 200 ms \(heart-beats were promised every 100 ms\)/);
    assert.ok(Date.now() - started < 5000);
  } finally {
    server.close();
  }
});
