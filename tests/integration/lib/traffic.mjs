// Traffic that counts what arrives, for the tests of failures under load (cluster_sentinel,
// cluster_rediscluster): topic messages "LABEL:SEQ" collected with their arrival times, a queue
// publisher that gets a RECEIPT for every id however many connections it takes, and consumers
// recording the ids they get.
import { TIME_SCALE, sleep } from './broker.mjs';
import { tcpStomp } from './stomp.mjs';

// Collects the topic messages "LABEL:SEQ" a client gets on subscription sub, with arrival times.
export function collect(client, sub) {
  const got = [];
  const push = client.inbox.push.bind(client.inbox);
  client.inbox.push = (f) => {
    if (f.command === 'MESSAGE' && f.headers.subscription === sub) {
      got.push({ seq: Number(f.text.split(':')[1]), at: Date.now() });
      return;
    }
    push(f);
  };
  return got;
}

// Sends every id of ids to queue with a receipt, at most `window` in flight, and sends again
// what got no RECEIPT (an ERROR closes the connection: a new one continues). Returns
// { receipted: Set, errors, sends }.
export function reliablePublisher(node, queue, ids, { window = 100, onProgress = () => {} } = {}) {
  const receipted = new Set();
  const toSend = [...ids];
  const stats = { receipted, errors: 0, sends: 0, connections: 0 };
  const run = async () => {
    let lastProgress = Date.now();
    while (receipted.size < ids.length) {
      if (Date.now() - lastProgress > 30000 * TIME_SCALE) throw new Error(`publisher stuck at ${receipted.size} receipts`);
      let client;
      try {
        client = node.track(await tcpStomp(node, { label: `pub-${stats.connections++}` }));
      } catch {
        await sleep(100);
        continue;
      }
      const inflight = new Set();
      let ended = false;
      const push = client.inbox.push.bind(client.inbox);
      client.inbox.push = (f) => {
        if (f.command === 'RECEIPT') {
          const id = Number(f.headers['receipt-id']);
          inflight.delete(id);
          if (!receipted.has(id)) {
            receipted.add(id);
            lastProgress = Date.now();
            onProgress(receipted.size);
          }
          return;
        }
        if (f.command === 'ERROR') {
          stats.errors++;
          ended = true;
        }
        push(f);
      };
      while (!ended && !client.inbox.closedInfo && (toSend.length > 0 || inflight.size > 0)) {
        while (inflight.size < window && toSend.length > 0) {
          const id = toSend.shift();
          if (receipted.has(id)) continue;
          client.send('SEND', { destination: queue, receipt: String(id) }, `Q:${id}`);
          stats.sends++;
          inflight.add(id);
        }
        if (Date.now() - lastProgress > 30000 * TIME_SCALE) break;
        await sleep(5);
      }
      // What was in flight when the connection ended goes first on the next one.
      toSend.unshift(...[...inflight].filter((id) => !receipted.has(id)));
      client.destroy();
      if (toSend.length > 0) await sleep(100);
    }
  };
  stats.done = run();
  return stats;
}

// A consumer (ack:client-individual, acked at once) recording the ids it got.
export async function idConsumer(node, queue, label, got) {
  const client = node.track(await tcpStomp(node, { label }));
  const push = client.inbox.push.bind(client.inbox);
  client.inbox.push = (f) => {
    if (f.command === 'MESSAGE' && f.headers.subscription === 'q') {
      got.push(Number(f.text.split(':')[1]));
      client.send('ACK', { id: f.headers.ack });
      return;
    }
    push(f);
  };
  await client.subscribe(queue, 'q', { ack: 'client-individual', 'prefetch-count': '50' });
  return client;
}
