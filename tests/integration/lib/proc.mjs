// What tests read off a running broker besides its protocols: /metrics samples, its memory and
// its open files (Linux /proc), and a bounded poll for a condition.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { STOMPWS_BIN, sleep } from './broker.mjs';

// The value of one series in a /metrics text ("name" or 'name{label="x"}'). Without fallback
// the series must be there; with one, a missing series reads as fallback.
export function sample(text, series, fallback) {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined && fallback !== undefined) return fallback;
  assert.ok(line, `no ${series} in /metrics:\n${text}`);
  return Number(line.slice(series.length + 1));
}

// The broker process's resident memory in bytes (VmRSS).
export function rssBytes(broker) {
  const status = fs.readFileSync(`/proc/${broker.child.pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)[1]) * 1024;
}

// RSS bounds hold for the broker's own allocator only: not under AddressSanitizer, which keeps
// freed memory in quarantine (256 MiB by default) rather than reusing it, nor under valgrind
// (tests/valgrind/run), whose process it then is. Leaks there are LeakSanitizer's and memcheck's
// to find, at the broker's exit; tests skip their RSS checks when this is false.
const SANITIZED = fs.existsSync(STOMPWS_BIN) && fs.readFileSync(STOMPWS_BIN).includes('__asan_init');

export function rssComparable(broker) {
  if (SANITIZED) return false;
  try {
    return !/valgrind|memcheck/.test(fs.readlinkSync(`/proc/${broker.child.pid}/exe`));
  } catch {
    return false;
  }
}

// Open file descriptors of the broker process.
export const fdCount = (broker) => fs.readdirSync(`/proc/${broker.child.pid}/fd`).length;

// Polls cond (sync or async) every interval ms until it is true; resolves with the time it
// took, or throws naming `what` after timeout ms.
export async function waitFor(what, cond, timeout, interval = 50) {
  const start = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - start;
    if (Date.now() - start > timeout) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}
