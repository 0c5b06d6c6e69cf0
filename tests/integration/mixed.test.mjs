// Mixed transports: stomp.py over plain TCP and stompjs over WebSocket exchange messages in
// both directions with the same headers and body.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { brokerTest, withTimeout } from './lib/broker.mjs';
import { stompjs } from './lib/stompjs.mjs';

const PY = '/usr/bin/python3';
const SCRIPT = path.join(path.dirname(new URL(import.meta.url).pathname), 'python', 'mixed_client.py');

// Runs mixed_client.py; resolves { code, lines, stderr }; onLine sees each stdout line.
function runPy(args, onLine = () => {}, timeoutMs = 20000) {
  return withTimeout(new Promise((resolve, reject) => {
    const child = spawn(PY, [SCRIPT, ...args.map(String)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
    const lines = [];
    let buf = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        onLine(line);
      }
    });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, lines, stderr }); });
  }), timeoutMs + 2000, `python ${args[0]}`);
}

async function pyReceiver(broker, version, dest, count) {
  let ready;
  const readyP = new Promise((resolve) => { ready = resolve; });
  const done = runPy(['recv', broker.tcpPort, version, dest, count, 10], (line) => { if (line === 'READY') ready(); });
  await Promise.race([readyP, done.then((r) => { throw new Error(`python receiver exited early (${r.code}): ${r.stderr}`); })]);
  return { done }; // wrapped so that awaiting pyReceiver() waits only for READY
}

function parseMessages(result) {
  assert.equal(result.code, 0, `python exit code; stderr: ${result.stderr}`);
  return result.lines.filter((l) => l.startsWith('{')).map((l) => {
    const m = JSON.parse(l);
    return { headers: m.headers, body: Buffer.from(m.body_b64, 'base64') };
  });
}

for (const version of ['1.0', '1.1', '1.2']) {
  brokerTest(`stomp.py ${version} over TCP -> stompjs over WebSocket`, { timeout: 40000 }, async (broker) => {
    const sj = await stompjs(broker);
    const sub = await sj.subscribe('/topic/mixed.py2js');
    const body = `from python ${version}: ünï ✓`;
    const r = await runPy(['send', broker.tcpPort, version, '/topic/mixed.py2js', Buffer.from(body).toString('base64'),
      JSON.stringify({ 'x-origin': 'stomp.py', 'content-type': 'text/plain;charset=utf-8' })]);
    assert.equal(r.code, 0, `python exit code; stderr: ${r.stderr}`);
    const m = await sj.message(sub);
    assert.equal(m.body, body);
    assert.equal(m.headers['x-origin'], 'stomp.py');
    assert.equal(m.headers['content-type'], 'text/plain;charset=utf-8');
    assert.equal(m.headers.destination, '/topic/mixed.py2js');
    assert.equal(m.headers['content-length'], String(Buffer.byteLength(body)));
  });

  brokerTest(`stompjs over WebSocket -> stomp.py ${version} over TCP`, { timeout: 40000 }, async (broker) => {
    const receiving = (await pyReceiver(broker, version, '/queue/mixed.js2py', 2)).done;
    const sj = await stompjs(broker);
    const body = 'from stompjs: ünï ✓';
    const bin = Buffer.from([0, 1, 2, 255, 0, 128]);
    await sj.publishWithReceipt({ destination: '/queue/mixed.js2py', body, headers: { 'x-origin': 'stompjs', 'content-type': 'text/plain' } });
    await sj.publishWithReceipt({ destination: '/queue/mixed.js2py', binaryBody: new Uint8Array(bin), headers: { 'content-type': 'application/octet-stream' } });
    const msgs = parseMessages(await receiving);
    assert.equal(msgs.length, 2);
    assert.equal(msgs[0].body.toString('utf8'), body);
    assert.equal(msgs[0].headers['x-origin'], 'stompjs');
    assert.equal(msgs[0].headers['content-type'], 'text/plain');
    assert.equal(msgs[0].headers.destination, '/queue/mixed.js2py');
    assert.ok(msgs[1].body.equals(bin), `binary body byte-exact: ${msgs[1].body.toString('hex')}`);
    assert.equal(msgs[1].headers['content-type'], 'application/octet-stream');
  });
}

brokerTest('header values with ":" cross from stompjs (1.2, escaped) to stomp.py 1.2', { timeout: 40000 }, async (broker) => {
  const receiving = (await pyReceiver(broker, '1.2', '/topic/mixed.esc', 1)).done;
  const sj = await stompjs(broker);
  await sj.publishWithReceipt({ destination: '/topic/mixed.esc', body: 'x', headers: { 'x-url': 'http://example.invalid:8080/a' } });
  const [m] = parseMessages(await receiving);
  assert.equal(m.headers['x-url'], 'http://example.invalid:8080/a');
});
