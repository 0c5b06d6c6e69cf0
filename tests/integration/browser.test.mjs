// The example pages in a real browser. Debian's chromium, driven by playwright-core, loads
// examples/dashboard and examples/notifications from the broker's own static route (--static),
// and the pages speak STOMP over WebSocket to that broker through their vendored
// @stomp/stompjs. Prices come from examples/dashboard/feeder.py over STOMP/TCP, notifications
// from examples/notifications/notify.sh through the HTTP publish API: every piece is the one a
// user runs.
//
// Screenshots go to $STOMPWS_TEST_OUTPUT/browser (meson sets it to the build directory) or to a
// fresh temp dir; each path is printed as a test diagnostic. Without chromium these tests fail
// and say how to install it: a browser test that silently passes proves nothing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { brokerTest, startBroker } from './lib/broker.mjs';
import { startRelay } from './lib/relay.mjs';
import { tcpStomp } from './lib/stomp.mjs';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const ROOT = path.resolve(HERE, '../..');
const DASHBOARD = path.join(ROOT, 'examples/dashboard');
const NOTIFICATIONS = path.join(ROOT, 'examples/notifications');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const PY = '/usr/bin/python3';

const outDir = (() => {
  if (!process.env.STOMPWS_TEST_OUTPUT) return fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-browser-'));
  const dir = path.join(process.env.STOMPWS_TEST_OUTPUT, 'browser');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
})();

async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`chromium not found at ${CHROMIUM}: the browser tests need it. Install it with `
      + '`apt-get install chromium` (./quickstart.sh test does), or set CHROMIUM to its path.');
  }
  // Imported here so that a node_modules from before playwright-core was added fails clearly.
  const { chromium } = await import('playwright-core').catch((e) => {
    throw new Error(`playwright-core is not installed: run \`npm ci\` in tests/integration (${e.message})`);
  });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu'],
    timeout: 20000,
  });
}

