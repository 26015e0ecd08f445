// The web chat: a demo of the TypeScript SDK (served at /imclient.js) and the page the
// browser test drives. Log in, list conversations, open one, send and receive live, see
// receive-acks and read receipts.
import { ImClient, wire, text, p2p } from '/imclient.js';

const $ = (id) => document.getElementById(id);
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;

let client = null;
let me = '';
/** The open conversation's peer, or ''. */
let open = '';
/** peer -> { unread, last } for the list. */
const convs = new Map();
/** The peer's read mark of my messages, per conversation. */
const readUpTo = new Map();
/** My messages' receive-acks: server ids received by the peer. */
const received = new Set();

const params = new URLSearchParams(location.search);
if (params.get('app')) $('app').value = params.get('app');
if (params.get('user')) $('user').value = params.get('user');

async function devTicket(app, user) {
  const r = await fetch('/v1/dev/ticket', { method: 'POST', body: JSON.stringify({ app_id: app, user_id: user }) });
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || `HTTP ${r.status}`);
  return body.ticket;
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').textContent = '';
  const app = Number($('app').value);
  const user = $('user').value.trim();
  try {
    const ticket = $('ticket').value.trim() || (await devTicket(app, user));
    client = new ImClient({ url: wsUrl });
    client.on('state', (s) => { $('status').textContent = s; });
    client.on('message', onMessage);
    client.on('receipt', (r) => { received.add(String(r.serverId)); redraw(); });
    client.on('read', (r) => {
      if (r.conv?.peer) readUpTo.set(r.conv.peer, r.readSeq);
      redraw();
    });
    client.on('kick', (k) => { $('status').textContent = `closed: ${wire.KickReason[k.reason]}`; });
    await client.login({ appId: app, userId: user, ticket, clientType: wire.ClientType.Web, deviceId: 'web' });
    me = user;
    $('me').textContent = `as ${me}`;
    $('login-form').hidden = true;
    $('chat').hidden = false;
    document.body.dataset.state = 'online';
    await loadConversations();
  } catch (e) {
    $('login-error').textContent = e.message || String(e);
  }
});

async function loadConversations() {
  const r = await client.conversations(0n, 100);
  for (const c of r.conversations) {
    if (c.conv?.type !== wire.ConvType.P2P) continue;
    convs.set(c.conv.peer, { unread: Number(c.unread), last: c.lastMessage ? text(c.lastMessage) : '' });
  }
  drawList();
}

function drawList() {
  const ul = $('convs');
  ul.replaceChildren();
  for (const [peer, c] of convs) {
    const li = document.createElement('li');
    li.dataset.peer = peer;
    li.className = peer === open ? 'open' : '';
    const name = document.createElement('span');
    name.textContent = peer;
    li.append(name);
    if (c.unread > 0 && peer !== open) {
      const badge = document.createElement('span');
      badge.className = 'unread';
      badge.textContent = String(c.unread);
      li.append(badge);
    }
    li.addEventListener('click', () => openConversation(peer));
    ul.append(li);
  }
}

$('open-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const peer = $('peer').value.trim();
  if (peer) openConversation(peer);
  $('peer').value = '';
});

/** Messages of the open conversation, by seq. */
let shown = new Map();

async function openConversation(peer) {
  open = peer;
  shown = new Map();
  if (!convs.has(peer)) convs.set(peer, { unread: 0, last: '' });
  convs.get(peer).unread = 0;
  $('conv').hidden = false;
  $('title').textContent = peer;
  drawList();
  const h = await client.history(p2p(peer), 50);
  for (const m of h.messages) shown.set(String(m.seq), m);
  redraw();
  await markRead();
}

async function markRead() {
  const seqs = [...shown.values()].filter((m) => m.fromUser !== me).map((m) => m.seq);
  if (seqs.length) {
    const top = seqs.reduce((a, b) => (a > b ? a : b));
    await client.markRead(p2p(open), top).catch(() => {});
  }
}

function onMessage(m) {
  const peer = m.conv?.peer;
  if (!peer || m.conv.type !== wire.ConvType.P2P) return;
  if (m.fromUser !== me) client.receiveAck(m).catch(() => {});
  const c = convs.get(peer) ?? { unread: 0, last: '' };
  c.last = text(m);
  if (peer === open) {
    shown.set(String(m.seq), m);
    redraw();
    if (m.fromUser !== me) markRead();
  } else if (m.fromUser !== me) {
    c.unread += 1;
  }
  convs.set(peer, c);
  drawList();
}

function state(m) {
  if (m.fromUser !== me) return '';
  const read = readUpTo.get(open) ?? 0n;
  if (read >= m.seq) return 'read';
  if (received.has(String(m.serverId))) return 'received';
  return 'sent';
}

function redraw() {
  if (!open) return;
  const ol = $('messages');
  ol.replaceChildren();
  const list = [...shown.values()].sort((a, b) => (a.seq < b.seq ? -1 : 1));
  for (const m of list) {
    const li = document.createElement('li');
    li.className = `msg ${m.fromUser === me ? 'mine' : 'theirs'}`;
    li.dataset.seq = String(m.seq);
    const body = document.createElement('span');
    body.className = 'body';
    body.textContent = m.recalled ? '(recalled)' : text(m);
    li.append(body);
    const s = state(m);
    if (s) {
      const st = document.createElement('span');
      st.className = 'state';
      st.dataset.state = s;
      st.textContent = s;
      li.append(st);
    }
    ol.append(li);
  }
  ol.scrollTop = ol.scrollHeight;
}

$('send-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const t = $('text').value;
  if (!t || !open) return;
  $('text').value = '';
  const peer = open;
  const ack = await client.send(peer, t);
  // My own message: shown from its ack (my other devices get it pushed).
  const m = new wire.MessageT(ack.serverId, ack.clientId, p2p(peer), ack.seq, me, peer, 1,
    Array.from(new TextEncoder().encode(t)), ack.timestampMs);
  if (open === peer) {
    shown.set(String(m.seq), m);
    redraw();
  }
});
