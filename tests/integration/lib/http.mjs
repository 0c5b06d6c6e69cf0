// One HTTP request with node's client, for tests that want a well-formed request and the whole
// answer. Malformed or byte-exact requests go through httpRequest() in rawws.mjs instead.
import http from 'node:http';
import { withTimeout } from './broker.mjs';

// METHOD path on 127.0.0.1:port. key: sent as "Authorization: Bearer key" (null: none); body:
// sent with its Content-Length (undefined: no body); headers go last, so they override both.
// Resolves { status, headers, raw, text, json } (json null when the answer is not JSON); rejects
// after timeout ms.
export function httpCall(port, method, path, { key = null, headers = {}, body, timeout = 5000 } = {}) {
  const all = {
    ...(key !== null ? { Authorization: `Bearer ${key}` } : {}),
    ...(body !== undefined ? { 'Content-Length': Buffer.byteLength(body) } : {}),
    ...headers,
  };
  return withTimeout(new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: all, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = raw.toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON: the caller looks at text */ }
        resolve({ status: res.statusCode, headers: res.headers, raw, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  }), timeout, `${method} ${path}`);
}
