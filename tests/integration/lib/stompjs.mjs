// @stomp/stompjs over the ws package, with bounded waits for connect, receipts and messages.
import { Client, Versions } from '@stomp/stompjs';
import WebSocket from 'ws';
import { withTimeout } from './broker.mjs';
import { Inbox } from './stomp.mjs';

// stompjs creates `new WebSocket(url, protocols)`; node 20 has no global WebSocket.
Object.assign(global, { WebSocket });

export { Client, Versions };

let receiptSeq = 0;

export class StompJs {
  constructor(broker, options = {}) {
    this.inbox = new Inbox(options.label ?? 'stompjs');
    this.errors = [];
    this.closes = [];
    this.log = [];
    this.subs = new Map();
    const { label, path, connectTimeout, ...clientOptions } = options;
    this.client = new Client({
      brokerURL: broker.url(path ?? '/ws'),
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: (s) => { if (this.log.length < 500) this.log.push(s); },
      ...clientOptions,
    });
    this.client.onStompError = (f) => { this.errors.push(f); this.inbox.push({ command: 'ERROR', headers: f.headers, frame: f }); };
    this.client.onWebSocketClose = (evt) => {
      this.closes.push({ code: evt.code, reason: evt.reason, at: Date.now() });
      this.inbox.close({ code: evt.code, reason: evt.reason });
    };
    this.client.onUnhandledMessage = (m) => this.inbox.push({ command: 'MESSAGE', headers: m.headers, message: m, unhandled: true });
    broker.track(this);
  }

  async connect(timeout = 5000) {
    const connected = new Promise((resolve, reject) => {
      this.client.onConnect = (frame) => resolve(frame);
      this.client.onWebSocketError = (e) => reject(new Error(`WebSocket error: ${e?.message ?? e}`));
      this.inbox.waiters.push(() => {
        if (this.errors.length) reject(new Error(`STOMP ERROR on connect: ${JSON.stringify(this.errors[0].headers)} ${this.errors[0].body}`));
        else if (this.inbox.closedInfo) reject(new Error(`closed during connect: ${JSON.stringify(this.inbox.closedInfo)}`));
      });
    });
    this.client.activate();
    this.connected = await withTimeout(connected, timeout, 'stompjs onConnect');
    return this.connected;
  }

  // Subscribes and waits for the broker's RECEIPT, so later publishes are sure to match.
  async subscribe(destination, headers = {}, { timeout = 5000 } = {}) {
    const receipt = `sub-receipt-${++receiptSeq}`;
    const got = new Promise((resolve) => this.client.watchForReceipt(receipt, resolve));
    const sub = this.client.subscribe(destination, (m) => {
      this.inbox.push({ command: 'MESSAGE', headers: m.headers, message: m, subscription: sub.id });
    }, { ...headers, receipt });
    await withTimeout(Promise.race([got, this.failure()]), timeout, `RECEIPT for SUBSCRIBE ${destination}`);
    return sub;
  }

  // Resolves when the connection closes or a STOMP ERROR arrives (for racing other waits).
  async failure() {
    const seen = this.errors.length;
    for (;;) {
      if (this.errors.length > seen) throw new Error(`STOMP ERROR: ${JSON.stringify(this.errors[seen].headers)} ${this.errors[seen].body}`);
      if (this.inbox.closedInfo) throw new Error(`connection closed: ${JSON.stringify(this.inbox.closedInfo)}`);
      await new Promise((resolve) => this.inbox.waiters.push(resolve));
    }
  }

  async receipt(fn, timeout = 5000) {
    const receipt = `receipt-${++receiptSeq}`;
    const got = new Promise((resolve) => this.client.watchForReceipt(receipt, resolve));
    fn(receipt);
    return withTimeout(Promise.race([got, this.failure()]), timeout, `RECEIPT ${receipt}`);
  }

  // publish() then wait for the RECEIPT of that SEND.
  publishWithReceipt(params, timeout = 5000) {
    return this.receipt((receipt) => this.client.publish({ ...params, headers: { ...(params.headers ?? {}), receipt } }), timeout);
  }

  publish(params) { this.client.publish(params); }

  message(sub = null, timeout = 5000) {
    const id = sub?.id ?? sub;
    return this.inbox.take((f) => f.command === 'MESSAGE' && (id === null || f.headers.subscription === id), timeout,
      `MESSAGE${id ? ` on ${id}` : ''}`).then((f) => f.message);
  }

  async messages(n, sub = null, timeout = 5000) {
    const deadline = Date.now() + timeout;
    const out = [];
    for (let i = 0; i < n; i++) out.push(await this.message(sub, Math.max(1, deadline - Date.now())));
    return out;
  }

  async deactivate(opts) { await this.client.deactivate(opts); }
}

export async function stompjs(broker, options = {}) {
  const c = new StompJs(broker, options);
  await c.connect(options.connectTimeout ?? 5000);
  return c;
}
