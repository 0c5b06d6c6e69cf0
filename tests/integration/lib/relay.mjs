// A byte relay between a broker and Redis, for cluster_faults.test.mjs, or between a browser and
// the broker, for browser.test.mjs.
//
// startRelay(listen, target) accepts connections on listen and pipes each one to target (both
// { host, port } or { path } for a Unix socket), in both directions, order kept. setImpairment()
// delays every chunk and can hold one back as a lost TCP segment would (below); cutReply() loses
// one reply together with its connection; refuse() cuts every connection and closes new ones at
// once, a network that is gone, until refuse(false); the relay is otherwise transparent.
//
// Run as a program it is the part of the relay that lives inside a network namespace:
//   node relay.mjs through-loopback IN.sock OUT.sock
// accepts on the Unix socket IN.sock, sends each connection through this namespace's loopback
// (a TCP listener on 127.0.0.1, port 0) and on to the Unix socket OUT.sock, then prints
// "relay ready". Unix sockets are named in the file system, which namespaces share, so a process
// in the root namespace reaches it, and only the hop in the middle crosses the namespace's `lo`,
// where `tc qdisc ... netem` applies.
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// One direction of a connection: chunks leave in order, each no earlier than its due time.
class DelayedPipe {
  constructor(to, relay) {
    this.to = to;
    this.relay = relay;
    this.queue = []; // { due, chunk }, due never decreasing
    this.timer = null;
    this.lastDue = 0;
  }

  push(chunk) {
    const { delayMs, stallProbability, stallMs } = this.relay.impairment;
    if (delayMs === 0 && stallProbability === 0 && this.queue.length === 0) {
      this.to.write(chunk);
      return;
    }
    // A lost segment stalls the stream until it is sent again (one retransmission timeout),
    // and everything behind it waits: that is what loss looks like from above TCP.
    const stall = Math.random() < stallProbability ? stallMs : 0;
    if (stall) this.relay.stalls++;
    this.lastDue = Math.max(Date.now() + delayMs + stall, this.lastDue);
    this.queue.push({ due: this.lastDue, chunk });
    this.schedule();
  }

  schedule() {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const now = Date.now();
      while (this.queue.length && this.queue[0].due <= now) this.to.write(this.queue.shift().chunk);
      this.schedule();
    }, Math.max(0, this.queue[0].due - Date.now()));
  }

  stop() {
    clearTimeout(this.timer);
    this.queue = [];
  }
}

export async function startRelay(listen, target) {
  const conns = new Set();
  const relay = {
    impairment: { delayMs: 0, stallProbability: 0, stallMs: 0 },
    stalls: 0, // chunks held back as lost
    connections: 0,
    setImpairment(i) { this.impairment = { delayMs: 0, stallProbability: 0, stallMs: 0, ...i }; },
    cut: null,
    // The next chunk from the server that contains reply, on a connection whose client sent
    // request, is dropped and the connection closed both ways: a reply lost with its link.
    // Resolves once that happened.
    cutReply(request, reply) {
      return new Promise((resolve) => { this.cut = { request, reply, resolve }; });
    },
    refusing: false,
    refuse(on = true) {
      this.refusing = on;
      if (on) for (const c of conns) c();
    },
    close() {
      for (const c of conns) c();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  const server = net.createServer((client) => {
    if (relay.refusing) {
      client.destroy();
      return;
    }
    relay.connections++;
    const upstream = net.connect(target);
    const up = new DelayedPipe(upstream, relay);
    const down = new DelayedPipe(client, relay);
    const end = () => {
      conns.delete(end);
      up.stop();
      down.stop();
      client.destroy();
      upstream.destroy();
    };
    conns.add(end);
    let sent = ''; // the latest requests of this connection, for cutReply(); from the start, since
    // a blocking request may have gone out before the cut was armed
    client.on('data', (d) => {
      sent = (sent + d.toString('latin1')).slice(-4096);
      up.push(d);
    });
    upstream.on('data', (d) => {
      const cut = relay.cut;
      if (cut && sent.includes(cut.request) && d.includes(cut.reply)) {
        relay.cut = null;
        end();
        cut.resolve();
        return;
      }
      down.push(d);
    });
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen, resolve);
  });
  relay.address = server.address();
  if (typeof relay.address === 'object') relay.url = `redis://127.0.0.1:${relay.address.port}`;
  return relay;
}

async function main([mode, inPath, outPath]) {
  if (mode !== 'through-loopback' || !inPath || !outPath) {
    process.stderr.write('usage: node relay.mjs through-loopback IN.sock OUT.sock\n');
    process.exit(2);
  }
  const inner = await startRelay({ host: '127.0.0.1', port: 0 }, { path: outPath });
  await startRelay({ path: inPath }, { host: '127.0.0.1', port: inner.address.port });
  process.stdout.write('relay ready\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`relay: ${e.message}\n`);
    process.exit(1);
  });
}
