// A minimal, strict STOMP client for protocol-level tests: frame encoder, incremental parser,
// and two transports (raw TCP via net, WebSocket via ws). Every wait is bounded.
import net from 'node:net';
import WebSocket from 'ws';
import { withTimeout, sleep } from './broker.mjs';

export { sleep, withTimeout };

const NUL = 0;
const LF = 10;
const CR = 13;

export function escapeHeader(value, version = '1.2') {
  if (version === '1.0') return String(value);
  let s = String(value).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/:/g, '\\c');
  if (version === '1.2') s = s.replace(/\r/g, '\\r');
  return s;
}

export function unescapeHeader(value, version = '1.2') {
  if (version === '1.0') return value;
  return value.replace(/\\(.)/g, (m, c) => {
    switch (c) {
      case 'n': return '\n';
      case 'c': return ':';
      case '\\': return '\\';
      case 'r': return version === '1.2' ? '\r' : m;
      default: return m;
    }
  });
}

// Encodes a frame. headers: object or array of [name, value] (duplicates allowed); values are
// written verbatim (no escaping) so tests control the exact bytes; body: string or Buffer.
export function encodeFrame(command, headers = {}, body = '') {
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  let head = `${command}\n`;
  for (const [k, v] of list) head += `${k}:${v}\n`;
  head += '\n';
  const bodyBuf = Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
  return Buffer.concat([Buffer.from(head, 'utf8'), bodyBuf, Buffer.from([NUL])]);
}

export class Frame {
  constructor(command, headerList, body) {
    this.command = command;
    this.headerList = headerList; // [[name, value]] in wire order, unescaped
    this.headers = {};
    // STOMP 1.2: when a header repeats, the first occurrence wins.
    for (const [k, v] of headerList) if (!(k in this.headers)) this.headers[k] = v;
    this.body = body; // Buffer
  }

  get text() { return this.body.toString('utf8'); }

  toString() {
    const hs = this.headerList.map(([k, v]) => `${k}:${v}`).join('\n');
    const b = this.body.length > 200 ? `${this.body.subarray(0, 200).toString('utf8')}...(${this.body.length} bytes)` : this.text;
    return `${this.command}\n${hs}\n\n${b}`;
  }
}

// Incremental parser for server-to-client bytes. Counts heart-beat EOLs between frames.
export class StompParser {
  constructor({ onFrame, onHeartbeat, onError }) {
    this.buf = Buffer.alloc(0);
    this.version = '1.2';
    this.onFrame = onFrame;
    this.onHeartbeat = onHeartbeat ?? (() => {});
    this.onError = onError ?? ((e) => { throw e; });
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    for (;;) {
      // Heart-beats: EOLs between frames.
      while (this.buf.length && (this.buf[0] === LF || (this.buf[0] === CR && this.buf[1] === LF))) {
        this.buf = this.buf.subarray(this.buf[0] === LF ? 1 : 2);
        this.onHeartbeat();
      }
      if (this.buf.length === 0) return;
      if (this.buf.length === 1 && this.buf[0] === CR) return;
      const headEnd = findHeadEnd(this.buf);
      if (headEnd < 0) return;
      const headText = this.buf.subarray(0, headEnd.start).toString('utf8');
      const lines = headText.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
      const command = lines.shift();
      const escape = command !== 'CONNECTED' && command !== 'CONNECT';
      const headerList = lines.map((line) => {
        const i = line.indexOf(':');
        if (i < 0) return [line, ''];
        const k = line.slice(0, i);
        const v = line.slice(i + 1);
        return escape ? [unescapeHeader(k, this.version), unescapeHeader(v, this.version)] : [k, v];
      });
      const bodyStart = headEnd.end;
      let len = -1;
      const cl = headerList.find(([k]) => k === 'content-length');
      if (cl) len = Number(cl[1]);
      let bodyEnd;
      if (len >= 0 && Number.isFinite(len)) {
        if (this.buf.length < bodyStart + len + 1) return;
        bodyEnd = bodyStart + len;
        if (this.buf[bodyEnd] !== NUL) {
          this.onError(new Error(`frame ${command}: byte after content-length body is ${this.buf[bodyEnd]}, not NUL`));
          this.buf = Buffer.alloc(0);
          return;
        }
      } else {
        bodyEnd = this.buf.indexOf(NUL, bodyStart);
        if (bodyEnd < 0) return;
      }
      const body = Buffer.from(this.buf.subarray(bodyStart, bodyEnd));
      this.buf = this.buf.subarray(bodyEnd + 1);
      const frame = new Frame(command, headerList, body);
      if (command === 'CONNECTED' && frame.headers.version) this.version = frame.headers.version;
      this.onFrame(frame);
    }
  }
}

function findHeadEnd(buf) {
  // The head ends at the first empty line: "\n\n" or "\n\r\n".
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] !== LF) continue;
    if (buf[i + 1] === LF) return { start: i, end: i + 2 };
    if (buf[i + 1] === CR && buf[i + 2] === LF) return { start: i, end: i + 3 };
  }
  return -1;
}

