/**
 * Reading a subject of a JetStream stream from a stream sequence to its end, fast (issue 4's "replay from JetStream
 * ≥ 100k events/s"; design: docs/notes/nats-design.md §11.8). What `JetStreamEventStore.open` rebuilds its copy with,
 * what a projection or a client's follower catches up with before it follows live, and what the bench measures.
 *
 * How: an ephemeral **push consumer** (ack policy none, memory storage, flow control, idle heartbeats) delivering to a
 * fresh inbox, read by a plain core subscription with a callback. The ordered consumer of @nats-io/jetstream
 * (`consume()`) paid per message for an async iterator step, a JsMsg and its pull bookkeeping; a core message is lazy
 * (its headers are never decoded here), so what is left per message is nats.js's protocol parser, the reply subject
 * (its sequences read from its bytes, without making a string: `ackInfoBytes`) and the caller's callback. Measured in
 * §11.8.
 *
 * What is checked, per message, from its reply subject `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`
 * (2.9; the 12-token form of later servers, with domain and account hash, is read too):
 * - the consumer sequence is the previous one + 1 (no delivery lost: `ReplayGapError` otherwise; so is an idle
 *   heartbeat whose `Nats-Last-Consumer` is past the last message seen), and the stream sequence rises (order);
 * - the end: the message that leaves nothing pending, or the last of those the consumer had to deliver when it was
 *   made (so a read ends even while a writer keeps appending).
 * A message deleted from the stream is not a delivery lost (the consumer skips it): the records' chain is what notices
 * it (the store's `StreamCorruptError`).
 *
 * Failure, never a hang: the connection lost or closed, or nothing at all (no message, no heartbeat) for `stallMs`,
 * rejects with `ReplayInterruptedError`; a consumer JetStream cannot make is asked for again for `retryForMs`
 * (a cluster electing a stream leader), then its last error; an error thrown by `onMessage` rejects with that error. Either way the
 * subscription is dropped and the consumer deleted (or left to its inactivity threshold when the server is gone).
 * Flow-control requests are answered as they come (the callback runs synchronously in the parser, so everything
 * before one is processed), and a stalled-consumer heartbeat is answered too.
 */
import { createInbox, type Msg, type NatsConnection, type Status, type Subscription } from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, JetStreamApiError, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";

/** One message read: its stream sequence and its payload (the bytes as stored; headers are not read). */
export interface ReadMessage {
  streamSeq: number;
  data: Uint8Array;
}

export interface ReadSubjectOptions {
  /** The first stream sequence to read (default 1: the subject's first message). */
  startStreamSeq?: number;
  /** The idle heartbeat asked of the server (ms). Default 1000. */
  heartbeatMs?: number;
  /** Fail when nothing (no message, no heartbeat) arrives for this long (ms). Default 5000. */
  stallMs?: number;
  /** The JetStream manager to make the consumer with (default: one of `nc`'s, API not checked). */
  jsm?: JetStreamManager;
  /**
   * How long the consumer is asked for again while JetStream cannot make it yet (no stream leader: a timeout, no
   * responders, 10008). Default 15000 ms; the last error then ends the read.
   */
  retryForMs?: number;
  /** Aborting ends the read early, without an error (what was read so far is the result). */
  signal?: AbortSignal;
}

export interface ReadSubjectResult {
  /** The stream sequence of the last message read (0: none). */
  lastStreamSeq: number;
  messages: number;
}

/** The read could not finish: the connection was lost or closed, or the server went quiet. */
export class ReplayInterruptedError extends Error {
  override readonly name = "ReplayInterruptedError";
  constructor(
    readonly stream: string,
    readonly subject: string,
    readonly lastStreamSeq: number,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`hsmsim: reading ${subject} of stream ${stream} stopped after stream seq ${lastStreamSeq}: ${reason}`, options);
  }
}

/** A delivery is missing (the consumer sequence jumped): the read cannot vouch for having seen every message. */
export class ReplayGapError extends Error {
  override readonly name = "ReplayGapError";
  constructor(
    readonly stream: string,
    readonly subject: string,
    readonly lastStreamSeq: number,
    detail: string,
  ) {
    super(`hsmsim: reading ${subject} of stream ${stream}: ${detail} (after stream seq ${lastStreamSeq})`);
  }
}

