// Protocol errors: ERROR frame (message header, receipt-id, body summarising the frame), then
// close; WebSocket close 1002 after a protocol ERROR and 1009 after a size limit.
import assert from 'node:assert/strict';
import { brokerTest } from './lib/broker.mjs';
import { wsStomp, tcpStomp, encodeFrame } from './lib/stomp.mjs';

const PREFIXES = ['/topic/', '/queue/', '/temp-queue/', '/reply-queue/', '/user/'];

brokerTest('unknown command over TCP -> ERROR (message, receipt-id, body names the frame), then close', {}, async (broker) => {
  const c = await tcpStomp(broker);
  c.send('FROB', { receipt: 'r-frob', 'x-a': '1' }, 'payload');
  const e = await c.error();
  assert.ok(e.headers.message, 'message header');
  assert.equal(e.headers['receipt-id'], 'r-frob');
  assert.match(e.text, /FROB/, `body summarises the offending frame: ${e.text}`);
  await c.closed();
});

brokerTest('unknown command over WebSocket -> ERROR then close 1002', {}, async (broker) => {
  const c = await wsStomp(broker);
  c.send('FROB', {}, '');
  const e = await c.error();
  assert.ok(e.headers.message);
  const info = await c.closed();
  assert.equal(info.code, 1002);
});

brokerTest('SEND without destination -> ERROR with receipt-id, then close 1002', {}, async (broker) => {
  const c = await wsStomp(broker);
  c.send('SEND', { receipt: 'no-dest', 'content-type': 'text/plain' }, 'orphan');
  const e = await c.error();
  assert.ok(e.headers.message);
  assert.equal(e.headers['receipt-id'], 'no-dest');
  assert.match(e.text, /SEND/, `body summarises the offending frame: ${e.text}`);
  assert.equal((await c.closed()).code, 1002);
});

brokerTest('SUBSCRIBE without id in STOMP 1.2 -> ERROR', {}, async (broker) => {
  const c = await tcpStomp(broker);
  c.send('SUBSCRIBE', { destination: '/topic/x', receipt: 'sub-no-id' });
  const e = await c.error();
  assert.equal(e.headers['receipt-id'], 'sub-no-id');
  await c.closed();
});

brokerTest('an undefined header escape (\\t) in STOMP 1.2 -> ERROR, close 1002', {}, async (broker) => {
  const c = await wsStomp(broker);
  c.send('SEND', [['receipt', 'r-esc'], ['destination', '/topic/x'], ['x-bad', 'a\\tb']], 'x');
  const e = await c.error();
  assert.ok(e.headers.message);
  assert.equal((await c.closed()).code, 1002);
});

brokerTest('an undefined header escape: ERROR carries receipt-id (receipt came first) and names the frame', {}, async (broker) => {
  const c = await tcpStomp(broker);
  c.send('SEND', [['receipt', 'r-esc'], ['destination', '/topic/x'], ['x-bad', 'a\\tb']], 'x');
  const e = await c.error();
  assert.equal(e.headers['receipt-id'], 'r-esc');
  assert.match(e.text, /SEND/, `body summarises the offending frame: ${e.text}`);
  await c.closed();
});

brokerTest('a non-numeric content-length -> ERROR, close 1002', {}, async (broker) => {
  const c = await wsStomp(broker);
  c.send('SEND', { destination: '/topic/x', 'content-length': 'twelve' }, 'x');
  await c.error();
  assert.equal((await c.closed()).code, 1002);
});

brokerTest('content-length shorter than the body (no NUL where expected) -> ERROR', {}, async (broker) => {
  const c = await tcpStomp(broker);
  c.send('SEND', { destination: '/topic/x', 'content-length': 3 }, 'abcdef');
  const e = await c.error();
  assert.ok(e.headers.message);
  await c.closed();
});

// Found by tests/fuzz/fuzz_connection.c: the receipt-id was copied with the NUL and what came
// after it, so the ERROR's own head held a NUL, where a client's parser ends the frame.
brokerTest('a NUL in the header lines after receipt -> ERROR whose receipt-id stops at the NUL', {}, async (broker) => {
  const c = await tcpStomp(broker);
  c.sendBytes(Buffer.from('SEND\ndestination:/topic/x\nreceipt:r-nul\0tail\n\nbody\0', 'latin1'));
  const e = await c.error();
  assert.match(e.headers.message, /NUL/);
  assert.equal(e.headers['receipt-id'], 'r-nul');
  const raw = Buffer.concat(c.chunks);
  const start = raw.indexOf('ERROR\n');
  assert.equal(raw.subarray(start, raw.indexOf('\n\n', start)).indexOf(0), -1, 'no NUL in the ERROR head');
  await c.closed();
});

brokerTest('unknown destination prefix -> ERROR naming the allowed prefixes (SEND)', {}, async (broker) => {
  const c = await tcpStomp(broker);
  c.send('SEND', { destination: '/foo/bar', receipt: 'r-foo' }, 'x');
  const e = await c.error();
  for (const p of PREFIXES) assert.ok(e.headers.message.includes(p), `message names ${p}: ${e.headers.message}`);
  assert.equal(e.headers['receipt-id'], 'r-foo');
  await c.closed();
});

