// Notification feed: the user named in ?user= (the sign-in form sets it) subscribes over
// STOMP/WebSocket to their own topic, /topic/notifications.<user>, and each message body shows up
// at the top of the list. notify.sh publishes to that topic through the broker's HTTP API.
//
// A topic (not a queue) so that every open tab of the user gets each notification. The broker's
// history policy keeps the recent ones: the page starts from all that are kept, and after a
// reconnect resumes from the one after the last it showed (x-stream-offset: offset=N), marking
// in the feed when the broker could no longer replay all it missed. With an ACL
// (docs/SECURITY.md) a user can be limited to reading their own topic.
//
// Query parameters: ?user=NAME, and ?path=/ws (the broker's server.ws_path) or ?url=ws://....
'use strict';

(function () {
  // One destination segment: no '.', and none of the wildcard characters '*' and '#'.
  const USER_NAME = /^[A-Za-z0-9_-]{1,64}$/;
  const params = new URLSearchParams(location.search);
  const user = (params.get('user') || '').trim();
  const brokerURL = params.get('url') || sameHostURL(params.get('path') || '/ws');

  const stateEl = document.getElementById('state');
  const feedEl = document.getElementById('feed');

  function sameHostURL(path) {
    if (!location.host) return 'ws://127.0.0.1:15674' + path;
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
  }

  function setState(state, text) {
    stateEl.dataset.state = state;
    stateEl.textContent = text;
  }

  // A feed line at the top: its text and the time it came. textContent, never innerHTML: a
  // notification is text from a backend, not markup.
  function prependLine(itemClass, textClass, content) {
    const item = document.createElement('li');
    item.className = itemClass;
    const text = document.createElement('span');
    text.className = textClass;
    text.textContent = content;
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = new Date().toLocaleTimeString();
    item.append(text, time);
    feedEl.prepend(item);
    document.getElementById('empty').hidden = true;
  }

  function show(message) {
    prependLine('new', 'text', message.body);
  }

  // Where the feed stands in the broker's numbering of the destination (docs/HISTORY.md): the
  // x-stream-offset and x-stream-epoch of the last notification shown, null before the first.
  let position = null;

  // A (re)subscription asks for what came after the last notification shown. Before the first
  // one it asks for everything the broker kept (a broker run with --history
  // '/topic/notifications.*=100/1h' keeps each user's last 100 for an hour): a page opened
  // later shows what was sent meanwhile, and none of it can have been shown already.
  function resumeHeaders() {
    if (!position) return { 'x-stream-offset': 'first' };
    return { 'x-stream-offset': 'offset=' + (position.offset + 1), 'x-stream-epoch': position.epoch };
  }

  function onMessage(message) {
    const offset = Number(message.headers['x-stream-offset']);
    const epoch = message.headers['x-stream-epoch'];
    if (Number.isSafeInteger(offset) && epoch) {
      // Already shown: the broker sends each once, but a page must not trust that blindly.
      if (position && position.epoch === epoch && offset <= position.offset) return;
      position = { offset, epoch };
    }
    show(message);
  }

  // The broker could not replay everything sent while the page was away (it was restarted, or
  // had already dropped some): say so in the feed, where the hole is.
  function showGap() {
    prependLine('gap new', 'gap-text', 'Reconnected, but some notifications sent while you were '
      + 'offline could not be recovered.');
  }

  function openFeed(destination) {
    document.getElementById('signin').hidden = true;
    document.getElementById('inbox').hidden = false;
    document.getElementById('user-name').textContent = user;
    document.getElementById('hint').hidden = false;
    document.getElementById('hint-command').textContent =
      `examples/notifications/notify.sh ${user} 'Hello ${user}'`;

    const client = new StompJs.Client({
      brokerURL,
      reconnectDelay: 1000,
      reconnectTimeMode: StompJs.ReconnectionTimeMode.EXPONENTIAL,
      maxReconnectDelay: 15000,
    });
    let subscriptions = 0;
    // "live" once the broker confirms the subscription: from then on nothing sent is missed.
    client.onConnect = () => {
      setState('connecting', 'subscribing');
      const resuming = subscriptions++ > 0;
      const receipt = 'subscribed-' + subscriptions + '-' + Date.now();
      const headers = Object.assign({ receipt }, resumeHeaders());
      // The RECEIPT comes before the replayed notifications, so a gap marked here sits between
      // what the page already shows and what the broker still had.
      client.watchForReceipt(receipt, (frame) => {
        if (resuming && frame.headers['x-stream-recovered'] === 'false') showGap();
        setState('live', 'live');
      });
      client.subscribe(destination, onMessage, headers);
    };
    // An ERROR frame (refused login, shutdown, ...) is followed by the close: say why there.
    let lastError = null;
    client.onStompError = (frame) => { lastError = frame.headers.message || 'ERROR'; };
    client.onWebSocketClose = () => {
      setState('reconnecting', (lastError ? lastError + '; ' : 'disconnected, ') + 'reconnecting');
      lastError = null;
    };
    setState('connecting', 'connecting');
    client.activate();
  }

  if (!user) return; // the sign-in form reloads the page with ?user=NAME
  document.getElementById('user').value = user;
  if (!USER_NAME.test(user)) {
    setState('error', 'a name is 1 to 64 letters, digits, - or _');
    return;
  }
  openFeed('/topic/notifications.' + user);
})();
