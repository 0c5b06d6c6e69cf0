// Graceful shutdown on SIGTERM: every client is told (ERROR mentioning shutdown, WebSocket
// close 1001) and the broker exits 0, also when a client ignores the close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { brokerTest, startBroker, withTimeout } from './lib/broker.mjs';
import { wsStomp, tcpStomp, wsOpen } from './lib/stomp.mjs';
import { stompjs } from './lib/stompjs.mjs';
import { waitFor } from './lib/proc.mjs';
import { httpRequest, rawWsConnect } from './lib/rawws.mjs';

brokerTest('SIGTERM: WS clients get ERROR (shutdown) and close 1001; TCP clients get ERROR and EOF; exit 0', {}, async (broker) => {
  const w1 = await wsStomp(broker, { label: 'w1' });
  const w2 = await wsStomp(broker, { label: 'w2', version: '1.1', protocols: ['v11.stomp'] });
  await w2.subscribe('/topic/shut', 's');
  const t1 = await tcpStomp(broker, { label: 't1' });
  const idle = await wsOpen(broker, { label: 'no-stomp-yet' }); // upgraded, no CONNECT
  const exit = broker.stop();
  for (const c of [w1, w2]) {
    const e = await c.error(5000);
    assert.match(`${e.headers.message} ${e.text}`, /shut\s*down|shutting/i, `ERROR mentions shutdown: ${e}`);
    const info = await c.closed(5000);
    assert.equal(info.code, 1001, `${c.inbox.label}: close code`);
  }
  const te = await t1.error(5000);
  assert.match(`${te.headers.message} ${te.text}`, /shut\s*down|shutting/i);
  await t1.closed(5000);
  const idleInfo = await idle.closed(5000);
  assert.equal(idleInfo.code, 1001, 'a WebSocket without a STOMP session is closed with 1001 too');
  const { code, signal } = await exit;
  assert.equal(signal, null);
  assert.equal(code, 0);
});

brokerTest('SIGTERM: stompjs sees the ERROR and a 1001 close', {}, async (broker) => {
  const c = await stompjs(broker);
  await c.subscribe('/topic/sj-shut');
  const exit = broker.stop();
  await withTimeout((async () => { while (!c.closes.length) await new Promise((r) => setTimeout(r, 20)); })(), 5000, 'stompjs close');
  assert.equal(c.closes[0].code, 1001);
  assert.equal(c.errors.length, 1, 'one ERROR frame before the close');
  assert.match(c.errors[0].headers.message, /shut\s*down|shutting/i);
  assert.equal((await exit).code, 0);
});

test('SIGTERM with no clients: exits 0 promptly', async () => {
  const broker = await startBroker();
  const start = Date.now();
  const { code, signal } = await broker.stop(8000);
  assert.equal(signal, null, broker.logTail());
  assert.equal(code, 0, broker.logTail());
  assert.ok(Date.now() - start < 3000, `took ${Date.now() - start} ms`);
  fs.rmSync(broker.dir, { recursive: true, force: true });
});

brokerTest('SIGTERM: a client that never answers the close does not keep the broker alive past shutdown_timeout_ms', {
  set: { 'server.shutdown_timeout_ms': 1000 },
}, async (broker) => {
  const raw = await rawWsConnect(broker);
  raw.sendText('CONNECT\naccept-version:1.2\nhost:x\n\n\0');
  await raw.stomp.take('CONNECTED');
  // The raw client reads but never sends its close frame back.
  const start = Date.now();
  const { code } = await broker.stop(8000);
  const took = Date.now() - start;
  assert.equal(code, 0);
  assert.ok(took < 4000, `exited after ${took} ms (shutdown_timeout_ms=1000)`);
  assert.equal(raw.closeFrame?.code, 1001, 'it was sent a 1001 close');
});

// Orchestrators probe during the drain: the --http listener keeps answering, so a readiness probe
// sees 503 at once (traffic goes elsewhere) and a liveness probe 200 (no kill mid-drain).
brokerTest('SIGTERM: while clients drain, the --http listener answers /readyz 503 "shutting down" and /healthz 200', {
  args: ['--http', '127.0.0.1:0'], set: { 'server.shutdown_timeout_ms': 3000 },
}, async (broker) => {
  const httpPort = Number(/^listening http 127\.0\.0\.1:(\d+)$/m.exec(broker.stdout)[1]);
  const get = async (path) => {
    const r = await httpRequest(httpPort, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, { timeout: 2000 });
    r.socket.destroy();
    return r.status;
  };
  assert.equal(await get('/readyz'), 200);
  // A client that never closes its side (half-open allowed, no FIN back): the drain waits for it.
  const stubborn = broker.track(net.connect({ host: '127.0.0.1', port: broker.tcpPort, allowHalfOpen: true }));
  let heard = '';
  stubborn.on('data', (d) => { heard += d.toString(); });
  stubborn.write('CONNECT\naccept-version:1.2\nhost:x\n\n\0');
  await waitFor('CONNECTED', () => heard.startsWith('CONNECTED'), 5000, 10);
  const exit = broker.stop(8000);
  await waitFor('the shutdown ERROR', () => heard.includes('ERROR'), 2000, 10);
  assert.equal(await get('/readyz'), 503);
  assert.equal(await get('/healthz'), 200);
  assert.equal((await exit).code, 0);
});

brokerTest('SIGTERM while a publisher is mid-stream: exit 0', { timeout: 30000 }, async (broker) => {
  const sub = await tcpStomp(broker, { label: 'sub' });
  await sub.subscribe('/queue/busy', 's', { ack: 'client-individual' });
  const pub = await wsStomp(broker, { label: 'pub' });
  for (let i = 0; i < 500; i++) pub.send('SEND', { destination: '/queue/busy' }, `b${i}`);
  await sub.message(null, 5000);
  const { code, signal } = await broker.stop();
  assert.equal(signal, null);
  assert.equal(code, 0);
});
