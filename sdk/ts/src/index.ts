// The imserver TypeScript client: a WebSocket session (browsers, Node), login with a ticket,
// typed calls with promises, a push event stream, heartbeats, and reconnect with resync by
// seq. The tables are generated from protocol/im.fbs (src/generated); this file is the
// hand-written part.
//
// Each WebSocket binary message is one frame: a ClientFrame (to the server) or a
// ServerFrame (from it), with no length prefix.

import * as flatbuffers from 'flatbuffers';
import * as w from './generated/im/wire.js';

export * as wire from './generated/im/wire.js';

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = 2;

/** A request table of the object API (`wire.SendMessageReqT`, ...). */
export type RequestT = NonNullable<w.ClientFrameT['request']>;
/** A response table of the object API. */
export type ResponseT = NonNullable<w.ServerFrameT['response']>;

/** An error the server answered (or `code` 0 for the connection's own failures). */
export class ImError extends Error {
  constructor(
    public readonly code: number,
    message: string,
    public readonly backendCode: bigint = 0n,
  ) {
    super(`${w.ErrorCode[code] ?? code}: ${message}`);
    this.name = 'ImError';
  }

  /** The `ErrorCode` name (`"UserNotFound"`, ...). */
  get codeName(): string {
    return w.ErrorCode[this.code] ?? String(this.code);
  }
}

export interface Credentials {
  appId: number;
  userId: string;
  /** A login ticket (TLSSigAPIv2), signed by the app's backend. */
  ticket: string;
  clientType?: w.ClientType;
  deviceId?: string;
}

export interface ClientOptions {
  /** `ws://host:port/ws` or `wss://...`. */
  url: string;
  /** The WebSocket class (default: the global one of browsers and Node 22). */
  WebSocket?: typeof WebSocket;
  /** A call without an answer fails after this long (default 15 s). */
  timeoutMs?: number;
  /** Reconnect and log in again after a connection is lost (default true). */
  reconnect?: boolean;
  /** The longest wait between reconnect attempts (default 10 s). */
  maxBackoffMs?: number;
}

/** Where the client is. */
export type State = 'connecting' | 'online' | 'offline' | 'closed';

/** Events, by name: what `on(name, fn)` hands `fn`. */
export interface Events {
  /** A message: pushed live, or found by the resync after a reconnect. */
  message: w.MessageT;
  /** A sent message's receive-ack by its recipient. */
  receipt: w.ReceiptPushT;
  /** A read receipt: `userId` has read the conversation up to `readSeq`. */
  read: w.ReadReceiptPushT;
  recall: w.RecallPushT;
  /** A list changed (friends, conversations, groups, ...): apply `item` to the local copy. */
  sync: { stream: w.SyncStream; item: w.SyncItemT };
  /** The server closed the session with a reason (another device, deleted, shutdown...). */
  kick: w.KickPushT;
  /** Every push, including the kinds above. */
  push: w.ServerFrameT;
  state: State;
}

type Handler<K extends keyof Events> = (e: Events[K]) => void;

interface Waiter {
  resolve: (f: w.ServerFrameT) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Kicks after which reconnecting would only be refused or displace another device. */
const FINAL_KICKS = new Set([
  w.KickReason.OtherDeviceLogin,
  w.KickReason.UserDeleted,
  w.KickReason.UserForbidden,
  w.KickReason.Logout,
]);

/** Streams the client follows by seq and resyncs after a reconnect. */
const FOLLOWED = [w.SyncStream.Messages, w.SyncStream.Conversations];

export class ImClient {
  private ws: WebSocket | null = null;
  private nextId = 1n;
  private waiters = new Map<bigint, Waiter>();
  private handlers = new Map<keyof Events, Set<(e: never) => void>>();
  private creds: Credentials | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private lastSent = 0;
  private backoff = 500;
  private stopped = false;
  private readonly WS: typeof WebSocket;
  /** The last seq seen per followed stream: where a resync starts. */
  readonly seqs = new Map<w.SyncStream, bigint>();
  state: State = 'offline';
  /** The answer of the last login. */
  session: w.LoginRespT | null = null;