/** The sequences a JetStream delivery's reply subject carries, or undefined when it is not one (a status message). */
export function ackInfo(reply: string): { delivered: number; streamSeq: number; consumerSeq: number; pending: number } | undefined {
  if (!reply.startsWith("$JS.ACK.")) return undefined;
  const t = reply.split(".");
  // 2.9: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (9 tokens);
  // later: $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>.<token> (12).
  const at = t.length === 9 ? 4 : t.length === 12 ? 6 : -1;
  if (at < 0) return undefined;
  const delivered = decimal(t[at]!);
  const streamSeq = decimal(t[at + 1]!);
  const consumerSeq = decimal(t[at + 2]!);
  const pending = decimal(t[at + 4]!);
  if (delivered < 0 || streamSeq < 0 || consumerSeq < 0 || pending < 0) return undefined;
  return { delivered, streamSeq, consumerSeq, pending };
}

const ACK_PREFIX = [36, 74, 83, 46, 65, 67, 75, 46]; // "$JS.ACK."

/** ackInfo on the reply subject's bytes (no string made): the same answer. */
export function ackInfoBytes(b: Uint8Array): ReturnType<typeof ackInfo> {
  if (b.length < 8) return undefined;
  for (let k = 0; k < 8; k++) if (b[k] !== ACK_PREFIX[k]) return undefined;
  let dots = 2;
  for (let k = 8; k < b.length; k++) if (b[k] === 46) dots++;
  // 9 tokens (8 dots) or 12 (11 dots: a last token after pending).
  let end = b.length;
  if (dots === 11) end = b.lastIndexOf(46);
  else if (dots !== 8) return undefined;
  const n: number[] = [];
  for (let t = 0; t < 5; t++) {
    let v = 0;
    let mul = 1;
    let i = end - 1;
    for (; i >= 0 && b[i] !== 46; i--) {
      const c = b[i]! - 48;
      if (c < 0 || c > 9) return undefined;
      v += c * mul;
      mul *= 10;
    }
    if (i === end - 1) return undefined;
    n.push(v);
    end = i;
  }
  const [pending, , consumerSeq, streamSeq, delivered] = n as [number, number, number, number, number];
  if (!(delivered <= Number.MAX_SAFE_INTEGER && streamSeq <= Number.MAX_SAFE_INTEGER && consumerSeq <= Number.MAX_SAFE_INTEGER && pending <= Number.MAX_SAFE_INTEGER)) return undefined;
  return { delivered, streamSeq, consumerSeq, pending };
}

/** A token of decimal digits as a number, or -1. */
function decimal(s: string): number {
  const n = s.length > 0 && s.length < 16 ? Number(s) : NaN;
  return Number.isInteger(n) && n >= 0 && s.charCodeAt(0) !== 43 /* + */ ? n : -1;
}

/**
 * The checks on the deliveries of one read, in order: each consumer sequence the one after the previous, stream
 * sequences rising, a first delivery (no redelivery: ack policy none never redelivers). Throws ReplayGapError.
 */
export class DeliveryOrder {
  consumerSeq = 0;
  streamSeq = 0;
  constructor(
    private readonly stream: string,
    private readonly subject: string,
    startStreamSeq = 1,
  ) {
    this.streamSeq = startStreamSeq - 1;
  }

  /** A message delivered: its sequences checked and taken. */
  next(consumerSeq: number, streamSeq: number, delivered = 1): void {
    if (consumerSeq !== this.consumerSeq + 1) {
      throw new ReplayGapError(this.stream, this.subject, this.streamSeq, `delivery ${consumerSeq} after delivery ${this.consumerSeq}: ${consumerSeq > this.consumerSeq ? "deliveries lost" : "a delivery repeated"}`);
    }
    if (streamSeq <= this.streamSeq) throw new ReplayGapError(this.stream, this.subject, this.streamSeq, `stream seq ${streamSeq} delivered after stream seq ${this.streamSeq}`);
    if (delivered !== 1) throw new ReplayGapError(this.stream, this.subject, this.streamSeq, `stream seq ${streamSeq} redelivered (${delivered})`);
    this.consumerSeq = consumerSeq;
    this.streamSeq = streamSeq;
  }

