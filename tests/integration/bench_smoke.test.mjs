// stompws-bench against a real broker, seconds long: fan-out over WebSocket delivers every message
// and the run prints one valid JSON line; a queue over TCP split across two worker processes
// delivers each message once; idle connections spread over two nodes of one cluster (Redis) each
// get every broadcast; bad options and an unreachable broker fail with clear messages.
// The binary comes from STOMPWS_BENCH (set by meson), else build/bench/stompws-bench.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { brokerTest } from './lib/broker.mjs';
import { RedisServer, clusterTest, metricsText } from './lib/cluster.mjs';

const BENCH = process.env.STOMPWS_BENCH
  ? path.resolve(process.env.STOMPWS_BENCH)
  : path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../build/bench/stompws-bench');

// Benchmarks need the broker's per-connection publish limit off; the rest stays at defaults.
const BROKER = { logLevel: 'info', set: { 'limits.publish_rate': 0 }, timeout: 60000 };

// Runs stompws-bench to completion (killed after timeoutMs). Resolves { code, stdout, stderr }.
function runBench(args, timeoutMs = 40000) {
  assert.ok(fs.existsSync(BENCH), `stompws-bench not found: ${BENCH} (set STOMPWS_BENCH)`);
  return new Promise((resolve, reject) => {
    const child = spawn(BENCH, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// The report's JSON line: the last line of stdout, and the only one that is JSON.
function report(r) {
  const lines = r.stdout.trimEnd().split('\n');
  const json = lines.filter((l) => l.startsWith('{'));
  assert.equal(json.length, 1, `exactly one JSON line:\n${r.stdout}\n${r.stderr}`);
  assert.equal(lines.at(-1), json[0], 'the JSON line is the last line');
  return JSON.parse(json[0]);
}

function assertEveryMessage(j, r) {
  const why = `\n${r.stdout}\n${r.stderr}`;
  assert.ok(j.sent > 0, `messages were sent in the window${why}`);
  assert.ok(j.expected > 0, why);
  assert.equal(j.received, j.expected, `every expected delivery arrived${why}`);
  assert.equal(j.loss, 0, why);
  assert.equal(j.duplicates, 0, why);
  assert.equal(j.reordered, 0, why);
  assert.equal(j.bad_bodies, 0, why);
  assert.equal(j.errors, 0, why);
}

brokerTest('fanout 1 -> 20 over WebSocket: every message arrives, one JSON line', BROKER, async (broker) => {
  const r = await runBench(['--url', broker.wsUrl, '--scenario', 'fanout', '--publishers', '1',
    '--subscribers', '20', '--rate', '500', '--warmup', '0.5', '--duration', '2', '--label', 'smoke']);
  assert.equal(r.code, 0, `exit 0\n${r.stdout}\n${r.stderr}`);
  const j = report(r);
  assert.equal(j.tool, 'stompws-bench');
  assert.equal(j.scenario, 'fanout');
  assert.equal(j.label, 'smoke');
  assert.equal(j.transport, 'ws');
  assert.deepEqual(j.connections.up, 21);
  assert.equal(j.params.subscribers, 20);
  assert.equal(j.params.rate, 500);
  assertEveryMessage(j, r);
  assert.equal(j.expected, j.sent * 20, 'each message is expected at all 20 subscribers');
  // 500/s for 2 s, paced: the publisher keeps its schedule.
  assert.ok(j.sent >= 900 && j.sent <= 1001, `sent ${j.sent}`);
  assert.equal(j.latency_ms.count, j.received);
  for (const k of ['p50', 'p90', 'p99', 'p999', 'max']) assert.ok(j.latency_ms[k] > 0, k);
  assert.ok(j.latency_ms.p50 <= j.latency_ms.p99 && j.latency_ms.p99 <= j.latency_ms.max);
  assert.ok(j.cpu_s > 0 && j.wall_s >= 2.5, `cpu ${j.cpu_s}, wall ${j.wall_s}`);
  assert.equal(typeof j.generator_saturated, 'boolean');
  assert.match(r.stdout, /^ {2}latency ms +p50 /m, 'the human table is printed too');
});

brokerTest('queue over TCP with client acks, two worker processes: each message once', BROKER, async (broker) => {
  const r = await runBench(['--url', `tcp://127.0.0.1:${broker.tcpPort}`, '--scenario', 'queue',
    '--publishers', '2', '--consumers', '3', '--ack', 'client-individual', '--rate', '300',
    '--procs', '2', '--warmup', '0.5', '--duration', '1.5', '--json']);
  assert.equal(r.code, 0, `exit 0\n${r.stdout}\n${r.stderr}`);
  assert.equal(r.stdout.trimEnd().split('\n').length, 1, '--json prints only the JSON line');
  const j = report(r);
  assert.equal(j.transport, 'tcp');
  assert.equal(j.params.procs, 2);
  assert.equal(j.connections.up, 5);
  assertEveryMessage(j, r);
  assert.equal(j.expected, j.sent, 'a queue message is delivered once');
});

// Each node's count of MESSAGE frames written, from its /metrics.
async function messagesOut(node) {
  const m = /^stompws_messages_out_total (\d+)$/m.exec(await metricsText(node));
  assert.ok(m, 'stompws_messages_out_total in /metrics');
  return Number(m[1]);
}

clusterTest('idle over two cluster nodes (two --url): each connection gets every broadcast, none in the warm-up', {
  ids: ['nA', 'nB'], broker: BROKER, redis: () => RedisServer.start(), timeout: 40000,
}, async ({ nodes }) => {
  const urls = nodes.map((n) => n.wsUrl);
  const r = await runBench(['--url', urls[0], '--url', urls[1], '--scenario', 'idle',
    '--connections', '40', '--publishers', '1', '--rate', '2', '--warmup', '1', '--duration', '1.5',
    '--procs', '2']);
  assert.equal(r.code, 0, `exit 0\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /^up 41 of 41 connections after [0-9.]+ s; holding them for 2\.5 s$/m);
  const j = report(r);
  assert.deepEqual(j.urls, urls);
  assert.equal(j.url, urls[0]);
  assert.equal(j.connections.subscribers_up, 40);
  assert.equal(j.connections.publishers_up, 1);
  assertEveryMessage(j, r);
  // 2/s over the 1.5 s window: due at its start, +0.5 s and +1 s, and none in the warm-up.
  assert.equal(j.sent, 3, `sent ${j.sent}`);
  assert.equal(j.expected, 3 * 40);
  assert.equal(j.received_outside_window, 0);
  assert.equal(j.latency_ms.of, 'end to end');
  assert.equal(j.latency_ms.count, 120);
  // Connection i went to URL i mod 2 (the publisher, 0, to nA): 20 subscribers on each node, and
  // each node wrote each broadcast to its 20, nB's through Redis.
  assert.deepEqual(await Promise.all(nodes.map(messagesOut)), [60, 60]);
});

test('idle broadcasts and several URLs: bad combinations fail with exit 2, saying why', async () => {
  const noRate = await runBench(['--scenario', 'idle', '--publishers', '1']);
  assert.equal(noRate.code, 2);
  assert.match(noRate.stderr, /--publishers with --scenario idle send paced broadcasts: give --rate/);
  const topics = await runBench(['--scenario', 'idle', '--publishers', '1', '--rate', '1', '--topics', '3']);
  assert.equal(topics.code, 2);
  assert.match(topics.stderr, /--topics must be 1/);
  const mixed = await runBench(['--url', 'ws://127.0.0.1:1/ws', '--url', 'tcp://127.0.0.1:2']);
  assert.equal(mixed.code, 2);
  assert.match(mixed.stderr, /--url tcp:\/\/127\.0\.0\.1:2: every --url of a run uses the same transport as the first \(ws:\/\/\)/);
});

test('a bad option value fails with exit 2, naming the option', async () => {
  const r = await runBench(['--scenario', 'fanout', '--size', '10']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--size 10: bodies carry a 42-byte stamp/);
  const s = await runBench(['--scenario', 'nope']);
  assert.equal(s.code, 2);
  assert.match(s.stderr, /--scenario 'nope'/);
});

test('an unreachable broker: exit 1, the error says why', async () => {
  // A port that was free a moment ago: nothing listens there.
  const port = await new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
  const r = await runBench(['--url', `ws://127.0.0.1:${port}/ws`, '--subscribers', '2',
    '--duration', '0.5', '--warmup', '0', '--drain', '0.5']);
  assert.equal(r.code, 1, `exit 1\n${r.stdout}\n${r.stderr}`);
  const j = report(r);
  assert.equal(j.connections.up, 0);
  assert.ok(j.errors >= 3, `each connection failed: ${j.errors}`);
  assert.match(j.error_kinds[0].message, /connect: Connection refused/);
});
