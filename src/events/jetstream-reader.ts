/**
 * Reading a subject of a JetStream stream from a stream sequence to its end, fast (issue 4's "replay from JetStream
 * ≥ 100k events/s"; design: docs/notes/nats-design.md §11.8). What `JetStreamEventStore.open` rebuilds its copy with,
 * what a projection or a client's follower catches up with before it follows live, and what the bench measures.
 *
 * How: an ephemeral **push consumer** (ack policy none, memory storage, flow control, idle heartbeats) delivering to a
 * fresh inbox, read by a plain core subscription with a callback. The ordered consumer of @nats-io/jetstream
 * (`consume()`) paid per message for an async iterator step, a JsMsg and its pull bookkeeping; a core message is lazy
 * (its headers are never decoded here), so what is left per message is nats.js's protocol parser, the reply subject
 * (read for the sequences) and the caller's callback. Measured in §11.8.
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
 * rejects with `ReplayInterruptedError`; an error thrown by `onMessage` rejects with that error. Either way the
 * subscription is dropped and the consumer deleted (or left to its inactivity threshold when the server is gone).
 * Flow-control requests are answered as they come (the callback runs synchronously in the parser, so everything
 * before one is processed), and a stalled-consumer heartbeat is answered too.
 */
import { createInbox, type Msg, type NatsConnection, type Status } from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";

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
  // 2.9: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (9 tokens);
  // later: $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>.<token> (12).
  // Cut from the end, by hand: split() was a fifth of the reader's own time per message.
  let end = reply.length;
  let dots = 0;
  for (let k = 0; k < reply.length; k++) if (reply.charCodeAt(k) === 46) dots++;
  if (dots === 11) end = reply.lastIndexOf(".") ; // drop the trailing token
  else if (dots !== 8) return undefined;
  const fields: number[] = [];
  for (let n = 0; n < 5; n++) {
    const dot = reply.lastIndexOf(".", end - 1);
    fields.push(Number(reply.slice(dot + 1, end)));
    end = dot;
  }
  const [pending, , consumerSeq, streamSeq, delivered] = fields as [number, number, number, number, number];
  if (!Number.isSafeInteger(delivered) || !Number.isSafeInteger(streamSeq) || !Number.isSafeInteger(consumerSeq) || !Number.isSafeInteger(pending)) return undefined;
  return { delivered, streamSeq, consumerSeq, pending };
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

/** The connection under a JetStream client (@nats-io/jetstream's client keeps it as `nc`). */
function connectionOf(js: JetStreamClient | NatsConnection): NatsConnection {
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

  const inbox = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  const sub = nc.subscribe(inbox, {
    callback: (err: Error | null, m: Msg) => {
      if (settled) return;
      lastHeard = Date.now();
      if (err) return finish(interrupted(`the subscription failed: ${err.message}`, err));
      try {
        const reply = m.reply;
        const info = reply ? ackInfo(reply) : undefined;
        if (!info) return status(m);
        order.next(info.consumerSeq, info.streamSeq, info.delivered);
        messages++;
        onMessage({ streamSeq: info.streamSeq, data: m.data });
        if (info.pending === 0 || info.consumerSeq >= owed) finish();
      } catch (e) {
        finish(e as Error);
      }
    },
  });
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
  const watchdog = setInterval(() => {
    if (Date.now() - lastHeard > stallMs) finish(interrupted(`nothing from the server for ${stallMs} ms (no message, no heartbeat)`));
  }, Math.max(10, Math.min(heartbeatMs, stallMs / 4)));

  // Not awaited before the read: the server starts delivering as it makes the consumer, often before its reply, and
  // a read that fails (the connection lost) must not wait for that reply's timeout.
  let consumer: string | undefined;
  const made = jsm.consumers
    .add(stream, {
      deliver_subject: inbox,
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
        consumer = ci.name;
        lastHeard = Date.now();
        owed = ci.num_pending + ci.delivered.consumer_seq;
        if (owed === 0 || order.consumerSeq >= owed) finish();
      },
      (e: unknown) => finish(e as Error),
    );
  let failed = true;
  try {
    await done;
    failed = false;
  } finally {
    settled = true;
    clearInterval(watchdog);
    opts.signal?.removeEventListener("abort", onAbort);
    statuses.stop?.();
    sub.unsubscribe();
    // Deleted (after a read that went well: once the server named it); after a failure it is deleted if the server
    // still answers, else its inactivity threshold removes it.
    const remove = async () => {
      if (consumer !== undefined && !nc.isClosed()) await jsm.consumers.delete(stream, consumer);
    };
    if (failed) void made.then(remove).catch(() => undefined);
    else await made.then(remove).catch(() => undefined);
  }
  return { lastStreamSeq: messages > 0 ? order.streamSeq : 0, messages };
}
