// Starts and stops a real stompws process for one test.
//
// brokerTest(name, options, fn) registers a node:test test that
//   1. spawns STOMPWS_BIN with --ws 127.0.0.1:0 --tcp 127.0.0.1:0 --log-level debug and the
//      --set overrides in options.set (plus options.args, options.config as a --config file),
//   2. waits (at most 10 s) for "listening ws 127.0.0.1:PORT" / "listening tcp 127.0.0.1:PORT"
//      (and "listening wss|stomp-tls 127.0.0.1:PORT" when options.args has --wss/--stomp-tls),
//   3. runs fn(broker) with its own time limit (options.timeout, default 30 s),
//   4. closes every client the test registered with broker.track(), sends SIGTERM, waits up to
//      5 s (then SIGKILL), and fails the test if the broker did not exit 0 (graceful shutdown,
//      and under AddressSanitizer: no leak report),
//   5. on any failure appends the tail of the broker's stderr log to the error (the full log is
//      kept in a temp file whose path is printed).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { test } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const STOMPWS_BIN = process.env.STOMPWS_BIN
  ? path.resolve(process.env.STOMPWS_BIN)
  : path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../build/server/stompws');

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

// Stretches the broker's start-up and shutdown waits: a broker under valgrind (tests/valgrind/run
// sets 3) starts and exits many times slower. Tests keep their own bounds, except the few that
// wait on what valgrind slows most (a PBKDF2 login at the default iterations, TLS handshakes).
export const TIME_SCALE = Math.max(1, Number(process.env.STOMPWS_TIME_SCALE) || 1);

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls fn() every 20 ms until it returns a truthy value, which it returns (an exception counts
// as "not yet": a node may be down on purpose); throws after timeoutMs with the last answer.
export async function until(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : last})`);
    }
    await sleep(20);
  }
}

// Rejects with `what` after ms unless promise settles first; the timer never keeps node alive.
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Writes a users file for --users (the format in docs/SECURITY.md) with node's PBKDF2, as a
// provisioning tool would: { user: password, ... }. The broker's minimum iteration count by
// default, so that a login stays fast under valgrind (at stompws passwd's 210,000 it takes 10-15 s
// there); tests about the default count use stompws passwd itself.
export function writeUsersFile(file, passwords, iterations = 1000) {
  const b64 = (bytes) => bytes.toString('base64').replace(/=+$/, '');
  const lines = Object.entries(passwords).map(([user, password]) => {
    const salt = crypto.randomBytes(16);
    const hash = crypto.pbkdf2Sync(password, salt, iterations, 32, 'sha256');
    return `${user}:$pbkdf2-sha256$${iterations}$${b64(salt)}$${b64(hash)}\n`;
  });
  fs.writeFileSync(file, lines.join(''), { mode: 0o600 });
  return file;
}

function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-it-'));
}

export class Broker {
  constructor(child, dir) {
    this.child = child;
    this.dir = dir;
    this.stdout = '';
    this.stderr = '';
    this.wsPort = null;
    this.tcpPort = null;
    this.wssPort = null; // TLS listeners, when started with --wss / --stomp-tls
    this.stompTlsPort = null;
    this.httpPort = null; // the --http listener, when started with it
    this.exit = null; // { code, signal } once exited
    this.clients = new Set();
    // 'close' (not 'exit'): fires once stdout/stderr are drained, so the log is complete.
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        live.delete(child);
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => { this.stdout += d; });
    child.stderr.on('data', (d) => { this.stderr += d; });
  }

  get wsUrl() { return `ws://127.0.0.1:${this.wsPort}/ws`; }

  url(pathname = '/ws') { return `ws://127.0.0.1:${this.wsPort}${pathname}`; }

  wssUrl(pathname = '/ws', host = '127.0.0.1') { return `wss://${host}:${this.wssPort}${pathname}`; }

  // Register anything with close()/destroy()/deactivate() to be closed at teardown.
  track(client) { this.clients.add(client); return client; }

  async closeClients() {
    const all = [...this.clients];
    this.clients.clear();
    await Promise.allSettled(all.map(async (c) => {
      try {
        if (typeof c.deactivate === 'function') await withTimeout(c.deactivate({ force: true }), 2000, 'stompjs deactivate');
        else if (typeof c.destroy === 'function') c.destroy();
        else if (typeof c.terminate === 'function') c.terminate();
        else if (typeof c.close === 'function') c.close();
      } catch { /* best effort */ }
    }));
  }

  // SIGTERM, then SIGKILL after killAfterMs. Resolves to { code, signal }.
  async stop(killAfterMs = 5000 * TIME_SCALE) {
    if (this.exit) return this.exit;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => { try { this.child.kill('SIGKILL'); } catch { /* gone */ } }, killAfterMs);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }

  logTail(lines = 150) {
    const all = this.stderr.split('\n');
    const tail = all.slice(-lines).join('\n');
    let logFile = '';
    try {
      logFile = path.join(this.dir, 'broker.log');
      fs.writeFileSync(logFile, `--- stdout ---\n${this.stdout}\n--- stderr ---\n${this.stderr}`);
    } catch { logFile = '(could not write log file)'; }
    return `--- broker log (last ${Math.min(lines, all.length)} of ${all.length} stderr lines; full log: ${logFile}) ---\n`
      + `--- stdout ---\n${this.stdout}\n--- stderr tail ---\n${tail}\n--- end of broker log ---`;
  }
}

