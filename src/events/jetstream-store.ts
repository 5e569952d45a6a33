/**
 * The JetStream event store (issue 4): the log of one simulator on its subjects of one stream (default `HSMSIM`,
 * subjects `<prefix>.*.events.>`). Design and measurements: docs/notes/nats-design.md §2, §7 and §11 (subjects per
 * token).
 *
 * Subjects per token (events/token-subjects.ts). A record whose facts change one token's persistent state goes to
 * `<prefix>.<sim>.events.tok.<token>`; any other record to the subject of the token its call acted on (`append`'s
 * hint, from the dispatcher), or to `<prefix>.<sim>.events.sim` (C_Initialize, C_Finalize, slot lists…).
 * The record sequence and the hash chain stay one per simulator, across its subjects, in stream order: the whole log
 * is read with the filter `<prefix>.<sim>.events.>` (this store's `subject`), one token's persistent state from its
 * subject alone (events/token-replay.ts). A stream of the single-subject layout (subjects `<prefix>.*.events`) gets
 * `<prefix>.*.events.>` added at open; a simulator that has records on `<prefix>.<sim>.events` is refused
 * (`LegacyLayoutError`): nats-server 2.9 takes one consumer filter, and it must lie within the stream's subjects,
 * so the two layouts cannot be read as one log in stream order.
 *
 * Message format. One message is one group commit: the chain envelopes (chain.ts) of consecutive records, one per
 * line, the bytes a file store writes to events.log, so the hash chain runs through the stream and `entryProblem`
 * verifies it on every replay. Headers: `Hsm-Seq: <first>-<last>`, `Nats-Msg-Id: <sim>/<writerId>/<firstSeq>`.
 *
 * Group commit. `append` is synchronous (the simulator's decide → append → evolve order is the record order): it
 * chains the record, keeps it in memory for `read`, and queues its line with its subject. The records appended in one
 * turn of the event loop become messages: each the longest run of them with one subject (up to `maxBatch` records or
 * `maxBatchBytes`), so that stream order stays record order and the chain reads in one pass. Up to `maxInflight` (16)
 * messages are in flight: with subjects per token, concurrent calls on different tokens make runs of one record, and
 * one publish at a time held such a load to one round trip per record (~7k records/s for 16 callers, each on its own
 * token). The first message of the window expects the confirmed end of the stream; each one behind it expects its
 * predecessor's predicted stream sequence and its predecessor's msgID as the stream's last message, so it can only
 * land right behind it (commit() says why both). `flush(seq)` resolves once the message holding `seq` and every one
 * before it are acknowledged.
 *
 * One writer per simulator, over all its subjects: every publish carries `expect.lastSequence`, the stream-wide last
 * sequence this writer expects. A per-subject expectation would not do: a stale writer could append to another
 * token's subject with a right expectation for that subject and fork the simulator's one sequence (and 2.9 has no
 * wildcard subject expectation). Since several simulators may share the stream, a refusal (10071 "wrong last
 * sequence: N") is checked: the last message on `<prefix>.<sim>.>` (`last_by_subj` takes a wildcard on 2.9; this
 * covers the single-subject layout too) is read; if it is still this writer's last, only other
 * simulators moved the stream, and the batch is sent again expecting N (safe: nothing of this simulator lies before
 * N that the writer does not know, and the server takes the publish only if nothing came after N). Otherwise another
 * writer appended to this simulator: `FenceLostError`, nothing written, the log not forked. The msgID is unique per
 * writer incarnation, so a second writer can never be de-duplicated into "success" (a duplicate ack on a first attempt
 * is `ForkSuspectedError`).
 *
 * Ambiguous outcomes (a publish timeout; "no responders" / JetStreamNotEnabled while a stream leader is elected; a
 * lost connection) are retried with the same message (same msgID and expectation) with backoff until `retryForMs`
 * passes. A duplicate ack on a retry means an earlier attempt landed; a 10071 is checked as above, and if the
 * simulator's last message carries our msgID, the batch is stored (seen on 2.9.10 after a leader failover).
 *
 * Failure is fail-stop. The simulator's write model runs ahead of the log by the batch in flight and the one filling
 * (it applies facts at dispatch, optimistically). When a commit fails for good, `failure` is set, every waiting
 * `flush` rejects with `StoreWriteError`, and `append` throws (the simulator then answers CKR_DEVICE_ERROR without
 * changing anything). The owner (hsmsim serve) must stop: its in-memory state may be ahead of its log, and a restart
 * rebuilds it from the stream.
 *
 * Snapshots (`snapshots: true`, as `hsmsim serve` opens it): so that start time does not grow with the log, the store
 * is a SnapshotHost (store.ts) for the simulator's sealed snapshots (events/snapshot.ts, sealed under the simulator
 * key). Every `snapshotEvery` records, at the start of an append, the simulator's capture seals its state as of the
 * last record; once the message holding that record is acknowledged, the body goes to KV bucket `hsmsim-snapshots`
 * in chunks (`<prefix>.<sim>.<seq>.<i>`, events/kv-blob.ts), then the entry `<prefix>.<sim>.meta` names it with that message's stream
 * sequence (a snapshot never describes a record the stream may not have). Opening reads the meta entry and the chunks,
 * then replays the subject from that message, skipping the records the snapshot covers (the first kept record must
 * chain to the snapshot's head). If the snapshot is missing, damaged or refused by the simulator (another key,
 * profile), the owner reopens with `snapshots: false` and the whole subject is replayed. A snapshot that cannot be
 * written is a warning, never a failed call: the stream is the truth.
 *
 * Who seals them (`snapshotThread`, default true): the append that finds one due posts a marker to the background
 * writer (snapshot-writer.ts), with the canonical texts of the records since the previous marker (the store holds
 * them, `records`); a worker thread's replica of the simulator, started half-way to the first one due from the
 * snapshot the simulator was restored from (or one sealed here, or the whole log while it is short) folds them in,
 * seals its state as of the marker's record and sends the body back; it is uploaded as above once the message that
 * holds the record is acknowledged, and names that message (noted per marker when it is acknowledged: the body may
 * come back after later messages were). The live state is never read, so the append pays for handing over the texts
 * (a copy, ~3 MB per 10,000 records) instead of the capture (seconds for a large state: docs/notes/snapshot-pause.md).
 * Markers that pile up are thinned to the newest (KV keeps one). close waits for the markers in flight, then seals a
 * closing snapshot inline. `snapshotThread: false`: sealed inside the append, as before.
 */
