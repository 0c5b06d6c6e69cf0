// Operators' view of a running broker: the log file (--log-file, reopened on SIGHUP after a
// rename, as logrotate does), JSON lines (--log-format json) that name each connection's id and
// peer, control bytes that never forge a line, write failures (/dev/full) that are counted but
// never stop the broker, and the event-loop lag metric.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { brokerTest, runBroker, sleep } from './lib/broker.mjs';
import { httpExchange } from './lib/rawws.mjs';
import { tcpClient, tcpStomp, wsStomp } from './lib/stomp.mjs';
import { sample } from './lib/proc.mjs';

function tmpDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-logging-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const read = (file) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');

// Polls file until its text matches re; bounded by timeout. Returns the text.
async function waitForFile(file, re, timeout = 5000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const text = read(file);
    if (re.test(text)) return text;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${re} in ${file}; it holds:\n${text}`);
    }
    await sleep(50);
  }
}

async function metrics(broker) {
  const r = await httpExchange(broker, broker.wsPort, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  assert.equal(r.status, 200);
  return r.body;
}

// The value of one series ("name" or "name{labels}") in Prometheus text.
// A STOMP 1.2 UNSUBSCRIBE whose id holds a newline, a quote, a backslash (header escapes) and a
// byte that is not UTF-8; the broker logs the unknown id (debug) and sends the receipt.
async function unsubscribeEvil(client) {
  client.sendBytes(Buffer.concat([
    Buffer.from('UNSUBSCRIBE\nid:evil\\nfake line "q" \\\\ '),
    Buffer.from([0xff]),
    Buffer.from(' end\nreceipt:evil\n\n\0'),
  ]));
  await client.inbox.take((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'evil');
}

const logDir = tmpDir();
const rotating = path.join(logDir, 'broker.log');
brokerTest('--log-file: lines go to the file; after rename + SIGHUP the old file keeps the old '
  + 'lines and a new file gets the new ones', { args: ['--log-file', rotating] }, async (broker) => {
  const first = await tcpStomp(broker, { label: 'first' });
  const firstPeer = `127.0.0.1:${first.socket.localPort}`;
  await waitForFile(rotating, new RegExp(`\\[c\\d+ ${firstPeer}\\] tcp connection from ${firstPeer}`));

  fs.renameSync(rotating, `${rotating}.1`);
  broker.child.kill('SIGHUP');
  await waitForFile(rotating, /log file .*broker\.log reopened/);

  const second = await tcpStomp(broker, { label: 'second' });
  const secondPeer = `127.0.0.1:${second.socket.localPort}`;
  await waitForFile(rotating, new RegExp(`\\[c\\d+ ${secondPeer}\\] tcp connection from`));

  const old = read(`${rotating}.1`);
  const fresh = read(rotating);
  assert.match(old, /stompws \S+ ready/);
  assert.match(old, /received SIGHUP/, 'the line before the reopen ends the old file');
  assert.ok(old.includes(firstPeer) && !old.includes(secondPeer), `old file:\n${old}`);
  assert.ok(fresh.includes(secondPeer) && !fresh.includes(firstPeer), `new file:\n${fresh}`);
  assert.doesNotMatch(fresh, /ready/, 'the new file starts at the reopen');
  assert.doesNotMatch(broker.stderr, /connection from/, 'nothing is logged to stderr any more');
});

const jsonDir = tmpDir();
const jsonLog = path.join(jsonDir, 'broker.json.log');
brokerTest('--log-format json: every line parses; lines about a connection carry conn and peer; '
  + 'escapes keep one event per line', {
  args: ['--log-file', jsonLog, '--log-format', 'json'],
}, async (broker) => {
  const ws = await wsStomp(broker, { label: 'ws' });
  const tcp = await tcpStomp(broker, { label: 'tcp' });
  const tcpPeer = `127.0.0.1:${tcp.socket.localPort}`;
  await unsubscribeEvil(tcp);
  const text = await waitForFile(jsonLog, /UNSUBSCRIBE of unknown id[^\n]* end/);

  const lines = text.trimEnd().split('\n');
  const events = lines.map((l) => {
    try {
      return JSON.parse(l);
    } catch (e) {
      throw new Error(`not a JSON line: ${l}\n(${e.message})`);
    }
  });
  for (const ev of events) {
    assert.match(ev.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['debug', 'info', 'warn', 'error'].includes(ev.level), JSON.stringify(ev));
    assert.equal(typeof ev.msg, 'string');
    if ('conn' in ev) {
      assert.equal(typeof ev.conn, 'number');
      assert.match(ev.peer, /^127\.0\.0\.1:\d+$/, `a line about a connection names its peer: ${JSON.stringify(ev)}`);
    }
  }
  const accepted = events.find((ev) => ev.msg === `tcp connection from ${tcpPeer}`);
  assert.ok(accepted, `a JSON line for the TCP connection from ${tcpPeer}:\n${text}`);
  assert.equal(accepted.level, 'debug');
  assert.equal(accepted.peer, tcpPeer);
  const unsub = events.find((ev) => ev.msg.startsWith('UNSUBSCRIBE of unknown id'));
  assert.ok(unsub, `the UNSUBSCRIBE is logged:\n${text}`);
  assert.equal(unsub.conn, accepted.conn, 'the same connection id on every line about it');
  assert.equal(unsub.peer, tcpPeer);
  assert.equal(unsub.msg, 'UNSUBSCRIBE of unknown id \'evil\nfake line "q" \\ \ufffd end\' ignored',
    'newline, quote and backslash come back from their JSON escapes, the non-UTF-8 byte as U+FFFD');
  assert.ok(!lines.some((l) => l.startsWith('fake line')), 'the id cannot start a line of its own');
  const wsOpened = events.find((ev) => /^websocket open/.test(ev.msg));
  assert.ok(wsOpened && wsOpened.conn !== accepted.conn, 'the WebSocket connection has its own id');
  assert.match(wsOpened.peer, /^127\.0\.0\.1:\d+$/);
  assert.notEqual(wsOpened.peer, tcpPeer);
  assert.ok(events.some((ev) => /^stompws \S+ ready$/.test(ev.msg) && !('conn' in ev) && !('peer' in ev)),
    'lines about no connection have neither conn nor peer');
  assert.ok(ws && tcp);
});

brokerTest('text lines name conn and peer and show control bytes as \\xNN, on one line', {},
  async (broker) => {
    const tcp = await tcpStomp(broker, { label: 'tcp' });
    const peer = `127.0.0.1:${tcp.socket.localPort}`;
    await unsubscribeEvil(tcp);
    const deadline = Date.now() + 5000;
    while (!/UNSUBSCRIBE of unknown id/.test(broker.stderr) && Date.now() < deadline) await sleep(50);
    const line = broker.stderr.split('\n').find((l) => l.includes('UNSUBSCRIBE of unknown id'));
    assert.ok(line, `an UNSUBSCRIBE line in:\n${broker.stderr}`);
    assert.match(line, new RegExp(`^\\S+Z debug \\[c\\d+ ${peer}\\] UNSUBSCRIBE of unknown id 'evil\\\\x0afake line "q" \\\\ `),
      'the newline is written \\x0a');
    assert.ok(!broker.stderr.split('\n').some((l) => l.startsWith('fake line')));
  });