// Builds the command line. options: { set: {k: v}, args: [...], config: 'ini text', ws, tcp,
// threads }
export function brokerArgs(options = {}, dir = null) {
  const args = [];
  if (options.ws !== null) args.push('--ws', options.ws ?? '127.0.0.1:0');
  if (options.tcp !== null) args.push('--tcp', options.tcp ?? '127.0.0.1:0');
  if (options.logLevel !== null) args.push('--log-level', options.logLevel ?? 'debug');
  if (options.config != null) {
    const file = path.join(dir ?? tmpDir(), 'stompws.ini');
    fs.writeFileSync(file, options.config);
    args.push('--config', file);
  }
  // Keep graceful shutdown short unless a test asks otherwise: teardown waits at most 5 s.
  const set = { 'server.shutdown_timeout_ms': 2000, ...(options.set ?? {}) };
  for (const [k, v] of Object.entries(set)) {
    if (v !== undefined && v !== null) args.push('--set', `${k}=${v}`);
  }
  // server.threads is "auto" by default (a loop per usable CPU). The suites run one loop unless
  // STOMPWS_TEST_THREADS says otherwise: their counts (per-address limits, log lines, ordering
  // across one inbox) are written for one; threads.test.mjs covers several, and a test that
  // wants the default passes threads: null.
  const threads = options.threads !== undefined ? options.threads : (process.env.STOMPWS_TEST_THREADS ?? 1);
  const named = (options.args ?? []).includes('--threads') || 'server.threads' in (options.set ?? {});
  if (threads !== null && !named) args.push('--threads', String(threads));
  args.push(...(options.args ?? []));
  return args;
}

// Runs the binary to completion (for CLI tests). Resolves { code, signal, stdout, stderr }.
export function runBroker(args, timeoutMs = 10000 * TIME_SCALE) {
  return new Promise((resolve, reject) => {
    if (!fs.existsSync(STOMPWS_BIN)) {
      reject(new Error(`broker binary not found: ${STOMPWS_BIN} (set STOMPWS_BIN)`));
      return;
    }
    const child = spawn(STOMPWS_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); live.delete(child); reject(e); });
    // 'close' (not 'exit'): resolves once stdout/stderr are drained, so no message is lost.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, stdout, stderr, timedOut: signal === 'SIGKILL' });
    });
  });
}

