// The HTTP publish API (docs/API.md) from tests: a key file of one fresh key, and POST
// /api/publish on a broker's WebSocket port.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { withTimeout } from './broker.mjs';

// A fresh key in a key file of its own (removed when the process exits): { key, file }.
export function apiKeyFile() {
  const key = crypto.randomBytes(24).toString('base64url');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-api-key-'));
  const file = path.join(dir, 'keys');
  fs.writeFileSync(file, `${key}\n`);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return { key, file };
}

// POST /api/publish{query} with body: { status, text, json } (json null when the answer is not
// JSON). query: '?destination=...' for one message, '' for a batch (contentType
// 'application/json'); without contentType the request has no Content-Type.
export function apiPost(port, key, query, body, { contentType = null, headers = {} } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, method: 'POST', agent: false, path: `/api/publish${query}`,
      headers: {
        Authorization: `Bearer ${key}`, 'Content-Length': Buffer.byteLength(body),
        ...(contentType ? { 'Content-Type': contentType } : {}), ...headers,
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON: the caller looks at text */ }
        resolve({ status: res.statusCode, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  }), 5000, `POST /api/publish${query}`);
}

// One message to destination: apiPost with its query string.
export const apiPublishTo = (port, key, destination, body, options) =>
  apiPost(port, key, `?destination=${encodeURIComponent(destination)}`, body, options);
