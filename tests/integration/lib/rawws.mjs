// Byte-level HTTP and WebSocket (RFC 6455) client over a plain TCP socket, for tests that need
// to send what a well-behaved library never sends: unmasked frames, invalid UTF-8, odd splits,
// bad upgrade requests. Every wait is bounded.
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { sleep } from './broker.mjs';
import { Inbox, StompParser, connectTcp } from './stomp.mjs';

export { connectTcp };

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

export function acceptKey(key) {
  return crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}


function parseHead(text) {
  const lines = text.split('\r\n');
  const statusLine = lines.shift();
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  const headers = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { statusLine, status: m ? Number(m[1]) : null, headers };
}

// Collects a socket's bytes; resolves helpers to wait for the HTTP head or the close.
export class ByteReader {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.closed = false;
    this.closedAt = null;
    this.waiters = [];
    socket.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.wake(); });
    socket.on('error', (e) => { this.error = e; });
    socket.on('close', () => { this.closed = true; this.closedAt = Date.now(); this.wake(); });
  }

  wake() { const w = this.waiters; this.waiters = []; w.forEach((f) => f()); }

  async until(cond, timeout, what) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const r = cond();
      if (r) return r;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeout} ms waiting for ${what}; got ${this.buf.length} bytes: ${JSON.stringify(this.buf.subarray(0, 300).toString('latin1'))}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  // Waits for a complete HTTP response head; returns { status, headers, statusLine, rest }.
  async httpHead(timeout = 5000) {
    const end = await this.until(() => {
      const i = this.buf.indexOf('\r\n\r\n');
      if (i >= 0) return i + 4;
      if (this.closed) throw new Error(`connection closed before an HTTP response head; got ${JSON.stringify(this.buf.toString('latin1'))}`);
      return 0;
    }, timeout, 'an HTTP response head');
    const head = parseHead(this.buf.subarray(0, end - 4).toString('latin1'));
    head.rest = this.buf.subarray(end);
    return head;
  }

  async waitClosed(timeout = 5000) {
    await this.until(() => this.closed, timeout, 'the server to close the connection');
    return this.closedAt;
  }

  // The bytes after the HTTP head, as UTF-8, once the server has closed (it closes after them).
  async bodyAfterClose(timeout = 5000) {
    await this.waitClosed(timeout);
    return this.buf.subarray(this.buf.indexOf('\r\n\r\n') + 4).toString('utf8');
  }
}

// Sends raw request bytes and returns the parsed response head (and whether the server closed).
export async function httpRequest(port, request, { timeout = 5000 } = {}) {
  const socket = await connectTcp(port, timeout);
  const reader = new ByteReader(socket);
  try {
    socket.write(request);
    const head = await reader.httpHead(timeout);
    return { ...head, reader, socket };
  } catch (e) {
    socket.destroy();
    throw e;
  }
}

// httpRequest, then the whole answer once the server closes: { status, headers, body }. owner: the
// broker (or cluster node) whose clean-up closes the socket should a wait fail.
export async function httpExchange(owner, port, request, { timeout = 5000 } = {}) {
  const r = await httpRequest(port, request, { timeout });
  owner.track(r.socket);
  return { status: r.status, headers: r.headers, body: await r.reader.bodyAfterClose(timeout) };
}