// Spawns the broker and waits for its listening lines. options as brokerArgs, plus
// waitTcp (default: true unless tcp is 'off' or null), waitWs (default: true unless ws is 'off'),
// waitWss / waitStompTls / waitHttp (default: true when options.args contains --wss /
// --stomp-tls / --http).
export async function startBroker(options = {}) {
  if (!fs.existsSync(STOMPWS_BIN)) {
    throw new Error(`broker binary not found: ${STOMPWS_BIN} (set STOMPWS_BIN)`);
  }
  const dir = tmpDir();
  const args = brokerArgs(options, dir);
  const child = spawn(STOMPWS_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  live.add(child);
  const broker = new Broker(child, dir);
  broker.args = args;
  const wantTcp = options.waitTcp ?? (options.tcp !== 'off' && options.tcp !== null);
  const wantWs = options.waitWs ?? options.ws !== 'off';
  const wantWss = options.waitWss ?? (options.args ?? []).includes('--wss');
  const wantStompTls = options.waitStompTls ?? (options.args ?? []).includes('--stomp-tls');
  const wantHttp = options.waitHttp ?? (options.args ?? []).includes('--http');
  const ready = new Promise((resolve, reject) => {
    const check = () => {
      const ws = /^listening ws 127\.0\.0\.1:(\d+)\s*$/m.exec(broker.stdout);
      const tcp = /^listening tcp 127\.0\.0\.1:(\d+)\s*$/m.exec(broker.stdout);
      const wss = /^listening wss 127\.0\.0\.1:(\d+)\s*$/m.exec(broker.stdout);
      const stompTls = /^listening stomp-tls 127\.0\.0\.1:(\d+)\s*$/m.exec(broker.stdout);
      const http = /^listening http 127\.0\.0\.1:(\d+)\s*$/m.exec(broker.stdout);
      if (ws) broker.wsPort = Number(ws[1]);
      if (tcp) broker.tcpPort = Number(tcp[1]);
      if (wss) broker.wssPort = Number(wss[1]);
      if (stompTls) broker.stompTlsPort = Number(stompTls[1]);
      if (http) broker.httpPort = Number(http[1]);
      if ((ws || !wantWs) && (tcp || !wantTcp) && (wss || !wantWss) && (stompTls || !wantStompTls)
          && (http || !wantHttp)) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code, signal) => {
      cleanup();
      reject(new Error(`broker exited during startup (code ${code}, signal ${signal}); args: ${args.join(' ')}`));
    };
    const onError = (e) => { cleanup(); reject(e); };
    const onData = () => setImmediate(check);
    const cleanup = () => {
      child.stdout.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
    };
    child.stdout.on('data', onData);
    child.on('exit', onExit);
    child.on('error', onError);
  });
  try {
    await withTimeout(ready, 10000 * TIME_SCALE, 'the broker\'s "listening ..." lines');
  } catch (e) {
    await broker.stop(1000);
    e.message += `\n${broker.logTail()}`;
    throw e;
  }
  return broker;
}

// Registers a test that runs fn(broker, t) against a fresh broker; see the file comment.
// options: broker options plus { timeout (ms, default 30000), expectExit (default 0),
//          skipStop (fn stops the broker itself and asserts its exit) }.
export function brokerTest(name, options, fn) {
  if (typeof options === 'function') { fn = options; options = {}; }
  const timeout = options.timeout ?? 30000;
  test(name, { timeout: timeout + 20000 }, async (t) => {
    const broker = await startBroker(options);
    let error = null;
    try {
      await withTimeout(Promise.resolve().then(() => fn(broker, t)), timeout, `test body "${name}"`);
    } catch (e) {
      error = e;
    }
    await broker.closeClients();
    const exit = await broker.stop();
    if (!error && (exit.code !== 0 || exit.signal !== null)) {
      error = new Error(`broker did not exit 0 on SIGTERM: code ${exit.code}, signal ${exit.signal}`);
    }
    if (!error) {
      fs.rmSync(broker.dir, { recursive: true, force: true });
    } else {
      const tail = broker.logTail();
      if (error instanceof Error) {
        error.message += `\n${tail}`;
      } else {
        error = new Error(`${String(error)}\n${tail}`);
      }
      throw error;
    }
  });
}
