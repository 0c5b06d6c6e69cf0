// The HTTP publish API (docs/API.md) from tests: a key file of one fresh key, and POST
// /api/publish on a broker's WebSocket port.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { httpCall } from './http.mjs';

// A fresh key in a key file of its own (removed when the process exits): { key, file }.
export function apiKeyFile() {
  const key = crypto.randomBytes(24).toString('base64url');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-api-key-'));
  const file = path.join(dir, 'keys');
  fs.writeFileSync(file, `${key}\n`);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return { key, file };
}

// POST /api/publish{query} with body: httpCall's { status, headers, raw, text, json }. query:
// '?destination=...' for one message, '' for a batch (contentType 'application/json'); without
// contentType the request has no Content-Type.
export function apiPost(port, key, query, body, { contentType = null, headers = {} } = {}) {
  return httpCall(port, 'POST', `/api/publish${query}`, {
    key, body, headers: { ...(contentType ? { 'Content-Type': contentType } : {}), ...headers },
  });
}

// One message to destination: apiPost with its query string.
export const apiPublishTo = (port, key, destination, body, options) =>
  apiPost(port, key, `?destination=${encodeURIComponent(destination)}`, body, options);