export function upgradeRequest({ path = '/ws', key = crypto.randomBytes(16).toString('base64'), version = '13', protocols = ['v12.stomp'], extra = [] } = {}) {
  const lines = [
    `GET ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
  ];
  if (key !== null) lines.push(`Sec-WebSocket-Key: ${key}`);
  if (version !== null) lines.push(`Sec-WebSocket-Version: ${version}`);
  if (protocols && protocols.length) lines.push(`Sec-WebSocket-Protocol: ${protocols.join(', ')}`);
  lines.push(...extra);
  return { text: `${lines.join('\r\n')}\r\n\r\n`, key };
}

export function encodeWsFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0 } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = data.length;
  let head;
  if (len < 126) {
    head = Buffer.alloc(2);
    head[1] = len;
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  if (!mask) return Buffer.concat([head, data]);
  head[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = data[i] ^ key[i & 3];
  return Buffer.concat([head, key, masked]);
}

// A WebSocket connection over a raw socket. Server frames are decoded into this.frames / inbox.
export class RawWs {
  constructor(socket, reader, head) {
    this.socket = socket;
    this.reader = reader;
    this.head = head;
    this.frames = []; // { fin, opcode, payload, masked }
    this.inbox = new Inbox('raw-ws');
    this.stomp = new Inbox('raw-ws-stomp');
    this.pending = Buffer.alloc(0);
    this.fragments = null;
    this.version = '1.2';
    this.closeFrame = null;
    this.decode(head.rest);
    reader.buf = Buffer.alloc(0);
    socket.on('data', (d) => this.decode(d));
    socket.on('close', () => { this.inbox.close({ transport: 'raw-ws' }); this.stomp.close({ transport: 'raw-ws' }); });
  }

  decode(chunk) {
    if (chunk.length) this.pending = Buffer.concat([this.pending, chunk]);
    for (;;) {
      const b = this.pending;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      let key = null;
      if (masked) {
        if (b.length < off + 4) return;
        key = b.subarray(off, off + 4);
        off += 4;
      }
      if (b.length < off + len) return;
      let payload = Buffer.from(b.subarray(off, off + len));
      if (key) payload = Buffer.from(payload.map((x, i) => x ^ key[i & 3]));
      this.pending = b.subarray(off + len);
      const frame = { fin, opcode, payload, masked, rsv: (b[0] >> 4) & 7 };
      this.frames.push(frame);
      if (opcode === OP.CLOSE) {
        this.closeFrame = {
          code: payload.length >= 2 ? payload.readUInt16BE(0) : null,
          reason: payload.subarray(2).toString('utf8'),
        };
      }
      this.inbox.push({ command: `OP${opcode}`, headers: {}, frame });
      // RSV1 on a message's first frame: permessage-deflate (RFC 7692), inflated whole.
      if (opcode === OP.TEXT || opcode === OP.BINARY) {
        const compressed = (frame.rsv & 4) !== 0;
        if (fin) this.onMessage(payload, opcode, compressed);
        else this.fragments = { opcode, parts: [payload], compressed };
      } else if (opcode === OP.CONT && this.fragments) {
        this.fragments.parts.push(payload);
        if (fin) {
          const { opcode: op, parts, compressed } = this.fragments;
          this.fragments = null;
          this.onMessage(Buffer.concat(parts), op, compressed);
        }
      }
    }
  }

  onMessage(payload, opcode, compressed = false) {
    if (compressed) {
      payload = zlib.inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]),
        { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    }
    const p = new StompParser({ onFrame: (f) => { f.wsOpcode = opcode; f.wsCompressed = compressed; this.stomp.push(f); }, onHeartbeat: () => {} });
    p.version = this.version;
    p.push(payload);
    for (const f of this.stomp.all) if (f.command === 'CONNECTED' && f.headers.version) this.version = f.headers.version;
  }

  sendFrame(opcode, payload, opts) {
    if (!this.socket.destroyed) this.socket.write(encodeWsFrame(opcode, payload, opts));
  }

  sendText(text, opts) { this.sendFrame(OP.TEXT, Buffer.from(text, 'utf8'), opts); }

  // Waits for the server's close frame; returns { code, reason }.
  async closeCode(timeout = 5000) {
    await this.inbox.take((f) => f.frame.opcode === OP.CLOSE, timeout, 'a WebSocket close frame');
    return this.closeFrame;
  }

  async waitClosed(timeout = 5000) { return this.reader.waitClosed(timeout); }

  destroy() { this.socket.destroy(); }
}

// Performs the upgrade handshake on a raw socket; throws unless the server answers 101.
// extra: more request header lines ('Sec-WebSocket-Extensions: permessage-deflate').
export async function rawWsConnect(broker, { path = '/ws', protocols = ['v12.stomp'], timeout = 5000, extra = [] } = {}) {
  const socket = await connectTcp(broker.wsPort, timeout);
  broker.track(socket);
  const reader = new ByteReader(socket);
  const req = upgradeRequest({ path, protocols, extra });
  socket.write(req.text);
  const head = await reader.httpHead(timeout);
  if (head.status !== 101) throw new Error(`expected 101, got ${head.statusLine}`);
  if (head.headers['sec-websocket-accept'] !== acceptKey(req.key)) {
    throw new Error(`bad Sec-WebSocket-Accept ${head.headers['sec-websocket-accept']}`);
  }
  return new RawWs(socket, reader, head);
}

export { sleep };