// A page in its own context (own storage, as a separate user would have), with every page error
// and console error kept so a test can show them when it fails and assert there were none.
async function openPage(browser, label) {
  const context = await browser.newContext({ viewport: { width: 900, height: 560 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`${label}: page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') page.problems.push(`${label}: console: ${m.text()}`); });
  return page;
}

// Waits (bounded) for the page's connection state to read "live": the broker has confirmed its
// subscription, so nothing published from now on can be missed.
async function waitLive(page, timeout = 10000) {
  try {
    await page.waitForSelector('#state[data-state="live"]', { timeout });
  } catch (e) {
    const state = await page.textContent('#state').catch(() => '(unreadable)');
    throw new Error(`page never went live (state: "${state}"; ${page.problems.join('; ') || 'no page errors'}): ${e.message}`);
  }
}

async function screenshot(t, page, name) {
  const file = path.join(outDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  t.diagnostic(`screenshot: ${file}`);
  return file;
}

// Runs a program to completion (killed after timeoutMs); resolves { code, stdout, stderr }.
function run(file, args, { env = {}, timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number' && !err.killed) reject(err);
        else resolve({ code: err ? (err.killed ? `killed after ${timeoutMs} ms` : err.code) : 0, stdout, stderr });
      });
  });
}

const signed = (n) => (n > 0 ? '+' : '') + n.toFixed(2);

// The broker flags of the dashboard as ./quickstart.sh run gives them: the last price per symbol.
const DASHBOARD_ARGS = ['--static', DASHBOARD, '--history', '/topic/stocks.*=1'];

// Runs feeder.py to completion for count updates (fixed seed, no pause: it exits once the broker
// has routed them all) and returns symbol -> the last update it printed for it.
async function feed(broker, count, seed) {
  const feeder = await run(PY, [path.join(DASHBOARD, 'feeder.py'), '--port', String(broker.tcpPort),
    '--count', String(count), '--rate', '0', '--seed', String(seed)], { env: { PYTHONDONTWRITEBYTECODE: '1' } });
  assert.equal(feeder.code, 0, `feeder.py failed: ${feeder.stderr}`);
  const sent = feeder.stdout.trim().split('\n').map((line) => JSON.parse(line));
  assert.equal(sent.length, count, 'feeder.py prints every message it sends');
  const last = new Map();
  for (const tick of sent) last.set(tick.symbol, tick);
  assert.equal(last.size, 8, 'the feeder covers its 8 symbols');
  return last;
}

// Waits (bounded) until the page has counted `updates` updates, then checks that the table
// shows, for each symbol, the price and change of last.get(symbol).
async function checkTable(page, last, updates) {
  // Every update counted first, then the table read: no intermediate price can pass for the last.
  await page.waitForFunction((n) => document.getElementById('updates').textContent === String(n), updates,
    { timeout: 10000 }).catch(async (e) => {
    throw new Error(`page counted ${await page.textContent('#updates')} updates, not ${updates}: ${e.message}`);
  });
  const rows = await page.$$eval('#quotes tr[data-symbol]', (trs) => trs.map((tr) => ({
    symbol: tr.dataset.symbol,
    cells: [...tr.cells].map((td) => td.textContent),
  })));
  assert.deepEqual(rows.map((r) => r.symbol), [...last.keys()].sort(), 'one row per symbol, sorted');
  for (const { symbol, cells } of rows) {
    const tick = last.get(symbol);
    assert.equal(cells[0], symbol);
    assert.equal(cells[1], tick.price.toFixed(2), `${symbol}: last price`);
    assert.equal(cells[2], signed(tick.change), `${symbol}: change`);
  }
}

// Runs feeder.py for count updates and checks that the dashboard on page shows, for each symbol,
// the last price and change the feeder printed.
async function feedAndCheck(page, broker, count, seed = 7) {
  const before = Number(await page.textContent('#updates'));
  await checkTable(page, await feed(broker, count, seed), before + count);
}

// The end of a test that started its own broker: SIGTERM must end it with exit 0; the test's
// error (or that one) is thrown with the broker's log; the directories go once all went well.
async function stopBroker(broker, error, dirs) {
  const exit = await broker.stop();
  if (!error && (exit.code !== 0 || exit.signal !== null)) {
    error = new Error(`broker did not exit 0 on SIGTERM: code ${exit.code}, signal ${exit.signal}`);
  }
  if (error) {
    error.message += `\n${broker.logTail()}`;
    throw error;
  }
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
}

test('the vendored @stomp/stompjs in each example is the version the tests pin', () => {
  const pinned = fs.readFileSync(path.join(HERE, 'node_modules/@stomp/stompjs/bundles/stomp.umd.min.js'));
  for (const dir of [DASHBOARD, NOTIFICATIONS]) {
    const vendored = fs.readFileSync(path.join(dir, 'vendor/stomp.umd.min.js'));
    assert.ok(vendored.equals(pinned),
      `${path.relative(ROOT, dir)}/vendor/stomp.umd.min.js differs from the pinned @stomp/stompjs: `
      + 'run examples/dashboard/update-stompjs.sh');
    assert.ok(fs.existsSync(path.join(dir, 'vendor/LICENSE')), `${path.relative(ROOT, dir)}/vendor/LICENSE missing`);
  }
});

brokerTest('dashboard: the page served by the broker shows the last price the feeder sent for each symbol',
  { args: DASHBOARD_ARGS, timeout: 60000 }, async (broker, t) => {
    const browser = await launchBrowser();
    try {
      const page = await openPage(browser, 'dashboard');
      await page.goto(`http://127.0.0.1:${broker.wsPort}/`);
      await waitLive(page);

      await feedAndCheck(page, broker, 60);
      await screenshot(t, page, 'dashboard');
      assert.equal(await page.textContent('#state'), 'live');
      assert.deepEqual(page.problems, []);
    } finally {
      await browser.close();
    }
  });

// Chromium offers permessage-deflate on its own: the 101 as DevTools saw it must name the
// extension, the dashboard must work through it, and a MESSAGE big enough to be compressed (a
// stored block with the subscriber's own lines, then the part deflated once for every
// subscriber) must read right in the page, for two subscriptions at once.
brokerTest('dashboard: chromium negotiates permessage-deflate and reads compressed messages',
  { args: DASHBOARD_ARGS, timeout: 60000 }, async (broker, t) => {
    const browser = await launchBrowser();
    try {
      const page = await openPage(browser, 'dashboard-deflate');
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Network.enable');
      const handshakes = [];
      cdp.on('Network.webSocketHandshakeResponseReceived', (e) => handshakes.push(e.response));
      await page.goto(`http://127.0.0.1:${broker.wsPort}/`);
      await waitLive(page);
      await feedAndCheck(page, broker, 60);
      const extensionsOf = (response) => Object.entries(response.headers)
        .find(([k]) => k.toLowerCase() === 'sec-websocket-extensions')?.[1];
      assert.equal(handshakes.length, 1, 'the dashboard opened one WebSocket');
      assert.equal(handshakes[0].status, 101);
      assert.equal(extensionsOf(handshakes[0]),
        'permessage-deflate; server_no_context_takeover; client_no_context_takeover');

      // A socket of the page's own, two subscriptions, then one large JSON message.
      await page.evaluate(() => new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://${location.host}/ws`, ['v12.stomp']);
        window.bigMessages = [];
        ws.onerror = () => reject(new Error('WebSocket error'));
        ws.onopen = () => {
          ws.send('CONNECT\naccept-version:1.2\nhost:x\n\n\0');
          ws.send('SUBSCRIBE\nid:first\ndestination:/topic/big\n\n\0');
          ws.send('SUBSCRIBE\nid:second-subscription\ndestination:/topic/big\nack:client\nreceipt:ready\n\n\0');
        };
        ws.onmessage = (e) => {
          if (e.data.startsWith('RECEIPT')) resolve();
          else if (e.data.startsWith('MESSAGE')) window.bigMessages.push(e.data);
        };
      }));
      assert.equal(handshakes.length, 2);
      assert.match(extensionsOf(handshakes[1]), /^permessage-deflate/);
      const quotes = [];
      for (let i = 0; JSON.stringify(quotes).length < 20000; i++) quotes.push({ symbol: `S${i % 50}`, price: (100 + (i * 13) % 97).toFixed(2) });
      const body = JSON.stringify(quotes);
      const pub = await tcpStomp(broker);
      try {
        await pub.sendWithReceipt('SEND', { destination: '/topic/big', 'content-type': 'application/json' }, body);
      } finally {
        pub.destroy();
      }
      await page.waitForFunction(() => window.bigMessages.length === 2, null, { timeout: 10000 });
      const got = await page.evaluate(() => window.bigMessages);
      for (const id of ['first', 'second-subscription']) {
        const frame = got.find((m) => m.slice(0, m.indexOf('\n\n')).split('\n').includes(`subscription:${id}`));
        assert.ok(frame, `a MESSAGE for subscription ${id}`);
        assert.equal(frame.slice(frame.indexOf('\n\n') + 2), `${body}\0`, `${id}: the body arrives whole`);
      }
      assert.deepEqual(page.problems, []);
      await screenshot(t, page, 'dashboard-deflate');
    } finally {
      await browser.close();
    }
  });

