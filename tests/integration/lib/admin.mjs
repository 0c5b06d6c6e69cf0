// The admin API (docs/API.md, "Admin API") from tests: a key file of one fresh key (apart from the
// publish API's), and requests with node's HTTP client.
import http from 'node:http';
import { apiKeyFile } from './api.mjs';
import { withTimeout } from './broker.mjs';

// A fresh admin key in a file of its own: { key, file, args } (args: the broker's flag).
export function adminKeyFile() {
  const { key, file } = apiKeyFile();
  return { key, file, args: ['--admin-key-file', file] };
}

// METHOD path on port with "Authorization: Bearer key" (key null: none). Resolves
// { status, headers, text, json } (json null when the answer is not JSON).
export function adminRequest(port, key, method, path) {
  return withTimeout(new Promise((resolve, reject) => {
    const headers = key !== null ? { Authorization: `Bearer ${key}` } : {};
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON: the caller looks at text */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end();
  }), 10000, `${method} ${path}`);
}

// GET /api/connections[?user=] answered 200: the list.
export async function connections(port, key, user = null) {
  const r = await adminRequest(port, key, 'GET', `/api/connections${user !== null ? `?user=${encodeURIComponent(user)}` : ''}`);
  if (r.status !== 200) throw new Error(`GET /api/connections: ${r.status} ${r.text}`);
  return r.json;
}
