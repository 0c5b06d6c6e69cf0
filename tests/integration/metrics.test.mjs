// /healthz, /readyz and /metrics: served on the WebSocket port (paths other than /ws) and on
// --http; counters read after real traffic match it.
import assert from 'node:assert/strict';
import { brokerTest } from './lib/broker.mjs';
import { httpExchange } from './lib/rawws.mjs';
import { tcpStomp, wsStomp } from './lib/stomp.mjs';
import { sample } from './lib/proc.mjs';

const get = (broker, port, path, method = 'GET') =>
  httpExchange(broker, port, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);

// The value of one sample ("name" or "name{labels}") in Prometheus text.
const httpPort = (broker) => Number(/^listening http 127\.0\.0\.1:(\d+)$/m.exec(broker.stdout)[1]);

brokerTest('healthz, readyz and 404/405 on the WebSocket port and the --http listener',
  { args: ['--http', '127.0.0.1:0'] }, async (broker) => {
    for (const port of [broker.wsPort, httpPort(broker)]) {
      const health = await get(broker, port, '/healthz');
      assert.equal(health.status, 200);
      assert.equal(health.body, 'ok\n');
      const ready = await get(broker, port, '/readyz');
      assert.equal(ready.status, 200);
      assert.equal(ready.body, 'ready\n');
      assert.equal((await get(broker, port, '/nope')).status, 404);
      assert.equal((await get(broker, port, '/metrics', 'POST')).status, 405);
    }
    // The WebSocket path is not served on the metrics listener.
    assert.equal((await get(broker, httpPort(broker), '/ws')).status, 404);
  });

brokerTest('metrics count connections, subscriptions, messages, queues and limit hits',
  { set: { 'limits.publish_rate': 50, 'limits.publish_burst': 50, 'limits.publish_rate_action': 'error' } }, async (broker) => {
    const sub = await wsStomp(broker, { label: 'sub' });
    await sub.subscribe('/topic/m', 's1');
    await sub.subscribe('/queue/m', 's2', { ack: 'client-individual' });
    const pub = await tcpStomp(broker, { label: 'pub' });
    for (let i = 0; i < 10; i++) await pub.sendWithReceipt('SEND', { destination: '/topic/m' }, `t${i}`);
    for (let i = 0; i < 3; i++) await pub.sendWithReceipt('SEND', { destination: '/queue/m' }, `q${i}`);
    for (let i = 0; i < 4; i++) await pub.sendWithReceipt('SEND', { destination: '/queue/idle' }, `w${i}`);
    await sub.messages(13);

    const m = (await get(broker, broker.wsPort, '/metrics'));
    assert.equal(m.status, 200);
    assert.match(m.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    const text = m.body;
    assert.equal(sample(text, 'stompws_connections{transport="ws"}'), 1);
    assert.equal(sample(text, 'stompws_connections{transport="tcp"}'), 1);
    assert.equal(sample(text, 'stompws_subscriptions'), 2);
    assert.equal(sample(text, 'stompws_messages_in_total'), 17);
    assert.equal(sample(text, 'stompws_messages_out_total'), 13);
    assert.equal(sample(text, 'stompws_unacked_messages'), 3);
    assert.equal(sample(text, 'stompws_queue_depth'), 4); // /queue/idle has no consumer
    assert.ok(sample(text, 'stompws_bytes_in_total') > 0);
    assert.ok(sample(text, 'stompws_bytes_out_total') > 0);
    assert.equal(sample(text, 'stompws_limit_hits_total{limit="limits.publish_rate"}'), 0);

    // Trip a limit and read its counter.
    for (let i = 0; i < 60; i++) pub.send('SEND', { destination: '/topic/flood' }, 'x');
    assert.match((await pub.error()).headers.message, /limits\.publish_rate/);
    const after = (await get(broker, broker.wsPort, '/metrics')).body;
    assert.equal(sample(after, 'stompws_limit_hits_total{limit="limits.publish_rate"}'), 1);
    assert.equal(sample(after, 'stompws_errors_total{kind="protocol"}'), 0);
  });