brokerTest('unknown destination prefix -> ERROR naming the allowed prefixes (SUBSCRIBE)', {}, async (broker) => {
  const c = await wsStomp(broker);
  c.send('SUBSCRIBE', { id: 's', destination: '/exchange/amq.topic' });
  const e = await c.error();
  for (const p of PREFIXES) assert.ok(e.headers.message.includes(p), `message names ${p}: ${e.headers.message}`);
  await c.closed();
});

brokerTest('frames after a protocol error in the same write are not processed', {}, async (broker) => {
  const watcher = await tcpStomp(broker, { label: 'watcher' });
  await watcher.subscribe('/topic/after-error', 'w');
  const c = await tcpStomp(broker);
  c.sendBytes(Buffer.concat([
    encodeFrame('BOGUS', {}, ''),
    encodeFrame('SEND', { destination: '/topic/after-error' }, 'must not be routed'),
  ]));
  await c.error();
  await c.closed();
  const other = await tcpStomp(broker);
  await other.sendWithReceipt('SEND', { destination: '/topic/after-error' }, 'marker');
  assert.equal((await watcher.message()).text, 'marker');
  assert.equal(await watcher.inbox.quiet(200, 'MESSAGE'), null);
});

// ---- size limits ----

brokerTest('body over limits.max_body over WebSocket -> ERROR, close 1009', { set: { 'limits.max_body': 1024 } }, async (broker) => {
  const ok = await wsStomp(broker, { label: 'ok' });
  await ok.sendWithReceipt('SEND', { destination: '/topic/x', 'content-length': 1024 }, 'a'.repeat(1024));
  const c = await wsStomp(broker);
  c.send('SEND', { destination: '/topic/x', 'content-length': 2048 }, 'a'.repeat(2048));
  const e = await c.error();
  assert.ok(e.headers.message);
  assert.equal((await c.closed()).code, 1009);
});

brokerTest('body over limits.max_body without content-length -> ERROR, close 1009', { set: { 'limits.max_body': 1024 } }, async (broker) => {
  const c = await wsStomp(broker);
  c.send('SEND', { destination: '/topic/x' }, 'b'.repeat(4096));
  await c.error();
  assert.equal((await c.closed()).code, 1009);
});

brokerTest('body over limits.max_body over TCP -> ERROR, close', { set: { 'limits.max_body': 1024 } }, async (broker) => {
  const c = await tcpStomp(broker);
  c.send('SEND', { destination: '/topic/x', 'content-length': 5000 }, 'a'.repeat(5000));
  const e = await c.error();
  assert.ok(e.headers.message);
  await c.closed();
});

brokerTest('more than limits.max_frame_headers headers -> ERROR, close 1009', {}, async (broker) => {
  const c = await wsStomp(broker);
  const headers = [['destination', '/topic/x']];
  for (let i = 0; i < 100; i++) headers.push([`x-h${i}`, String(i)]);
  c.send('SEND', headers, 'x');
  const e = await c.error();
  assert.ok(e.headers.message);
  assert.equal((await c.closed()).code, 1009);
});

brokerTest('60 headers (under max_frame_headers) are accepted and forwarded', {}, async (broker) => {
  const sub = await tcpStomp(broker);
  await sub.subscribe('/topic/many', 's');
  const c = await wsStomp(broker);
  const headers = [['destination', '/topic/many']];
  for (let i = 0; i < 58; i++) headers.push([`x-h${i}`, String(i)]);
  await c.sendWithReceipt('SEND', headers, 'x');
  const m = await sub.message();
  assert.equal(m.headers['x-h57'], '57');
});

brokerTest('a header line over limits.max_header_line -> ERROR, close 1009', {}, async (broker) => {
  const c = await wsStomp(broker);
  c.send('SEND', { destination: '/topic/x', 'x-long': 'v'.repeat(10000) }, 'x');
  await c.error();
  assert.equal((await c.closed()).code, 1009);
});

brokerTest('headers over limits.max_header_bytes in total -> ERROR, close 1009', {}, async (broker) => {
  const c = await wsStomp(broker);
  const headers = [['destination', '/topic/x']];
  for (let i = 0; i < 40; i++) headers.push([`x-h${i}`, 'v'.repeat(2000)]); // 80 KB > 64 KiB, each line < 8 KiB
  c.send('SEND', headers, 'x');
  await c.error();
  assert.equal((await c.closed()).code, 1009);
});

brokerTest('a header line over max_header_line over TCP -> ERROR, close', { set: { 'limits.max_header_line': 256 } }, async (broker) => {
  const c = await tcpStomp(broker);
  c.send('SEND', { destination: '/topic/x', 'x-long': 'v'.repeat(1000) }, 'x');
  await c.error();
  await c.closed();
});

brokerTest('CONNECT frame over size limits -> ERROR, close 1009', { set: { 'limits.max_header_line': 256 } }, async (broker) => {
  const { wsOpen } = await import('./lib/stomp.mjs');
  const c = await wsOpen(broker);
  c.send('CONNECT', { 'accept-version': '1.2', host: 'x', login: 'u'.repeat(1000) });
  await c.error();
  assert.equal((await c.closed()).code, 1009);
});