// A queue of received frames with bounded waits.
export class Inbox {
  constructor(label) {
    this.label = label;
    this.items = [];
    this.all = [];
    this.waiters = [];
    this.closedInfo = null;
  }

  push(frame) {
    this.items.push(frame);
    this.all.push(frame);
    this.wake();
  }

  close(info) {
    if (!this.closedInfo) this.closedInfo = { ...info, at: Date.now() };
    this.wake();
  }

  wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  // Removes and returns the first frame matching pred (a command name or a function).
  async take(pred = () => true, timeoutMs = 5000, what = null) {
    const match = typeof pred === 'string' ? (f) => f.command === pred : pred;
    const desc = what ?? (typeof pred === 'string' ? `a ${pred} frame` : 'a matching frame');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.items.findIndex(match);
      if (i >= 0) return this.items.splice(i, 1)[0];
      if (this.closedInfo) {
        throw new Error(`${this.label}: connection closed (${JSON.stringify(this.closedInfo)}) while waiting for ${desc}; `
          + `unconsumed frames: ${this.items.map((f) => f.command).join(',') || 'none'}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for ${desc}; `
          + `unconsumed frames: ${this.items.map((f) => `${f.command}${f.headers.message ? `(${f.headers.message})` : ''}`).join(',') || 'none'}`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  // Takes n frames matching pred, in arrival order.
  async takeN(n, pred = () => true, timeoutMs = 5000, what = null) {
    const out = [];
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < n; i++) {
      out.push(await this.take(pred, Math.max(1, deadline - Date.now()), `${what ?? 'frame'} #${i + 1} of ${n}`));
    }
    return out;
  }

  // Resolves true if nothing matching pred arrives within ms (leaves the queue untouched).
  async quiet(ms, pred = () => true) {
    const match = typeof pred === 'string' ? (f) => f.command === pred : pred;
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.items.find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0 || this.closedInfo) return null;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  async closed(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.closedInfo) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.label}: connection still open after ${timeoutMs} ms`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
    return this.closedInfo;
  }
}

let counter = 0;
export const uniq = (prefix = 'x') => `${prefix}-${process.pid}-${++counter}`;

// Common STOMP verbs on top of a transport with sendBytes(buf) and an inbox.
class StompClientBase {
  constructor(label) {
    this.inbox = new Inbox(label);
    this.heartbeats = []; // arrival times of heart-beat EOLs
    this.version = '1.2';
    this.receiptSeq = 0;
  }

  send(command, headers = {}, body = '') {
    this.sendBytes(encodeFrame(command, headers, body));
  }

  // CONNECT (or STOMP) and wait for CONNECTED; throws with the ERROR frame if refused.
  async connect(headers = { 'accept-version': '1.2', host: '127.0.0.1' }, { command = 'CONNECT', timeout = 5000 } = {}) {
    this.send(command, headers);
    const f = await this.inbox.take((x) => x.command === 'CONNECTED' || x.command === 'ERROR', timeout, 'CONNECTED');
    if (f.command === 'ERROR') throw new Error(`CONNECT refused: ${f}`);
    this.connected = f;
    this.version = f.headers.version ?? '1.0';
    return f;
  }

  // Sends a frame with a fresh receipt and waits for its RECEIPT (or fails on ERROR).
  async sendWithReceipt(command, headers = {}, body = '', timeout = 5000) {
    const receipt = `r-${++this.receiptSeq}`;
    this.send(command, Array.isArray(headers) ? [...headers, ['receipt', receipt]] : { ...headers, receipt }, body);
    const f = await this.inbox.take(
      (x) => (x.command === 'RECEIPT' && x.headers['receipt-id'] === receipt) || x.command === 'ERROR',
      timeout, `RECEIPT ${receipt} for ${command}`);
    if (f.command === 'ERROR') throw new Error(`ERROR instead of RECEIPT for ${command}: ${f}`);
    return f;
  }

  async subscribe(destination, id, headers = {}) {
    return this.sendWithReceipt('SUBSCRIBE', { id, destination, ack: 'auto', ...headers });
  }

  // Takes the next MESSAGE (optionally for one subscription id).
  message(subscription = null, timeout = 5000) {
    return this.inbox.take(
      (f) => f.command === 'MESSAGE' && (subscription === null || f.headers.subscription === subscription),
      timeout, `MESSAGE${subscription ? ` on subscription ${subscription}` : ''}`);
  }

  messages(n, subscription = null, timeout = 5000) {
    return this.inbox.takeN(n,
      (f) => f.command === 'MESSAGE' && (subscription === null || f.headers.subscription === subscription),
      timeout, `MESSAGE${subscription ? ` on subscription ${subscription}` : ''}`);
  }

  error(timeout = 5000) {
    return this.inbox.take('ERROR', timeout, 'an ERROR frame');
  }

  closed(timeout = 5000) {
    return this.inbox.closed(timeout);
  }

  async disconnect(timeout = 5000) {
    if (this.inbox.closedInfo) return;
    try {
      await this.sendWithReceipt('DISCONNECT', {}, '', timeout);
      await this.closed(timeout);
    } finally {
      this.destroy();
    }
  }
}

export class TcpStomp extends StompClientBase {
  constructor(socket, label) {
    super(label);
    this.socket = socket;
    this.chunks = [];
    this.parser = new StompParser({
      onFrame: (f) => this.inbox.push(f),
      onHeartbeat: () => this.heartbeats.push(Date.now()),
      onError: (e) => { this.parseError = e; this.inbox.close({ parseError: e.message }); },
    });
    socket.on('data', (d) => {
      this.chunks.push(d);
      this.parser.push(d);
    });
    socket.on('error', (e) => { this.socketError = e; });
    socket.on('close', () => this.inbox.close({ transport: 'tcp', error: this.socketError?.code ?? null }));
    socket.on('end', () => { this.ended = true; });
  }

  sendBytes(buf) {
    if (!this.socket.destroyed) this.socket.write(buf);
  }

  destroy() { this.socket.destroy(); }
}

// A connected loopback TCP socket (Nagle off), or a rejection after timeout ms.
export async function connectTcp(port, timeout = 5000) {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await withTimeout(new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  }), timeout, `TCP connect to 127.0.0.1:${port}`);
  return socket;
}

export async function tcpClient(port, label = 'tcp-client', timeout = 5000) {
  return new TcpStomp(await connectTcp(port, timeout), label);
}

// Connects over TCP and performs CONNECT. The client is tracked by the broker for teardown.
// timeout bounds the wait for CONNECTED (a login against a slow users file takes longer).
export async function tcpStomp(broker, { label = 'tcp', headers = {}, version = '1.2', timeout = 5000 } = {}) {
  const c = broker.track(await tcpClient(broker.tcpPort, label));
  await c.connect({ 'accept-version': version, host: '127.0.0.1', ...headers }, { timeout });
  return c;
}

export class WsStomp extends StompClientBase {
  constructor(ws, label) {
    super(label);
    this.ws = ws;
    this.wsMessages = []; // { isBinary, data, frames } per inbound WebSocket message
    this.pongs = [];
    this.closeInfo = null;
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
      const rec = { isBinary, data: buf, frames: [], heartbeats: 0 };
      this.wsMessages.push(rec);
      // Each WebSocket message is parsed on its own: a frame must not span messages.
      const p = new StompParser({
        onFrame: (f) => rec.frames.push(f),
        onHeartbeat: () => { rec.heartbeats++; },
        onError: (e) => { rec.error = e.message; },
      });
      p.version = this.version;
      p.push(buf);
      rec.leftover = p.buf.length;
      for (let i = 0; i < rec.heartbeats; i++) this.heartbeats.push(Date.now());
      for (const f of rec.frames) {
        if (f.command === 'CONNECTED' && f.headers.version) this.version = f.headers.version;
        this.inbox.push(f);
      }
    });
    ws.on('pong', (data) => this.pongs.push(Buffer.from(data)));
    ws.on('error', (e) => { this.wsError = e; });
    ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString() };
      this.inbox.close({ transport: 'ws', code, reason: reason.toString(), error: this.wsError?.message ?? null });
    });
  }

  sendBytes(buf, { binary = false } = {}) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(binary ? buf : buf.toString('utf8'), { binary });
  }

  // Sends one STOMP frame per WebSocket message (text unless binary is set).
  send(command, headers = {}, body = '', opts = {}) {
    this.sendBytes(encodeFrame(command, headers, body), opts);
  }

  destroy() { this.ws.terminate(); }
}

// Opens a WebSocket (no STOMP yet). protocols: array of subprotocols (default v12/v11/v10).
// perMessageDeflate: the ws package's option (false: no offer; true or an object: offer it).
export async function wsOpen(broker, { protocols = ['v12.stomp', 'v11.stomp', 'v10.stomp'], path = '/ws', label = 'ws', timeout = 5000, perMessageDeflate = false } = {}) {
  const ws = new WebSocket(broker.url(path), protocols, { handshakeTimeout: timeout, perMessageDeflate });
  const client = broker.track(new WsStomp(ws, label));
  ws.once('upgrade', (res) => { client.upgradeHeaders = res.headers; });
  await withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), timeout, `WebSocket open ${broker.url(path)}`);
  client.protocol = ws.protocol;
  return client;
}

export async function wsStomp(broker, { label = 'ws', headers = {}, protocols, version = '1.2', path, perMessageDeflate } = {}) {
  const c = await wsOpen(broker, { label, protocols, path, perMessageDeflate });
  await c.connect({ 'accept-version': version, host: '127.0.0.1', ...headers });
  return c;
}