// The feeder has stopped before the page opens, so no live tick can fill the table: only the
// subscription's x-stream-offset: last and the broker's last-value policy can.
brokerTest('dashboard: opened after the prices were published, the table is full at once',
  { args: DASHBOARD_ARGS, timeout: 60000 }, async (broker, t) => {
    const last = await feed(broker, 60, 3);
    const browser = await launchBrowser();
    try {
      const page = await openPage(browser, 'dashboard');
      await page.goto(`http://127.0.0.1:${broker.wsPort}/`);
      await waitLive(page);
      // One replayed price per symbol, right behind the receipt that made the page live.
      await checkTable(page, last, last.size);
      assert.equal(await page.locator('#empty').count(), 0, 'no "Waiting for prices" row');
      await screenshot(t, page, 'dashboard-opened-late');
      assert.deepEqual(page.problems, []);
    } finally {
      await browser.close();
    }
  });

// The page knows only the address it was loaded from, so the second broker takes over the first
// one's WebSocket port (free again once it has exited; the listener sets SO_REUSEADDR).
test('dashboard: after a broker restart the page reconnects by itself and shows new prices',
  { timeout: 90000 }, async (t) => {
    let broker = await startBroker({ args: DASHBOARD_ARGS });
    const dirs = [broker.dir];
    let browser = null;
    let error = null;
    try {
      browser = await launchBrowser();
      const page = await openPage(browser, 'dashboard');
      await page.goto(`http://127.0.0.1:${broker.wsPort}/`);
      await waitLive(page);
      await feedAndCheck(page, broker, 16, 1);

      const first = await broker.stop();
      assert.deepEqual(first, { code: 0, signal: null }, 'the first broker exits 0 on SIGTERM');
      await page.waitForSelector('#state[data-state="reconnecting"]', { timeout: 10000 });
      assert.match(await page.textContent('#state'), /reconnecting$/);

      broker = await startBroker({ ws: `127.0.0.1:${broker.wsPort}`, args: DASHBOARD_ARGS });
      dirs.push(broker.dir);
      // The page backs off 1 s, 2 s, 4 s, ... (at most 15 s) between attempts.
      await waitLive(page, 30000);
      await feedAndCheck(page, broker, 24, 2);
      await screenshot(t, page, 'dashboard-reconnected');
      // Failed connection attempts while the broker was down are console errors; exceptions are not.
      assert.deepEqual(page.problems.filter((p) => p.includes('page error')), []);
    } catch (e) {
      error = e;
    }
    await browser?.close().catch(() => {});
    await stopBroker(broker, error, dirs);
  });

