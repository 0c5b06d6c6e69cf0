// Stock-ticker dashboard: one STOMP subscription to /topic/stocks.* over WebSocket and one table
// row per symbol, with the last price, the change since the feeder started, and a flash on each
// update. The subscription starts from each symbol's last kept price. The broker serves this page
// (stompws --static examples/dashboard), so the WebSocket endpoint is on the page's own host. No
// framework, no build step: the global StompJs comes from vendor/stomp.umd.min.js (@stomp/stompjs).
//
// Without WebSocket (a proxy that drops it) the page falls back to Server-Sent Events: the same
// prices from GET /sse on the same broker (docs/SSE.md), with the browser's EventSource doing
// the reconnects and the resume.
//
// Query parameters: ?path=/ws (the broker's server.ws_path) or ?url=ws://host:port/ws;
// ?transport=sse starts with Server-Sent Events at once (what the fallback would use).
'use strict';

(function () {
  // '*' matches exactly one dot-separated segment: /topic/stocks.ACME, not /topic/stocks.a.b.
  const DESTINATION = '/topic/stocks.*';
  const params = new URLSearchParams(location.search);
  const brokerURL = params.get('url') || sameHostURL(params.get('path') || '/ws');

  const stateEl = document.getElementById('state');
  const quotesEl = document.getElementById('quotes');
  const updatesEl = document.getElementById('updates');
  const rows = new Map(); // symbol -> { row, cells, price }
  let updates = 0;

  // Opened from disk (file://) there is no host: fall back to the broker's default listener.
  function sameHostURL(path) {
    if (!location.host) return 'ws://127.0.0.1:15674' + path;
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
  }

  // GET /sse on the broker the WebSocket URL names: same host and port, http(s) for ws(s).
  function sseURL() {
    const ws = new URL(brokerURL);
    const query = new URLSearchParams({ destination: DESTINATION, 'x-stream-offset': 'last' });
    return (ws.protocol === 'wss:' ? 'https://' : 'http://') + ws.host + '/sse?' + query;
  }

  function setState(state, text) {
    stateEl.dataset.state = state;
    stateEl.textContent = text;
  }

  function fixed(n) { return n.toFixed(2); }
  function signed(n, digits) { return (n > 0 ? '+' : '') + n.toFixed(digits); }
  function direction(n) { return n > 0 ? 'up' : n < 0 ? 'down' : ''; }

  // Rows stay sorted by symbol, so the table does not jump around as symbols appear.
  function rowFor(symbol) {
    let entry = rows.get(symbol);
    if (entry) return entry;
    document.getElementById('empty')?.remove();
    const row = document.createElement('tr');
    row.dataset.symbol = symbol;
    const cells = {};
    for (const name of ['symbol', 'price', 'change', 'percent', 'time']) {
      cells[name] = row.insertCell();
      cells[name].className = name;
    }
    cells.symbol.textContent = symbol;
    const next = [...rows.keys()].filter((s) => s > symbol).sort()[0];
    quotesEl.insertBefore(row, next ? rows.get(next).row : null);
    entry = { row, cells, price: null };
    rows.set(symbol, entry);
    return entry;
  }

  // Restarting the animation needs a reflow between removing and adding the class.
  function flash(cell, dir) {
    cell.classList.remove('flash-up', 'flash-down');
    void cell.offsetWidth;
    if (dir) cell.classList.add('flash-' + dir);
  }

  function show(tick) {
    const entry = rowFor(tick.symbol);
    const { cells } = entry;
    const open = tick.price - tick.change;
    const trend = direction(tick.change) || 'flat';
    const tickDir = entry.price === null ? '' : direction(tick.price - entry.price);
    entry.price = tick.price;
    cells.price.textContent = fixed(tick.price);
    cells.change.textContent = signed(tick.change, 2);
    cells.change.className = 'change ' + trend;
    cells.percent.textContent = open > 0 ? signed((tick.change / open) * 100, 2) + '%' : '';
    cells.percent.className = 'percent ' + trend;
    cells.time.textContent = new Date(tick.ts).toLocaleTimeString();
    flash(cells.price, tickDir);
    updatesEl.textContent = String(++updates);
  }

  // The body is {"symbol", "price", "change", "ts"} (see feeder.py); anything else is skipped,
  // so one bad publisher cannot break the page.
  function onMessage(message) {
    let tick;
    try {
      tick = JSON.parse(message.body);
    } catch (e) {
      console.warn('not JSON on', message.headers.destination, message.body);
      return;
    }
    if (!tick || typeof tick.symbol !== 'string' || !Number.isFinite(tick.price)) {
      console.warn('not a price update on', message.headers.destination, message.body);
      return;
    }
    if (!Number.isFinite(tick.change)) tick.change = 0;
    if (!Number.isFinite(tick.ts)) tick.ts = Date.now();
    show(tick);
  }

  // Server-Sent Events: each event's data is {destination, headers, body}. EventSource
  // reconnects by itself (after 1 s, the broker's retry:) and resumes from its last event; a
  // refusal (401, 403) closes it for good.
  function startSSE(why) {
    const url = sseURL();
    document.getElementById('source').textContent = DESTINATION + ' on ' + url;
    setState('connecting', why ? why + ': trying Server-Sent Events' : 'connecting (SSE)');
    const feed = new EventSource(url);
    feed.onopen = () => setState('live', 'live (SSE)');
    feed.onmessage = (e) => {
      let m;
      try {
        m = JSON.parse(e.data);
      } catch (err) {
        console.warn('not JSON from /sse', e.data);
        return;
      }
      if (m.encoding === 'base64') return; // not text: no price update
      onMessage({ body: m.body, headers: { destination: m.destination } });
    };
    feed.onerror = () => {
      if (feed.readyState === EventSource.CLOSED) setState('reconnecting', 'SSE refused: reload to retry');
      else setState('reconnecting', 'SSE disconnected, reconnecting');
    };
  }

  if (params.get('transport') === 'sse') {
    startSSE(null);
    return;
  }

  document.getElementById('source').textContent = DESTINATION + ' on ' + brokerURL;
  setState('connecting', 'connecting');

  const client = new StompJs.Client({
    brokerURL,
    // Back off from 1 s to 15 s while the broker is away, so a restart is not a reconnect storm.
    reconnectDelay: 1000,
    reconnectTimeMode: StompJs.ReconnectionTimeMode.EXPONENTIAL,
    maxReconnectDelay: 15000,
  });

  let everConnected = false; // a WebSocket session was up at least once
  // "live" only once the broker has confirmed the subscription: from then on no price is missed.
  // x-stream-offset: last asks for the latest kept price of each symbol first (a broker run with
  // --history '/topic/stocks.*=1', see docs/HISTORY.md), so a page opened between two ticks, or
  // back after a reconnect, is full at once. Without such a policy the broker sends nothing
  // extra and the table fills with the next ticks.
  client.onConnect = () => {
    everConnected = true;
    setState('connecting', 'subscribing');
    const receipt = 'subscribed-' + Date.now();
    client.watchForReceipt(receipt, () => setState('live', 'live'));
    client.subscribe(DESTINATION, onMessage, { receipt, 'x-stream-offset': 'last' });
  };
  // An ERROR frame (refused login, shutdown, ...) is followed by the close: say why there.
  let lastError = null;
  client.onStompError = (frame) => { lastError = frame.headers.message || 'ERROR'; };
  client.onWebSocketClose = () => {
    // A WebSocket that never opened (a proxy that refuses the upgrade) will not open on the next
    // try either: switch to Server-Sent Events. One that worked before is only reconnecting.
    if (!everConnected && !lastError) {
      client.deactivate();
      startSSE('WebSocket failed');
      return;
    }
    setState('reconnecting', (lastError ? lastError + '; ' : 'disconnected, ') + 'reconnecting');
    lastError = null;
  };
  client.activate();
})();
