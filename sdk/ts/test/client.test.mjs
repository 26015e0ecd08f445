// The SDK against a real server. `tests/sdk_ts.rs` starts one (dev tickets on, heartbeats
// every second, idle timeout 3 s) and runs this file with IM_HTTP (http://host:port) and
// IM_APP (the app id) set. Run by hand: start imserver with such a config and set them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket as NodeWebSocket } from 'ws';
import { ImClient, ImError, wire, text, p2p } from '../dist/imclient.js';

// Node 22 has a WebSocket class of its own; Node 18 and 20 take the ws package's.
const WebSocket = globalThis.WebSocket ?? NodeWebSocket;

const HTTP = process.env.IM_HTTP;
const APP = Number(process.env.IM_APP);
if (!HTTP || !APP) throw new Error('set IM_HTTP and IM_APP (see tests/sdk_ts.rs)');
const WS = HTTP.replace(/^http/, 'ws') + '/ws';
const run = Math.random().toString(36).slice(2, 8);

async function ticket(user) {
  const r = await fetch(`${HTTP}/v1/dev/ticket`, { method: 'POST', body: JSON.stringify({ app_id: APP, user_id: user }) });
  assert.equal(r.status, 200, await r.clone().text());
  return (await r.json()).ticket;
}

async function online(user, opts = {}) {
  const c = new ImClient({ url: WS, WebSocket, ...opts });
  await c.login({ appId: APP, userId: user, ticket: await ticket(user), deviceId: `${user}-node` });
  return c;
}

/** The next event `name` that `pick` accepts, within `ms`. */
function next(c, name, pick = () => true, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`no ${name} event within ${ms} ms`)); }, ms);
    const off = c.on(name, (e) => { if (pick(e)) { clearTimeout(timer); off(); resolve(e); } });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('login, send, a live push, the receive-ack and the read receipt', async () => {
  const [a, b] = [`alice-${run}`, `bob-${run}`];
  const alice = await online(a);
  const bob = await online(b);
  assert.equal(alice.state, 'online');
  assert.equal(alice.session.isAdmin, false);
  const pushed = next(bob, 'message', (m) => text(m) === 'hi bob');
  const ack = await alice.send(b, 'hi bob');
  assert.ok(ack.seq > 0n && ack.serverId > 0n);
  const m = await pushed;
  assert.equal(m.fromUser, a);
  assert.equal(m.conv.peer, a);
  assert.equal(m.seq, ack.seq);
  const receipt = next(alice, 'receipt', (r) => r.serverId === ack.serverId);
  await bob.receiveAck(m);
  assert.equal((await receipt).byUser, b);
  const read = next(alice, 'read', (r) => r.readSeq >= ack.seq);
  await bob.markRead(p2p(a), m.seq);
  assert.equal((await read).userId, b);
  const hist = await alice.history(p2p(b), 10);
  assert.deepEqual(hist.messages.map(text), ['hi bob']);
  const convs = await bob.conversations();
  assert.ok(convs.conversations.some((c) => c.conv.peer === a));
  alice.close();
  bob.close();
});

test('errors are typed with the server code', async () => {
  const alice = await online(`erin-${run}`);
  await assert.rejects(alice.send(`nobody-${run}`, 'x'), (e) => e instanceof ImError && e.codeName === 'UserNotFound');
  const bad = new ImClient({ url: WS, WebSocket, reconnect: false });
  await assert.rejects(
    bad.login({ appId: APP, userId: `erin-${run}`, ticket: 'not-a-ticket' }),
    (e) => e instanceof ImError && e.code === wire.ErrorCode.BadTicket,
  );
  assert.equal(bad.state, 'offline');
  alice.close();
});

test('heartbeats keep an idle session past the idle timeout', async () => {
  const c = await online(`hal-${run}`);
  assert.equal(c.session.heartbeatSecs, 1);
  assert.ok(c.session.idleTimeoutSecs <= 3);
  let kicked = null;
  c.on('kick', (k) => { kicked = k; });
  await sleep((c.session.idleTimeoutSecs + 1.5) * 1000);
  assert.equal(kicked, null);
  assert.equal(c.state, 'online');
  const pong = await c.ping();
  assert.ok(pong.serverTimeMs > 0n);
  c.close();
});

test('a lost connection reconnects and resyncs what came meanwhile by seq', async () => {
  const [a, b] = [`ann-${run}`, `ben-${run}`];
  const alice = await online(a);
  const bob = await online(b);
  const first = next(bob, 'message', (m) => text(m) === 'one');
  await alice.send(b, 'one');
  await first;
  const seen = bob.seqs.get(wire.SyncStream.Messages);
  assert.ok(seen > 0n);
  const states = [];
  bob.on('state', (s) => states.push(s));
  const back = next(bob, 'state', (s) => s === 'online', 8000);
  const missed = next(bob, 'message', (m) => text(m) === 'two', 8000);
  // Cut the socket under the client, as a network loss would.
  bob.ws.close();
  await next(bob, 'state', (s) => s === 'offline');
  await alice.send(b, 'two');
  await back;
  const m = await missed;
  assert.ok(m.syncSeq > seen);
  assert.deepEqual(states.slice(0, 3), ['offline', 'connecting', 'online']);
  alice.close();
  bob.close();
});
