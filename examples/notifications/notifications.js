// Notification feed: the user named in ?user= (the sign-in form sets it) subscribes over
// STOMP/WebSocket to their own topic, /topic/notifications.<user>, and each message body shows up
// at the top of the list. notify.sh publishes to that topic through the broker's HTTP API.
//
// A topic (not a queue) so that every open tab of the user gets each notification; the price is
// that notifications sent while no tab is open are not kept. With an ACL (docs/SECURITY.md) a
// user can be limited to reading their own topic.
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

  // textContent, never innerHTML: a notification is text from a backend, not markup.
  function show(message) {
    const item = document.createElement('li');
    item.className = 'new';
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = message.body;
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = new Date().toLocaleTimeString();
    item.append(text, time);
    feedEl.prepend(item);
    document.getElementById('empty').hidden = true;
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
    // "live" once the broker confirms the subscription: from then on nothing sent is missed.
    client.onConnect = () => {
      setState('connecting', 'subscribing');
      const receipt = 'subscribed-' + Date.now();
      client.watchForReceipt(receipt, () => setState('live', 'live'));
      client.subscribe(destination, show, { receipt });
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