  constructor(private readonly opts: ClientOptions) {
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: typeof WebSocket }).WebSocket;
    if (!WS) {
      throw new Error('no WebSocket class: pass one in ClientOptions.WebSocket');
    }
    this.WS = WS;
  }

  on<K extends keyof Events>(name: K, fn: Handler<K>): () => void {
    let set = this.handlers.get(name);
    if (!set) {
      set = new Set();
      this.handlers.set(name, set);
    }
    set.add(fn as (e: never) => void);
    return () => set.delete(fn as (e: never) => void);
  }

  private emit<K extends keyof Events>(name: K, e: Events[K]): void {
    for (const fn of this.handlers.get(name) ?? []) {
      try {
        (fn as Handler<K>)(e);
      } catch (err) {
        console.error(`imclient: a ${String(name)} handler threw`, err);
      }
    }
  }

  private setState(s: State): void {
    if (this.state !== s) {
      this.state = s;
      this.emit('state', s);
    }
  }

  /** Connects and logs in; later losses of the connection reconnect on their own. */
  async login(creds: Credentials): Promise<w.LoginRespT> {
    this.creds = creds;
    this.stopped = false;
    return this.connectAndLogin();
  }

  private async connectAndLogin(): Promise<w.LoginRespT> {
    const creds = this.creds!;
    this.setState('connecting');
    await this.open();
    const req = new w.LoginReqT(
      creds.appId,
      creds.userId,
      creds.ticket,
      creds.clientType ?? w.ClientType.Web,
      creds.deviceId ?? '',
      PROTOCOL_VERSION,
    );
    let resp: w.LoginRespT;
    try {
      resp = (await this.call(w.Request.LoginReq, req)) as w.LoginRespT;
    } catch (e) {
      this.stopped = true;
      this.ws?.close();
      this.setState('offline');
      throw e;
    }
    this.session = resp;
    this.backoff = 500;
    this.startHeartbeat(resp.heartbeatSecs || 30);
    this.setState('online');
    return resp;
  }

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new this.WS(this.opts.url);
      ws.binaryType = 'arraybuffer';
      this.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        resolve();
      };
      ws.onmessage = (ev: MessageEvent) => this.receive(ev.data);
      ws.onclose = () => {
        if (this.ws !== ws) return;
        this.ws = null;
        this.lost();
        if (!opened) reject(new ImError(0, `cannot connect to ${this.opts.url}`));
      };
      ws.onerror = () => {
        /* onclose follows */
      };
    });
  }

  /** The connection is gone: fail what waits, and reconnect unless told not to. */
  private lost(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    for (const [, wt] of this.waiters) {
      clearTimeout(wt.timer);
      wt.reject(new ImError(0, 'the connection closed'));
    }
    this.waiters.clear();
    if (this.stopped || this.opts.reconnect === false || !this.creds) {
      this.setState(this.stopped ? 'closed' : 'offline');
      return;
    }
    this.setState('offline');
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.opts.maxBackoffMs ?? 10_000);
    setTimeout(() => {
      if (this.stopped) return;
      this.connectAndLogin()
        .then(() => this.resync())
        .catch(() => {
          /* a failed login stops; a failed connect retries from onclose */
        });
    }, wait);
  }

  private startHeartbeat(secs: number): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    const every = Math.max(1, secs) * 1000;
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastSent >= every / 2) {
        this.call(w.Request.PingReq, new w.PingReqT(BigInt(Date.now()))).catch(() => {});
      }
    }, every / 2);
  }

  /** Sends one request and resolves with its answer's table, or rejects with an ImError. */
  call(type: w.Request, req: RequestT): Promise<ResponseT | null> {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) {
      return Promise.reject(new ImError(0, 'not connected'));
    }
    const id = this.nextId++;
    const b = new flatbuffers.Builder(256);
    b.finish(new w.ClientFrameT(id, type, req).pack(b));
    return new Promise<w.ServerFrameT>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new ImError(0, 'timed out'));
      }, this.opts.timeoutMs ?? 15_000);
      this.waiters.set(id, { resolve, reject, timer });
      ws.send(b.asUint8Array());
      this.lastSent = Date.now();
    }).then((f) => {
      if (f.responseType === w.Response.Error) {
        const e = f.response as w.ErrorT;
        throw new ImError(e.code, String(e.message ?? ''), e.backendCode);
      }
      return f.response;
    });
  }

  private receive(data: unknown): void {
    if (!(data instanceof ArrayBuffer)) return;
    let f: w.ServerFrameT;
    try {
      f = w.ServerFrame.getRootAsServerFrame(new flatbuffers.ByteBuffer(new Uint8Array(data))).unpack();
    } catch {
      return;
    }
    if (f.id !== 0n) {
      const wt = this.waiters.get(f.id);
      if (wt) {
        this.waiters.delete(f.id);
        clearTimeout(wt.timer);
        wt.resolve(f);
      }
      return;
    }
    if (f.responseType === w.Response.Error) {
      // A connection-level error (frame too large, ...): the server closes next.
      this.emit('push', f);
      return;
    }
    this.emit('push', f);
    switch (f.eventType) {
      case w.Push.MessagePush: {
        const m = (f.event as w.MessagePushT).message;
        if (m) this.gotMessage(m);
        break;
      }
      case w.Push.ReceiptPush:
        this.emit('receipt', f.event as w.ReceiptPushT);
        break;
      case w.Push.ReadReceiptPush:
        this.emit('read', f.event as w.ReadReceiptPushT);
        break;
      case w.Push.RecallPush:
        this.emit('recall', f.event as w.RecallPushT);
        break;
      case w.Push.SyncChangedPush: {
        const p = f.event as w.SyncChangedPushT;
        if (p.item) this.gotItem(p.stream, p.item);
        break;
      }
      case w.Push.KickPush: {
        const k = f.event as w.KickPushT;
        if (FINAL_KICKS.has(k.reason)) this.stopped = true;
        this.emit('kick', k);
        break;
      }
    }
  }

  private advance(stream: w.SyncStream, seq: bigint): void {
    if (seq > (this.seqs.get(stream) ?? 0n)) this.seqs.set(stream, seq);
  }

  private gotMessage(m: w.MessageT): void {
    this.advance(w.SyncStream.Messages, m.syncSeq);
    this.emit('message', m);
  }

  private gotItem(stream: w.SyncStream, item: w.SyncItemT): void {
    this.advance(stream, item.seq);
    if (stream === w.SyncStream.Messages && item.message) {
      this.gotMessage(item.message);
    } else {
      this.emit('sync', { stream, item });
    }
  }

  /** Reads what changed while the client was away from every followed stream, from the last
   * seq it saw, and hands it on as events. Run by the reconnect; callable by hand. */
  async resync(): Promise<void> {
    for (const stream of FOLLOWED) {
      for (;;) {
        const after = this.seqs.get(stream) ?? 0n;
        if (after === 0n) break; // nothing seen yet: the app loads its lists itself
        const r = (await this.call(w.Request.SyncReq, new w.SyncReqT(null, stream, after, 200))) as w.SyncRespT;
        for (const item of r.items) this.gotItem(stream, item);
        if (!r.more || r.items.length === 0) break;
      }
    }
  }

  /** Logs out and closes; no reconnect. */
  async logout(): Promise<void> {
    this.stopped = true;
    try {
      await this.call(w.Request.LogoutReq, new w.LogoutReqT());
    } finally {
      this.close();
    }
  }

  /** Closes the connection; no reconnect. */
  close(): void {
    this.stopped = true;
    this.ws?.close();
  }

  // ----- typed calls -----

  /** Sends a message to a user (`P2P`) or a group. `clientId` makes a retry idempotent. */
  async send(
    to: string,
    body: Uint8Array | string,
    opts: { group?: boolean; msgType?: number; clientId?: string } = {},
  ): Promise<w.SendAckT> {
    const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
    const conv = new w.ConvIdT(opts.group ? w.ConvType.Group : w.ConvType.P2P, to);
    const clientId = opts.clientId ?? newClientId();
    const req = new w.SendMessageReqT(null, clientId, conv, opts.msgType ?? 1, Array.from(bytes));
    return (await this.call(w.Request.SendMessageReq, req)) as w.SendAckT;
  }

  /** The conversation list, changes after `afterSeq` (0: all). */
  async conversations(afterSeq = 0n, limit = 100): Promise<w.ConversationsRespT> {
    const r = (await this.call(
      w.Request.GetConversationsReq,
      new w.GetConversationsReqT(null, afterSeq, limit),
    )) as w.ConversationsRespT;
    this.advance(w.SyncStream.Conversations, r.headSeq);
    return r;
  }

  /** A conversation's messages, newest first, before `beforeSeq` (0: from the newest). */
  async history(conv: w.ConvIdT, limit = 50, beforeSeq = 0n): Promise<w.MessagesRespT> {
    const req = new w.GetHistoryReqT(null, conv, beforeSeq, 0n, limit, false);
    return (await this.call(w.Request.GetHistoryReq, req)) as w.MessagesRespT;
  }

  /** Tells the sender this device has the message (its receive-ack). */
  async receiveAck(m: w.MessageT): Promise<void> {
    await this.call(w.Request.ReceiveAckReq, new w.ReceiveAckReqT(m.conv, m.serverId, m.seq));
  }

  /** Marks the conversation read up to `seq`; the other side gets a read receipt. */
  async markRead(conv: w.ConvIdT, seq: bigint): Promise<void> {
    await this.call(w.Request.ReadReq, new w.ReadReqT(null, conv, seq));
  }

  async recall(conv: w.ConvIdT, serverId: bigint): Promise<void> {
    await this.call(w.Request.RecallReq, new w.RecallReqT(null, conv, serverId));
  }

  /** One page of a stream's changes after `afterSeq`. */
  async sync(stream: w.SyncStream, afterSeq = 0n, limit = 200): Promise<w.SyncRespT> {
    return (await this.call(w.Request.SyncReq, new w.SyncReqT(null, stream, afterSeq, limit))) as w.SyncRespT;
  }

  async ping(): Promise<w.PongRespT> {
    return (await this.call(w.Request.PingReq, new w.PingReqT(BigInt(Date.now())))) as w.PongRespT;
  }
}

/** The text of a message body (UTF-8). */
export function text(m: w.MessageT): string {
  return new TextDecoder().decode(new Uint8Array(m.body));
}

/** A peer-to-peer conversation id. */
export function p2p(peer: string): w.ConvIdT {
  return new w.ConvIdT(w.ConvType.P2P, peer);
}

/** A group conversation id. */
export function group(id: string): w.ConvIdT {
  return new w.ConvIdT(w.ConvType.Group, id);
}

let counter = 0;
function newClientId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  return c?.randomUUID ? c.randomUUID() : `${Date.now().toString(36)}-${(counter++).toString(36)}`;
}