const apiKey = crypto.randomBytes(24).toString('hex');
const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-browser-keys-'));
const keyFile = path.join(keyDir, 'api-keys');
fs.writeFileSync(keyFile, `# browser.test.mjs\n${apiKey}\n`, { mode: 0o600 });
process.on('exit', () => fs.rmSync(keyDir, { recursive: true, force: true }));

// The broker flags of the notification feed as ./quickstart.sh run gives them, plus the API key.
const NOTIFICATIONS_ARGS = ['--static', NOTIFICATIONS, '--api-key-file', keyFile,
  '--history', '/topic/notifications.*=100/1h'];

// notify.sh USER MESSAGE against broker; returns the offset the broker gave the notification.
async function notify(broker, user, message) {
  const r = await run(path.join(NOTIFICATIONS, 'notify.sh'), [user, message],
    { env: { STOMPWS_URL: `http://127.0.0.1:${broker.wsPort}`, STOMPWS_API_KEY: apiKey } });
  assert.equal(r.code, 0, `notify.sh ${user}: ${r.stdout}${r.stderr}`);
  const m = r.stdout.match(/^\{"id":"[^"]+","offset":(\d+)\}\s*$/);
  assert.ok(m, `notify.sh ${user}: unexpected answer ${r.stdout}`);
  return Number(m[1]);
}

// The feed's entries, newest first: notification texts, and "(gap)" where the page says it could
// not recover what it missed.
const feedEntries = (page) => page.$$eval('#feed li',
  (items) => items.map((i) => (i.classList.contains('gap') ? '(gap)' : i.querySelector('.text').textContent)));
const waitFeedLength = (page, n, timeout = 10000) => page.waitForFunction(
  (k) => document.querySelectorAll('#feed li').length >= k, n, { timeout }).catch(async (e) => {
  throw new Error(`feed has ${JSON.stringify(await feedEntries(page))}, wanted ${n} entries: ${e.message}`);
});

brokerTest('notifications: a notification for alice shows on alice\'s page and not on bob\'s',
  { args: NOTIFICATIONS_ARGS, timeout: 60000 }, async (broker, t) => {
    const feed = (page) => page.$$eval('#feed li .text', (items) => items.map((i) => i.textContent));
    const waitFeed = (page, n) => page.waitForFunction((k) => document.querySelectorAll('#feed li').length >= k, n,
      { timeout: 10000 });

    const browser = await launchBrowser();
    try {
      const pages = {};
      for (const user of ['alice', 'bob']) {
        const page = await openPage(browser, user);
        await page.goto(`http://127.0.0.1:${broker.wsPort}/`);
        await page.fill('#user', user);
        await Promise.all([page.waitForURL(/\?user=/), page.click('button[type=submit]')]);
        await waitLive(page);
        pages[user] = page;
      }

      const forAlice = 'Your report is ready <b>not markup</b>';
      await notify(broker, 'alice', forAlice);
      await waitFeed(pages.alice, 1);
      // bob's own notification is routed after alice's, on the same broker: once bob has it,
      // alice's would already be in bob's list had it been delivered to him.
      await notify(broker, 'bob', 'Build #42 passed');
      await waitFeed(pages.bob, 1);
      await screenshot(t, pages.alice, 'notifications-alice');
      await screenshot(t, pages.bob, 'notifications-bob');

      assert.deepEqual(await feed(pages.alice), [forAlice]);
      assert.deepEqual(await feed(pages.bob), ['Build #42 passed']);
      assert.equal(await pages.alice.locator('#feed b').count(), 0, 'a notification is shown as text, not HTML');
      assert.equal(await pages.alice.textContent('#user-name'), 'alice');
      assert.deepEqual([...pages.alice.problems, ...pages.bob.problems], []);
    } finally {
      await browser.close();
    }
  });

// The page reaches the broker through a relay (?url=), so the test can take the network away
// under it: refuse() cuts the WebSocket and refuses the page's reconnect attempts, as a train's
// Wi-Fi would, while notify.sh still reaches the broker directly. The page's own reconnect
// (stompjs, backing off 1 s, 2 s, 4 s, ...) brings it back once the relay lets it through.
async function openFeedThroughRelay(browser, broker, relay, user) {
  const page = await openPage(browser, user);
  const url = `ws://127.0.0.1:${relay.address.port}/ws`;
  await page.goto(`http://127.0.0.1:${broker.wsPort}/?user=${user}&url=${encodeURIComponent(url)}`);
  await waitLive(page);
  return page;
}

async function dropConnection(page, relay) {
  relay.refuse(true);
  await page.waitForSelector('#state[data-state="reconnecting"]', { timeout: 10000 });
}

brokerTest('notifications: after the connection drops the page resumes where it was, nothing missing, nothing twice',
  { args: NOTIFICATIONS_ARGS, timeout: 90000 }, async (broker, t) => {
    const relay = await startRelay({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: broker.wsPort });
    const browser = await launchBrowser();
    try {
      const page = await openFeedThroughRelay(browser, broker, relay, 'alice');
      const sent = [];
      const send = async (text) => {
        const offset = await notify(broker, 'alice', text);
        assert.equal(offset, sent.length + 1, 'offsets count up from 1');
        sent.push(text);
      };
      await send('before 1');
      await send('before 2');
      await waitFeedLength(page, 2);

      await dropConnection(page, relay);
      for (let i = 1; i <= 5; i++) await send(`while away ${i}`);
      // Long enough for the page to have failed at least one reconnect attempt.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal((await feedEntries(page)).length, 2, 'nothing reaches the page while it is cut off');
      relay.refuse(false);
      await waitLive(page, 30000);
      await send('after');
      await waitFeedLength(page, sent.length);
      await screenshot(t, page, 'notifications-resumed');

      assert.deepEqual(await feedEntries(page), [...sent].reverse(), 'every notification once, newest first, no gap');
      assert.ok(relay.connections >= 2, 'the page reconnected through the relay');
      assert.deepEqual(page.problems.filter((p) => p.includes('page error')), []);
    } finally {
      await browser.close();
      await relay.close();
    }
  });

// A restarted broker numbers the destination again under a new epoch: the page's offset means
// nothing there, the broker replays all it has and answers x-stream-recovered: false, and the
// page marks the gap. The second broker takes over the first one's WebSocket port, where the
// relay sends the page.
test('notifications: after a broker restart the page shows that it could not recover',
  { timeout: 90000 }, async (t) => {
    let broker = await startBroker({ args: NOTIFICATIONS_ARGS });
    const dirs = [broker.dir];
    const relay = await startRelay({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: broker.wsPort });
    let browser = null;
    let error = null;
    try {
      browser = await launchBrowser();
      const page = await openFeedThroughRelay(browser, broker, relay, 'alice');
      await notify(broker, 'alice', 'old 1');
      await waitFeedLength(page, 1);

      await dropConnection(page, relay);
      assert.deepEqual(await broker.stop(), { code: 0, signal: null }, 'the first broker exits 0 on SIGTERM');
      broker = await startBroker({ ws: `127.0.0.1:${broker.wsPort}`, args: NOTIFICATIONS_ARGS });
      dirs.push(broker.dir);
      // Offsets 1 and 2 again, under the new epoch: resuming from offset 2 alone would show
      // "new 2" and silently skip "new 1".
      assert.equal(await notify(broker, 'alice', 'new 1'), 1);
      assert.equal(await notify(broker, 'alice', 'new 2'), 2);
      relay.refuse(false);
      await waitLive(page, 30000);
      await waitFeedLength(page, 4);
      await screenshot(t, page, 'notifications-not-recovered');

      assert.deepEqual(await feedEntries(page), ['new 2', 'new 1', '(gap)', 'old 1']);
      assert.match(await page.textContent('#feed li.gap'), /could not be recovered/);
      assert.ok(await page.isVisible('#feed li.gap'), 'the gap is shown');
      assert.deepEqual(page.problems.filter((p) => p.includes('page error')), []);
    } catch (e) {
      error = e;
    }
    await browser?.close().catch(() => {});
    await relay.close();
    await stopBroker(broker, error, dirs);
  });

// GET /sse in the browser: a page with a bare EventSource, served by the broker, reads
// /topic/feed through the relay (another port, so the request is cross-origin and the CORS
// headers must let the page read it). The relay then cuts the connection and refuses the
// reconnects for a while; messages published meanwhile are kept (--history), and the browser's
// own reconnect sends Last-Event-ID, from which the broker resumes.
const SSE_PAGE = `<!doctype html><meta charset="utf-8"><title>sse</title><pre id="log"></pre>
<script>
  const url = new URLSearchParams(location.search).get('url');
  window.got = [];
  window.opens = 0;
  window.es = new EventSource(url);
  es.onopen = () => { window.opens++; };
  es.onmessage = (e) => {
    const m = JSON.parse(e.data);
    window.got.push(m.body);
    document.getElementById('log').textContent += m.destination + ' ' + m.body + '\\n';
  };
</script>`;

brokerTest('sse: an EventSource page gets every message, reconnects on its own after a drop and misses nothing',
  { args: ['--static', (() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompws-sse-page-'));
    fs.writeFileSync(path.join(dir, 'sse.html'), SSE_PAGE);
    return dir;
  })(), '--history', '/topic/feed=100'], timeout: 60000 }, async (broker, t) => {
    const { tcpStomp } = await import('./lib/stomp.mjs');
    const relay = await startRelay({ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: broker.wsPort });
    const browser = await launchBrowser();
    try {
      const page = await openPage(browser, 'sse');
      const url = `http://127.0.0.1:${relay.address.port}/sse?destination=/topic/feed`;
      await page.goto(`http://127.0.0.1:${broker.wsPort}/sse.html?url=${encodeURIComponent(url)}`);
      await page.waitForFunction(() => window.opens === 1 && window.es.readyState === 1);
      const pub = await tcpStomp(broker);
      const sent = [];
      const send = async (body) => {
        await pub.sendWithReceipt('SEND', { destination: '/topic/feed' }, body);
        sent.push(body);
      };
      const waitGot = (n) => page.waitForFunction((k) => window.got.length >= k, n, { timeout: 20000 });
      await send('before 1');
      await send('before 2');
      await waitGot(2);

      relay.refuse(true);
      await page.waitForFunction(() => window.es.readyState === 0, null, { timeout: 10000 });
      for (let i = 1; i <= 5; i++) await send(`while away ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 1500)); // a refused retry or two
      assert.deepEqual(await page.evaluate(() => window.got), sent.slice(0, 2));
      relay.refuse(false);
      await waitGot(sent.length);
      await send('after');
      await waitGot(sent.length);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await screenshot(t, page, 'sse-resumed');

      assert.deepEqual(await page.evaluate(() => window.got), sent, 'every message once, in order');
      assert.ok(await page.evaluate(() => window.opens) >= 2, 'the EventSource reconnected');
      assert.deepEqual(page.problems.filter((p) => p.includes('page error')), []);
    } finally {
      await browser.close();
      await relay.close();
    }
  });

// The dashboard without WebSocket: ?transport=sse starts on Server-Sent Events, and a WebSocket
// that never opens (here a wrong ?path=, refused with 404 as a proxy would refuse the upgrade)
// makes the page fall back to them. Either way the table shows the feeder's last prices.
for (const [name, query] of [['?transport=sse forces it', '?transport=sse'],
  ['a failing WebSocket falls back to it', '?path=/no-websocket-here']]) {
  brokerTest(`dashboard over Server-Sent Events: ${name}`,
    { args: DASHBOARD_ARGS, timeout: 60000 }, async (broker, t) => {
      const browser = await launchBrowser();
      try {
        const page = await openPage(browser, 'dashboard-sse');
        await page.goto(`http://127.0.0.1:${broker.wsPort}/${query}`);
        await waitLive(page);
        assert.equal(await page.textContent('#state'), 'live (SSE)');
        assert.match(await page.textContent('#source'), /\/sse\?destination=/);
        await feedAndCheck(page, broker, 40);
        await screenshot(t, page, `dashboard-sse-${query.includes('path') ? 'fallback' : 'forced'}`);
        assert.deepEqual(page.problems.filter((p) => p.includes('page error')), []);
      } finally {
        await browser.close();
      }
    });
}