import { randomUUID } from "node:crypto";
import { headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import {
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type ConsumerMessages,
  type StreamConfig,
  type ApiError,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { DeferredEventStore, ReplayItem, ReplicaSpec, SnapshotCandidate, SnapshotHost } from "./store.js";
import { BackgroundSnapshots, type SnapshotSource, type WriterResult } from "./snapshot-writer.js";
import type { CallRecord, Fact } from "./types.js";
import { decodeRecord } from "./codec.js";
import { encodeEntry, entryHash, entryProblem, GENESIS, type Envelope } from "./chain.js";
import { factsOfLine, StoreWriteError } from "./file-store.js";
import { MemoryEventStore } from "./memory-store.js";
import { getBlob, putBlob, type BlobMeta } from "./kv-blob.js";
import { DEFAULT_PREFIX, DEFAULT_STREAM, HEADER_MSG_ID, HEADER_SEQ, legacyStreamSubjects, SNAPSHOT_BUCKET, streamSubjects, subjects, type Subjects } from "../remote/protocol.js";
import { subjectToken } from "./token-subjects.js";
import { connectionOf, readSubjectFast, transient as transientJs } from "./jetstream-reader.js";
import { Requests } from "../remote/requests.js";

/** JetStream's "wrong last sequence": the expectation (our fence) did not hold. */
const WRONG_LAST_SEQUENCE = 10071;

export interface JetStreamStoreOptions {
  nc: NatsConnection;
  /** The simulator's name: its subject token. */
  sim: string;
  stream?: string;
  prefix?: string;
  /** Stream replicas when the stream is created (1 or 3). Default 1. */
  replicas?: number;
  /** Records per message at most. Default 256. */
  maxBatch?: number;
  /** Bytes per message at most (the server's max_payload is 1 MiB). Default 512 KiB. */
  maxBatchBytes?: number;
  /** How long a batch is retried after ambiguous failures before the store fails. Default 30 s. */
  retryForMs?: number;
  /** Publish ack timeout per attempt (ms). Default 2000. */
  publishTimeoutMs?: number;
  /** Publishes in flight at most (group commit pipelined: see commit()). Default 16; 1 publishes one at a time. */
  maxInflight?: number;
  /**
   * State snapshots in KV bucket `hsmsim-snapshots` (see "Snapshots" in the module comment): restore the newest at
   * open and replay only the messages after it; write one every `snapshotEvery` records (default 10,000; 0: only at
   * close). Default false: the store then loads the whole subject.
   */
  snapshots?: boolean;
  snapshotEvery?: number;
  /** With `snapshots`: restore from the newest (default true); false replays the whole subject but still writes them. */
  restore?: boolean;
  /**
   * With `snapshots`: seal the periodic ones in a worker thread's replica of the simulator (see "Snapshots" in the
   * module comment), so that the append that finds one due is not held up. Default true; false: inside that append.
   */
  snapshotThread?: boolean;
  onWarning?: (message: string) => void;
}

/** One message of records being published (see commit()). */
interface Batch {
  first: number;
  last: number;
  subject: string;
  body: Uint8Array;
  msgID: string;
  /** The stream's last sequence this publish expects (confirmed for the window's head, predicted behind it). */
  expected: number;
  /** Set when its publish settled: the stream sequence it is stored at, or "failed" (a pipelined one, to send again). */
  outcome?: number | "failed";
}

/** The most records whose parsed facts `load` keeps for the rebuild (see `loadedFacts`). */
const LOADED_FACTS_MAX = 65_536;

/** How long close waits for the background writer's markers (a large state's snapshot takes seconds). */
const WRITER_WAIT_MS = 120_000;

/** What the KV entry that names a simulator's newest snapshot holds besides its chunks (kv-blob.ts, ≤ 512 KiB each). */
interface SnapshotFields {
  seq: number;
  head: string;
  /** The stream sequence of the message that holds record `seq`: the tail is replayed from there. */
  streamSeq: number;
  at: string;
}
type SnapshotMeta = SnapshotFields & BlobMeta;

/** A second writer appended to the simulator's log: this writer's view is stale, and it must stop. */
export class FenceLostError extends Error {
  override readonly name = "FenceLostError";
  constructor(
    readonly subject: string,
    readonly expected: number,
    options?: { cause?: unknown },
  ) {
    super(
      `hsmsim: another writer appended to ${subject} (expected its last message at stream seq ${expected}): ` +
        `a simulator has one writer; this one stops without writing (run one "hsmsim serve" per simulator name)`,
      options,
    );
  }
}

/** The simulator's log is in the single-subject layout of earlier versions: this version does not continue it. */
export class LegacyLayoutError extends Error {
  override readonly name = "LegacyLayoutError";
  constructor(
    readonly stream: string,
    readonly subject: string,
    readonly lastStreamSeq: number,
  ) {
    super(
      `hsmsim: the log on ${subject} (stream ${stream}, last message at stream seq ${lastStreamSeq}) is in the single-subject ` +
        `layout of hsmsim before subjects per token; this version writes one subject per token and does not continue ` +
        `it: serve the simulator under another name or on another stream (--stream), or read the old log with the version that wrote it`,
    );
  }
}

/** A first publish was acknowledged as a duplicate: another writer used this msgID. Treated as a fork: stop. */
export class ForkSuspectedError extends Error {
  override readonly name = "ForkSuspectedError";
}

/** The stream's content does not chain (edited, or not an hsmsim log). */
export class StreamCorruptError extends Error {
  override readonly name = "StreamCorruptError";
  constructor(
    readonly subject: string,
    readonly seq: number,
    readonly streamSeq: number,
    readonly problem: string,
  ) {
    super(`hsmsim: ${subject} is corrupt at record seq ${seq} (stream seq ${streamSeq}): ${problem}`);
  }
}

/**
 * Create the stream if it is missing (deny delete and purge: it is an audit log), or check it covers `prefix`. A
 * stream of the single-subject layout (`<prefix>.*.events` only) gets `<prefix>.*.events.>` added (its records stay;
 * the simulators that have some are refused at open, `LegacyLayoutError`).
 */
export async function ensureStream(jsm: JetStreamManager, stream: string, prefix: string, replicas = 1, onWarning?: (m: string) => void): Promise<void> {
  const subject = streamSubjects(prefix);
  try {
    const info = await jsm.streams.info(stream);
    const has = info.config.subjects ?? [];
    if (has.includes(subject)) return;
    if (!has.includes(legacyStreamSubjects(prefix))) {
      throw new RangeError(`stream ${stream} exists but does not take ${subject} (its subjects: ${has.join(", ")})`);
    }
    await jsm.streams.update(stream, { subjects: [...has, subject] });
    onWarning?.(`hsmsim: stream ${stream} had the single-subject layout (${legacyStreamSubjects(prefix)}); added ${subject} (subjects per token)`);
    return;
  } catch (e) {
    if (e instanceof RangeError) throw e;
    if (!(e instanceof JetStreamApiError) || e.code !== 10059) throw e; // 10059: stream not found
  }
  const config: Partial<StreamConfig> & { name: string } = {
    name: stream,
    subjects: [subject],
    storage: "file" as StreamConfig["storage"],
    num_replicas: replicas,
    duplicate_window: 120e9,
    deny_delete: true,
    deny_purge: true,
    allow_direct: true,
  };
  try {
    await jsm.streams.add(config);
  } catch (e) {
    // Another process created it meanwhile.
    if (!(e instanceof JetStreamApiError) || e.code !== 10058) throw e;
  }
}

export interface ReplayedMessage {
  streamSeq: number;
  /** The message's envelopes, parsed on first use. */
  readonly envelopes: Envelope[];
  /**
   * What a replay needs of the message's records, decoded on first use (`parseItems`): each one's seq, prev and hash
   * (for the chain's links) and its facts, the rest of the record not parsed. Nothing is verified.
   */
  readonly items: EntryFacts[];
  /** The message's bytes: one envelope per line. */
  data: Uint8Array;
}

/** A log entry as a replay needs it: its envelope's seq, prev and hash, and its record's facts. */
export interface EntryFacts {
  seq: number;
  prev: string;
  hash: string;
  facts: readonly Fact[];
}

/** A message read, its decodings made on first use (a class: cheaper per message than an object with closures). */
class Replayed implements ReplayedMessage {
  private parsed: Envelope[] | undefined;
  private decoded: EntryFacts[] | undefined;
  constructor(
    readonly streamSeq: number,
    readonly data: Uint8Array,
  ) {}

  get envelopes(): Envelope[] {
    return (this.parsed ??= parseMessage(this.data));
  }

  get items(): EntryFacts[] {
    return (this.decoded ??= parseItems(this.data));
  }
}

const replayed = (streamSeq: number, data: Uint8Array): ReplayedMessage => new Replayed(streamSeq, data);

/**
 * Read the subject's messages from `startStreamSeq` (default: the start) to its current end, in order. Resolves with
 * the stream sequence of the last message read (0 if none). A push consumer read by a core subscription
 * (jetstream-reader.ts: order and lost deliveries checked, a lost server a `ReplayInterruptedError`, never a hang).
 */
export async function readSubject(
  js: JetStreamClient | NatsConnection,
  stream: string,
  subject: string,
  onMessage: (m: ReplayedMessage) => void,
  startStreamSeq = 1,
): Promise<number> {
  const r = await readSubjectFast(js, stream, subject, (m) => onMessage(replayed(m.streamSeq, m.data)), { startStreamSeq });
  return r.lastStreamSeq;
}

const utf8d = new TextDecoder();
/**
 * The parts of a line laid out as `encodeEntry` writes it, `{"seq":N,"prev":"<64>","hash":"<64>","record":…}`, or
 * undefined for any other line. (By hand: a regular expression was a sixth of the replay's time.)
 */
function fastLine(line: string): { seq: number; prev: string; hash: string; raw: string } | undefined {
  if (!line.startsWith('{"seq":') || !line.endsWith("}")) return undefined;
  const c = line.indexOf(",", 7);
  if (c < 8 || c > 23) return undefined;
  const seq = Number(line.slice(7, c));
  if (!Number.isSafeInteger(seq) || seq < 1) return undefined;
  const p = c + 9;
  if (!line.startsWith(',"prev":"', c) || !line.startsWith('","hash":"', p + 64) || !line.startsWith('","record":', p + 138)) return undefined;
  return { seq, prev: line.slice(p, p + 64), hash: line.slice(p + 74, p + 138), raw: line.slice(p + 149, -1) };
}
const utf8 = new TextEncoder();

/**
 * The facts of a record's canonical text (`{"app":N,"args":{…},"facts":[…],"fn":"…",…}`: keys sorted), cut out and
 * parsed alone, or undefined when the text is not laid out so (the caller parses it whole). As file-store.ts
 * `factsOfLine` for a log line: the args object is skipped by bracket counting (strings skipped whole), and the facts
 * array ends at the first `],"fn":"` after it, since no JSON string can hold `,"` and an inner `]` followed by a key
 * "fn" would leave the cut unbalanced (JSON.parse throws, and the text is parsed whole).
 */
export function factsOfRecordText(t: string): Fact[] | undefined {
  if (!t.startsWith('{"app":')) return undefined;
  let i = 7;
  while (i < t.length && t.charCodeAt(i) >= 48 && t.charCodeAt(i) <= 57) i++;
  if (i === 7 || !t.startsWith(',"args":{', i)) return undefined;
  // Skip the args object.
  let depth = 0;
  for (i += 8; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c === 34 /* " */) {
      for (i++; i < t.length && t.charCodeAt(i) !== 34; i++) if (t.charCodeAt(i) === 92 /* \ */) i++;
    } else if (c === 123 /* { */ || c === 91 /* [ */) depth++;
    else if ((c === 125 /* } */ || c === 93 /* ] */) && --depth === 0) break;
  }
  if (i >= t.length || !t.startsWith(',"facts":[', i + 1)) return undefined;
  i += 10; // at the facts' "["
  if (t.charCodeAt(i + 1) === 93 /* ] */) return [];
  const close = t.indexOf('],"fn":"', i);
  if (close < 0) return undefined;
  try {
    const facts: unknown = JSON.parse(t.slice(i, close + 1));
    return Array.isArray(facts) ? (facts as Fact[]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The entries of one event message as a replay needs them (EntryFacts), decoded from the bytes: a line in the
 * writer's layout has its seq, prev and hash cut out and only its facts parsed (file-store.ts `factsOfLine`, the file
 * store's replay cut); a line in another layout, or whose facts cannot be cut, is parsed whole. No string of the whole
 * message or line is made. Nothing is verified here.
 */
export function parseItems(data: Uint8Array): EntryFacts[] {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out: EntryFacts[] = [];
  let s = 0;
  while (s < b.length) {
    let e = b.indexOf(10, s);
    if (e < 0) e = b.length;
    if (e > s) out.push(itemOfLine(b, s, e));
    s = e + 1;
  }
  return out;
}

const PREV_AT = Buffer.from(`,"prev":"`, "latin1");
const HASH_AT = Buffer.from(`","hash":"`, "latin1");

function bytesAt(b: Buffer, i: number, t: Buffer): boolean {
  for (let k = 0; k < t.length; k++) if (b[i + k] !== t[k]) return false;
  return true;
}

/** The line b[s, e) as an EntryFacts (see parseItems). */
function itemOfLine(b: Buffer, s: number, e: number): EntryFacts {
  // `{"seq":` is checked by factsOfLine, which also wants the seq: read the digits after it here.
  let i = s + 7;
  let seq = 0;
  while (i < e && b[i]! >= 48 && b[i]! <= 57) seq = seq * 10 + b[i++]! - 48;
  const p = i + PREV_AT.length;
  const facts = i > s + 7 && i < s + 23 && bytesAt(b, i, PREV_AT) && bytesAt(b, p + 64, HASH_AT) ? factsOfLine(b, s, e, seq) : undefined;
  if (facts) return { seq, prev: b.toString("latin1", p, p + 64), hash: b.toString("latin1", p + 74, p + 138), facts };
  const env = JSON.parse(b.toString("utf8", s, e)) as Envelope;
  return { seq: env.seq, prev: env.prev, hash: env.hash, facts: env.record.facts };
}

/**
 * The envelopes of one event message (one per line). A line in the writer's layout (`fastLine`) has its envelope cut
 * by hand and only its record parsed; any other line is parsed whole. Nothing is verified here (messageEntries,
 * the store's load and a projection's fold check the chain).
 */
export function parseMessage(data: Uint8Array): Envelope[] {
  const out: Envelope[] = [];
  for (const line of utf8d.decode(data).split("\n")) {
    if (line.length === 0) continue;
    const f = fastLine(line);
    out.push(f ? { seq: f.seq, prev: f.prev, hash: f.hash, record: JSON.parse(f.raw) as CallRecord } : (JSON.parse(line) as Envelope));
  }
  return out;
}

/**
 * Follow a subject live from `startStreamSeq`: every message's envelopes to `onMessage`, until `stop()`. It catches
 * up first with the fast reader (readSubjectFast: a push consumer on a core subscription), then follows live from
 * there with an ordered consumer (`consume()`, which rides out reconnects and leader changes). A catch-up cut short
 * by anything but `onMessage` (the connection lost, the server quiet, a lost delivery, a consumer not made) is not a
 * failure: the ordered consumer takes over after the last message read. An error thrown by `onMessage` ends `done`
 * with it, as before. Rejects at once, as before, when the stream cannot be reached (its info, as the ordered
 * consumer asks it).
 */
export async function followSubject(
  js: JetStreamClient,
  stream: string,
  subject: string,
  startStreamSeq: number,
  onMessage: (m: ReplayedMessage, msg?: JsMsg) => void,
): Promise<{ stop(): Promise<void>; done: Promise<void> }> {
  const jsm = await js.jetstreamManager(false);
  await jsm.streams.info(stream);
  const abort = new AbortController();
  let stopped = false;
  let it: ConsumerMessages | undefined;
  let consumer: { delete(): Promise<boolean> } | undefined;
  const done = (async () => {
    let from = startStreamSeq;
    let threw: { e: unknown } | undefined;
    try {
      await readSubjectFast(
        js,
        stream,
        subject,
        (m) => {
          try {
            onMessage(replayed(m.streamSeq, m.data));
          } catch (e) {
            threw = { e };
            throw e;
          }
          from = m.streamSeq + 1;
        },
        { startStreamSeq: from, signal: abort.signal, jsm },
      );
    } catch (e) {
      if (threw) throw threw.e;
    }
    // The ordered consumer (its `get` asks the stream's info): asked again while JetStream cannot answer yet, as the
    // reader does, for 15 s; a closed connection or a stop ends the follower quietly.
    const deadline = Date.now() + 15_000;
    let c: Awaited<ReturnType<JetStreamClient["consumers"]["get"]>> | undefined;
    for (let n = 0; !c; n++) {
      if (stopped || connectionOf(js).isClosed()) return;
      try {
        c = await js.consumers.get(stream, {
          filter_subjects: subject,
          ...(from > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from } : {}),
        });
      } catch (e) {
        if (stopped || connectionOf(js).isClosed()) return;
        if (!transientJs(e) || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** n, 2000)));
      }
    }
    consumer = c;
    if (stopped) return void (await c.delete().catch(() => undefined));
    it = await c.consume({ max_messages: 1000 });
    if (stopped) {
      // Stopped while the consumer was being made: stop() found no iterator to close, or deleted it too early.
      await it.close().catch(() => undefined);
      await c.delete().catch(() => undefined);
      return;
    }
    for await (const m of it) onMessage(replayed(m.seq, m.data), m);
  })();
  return {
    done,
    async stop() {
      stopped = true;
      abort.abort();
      await it?.close().catch(() => undefined);
      await consumer?.delete().catch(() => undefined);
    },
  };
}

/**
 * The entries of a replayed message. A line in the writer's own layout (`{"seq":N,"prev":"…","hash":"…","record":…}`,
 * which `encodeEntry` writes with the record's canonical text) is checked by hashing the record's text as stored
 * (`verified`: its own hash holds; seq and prev are left to the caller), without re-encoding the parsed record: a
 * third of the replay's cost. Any other line is parsed whole and checked by `entryProblem`.
 */
export function* messageEntries(subject: string, m: ReplayedMessage): Iterable<Envelope & { verified?: boolean; raw?: string }> {
  for (const line of utf8d.decode(m.data).split("\n")) {
    if (line.length === 0) continue;
    const fast = fastLine(line);
    if (fast) {
      const { seq, prev, hash, raw } = fast;
      if (entryHash(seq, prev, raw) !== hash) throw new StreamCorruptError(subject, seq, m.streamSeq, "hash does not match the entry's contents");
      const record = JSON.parse(raw) as CallRecord;
      if (record.seq !== seq) throw new StreamCorruptError(subject, seq, m.streamSeq, `record.seq is ${record.seq}, expected ${seq}`);
      yield { seq, prev, hash, record, verified: true, raw };
    } else {
      yield JSON.parse(line) as Envelope;
    }
  }
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class JetStreamEventStore implements DeferredEventStore {
  /** The filter of this simulator's whole log (`<prefix>.<sim>.events.>`): what replay reads. */
  readonly subject: string;
  private readonly subjects: Subjects;
  readonly stream: string;
  /** Unique per writer incarnation: part of every msgID. */
  readonly writerId: string;
  /**
   * Records appended or loaded, for `read`, kept encoded off the JS heap (memory-store.ts says why: kept objects
   * make every garbage collection's work grow with the log). Records before `base` were not loaded.
   */
  private records = new MemoryEventStore();
  /**
   * The facts of the records `load` parsed (their seq = base + 1 + index), kept for the first `readFacts` (the
   * simulator's rebuild right after open), which takes them: the rebuild then parses no record twice. Only while the
   * load holds at most LOADED_FACTS_MAX records (beyond, a log without a snapshot, keeping objects for every record
   * would cost more in garbage collection than the cut saves, memory-store.ts): then none are kept.
   */
  private loadedFacts: (readonly Fact[])[] | undefined = [];
  private base: number;
  private last: number;
  private durable: number;
  private head: string;
  /** The stream sequence of this simulator's last message (on any of its subjects) that this writer knows. */
  private fence: number;
  /** The stream's last sequence as this writer expects it: `expect.lastSequence` of the next publish (≥ fence). */
  private expectLast: number;
  private pending: { seq: number; line: string; subject: string }[] = [];
  private pendingBytes = 0;
  /** Batches published and not yet stored, in record order (see commit); `recovering` after a pipelined one failed. */
  private window: Batch[] = [];
  private recovering = false;
  /** A commit is queued for the end of this turn of the event loop. */
  private scheduled = false;
  private waiters: Waiter[] = [];
  private failed: Error | undefined;
  private closed = false;
  private idle: (() => void)[] = [];
  readonly stats = { publishes: 0, records: 0, retries: 0, conflicts: 0, pipelined: 0, resent: 0, loadedRecords: 0, loadedMessages: 0, loadMs: 0, snapshotsWritten: 0, snapshotMs: 0, restoredFrom: 0 };
  private snapKv: KV | undefined;
  private snapKey = "";
  private restored: SnapshotCandidate | undefined;
  private capture: ((seq: number, head: string) => Uint8Array | undefined) | undefined;
  private snapshotEvery = 10_000;
  private snapshotSeq = 0;
  /** A snapshot taken, waiting for the message holding its record to be acknowledged. */
  private snapPending: { seq: number; head: string; body: Uint8Array } | undefined;
  private snapUpload: Promise<void> = Promise.resolve();
  private snapWarned = false;
  private requests!: Requests;
  /** How to build a replica of the attached simulator, when it gave one (see snapshotDue). */
  private replica: ReplicaSpec | undefined;
  private snapshotThread = true;
  /** The background writer, from half-way to the first snapshot due on. */
  private writer: BackgroundSnapshots | undefined;
  /** The last record whose text the writer was handed. */
  private fedSeq = 0;
  /** The newest snapshot sealed here (inline): a writer started later starts from it. */
  private lastSealed: { seq: number; head: string; body: Uint8Array } | undefined;
  /**
   * Markers posted and not yet back, by record: the stream sequence of the message that holds the record, once it
   * is acknowledged (the KV meta entry must name that message: opening replays from it).
   */
  private markers = new Map<number, number | undefined>();

  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly opts: Required<Pick<JetStreamStoreOptions, "sim" | "maxBatch" | "maxBatchBytes" | "retryForMs" | "publishTimeoutMs" | "maxInflight">> & {
      onWarning: (m: string) => void;
    },
    init: { stream: string; subjects: Subjects; base: number; head: string; fence: number },
  ) {
    this.stream = init.stream;
    this.subjects = init.subjects;
    this.subject = init.subjects.events;
    this.base = init.base;
    this.last = init.base;
    this.durable = init.base;
    this.head = init.head;
    this.fence = init.fence;
    this.expectLast = init.fence;
    this.writerId = randomUUID();
  }

  /** Create the stream if needed, replay the simulator's subjects (verifying the chain), and be ready to append. */
  static async open(o: JetStreamStoreOptions): Promise<JetStreamEventStore> {
    const stream = o.stream ?? DEFAULT_STREAM;
    const prefix = o.prefix ?? DEFAULT_PREFIX;
    const subjs = subjects(o.sim, prefix);
    const subject = subjs.events;
    const jsm = await jetstreamManager(o.nc);
    await ensureStream(jsm, stream, prefix, o.replicas ?? 1, o.onWarning ?? ((m) => console.warn(m)));
    const legacy = await jsm.streams.getMessage(stream, { last_by_subj: subjs.eventsLegacy });
    if (legacy) throw new LegacyLayoutError(stream, subjs.eventsLegacy, legacy.seq);
    const js = jetstream(o.nc);
    const store = new JetStreamEventStore(
      js,
      jsm,
      {
        sim: o.sim,
        maxBatch: o.maxBatch ?? 256,
        maxBatchBytes: o.maxBatchBytes ?? 512 * 1024,
        retryForMs: o.retryForMs ?? 30_000,
        publishTimeoutMs: o.publishTimeoutMs ?? 2000,
        maxInflight: o.maxInflight ?? 16,
        onWarning: o.onWarning ?? ((m) => console.warn(m)),
      },
      { stream, subjects: subjs, base: 0, head: GENESIS, fence: 0 },
    );
    store.requests = new Requests(o.nc);
    if (o.maxInflight !== undefined && (!Number.isSafeInteger(o.maxInflight) || o.maxInflight < 1)) {
      throw new RangeError(`"maxInflight" expected an integer >= 1, got ${o.maxInflight}`);
    }
    store.snapshotThread = o.snapshotThread ?? true;
    if (o.snapshotEvery !== undefined) {
      if (!Number.isSafeInteger(o.snapshotEvery) || o.snapshotEvery < 0) throw new RangeError(`"snapshotEvery" expected an integer >= 0, got ${o.snapshotEvery}`);
      store.snapshotEvery = o.snapshotEvery;
    }
    if (o.snapshots) {
      store.snapKv = await new Kvm(o.nc).create(SNAPSHOT_BUCKET, { history: 1, replicas: o.replicas ?? 1 });
      store.snapKey = `${prefix}.${o.sim}`;
      const meta = o.restore === false ? undefined : await store.readSnapshot();
      if (meta) {
        try {
          await store.load(meta.streamSeq, meta);
          return store;
        } catch (e) {
          store.opts.onWarning(`hsmsim: snapshot at seq ${meta.seq} of ${subject} not usable (${(e as Error).message}): replaying from the start`);
          return JetStreamEventStore.open({ ...o, restore: false });
        }
      }
    }
    await store.load(1);
    return store;
  }

  /** The newest snapshot's meta entry and body, or undefined (none, or unreadable: a warning). */
  private async readSnapshot(): Promise<(SnapshotMeta & { body: Uint8Array }) | undefined> {
    try {
      const blob = await getBlob<SnapshotFields>(this.snapKv!, this.snapKey);
      return blob && { ...blob.meta, body: blob.body };
    } catch (e) {
      this.opts.onWarning(`hsmsim: snapshot of ${this.subject} not readable (${(e as Error).message}): replaying from the start`);
      return undefined;
    }
  }

  /** State snapshots: the simulator restores from the one loaded at open and attaches its capture. */
  get snapshots(): SnapshotHost | undefined {
    if (!this.snapKv) return undefined;
    const restored = this.restored;
    return {
      candidates: () => (restored ? [restored] : []),
      attach: (capture, replica) => {
        this.capture = capture;
        this.replica = replica;
        this.snapshotSeq = Math.max(this.snapshotSeq, this.base);
      },
      warn: this.opts.onWarning,
    };
  }

  /** Seal the state as of the last record now; it is written once that record is acknowledged. */
  private takeSnapshot(): void {
    const seq = this.last;
    this.snapshotSeq = seq;
    const t0 = performance.now();
    let body: Uint8Array | undefined;
    try {
      body = this.capture!(seq, this.head);
    } catch (e) {
      this.snapWarn(e as Error);
      return;
    }
    this.stats.snapshotMs += performance.now() - t0;
    if (!body) return;
    this.snapPending = { seq, head: this.head, body };
    this.lastSealed = this.snapPending;
    if (seq <= this.durable) this.writeSnapshot(this.fence);
  }

  /**
   * A snapshot is due: a marker posted to the background writer with the records' texts since the previous one
   * (snapshot-writer.ts), or, without a writer (`snapshotThread: false`, no replica, or none could be started),
   * sealed here.
   */
  private snapshotDue(): void {
    if (this.writer?.dead) {
      this.opts.onWarning(`hsmsim: the background snapshot writer of ${this.subject} ended: its snapshots are sealed inline from now on`);
      this.writer.close();
      this.writer = undefined;
      this.replica = undefined;
    }
    if (!this.writer && (!this.snapshotThread || !this.replica || !this.startWriter())) return this.takeSnapshot();
    const seq = this.last;
    this.snapshotSeq = seq;
    this.writer!.post({ seq, head: this.head, offset: 0, lines: this.records.raw(this.fedSeq + 1, seq) });
    this.fedSeq = seq;
    // Every record up to `seq` acknowledged: the message holding it is the fence (seq is the last record).
    this.markers.set(seq, seq <= this.durable ? this.fence : undefined);
  }

  /**
   * Start the background writer, from the newest sealed snapshot this store knows (the one the simulator was
   * restored from, or one sealed here since) and the records after it, which the store holds as texts. Without one,
   * only while the log is short (the whole of it is handed over): false, and the caller seals this one here.
   */
  private startWriter(): boolean {
    const replica = this.replica!;
    let source: SnapshotSource | undefined;
    if (this.lastSealed) source = { name: `sealed here at seq ${this.lastSealed.seq}`, seq: this.lastSealed.seq, head: this.lastSealed.head, offset: 0, headerBytes: 0, body: this.lastSealed.body };
    else if (replica.restored > 0 && this.restored?.seq === replica.restored) {
      source = { name: this.restored.name, seq: this.restored.seq, head: this.restored.head, offset: 0, headerBytes: 0, body: this.restored.body() };
    } else if (replica.restored > 0 || this.base > 0 || this.last > 2 * Math.max(this.snapshotEvery, 1000)) return false;
    const from = source?.seq ?? 0;
    try {
      this.writer = new BackgroundSnapshots({
        sync: false,
        replica,
        source,
        kept: 1,
        from: { seq: this.last, offset: 0 },
        lines: this.records.raw(from + 1, this.last),
      });
    } catch (e) {
      this.opts.onWarning(`hsmsim: cannot seal snapshots of ${this.subject} in the background (${(e as Error).message}): sealing them inline`);
      this.replica = undefined;
      return false;
    }
    this.fedSeq = this.last;
    this.lastSealed = undefined; // the writer has its copy
    this.writer.listen((r) => this.sealed(r));
    return true;
  }

  /** A background writer's result: a sealed body is uploaded once the message holding its record is acknowledged. */
  private sealed(r: WriterResult): void {
    if (r.kind === "warning") return this.opts.onWarning(r.message);
    if (r.kind === "failed") return this.snapWarn(new Error(r.message));
    if (r.kind !== "sealed") {
      this.markers.delete(r.seq);
      return;
    }
    this.stats.snapshotMs += r.catchUpMs + r.captureMs;
    const streamSeq = this.markers.get(r.seq);
    for (const s of [...this.markers.keys()]) if (s <= r.seq) this.markers.delete(s);
    if (this.failed) return;
    this.snapPending = { seq: r.seq, head: r.head, body: r.body };
    if (streamSeq !== undefined) this.writeSnapshot(streamSeq);
  }

  private writeSnapshot(streamSeq: number): void {
    const snap = this.snapPending!;
    this.snapPending = undefined;
    const kv = this.snapKv!;
    const key = this.snapKey;
    this.snapUpload = this.snapUpload.then(async () => {
      try {
        // Chunks under the record seq, then the meta entry naming them (kv-blob.ts); the previous snapshot's go.
        await putBlob<SnapshotFields>(kv, key, snap.seq, snap.body, { seq: snap.seq, head: snap.head, streamSeq, at: new Date().toISOString() });
        this.stats.snapshotsWritten++;
      } catch (e) {
        this.snapWarn(e as Error);
      }
    });
  }

  private snapWarn(e: Error): void {
    if (this.snapWarned) return;
    this.snapWarned = true;
    this.opts.onWarning(`hsmsim: a snapshot of ${this.subject} could not be taken or written (${e.message}); the stream is replayed from the last good one`);
  }

  private async load(startStreamSeq: number, snap?: SnapshotMeta & { body: Uint8Array }): Promise<void> {
    const t0 = performance.now();
    // The stream's last sequence before the replay: every message of this simulator up to it is read below, so the
    // first publish may expect it (other simulators' messages after this writer's last do not refuse it then).
    const streamLast = (await this.jsm.streams.info(this.stream)).state.last_seq;
    if (snap) {
      this.base = snap.seq;
      this.records = new MemoryEventStore({ base: snap.seq });
      this.last = snap.seq;
      this.head = snap.head;
      this.fence = snap.streamSeq;
    }
    let checked = !snap;
    const lastStreamSeq = await readSubject(
      this.js,
      this.stream,
      this.subject,
      (m) => {
        for (const e of messageEntries(this.subject, m)) {
          if (!checked) {
            // The message holding the snapshot's record: skip what the snapshot covers; its record must be the head.
            if (e.seq < snap!.seq) continue;
            if (e.seq === snap!.seq) {
              if (e.hash !== snap!.head) throw new StreamCorruptError(this.subject, e.seq, m.streamSeq, "the snapshot's head is not this record's hash");
              checked = true;
              continue;
            }
            throw new StreamCorruptError(this.subject, e.seq, m.streamSeq, `the snapshot's record ${snap!.seq} is not in this message`);
          }
          const seq = this.last + 1;
          const problem = e.verified ? (e.seq !== seq ? `envelope seq is ${e.seq}, expected ${seq}` : e.prev !== this.head ? `prev does not match the hash of entry ${seq - 1}` : undefined) : entryProblem(e, seq, this.head);
          if (problem) throw new StreamCorruptError(this.subject, seq, m.streamSeq, problem);
          // The record's text as the line holds it (the canonical text its hash was just checked over), not encoded
          // again from the parsed record: what `append` keeps too (encodeEntry's body).
          if (e.raw !== undefined) this.records.appendEncoded(e.raw);
          else this.records.append(e.record);
          if (this.loadedFacts) {
            if (this.loadedFacts.length < LOADED_FACTS_MAX) this.loadedFacts.push(e.record.facts);
            else this.loadedFacts = undefined;
          }
          this.last = seq;
          this.head = e.hash;
        }
        this.stats.loadedMessages++;
      },
      startStreamSeq,
    );
    if (!checked) throw new StreamCorruptError(this.subject, snap!.seq, snap!.streamSeq, "the snapshot's record is not in the stream");
    if (lastStreamSeq > 0) this.fence = lastStreamSeq;
    this.expectLast = Math.max(this.fence, streamLast);
    if (snap) {
      this.restored = { seq: snap.seq, head: snap.head, name: `KV ${SNAPSHOT_BUCKET} ${this.snapKey}.meta`, body: () => snap.body };
      this.stats.restoredFrom = snap.seq;
    }
    this.durable = this.last;
    this.stats.loadedRecords = this.last - this.base;
    this.stats.loadMs = performance.now() - t0;
  }

  get lastSeq(): number {
    return this.last;
  }

  get durableSeq(): number {
    return this.durable;
  }

  get failure(): Error | undefined {
    return this.failed;
  }

  /** The chain hash of the last appended record. */
  get headHash(): string {
    return this.head;
  }

  /** The stream sequence of this simulator's last stored message (on any of its subjects). */
  get streamSeq(): number {
    return this.fence;
  }

  append(record: CallRecord, hint?: string): void {
    this.loadedFacts = undefined; // the rebuild is over
    if (this.failed) throw new StoreWriteError(`hsmsim: the JetStream store for ${this.subject} failed earlier and takes no more appends`, { cause: this.failed });
    if (this.closed) throw new StoreWriteError(`hsmsim: the JetStream store for ${this.subject} is closed`);
    if (record.seq !== this.last + 1) throw new RangeError(`"record.seq" expected ${this.last + 1}, got ${record.seq}`);
    // A snapshot due is taken before this record: the simulator's state is then that of the last record held.
    if (this.capture && this.snapshotEvery > 0 && !this.snapPending) {
      const since = this.last - this.snapshotSeq;
      if (since >= this.snapshotEvery) this.snapshotDue();
      // The writer is started half-way to the first snapshot due, so that its replica is built by then.
      else if (!this.writer && this.snapshotThread && this.replica && since >= this.snapshotEvery / 2) this.startWriter();
    }
    const { line, hash, body } = encodeEntry(this.head, record);
    this.records.appendEncoded(body); // the record's canonical text, as the line holds it
    this.last = record.seq;
    this.head = hash;
    const token = subjectToken(record, hint);
    this.pending.push({ seq: record.seq, line, subject: token === undefined ? this.subjects.eventsSim : this.subjects.eventsToken(token) });
    this.pendingBytes += line.length + 1;
    if (!this.scheduled && (this.window.length === 0 || (!this.recovering && this.window.length < this.opts.maxInflight))) {
      // Let the calls of this turn of the event loop join the batch.
      this.scheduled = true;
      queueMicrotask(() => this.commit());
    }
  }

  *read(from = 1): Iterable<CallRecord> {
    const start = Math.max(from, this.base + 1);
    yield* this.records.read(start);
  }

  /**
   * The records from `from` as a replay needs them (store.ts ReplayItem): each record's facts cut out of its held
   * text (`factsOfRecordText`), the rest of it not parsed; a text in another layout is parsed whole. The texts were
   * verified when the store loaded them (hash, seq, link, record seq) or were encoded here by `append`.
   */
  *readFacts(from = 1): Iterable<ReplayItem> {
    let seq = Math.max(from, this.base + 1);
    // The loaded records' facts, parsed by `load` (taken: a second reader cuts them from the texts again).
    const kept = this.loadedFacts;
    this.loadedFacts = undefined;
    if (kept) for (; seq - this.base - 1 < kept.length; seq++) yield { seq, facts: kept[seq - this.base - 1]! };
    for (const text of this.records.texts(seq)) {
      yield { seq, facts: factsOfRecordText(text) ?? decodeRecord(text).facts };
      seq++;
    }
  }

  flush(seq: number): Promise<void> {
    if (seq <= this.durable) return Promise.resolve();
    if (this.failed) return Promise.reject(this.failure_(seq));
    return new Promise((resolve, reject) => {
      const w = { seq, resolve, reject };
      const n = this.waiters.length;
      // Calls flush in record order, so this is an append; keep the array sorted otherwise.
      if (n === 0 || this.waiters[n - 1]!.seq <= seq) this.waiters.push(w);
      else this.waiters.splice(this.waiters.findIndex((x) => x.seq > seq), 0, w);
    });
  }

  private failure_(seq: number): StoreWriteError {
    return new StoreWriteError(`hsmsim: record ${seq} of ${this.subject} may not be stored: ${this.failed?.message}`, { cause: this.failed });
  }

  /**
   * Send what is pending: batches (the longest run of pending records with one subject) while fewer than
   * `maxInflight` are in flight. The window's first batch expects the confirmed end of the stream and goes through
   * `lead` (retries, conflicts); each batch behind it is pipelined: it expects its predecessor's predicted stream
   * sequence *and* its predecessor's msgID as the stream's last message (`Nats-Expected-Last-Msg-Id`), so the server
   * stores it only right after that message. A predicted sequence alone would not do: another simulator's message
   * could fill the gap of a lost predecessor and let the successor in ahead of it. A pipelined batch is sent once;
   * if it fails, no more are pipelined until the window is empty, and each failed batch is sent again as a lead when
   * it reaches the head of the window (the serial path, as with one publish in flight).
   */
  private commit(): void {
    this.scheduled = false;
    if (this.failed) return;
    while (this.pending.length > 0 && (this.window.length === 0 || (!this.recovering && this.window.length < this.opts.maxInflight))) {
      const prev = this.window[this.window.length - 1];
      const run = this.nextRun();
      // Behind a publish in flight, only a run that cannot grow (the subject changes after it, or it is full) goes
      // now. One that reaches the end of what is pending waits for the window to drain and takes the records
      // appended meanwhile: group commit as with one publish in flight, so a load on one token writes as few
      // messages as before (replay reads a message at a time), and only loads that alternate subjects pipeline.
      if (prev && run.open) break;
      const b = this.nextBatch(run, prev ? prev.expected + 1 : this.expectLast);
      this.window.push(b);
      this.stats.publishes++;
      this.stats.records += b.last - b.first + 1;
      if (prev) this.pipelined(b, prev);
      else this.lead(b, 0);
    }
    if (this.window.length === 0 && this.pending.length === 0) for (const f of this.idle.splice(0)) f();
  }

  /**
   * The next run of pending records: the longest with one subject, up to `maxBatch` records or `maxBatchBytes`; `open`
   * when it reaches the end of what is pending under both limits (more appends could still join it).
   */
  private nextRun(): { n: number; bytes: number; open: boolean } {
    let n = 0;
    let bytes = 0;
    const subject = this.pending[0]!.subject;
    while (
      n < this.pending.length &&
      n < this.opts.maxBatch &&
      this.pending[n]!.subject === subject &&
      (n === 0 || bytes + this.pending[n]!.line.length + 1 <= this.opts.maxBatchBytes)
    ) {
      bytes += this.pending[n]!.line.length + 1;
      n++;
    }
    return { n, bytes, open: n === this.pending.length && n < this.opts.maxBatch && bytes < this.opts.maxBatchBytes };
  }

  /** Cut a run off `pending` as a batch, to be published expecting the stream's last sequence to be `expected`. */
  private nextBatch({ n, bytes }: { n: number; bytes: number }, expected: number): Batch {
    const subject = this.pending[0]!.subject;
    const batch = this.pending.splice(0, n);
    this.pendingBytes -= bytes;
    const first = batch[0]!.seq;
    return {
      first,
      last: batch[batch.length - 1]!.seq,
      subject,
      body: utf8.encode(batch.map((b) => b.line).join("\n")),
      msgID: `${this.opts.sim}/${this.writerId}/${first}`,
      expected,
    };
  }

  /** A batch's publish settled: store every batch at the head of the window that is through, in order. */
  private settle(b: Batch, outcome: "failed" | number): void {
    if (this.failed) return;
    b.outcome = outcome;
    while (this.window.length > 0 && this.window[0]!.outcome !== undefined) {
      const head = this.window[0]!;
      if (head.outcome === "failed") {
        // A pipelined batch that did not land (its predecessor was late, or the stream moved): everything before it
        // is stored now, so send it again as the window's lead. It may have landed after all (a timeout): its msgID
        // is the same, so a duplicate ack then says where, and it is not a first attempt.
        head.outcome = undefined;
        head.expected = this.expectLast;
        this.stats.resent++;
        this.lead(head, 1);
        return;
      }
      this.window.shift();
      this.stored(head, head.outcome as number);
    }
    if (this.window.length === 0) this.recovering = false;
    this.commit();
  }

  private stored(b: Batch, streamSeq: number): void {
    this.fence = streamSeq;
    this.expectLast = streamSeq;
    this.durable = b.last;
    if (this.snapPending && this.snapPending.seq <= b.last) this.writeSnapshot(streamSeq);
    // Markers in flight whose record this message holds: this is the message their snapshots name.
    for (const [s, at] of this.markers) if (at === undefined && s <= b.last) this.markers.set(s, streamSeq);
    let k = 0;
    while (k < this.waiters.length && this.waiters[k]!.seq <= b.last) k++;
    for (const w of this.waiters.splice(0, k)) w.resolve();
  }

  /** A batch behind the window's head: one attempt, expecting to follow `prev` (see commit). */
  private pipelined(b: Batch, prev: Batch): void {
    const h = this.headersOf(b, b.expected);
    h.set("Nats-Expected-Last-Msg-Id", prev.msgID);
    this.stats.pipelined++;
    this.publish(b.subject, b.body, h).then(
      (ack) => {
        if (ack.duplicate) this.fail(new ForkSuspectedError(`hsmsim: the first publish of ${b.msgID} was acknowledged as a duplicate (stream seq ${ack.seq}): another writer?`));
        else this.settle(b, ack.seq);
      },
      () => {
        this.recovering = true;
        this.settle(b, "failed");
      },
    );
  }

  private headersOf(b: Batch, expected: number): MsgHdrs {
    const h = headers();
    h.set(HEADER_SEQ, `${b.first}-${b.last}`);
    h.set(HEADER_MSG_ID, b.msgID);
    // The stream-wide expectation (js.publish's `expect.lastSequence`, as a header).
    h.set("Nats-Expected-Last-Sequence", String(expected));
    return h;
  }

  /**
   * The window's head: published expecting the confirmed end of the stream, retried with the same msgID and
   * expectation on ambiguous failures, a refused expectation sorted out by `conflict` (module comment).
   */
  private lead(b: Batch, firstAttempt: number): void {
    const { first, last, subject, body, msgID } = b;
    const deadline = Date.now() + this.opts.retryForMs;
    const attempt = (n: number, expected: number): void => {
      this.publish(subject, body, this.headersOf(b, expected)).then(
        (ack) => {
          if (ack.duplicate && n === 0) {
            this.fail(new ForkSuspectedError(`hsmsim: the first publish of ${msgID} was acknowledged as a duplicate (stream seq ${ack.seq}): another writer?`));
            return;
          }
          this.settle(b, ack.seq);
        },
        (e: unknown) => {
          const err = e as Error & { code?: number };
          if (err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE) {
            // The stream moved: other simulators (go on expecting its new end), another writer of this simulator
            // (stop), or, on a retry, our own earlier attempt (stored).
            this.conflict(msgID, err).then(
              (r) => {
                if (r.ours !== undefined) this.settle(b, r.ours);
                else if (r.streamLast === undefined) this.fail(new FenceLostError(this.subject, this.fence, { cause: err }));
                else if (r.streamLast === expected) retry(n, err); // no news (a leader's view lagging?): back off
                else if (Date.now() < deadline && !this.closed) {
                  this.stats.conflicts++;
                  this.expectLast = r.streamLast;
                  attempt(n + 1, r.streamLast);
                } else retry(n, err); // past the deadline: fails there
              },
              (e2: unknown) => retry(n, e2 as Error),
            );
            return;
          }
          if (err instanceof JetStreamApiError) {
            this.fail(new StoreWriteError(`hsmsim: JetStream refused records ${first}-${last} of ${subject}: ${err.message}`, { cause: err }));
            return;
          }
          retry(n, err);
        },
      );
    };
    // Timeouts, no responders (no stream leader: JetStreamNotEnabled), a lost connection: the outcome is unknown.
    const retry = (n: number, err: Error): void => {
      if (Date.now() >= deadline || this.closed) {
        this.fail(new StoreWriteError(`hsmsim: records ${first}-${last} of ${this.subject} not acknowledged in ${this.opts.retryForMs} ms: ${err.message}`, { cause: err }));
        return;
      }
      this.stats.retries++;
      if (n === 0) this.opts.onWarning(`hsmsim: publishing records ${first}-${last} to ${subject}: ${err.name}: ${err.message}; retrying`);
      setTimeout(() => attempt(n + 1, this.expectLast), Math.min(50 * 2 ** n, 500));
    };
    attempt(firstAttempt, b.expected);
  }

  /**
   * After a refused expectation: read the stream's last sequence N (the error names it) and then this simulator's
   * last message. Ours (this msgID): the batch is stored there. This writer's last known message: only other
   * simulators moved the stream, so expect N. Anything else: another writer of this simulator (undefined, undefined).
   */
  private async conflict(msgID: string, err: Error): Promise<{ ours?: number; streamLast?: number }> {
    const named = /wrong last sequence: (\d+)/.exec(err.message)?.[1];
    const streamLast = named !== undefined ? Number(named) : (await this.jsm.streams.info(this.stream)).state.last_seq;
    const m = await this.jsm.streams.getMessage(this.stream, { last_by_subj: this.subjects.eventsAny });
    if (m && m.header?.get(HEADER_MSG_ID) === msgID) return { ours: m.seq };
    if ((m?.seq ?? 0) === this.fence) return { streamLast: Math.max(streamLast, this.fence) };
    return {};
  }

  /**
   * `js.publish(subject, body, { msgID, expect: { lastSequence } })` (the headers carry both) on this store's own
   * inbox (remote/requests.ts: without nats-core's Error per request): the ack, or a JetStreamApiError, or another
   * error (a timeout, no responders, not an ack), which the caller retries.
   */
  private async publish(subject: string, body: Uint8Array, h: MsgHdrs): Promise<{ seq: number; duplicate?: boolean }> {
    const m = await this.requests.request(subject, body, this.opts.publishTimeoutMs, h);
    if (typeof m === "string") throw new Error(m);
    const r = JSON.parse(utf8d.decode(m.data)) as { stream?: string; seq?: number; duplicate?: boolean; error?: ApiError };
    if (r.error) throw new JetStreamApiError(r.error);
    if (!r.stream || typeof r.seq !== "number") throw new Error(`not a publish acknowledgement: ${utf8d.decode(m.data).slice(0, 200)}`);
    return { seq: r.seq, duplicate: r.duplicate };
  }

  private fail(e: Error): void {
    if (!this.failed) this.failed = e;
    this.window = [];
    for (const w of this.waiters.splice(0)) w.reject(this.failure_(w.seq));
    this.pending = [];
    for (const f of this.idle.splice(0)) f();
  }

  /** Wait until nothing is pending or in flight (or the store failed). */
  drain(): Promise<void> {
    if ((this.failed || this.window.length === 0) && this.pending.length === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  /** Wait for what is pending to be stored, then take no more appends. Does not close the connection. */
  async close(): Promise<void> {
    // The markers in flight first (their bodies come back, to be uploaded below); then a closing snapshot, sealed here.
    if (this.writer) {
      await this.writer.drained(WRITER_WAIT_MS);
      this.writer.close();
      this.writer = undefined;
    }
    if (this.capture && !this.failed && !this.closed && this.last > this.snapshotSeq && !this.snapPending) this.takeSnapshot();
    await this.drain();
    this.closed = true;
    this.requests.close();
    await this.snapUpload;
  }
}