  /** An idle heartbeat saying the consumer's last delivery was `lastConsumerSeq`: none of them may be missing. */
  heartbeat(lastConsumerSeq: number): void {
    if (lastConsumerSeq > this.consumerSeq) {
      throw new ReplayGapError(this.stream, this.subject, this.streamSeq, `the server delivered up to ${lastConsumerSeq}, ${lastConsumerSeq - this.consumerSeq} of them never arrived`);
    }
  }
}

/** Errors that say JetStream cannot make a consumer yet (no stream leader, an election), as opposed to never. */
export function transient(e: unknown): boolean {
  if (e instanceof JetStreamApiError) return e.code === 10008 || e.status === 503;
  const err = e as { name?: string; isNoResponders?: () => boolean } | undefined;
  return err?.name === "TimeoutError" || err?.name === "NoResponders" || err?.name === "JetStreamNotEnabled" || (err?.name === "RequestError" && err.isNoResponders?.() === true);
}

/** The connection under a JetStream client (@nats-io/jetstream's client keeps it as `nc`). */
export function connectionOf(js: JetStreamClient | NatsConnection): NatsConnection {
  const nc = "consumers" in js ? (js as unknown as { nc?: NatsConnection }).nc : js;
  if (!nc || typeof (nc as NatsConnection).subscribe !== "function") throw new TypeError(`"js" expected a JetStream client of @nats-io/jetstream or a NatsConnection`);
  return nc as NatsConnection;
}

const NANOS = 1_000_000;

/**
 * Read `subject` of `stream` from `startStreamSeq` to its end (module comment), calling `onMessage` for every message
 * in stream order, synchronously as it arrives. Resolves with the last stream sequence read and the message count.
 */
