// A Server-Sent Events reader over node's http, for GET /sse tests: the status and headers as
// they came, and the stream parsed as the WHATWG rules say (CR LF, CR and LF end lines; a blank
// line dispatches; `:` lines are comments, kept so that tests can see the keepalive).
//
//   const r = await sseOpen(broker.wsPort, '/sse?destination=/topic/x', { headers });
//   r.status, r.headers, await r.event() -> { id, data, fields }, await r.body() (error answers)
//   r.close()
import http from 'node:http';
import { withTimeout } from './broker.mjs';

export class SseReader {
  constructor(req, res) {
    this.req = req;
    this.res = res;
    this.status = res.statusCode;
    this.headers = res.headers;
    this.raw = '';        // every byte of the body, as text
    this.events = [];     // dispatched and not yet taken
    this.comments = [];   // comment lines (without the colon)
    this.lastId = '';
    this.ended = false;
    this.waiters = [];
    this.pending = { data: [], id: null, fields: [] };
    this.buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => { this.raw += chunk; this.feed(chunk); this.wake(); });
    res.on('end', () => { this.ended = true; this.wake(); });
    res.on('error', () => { this.ended = true; this.wake(); });
  }

  feed(chunk) {
    this.buffer += chunk;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      // A lone CR at the end may be the start of CR LF: wait for the next byte.
      if (!m || (m[0] === '\r' && m.index === this.buffer.length - 1)) return;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      const p = this.pending;
      this.pending = { data: [], id: null, fields: [] };
      if (p.id !== null) this.lastId = p.id;
      if (p.data.length > 0) this.events.push({ id: this.lastId, data: p.data.join('\n'), fields: p.fields });
      return;
    }
    if (line.startsWith(':')) { this.comments.push(line.slice(1)); return; }
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.pending.fields.push(name);
    if (name === 'data') this.pending.data.push(value);
    else if (name === 'id') this.pending.id = value;
  }

  wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  // Resolves when pred() is true, or rejects after ms.
  async until(pred, ms, what) {
    const check = () => new Promise((resolve) => {
      if (pred() || this.ended) resolve(); else this.waiters.push(resolve);
    });
    await withTimeout((async () => { while (!pred() && !this.ended) await check(); })(), ms, what);
    if (!pred()) throw new Error(`stream ended while waiting for ${what}`);
  }

  async event(ms = 5000) {
    await this.until(() => this.events.length > 0, ms, 'an SSE event');
    return this.events.shift();
  }

  async eventsN(n, ms = 5000) {
    await this.until(() => this.events.length >= n, ms, `${n} SSE events`);
    return this.events.splice(0, n);
  }

  // Resolves once the broker has closed the stream.
  async closed(ms = 5000) {
    await this.until(() => this.ended, ms, 'the end of the stream');
  }

  // The whole body of an answer that ends (errors).
  async body(ms = 5000) {
    await withTimeout(new Promise((resolve) => {
      if (this.ended) resolve(); else this.res.on('end', resolve);
    }), ms, 'the end of the answer');
    return this.raw;
  }

  close() {
    this.req.destroy();
  }
}

// Opens GET path on 127.0.0.1:port; resolves once the status line and headers are in.
export function sseOpen(port, path, { headers = {}, method = 'GET', timeout = 5000 } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false });
    req.on('response', (res) => resolve(new SseReader(req, res)));
    req.on('error', reject);
    req.end();
  }), timeout, `the answer to ${method} ${path}`);
}