test('--log-file that cannot be opened: start-up fails naming the file and the reason', async () => {
  const r = await runBroker(['--ws', '127.0.0.1:0', '--tcp', 'off',
    '--log-file', path.join(tmpDir(), 'no-such-dir', 'broker.log')]);
  assert.equal(r.timedOut, false, 'the broker exits instead of running');
  assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, /cannot open log file \S*no-such-dir\/broker\.log: No such file or directory/);
  assert.doesNotMatch(r.stdout, /listening/);
});

test('--log-format with an unknown format exits 2 naming the choices', async () => {
  const r = await runBroker(['--ws', '127.0.0.1:0', '--tcp', 'off', '--log-format', 'xml']);
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, /server\.log_format: invalid value 'xml' \(expected text or json\)/);
});

brokerTest('a log file that refuses writes (/dev/full: ENOSPC): the broker keeps serving and '
  + 'counts the dropped lines', { args: ['--log-file', '/dev/full'] }, async (broker) => {
  const before = sample(await metrics(broker), 'stompws_log_lines_dropped_total');
  assert.ok(before >= 1, 'the "ready" line (and those of the /metrics request) were dropped');

  const sub = await wsStomp(broker, { label: 'sub' });
  await sub.subscribe('/topic/full', 's1');
  const pub = await tcpStomp(broker, { label: 'pub' });
  for (let i = 0; i < 20; i++) await pub.sendWithReceipt('SEND', { destination: '/topic/full' }, `m${i}`);
  const got = await sub.messages(20);
  assert.deepEqual(got.map((m) => m.text), Array.from({ length: 20 }, (_, i) => `m${i}`));

  const after = sample(await metrics(broker), 'stompws_log_lines_dropped_total');
  assert.ok(after > before, `debug lines of the new connections were counted (${before} -> ${after})`);
  const notices = broker.stderr.match(/cannot write to log file \/dev\/full: No space left on device/g) ?? [];
  assert.equal(notices.length, 1, `stderr says so once:\n${broker.stderr}`);
});