export async function readSubjectFast(
  js: JetStreamClient | NatsConnection,
  stream: string,
  subject: string,
  onMessage: (m: ReadMessage) => void,
  opts: ReadSubjectOptions = {},
): Promise<ReadSubjectResult> {
  const nc = connectionOf(js);
  const start = opts.startStreamSeq ?? 1;
  if (!Number.isSafeInteger(start) || start < 1) throw new RangeError(`"startStreamSeq" expected an integer >= 1, got ${start}`);
  const heartbeatMs = opts.heartbeatMs ?? 1000;
  const stallMs = opts.stallMs ?? 5000;
  if (!(stallMs > heartbeatMs)) throw new RangeError(`"stallMs" expected more than "heartbeatMs" (${heartbeatMs}), got ${stallMs}`);
  const jsm = opts.jsm ?? (await jetstreamManager(nc, { checkAPI: false }));
  const order = new DeliveryOrder(stream, subject, start);
  let messages = 0;
  /** How many deliveries the consumer owed when it was made: the read ends there at the latest. */
  let owed = Infinity;
  let settled = false;
  let resolveRead!: () => void;
  let rejectRead!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => {
    resolveRead = res;
    rejectRead = rej;
  });
  const finish = (e?: Error): void => {
    if (settled) return;
    settled = true;
    if (e) rejectRead(e);
    else resolveRead();
  };
  let lastHeard = Date.now();
  const interrupted = (reason: string, cause?: unknown) => new ReplayInterruptedError(stream, subject, order.streamSeq, reason, { cause });

  const prefix = (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
  const onDelivery = (err: Error | null, m: Msg): void => {
    if (settled) return;
    lastHeard = Date.now();
    making = false;
    if (err) return finish(interrupted(`the subscription failed: ${err.message}`, err));
    try {
      // The reply subject's bytes as nats-core 3.3.1 holds them (MsgImpl._msg.reply), read without making a string;
      // the string (`m.reply`) if that ever changes.
      const raw = (m as unknown as { _msg?: { reply?: unknown } })._msg?.reply;
      const info = raw instanceof Uint8Array ? ackInfoBytes(raw) : m.reply ? ackInfo(m.reply) : undefined;
      if (!info) return status(m);
      order.next(info.consumerSeq, info.streamSeq, info.delivered);
      messages++;
      onMessage({ streamSeq: info.streamSeq, data: m.data });
      if (info.pending === 0 || info.consumerSeq >= owed) finish();
    } catch (e) {
      finish(e as Error);
    }
  };
  /** A status message: a flow-control request (answered), an idle heartbeat (checked; a stalled consumer answered). */
  const status = (m: Msg): void => {
    const h = m.headers;
    if (h?.code !== 100) return;
    if (m.reply) {
      m.respond(); // flow control
      return;
    }
    const last = h.get("Nats-Last-Consumer");
    if (last) order.heartbeat(Number(last));
    const stalled = h.get("Nats-Consumer-Stalled");
    if (stalled) nc.publish(stalled);
  };

  // The connection: lost or closed ends the read (a reconnect would not bring this consumer's deliveries back whole).
  const statuses = nc.status() as AsyncIterable<Status> & { stop?: () => void };
  void (async () => {
    for await (const s of statuses) {
      if (s.type === "disconnect" || s.type === "close") finish(interrupted(`the connection to the server was ${s.type === "close" ? "closed" : "lost"}`));
    }
  })().catch(() => undefined);
  void nc.closed().then(() => finish(interrupted("the connection is closed")));
  const onAbort = () => finish();
  opts.signal?.addEventListener("abort", onAbort);
  if (opts.signal?.aborted) finish();
  // Counted from the consumer's creation (or its first delivery): before, the creation's own timeout and retries hold.
  let making = true;
  const watchdog = setInterval(() => {
    if (!making && Date.now() - lastHeard > stallMs) finish(interrupted(`nothing from the server for ${stallMs} ms (no message, no heartbeat)`));
  }, Math.max(10, Math.min(heartbeatMs, stallMs / 4)));

  // The consumer, made on a fresh inbox per attempt. Its creation is not awaited before the read: the server starts
  // delivering as it makes it, often before its reply, and a read that fails (the connection lost) must not wait for
  // that reply's timeout. While JetStream cannot make it (no stream leader yet, a cluster electing one: a timeout, no
  // responders, 10008 "temporarily unavailable"), it is asked again on a new inbox (an attempt that did land late
  // delivers to a dropped inbox, and its consumer is deleted or expires), until `retryForMs` has passed.
  const retryForMs = opts.retryForMs ?? 15_000;
  const deadline = Date.now() + retryForMs;
  let sub: Subscription | undefined;
  const made: Promise<void>[] = [];
  const names: string[] = [];
  const attempt = (n: number): void => {
    if (settled) return;
    sub?.unsubscribe();
    const mine = nc.subscribe(createInbox(prefix), { callback: onDelivery });
    sub = mine;
    lastHeard = Date.now();
    made.push(
      jsm.consumers
        .add(stream, {
          deliver_subject: mine.getSubject(),
          ack_policy: AckPolicy.None,
          filter_subject: subject,
          ...(start > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start } : { deliver_policy: DeliverPolicy.All }),
          flow_control: true,
          idle_heartbeat: heartbeatMs * NANOS,
          mem_storage: true,
          num_replicas: 1,
          inactive_threshold: Math.max(stallMs, 5000) * NANOS,
        })
        .then(
          (ci) => {
            names.push(ci.name);
            if (sub !== mine) return;
            lastHeard = Date.now();
            making = false;
            owed = ci.num_pending + ci.delivered.consumer_seq;
            if (owed === 0 || order.consumerSeq >= owed) finish();
          },
          (e: unknown) => {
            if (settled || sub !== mine || messages > 0) return; // delivering: it was made after all
            if (transient(e) && Date.now() < deadline) {
              const wait = Math.min(250 * 2 ** n, 2000);
              setTimeout(() => attempt(n + 1), wait);
            } else finish(e as Error);
          },
        ),
    );
  };
  attempt(0);
  let failed = true;
  try {
    await done;
    failed = false;
  } finally {
    settled = true;
    clearInterval(watchdog);
    opts.signal?.removeEventListener("abort", onAbort);
    statuses.stop?.();
    sub?.unsubscribe();
    // Deleted (after a read that went well: once the server named them); after a failure they are deleted if the
    // server still answers, else their inactivity threshold removes them.
    const remove = async () => {
      await Promise.all(made);
      if (!nc.isClosed()) await Promise.all(names.map((c) => jsm.consumers.delete(stream, c).catch(() => false)));
    };
    if (failed) void remove().catch(() => undefined);
    else await remove().catch(() => undefined);
  }
  return { lastStreamSeq: messages > 0 ? order.streamSeq : 0, messages };
}
