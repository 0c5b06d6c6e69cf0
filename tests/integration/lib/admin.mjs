// The admin API (docs/API.md, "Admin API") from tests: a key file of one fresh key (apart from the
// publish API's), and requests with node's HTTP client.
import { apiKeyFile } from './api.mjs';
import { httpCall } from './http.mjs';

// A fresh admin key in a file of its own: { key, file, args } (args: the broker's flag).
export function adminKeyFile() {
  const { key, file } = apiKeyFile();
  return { key, file, args: ['--admin-key-file', file] };
}

// METHOD path on port with "Authorization: Bearer key" (key null: none). Resolves
// { status, headers, text, json } (json null when the answer is not JSON).
export const adminRequest = (port, key, method, path) => httpCall(port, method, path, { key, timeout: 10000 });

// GET /api/connections[?user=] answered 200: the list.
export async function connections(port, key, user = null) {
  const r = await adminRequest(port, key, 'GET', `/api/connections${user !== null ? `?user=${encodeURIComponent(user)}` : ''}`);
  if (r.status !== 200) throw new Error(`GET /api/connections: ${r.status} ${r.text}`);
  return r.json;
}