brokerTest('event-loop lag: a gauge and a histogram, sane after traffic', {}, async (broker) => {
  const sub = await wsStomp(broker, { label: 'sub' });
  await sub.subscribe('/topic/lag', 's1');
  const pub = await tcpStomp(broker, { label: 'pub' });
  for (let i = 0; i < 50; i++) pub.send('SEND', { destination: '/topic/lag' }, `m${i}`);
  await sub.messages(50);
  await sleep(600); // at least two 250 ms ticks

  const text = await metrics(broker);
  assert.match(text, /# TYPE stompws_event_loop_lag_seconds gauge/);
  assert.match(text, /# TYPE stompws_event_loop_tick_lag_seconds histogram/);
  const lag = sample(text, 'stompws_event_loop_lag_seconds');
  assert.ok(lag >= 0 && lag < 1, `an idle loop is not a second late: ${lag}`);
  const count = sample(text, 'stompws_event_loop_tick_lag_seconds_count');
  assert.ok(count >= 2, `ticks counted: ${count}`);
  const buckets = text.split('\n').filter((l) => l.startsWith('stompws_event_loop_tick_lag_seconds_bucket'));
  const values = buckets.map((l) => Number(l.split(' ')[1]));
  assert.ok(values.every((v, i) => i === 0 || v >= values[i - 1]), `buckets are cumulative:\n${buckets.join('\n')}`);
  assert.match(buckets.at(-1), /le="\+Inf"/);
  assert.equal(values.at(-1), count, 'the +Inf bucket holds every tick');
  const sum = sample(text, 'stompws_event_loop_tick_lag_seconds_sum');
  assert.ok(sum >= 0 && sum < count, `sum of lags: ${sum}`);
});

brokerTest('event-loop lag: a stalled process shows in the histogram', {}, async (broker) => {
  await sleep(300);
  const before = await metrics(broker);
  const lateBefore = sample(before, 'stompws_event_loop_tick_lag_seconds_count')
    - sample(before, 'stompws_event_loop_tick_lag_seconds_bucket{le="0.25"}');
  broker.child.kill('SIGSTOP'); // the whole process stops: the tick due meanwhile runs late
  await sleep(800);
  broker.child.kill('SIGCONT');
  await sleep(100);
  const after = await metrics(broker);
  const lateAfter = sample(after, 'stompws_event_loop_tick_lag_seconds_count')
    - sample(after, 'stompws_event_loop_tick_lag_seconds_bucket{le="0.25"}');
  assert.ok(lateAfter > lateBefore, `a tick more than 0.25 s late (${lateBefore} -> ${lateAfter})`);
  const sumGrowth = sample(after, 'stompws_event_loop_tick_lag_seconds_sum')
    - sample(before, 'stompws_event_loop_tick_lag_seconds_sum');
  assert.ok(sumGrowth >= 0.4, `the stall adds about 0.55 s or more of lag: ${sumGrowth}`);
});

// Tokens in URLs never reach the log, at the most verbose level: an access_token (and any other
// query parameter) on the WebSocket upgrade and on an HTTP route, and a bearer token in the
// Authorization header, which ends in the CONNECT's failed authentication.
brokerTest('access_token and bearer tokens never appear in a log line, at debug level', {},
  async (broker) => {
    const secret = 'sEcReT-token-value-0123456789';
    const ws = await wsStomp(broker, { label: 'token-ws', path: `/ws?access_token=${secret}&x=1` });
    const r = await httpExchange(broker, broker.wsPort,
      `GET /healthz?access_token=${secret}&refresh_token=${secret} HTTP/1.1\r\nHost: 127.0.0.1\r\n`
      + `Authorization: Bearer ${secret}\r\n\r\n`);
    assert.equal(r.status, 200);
    const bad = await httpExchange(broker, broker.wsPort,
      `GET /nowhere?access_token=${secret} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    assert.equal(bad.status, 404);
    await ws.disconnect();
    // The broker logged the upgrade and both requests: the lines are there, the secret is not.
    const deadline = Date.now() + 5000;
    while (!/http GET \/nowhere/.test(broker.stderr) && Date.now() < deadline) await sleep(50);
    assert.match(broker.stderr, /websocket open/);
    assert.match(broker.stderr, /http GET \/healthz/);
    assert.ok(!broker.stderr.includes(secret), `a log line holds the token:\n${broker.stderr}`);
  });
