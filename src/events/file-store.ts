/**
 * The file event store: the embedded persistent default. It owns one directory:
 *
 *   events.log      the log: one line per call record, `{"seq","prev","hash","record"}` (chain.ts), appended only
 *   events.lock     the writer's lock: pid, host, process start time (see "One writer" below)
 *   simulator.json  what a simulator on this store is created with (profile options and the simulator key, mode 0600),
 *                   written by `settings()` for the faces that open a store by name (`load("file:./dir")`)
 *   checkpoints.log signed checkpoints (checkpoint.ts): every `checkpointEvery` records (1000) and at close, the
 *                   sequence and chain head signed with the audit key, so a log cut short is detected
 *   audit-key.json  the audit key (Ed25519, mode 0600) when none is given as `auditKey`; audit.pub its public key
 *   facts.cache     the facts cache (facts-cache.ts): the records' facts in a binary form, MAC'd under a key derived
 *                   from the simulator key and bound to the log's chain, which replay reads instead of the lines
 *                   (option `factsCache`, default true; deleting it only makes replay slower)
 *
 * Durability (`durability` option). Every append is written to the OS with `writeSync` before `append` returns, in
 * every mode, so a crash of the process (kill -9) never loses an acknowledged call. What differs is the OS crash or
 * power loss:
 * - `"fsync"`: every append is fdatasync'ed before it returns: an acknowledged call is on disk. (fdatasync, not
 *   fsync: it flushes the file size with the data, which is all an append needs.)
 * - `"group"` (the default): the log is fdatasync'ed `groupWindowMs` (10) after the first unsynced append, by an
 *   unref'ed timer or by the append that finds the window over, and on close or process exit. A power loss or OS
 *   crash loses at most the calls acknowledged in the last 10 ms (longer only while the event loop is blocked and no
 *   append comes to notice the window is over).
 * - `"none"`: never fsync'ed by hsmsim; the OS writes back when it likes (Linux: within ~30 s).
 *
 * Append throughput on the development machine (2 vCPU VM shared with other jobs, ext4 on virtio, Node 20; a
 * C_DigestInit record, a 380-byte line; `node --import tsx test/support/file-store-throughput.ts`, each figure the
 * median of three 1 s rounds):
 *   fsync ≈ 7,000–9,100 appends/s (110–140 µs: the disk flush), group ≈ 41,000–56,000/s, none ≈ 50,000–73,000/s;
 *   the in-memory store ≈ 550,000–850,000/s (ranges over 4 runs). Of the ≈ 15 µs an unsynced append costs, the
 *   SHA-256 (noble, ≈ 5 µs) and the canonical encoding (≈ 3 µs) are most; write(2) is ≈ 1 µs. A whole simulator call
 *   on the store costs about the same plus 2 µs; in fsync mode its rate swings widely (700–9,500/s) with the load.
 *
 * Snapshots. With a simulator attached (it attaches itself when it is created on the store), the store writes a
 * state snapshot (src/events/snapshot.ts: the whole write and read model, sealed with XChaCha20-Poly1305 under a key
 * derived from the simulator key) every `snapshotEvery` records (10,000) and at close, as
 * `snapshot-<seq>.snap` beside the log: a header line `hsmsim-snapshot-file 1 <seq> <chain head> <log offset>` and the
 * sealed body, written to a temporary file, fsync'ed, renamed into place and the directory fsync'ed (the log is
 * synced first), so a crash leaves either the whole snapshot or none (a leftover `.snap.tmp` is removed at open).
 * The two newest are kept. A snapshot is due every `snapshotEvery` records, at the start of the next append, when the
 * state is that of the last record (the dispatcher appends before it evolves).
 *
 * Who writes them (`snapshotThread`, default true): that append only posts a marker, the record's sequence, chain hash
 * and the log's length, to the background writer (snapshot-writer.ts), a worker thread holding a replica of the
 * simulator: restored from the snapshot the simulator was restored from, it is brought to the marker's record by
 * replaying the log's facts since the previous marker, then sealed and written as above (the log fdatasync'ed first),
 * while the calls go on. The live state, which later calls change in place, is never read: the log up to the record
 * is on disk, and replaying it is deterministic. At most one snapshot is written at a time; markers that pile up
 * meanwhile are thinned to the newest two (the files left are those writing each in turn would leave). The writer is
 * started half-way to the first snapshot due. close (and the exit hook) waits for the markers posted, then writes the
 * closing snapshot inline from the live state; `snapshotNow` also waits, then writes inline. Measured with `node
 * --expose-gc bench/store.js snapshot` on the 2-vCPU development VM (load 3–4; docs/notes/snapshot-pause.md): inline,
 * the append that found one due waited ~5 ms for a fresh token, 0.23–0.4 s for 10,000 objects and 1,000 sessions
 * (3.6 MiB), 2.9 s for 100,000 objects and 10,000 sessions (37 MiB); with the background writer it waits 0.05–0.1 ms
 * (posting the marker; the largest seen 5.5 ms), and the writer spends the seconds on another core. The price: a second
 * copy of the state in the worker's heap, the replay on another core, and under a load faster than the writer, snapshots
 * every snapshot-write rather than every `snapshotEvery` records. `snapshotThread: false` captures, seals and writes
 * inside the append that finds one due, as before.
 *
 * Opening verifies the log after the newest snapshot whose header matches it: the record at the snapshot's sequence
 * must end at its offset and carry its chain hash. The records before it were verified when they were written or
 * last opened, and are not hashed again (that is what makes a 10-million-record store open in well under a second);
 * `hsmsim audit verify` checks the whole chain. The simulator then restores the newest snapshot that opens (another
 * key, another store's, damaged or stale ones are passed over with a warning, down to a full replay) and replays only
 * the records after it. Without snapshots, opening verifies the whole log: every line parses and chains (chain.ts).
 *
 * Replay (`eachFacts`, `readFacts`). A simulator rebuilt from the log needs only each record's sequence and facts.
 * `eachFacts`, given the simulator's facts-cache key, takes them from the facts cache wherever it has the records and
 * its blocks check (facts-cache.ts says what that proves), at a few hundred nanoseconds a record; elsewhere, and in
 * `readFacts`, it decodes them from the lines: the file is read in 1 MiB chunks, each line's facts array is cut out of its bytes (the layout
 * encodeEntry writes is fixed up to the record, whose canonical keys are sorted, so the args object is skipped by
 * bracket counting and the facts array ends at the first `],"fn":"` after it; see factsOfLine) and only that text is
 * parsed; a record without facts is not parsed at all. A line in any other layout is parsed whole. The lines were
 * verified when the store opened (or are covered by the snapshot the store opened from), as `read` trusts them too.
 * Parsing whole lines was most of a record's read cost (args, outputs and envelope are about half its bytes and
 * most of its JSON structure). The on-disk format stays one JSON line per entry, so `hsmsim audit verify`, `audit
 * show`, the secret scans and logs written before are untouched; a binary framing or a facts-first layout would
 * save the cut but change the format every reader and the chain hash's fast path rely on (docs/notes/replay-speed.md
 * weighs them). The facts cache is the binary form beside the log instead: a copy replay may use, not the record.
 * Keeping it costs each append the facts' binary encoding (~0.6 µs, ~7 % of an unsynced append in a profile).
 *
 * A torn last line (a write cut short: no newline at the end, or a last line that is not JSON) is cut with a warning:
 * its append never returned, so it was never acknowledged. Anything else wrong (a line before the last that is not JSON, or any line that parses but does
 * not chain) is corruption or tampering and is never cut: `StoreCorruptError` names the first bad sequence and the
 * log is left as it is.
 *
 * Checkpoints are written after the records they sign, and (unless durability is "none") only once those records are
 * fdatasync'ed, so a crash never leaves a checkpoint past the log's end. A store whose log ends before its last
 * checkpoint, or whose chain hash at a checkpoint differs from the signed head, was cut or changed after it was signed:
 * it is refused (StoreCorruptError), as `hsmsim audit verify` reports it. (With durability "none" an OS crash could
 * in principle keep a checkpoint and lose records before it; move checkpoints.log aside to reopen such a store.)
 *
 * One writer: the lock file is created with O_EXCL. A second opener, in this process or another, gets
 * `StoreLockedError` naming the holder. A lock whose process is gone (`kill(pid, 0)` fails with ESRCH; on Linux also
 * a zombie, or a pid now owned by a process started later) is taken over with a warning. Takeovers are serialised by
 * a second O_EXCL file (`events.lock.takeover`) and only remove the lock they judged stale, so two openers racing for
 * a stale lock cannot both win (unless one of them died mid-takeover, leaving that file behind, while two others
 * race). A lock held on another host (a shared filesystem) cannot be checked and counts as held.
 */
import { randomBytes as nodeRandomBytes, randomUUID } from "node:crypto";
import * as fs from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import type { EventStore, ReplayItem, ReplicaSpec, SnapshotCandidate, SnapshotHost } from "./store.js";
import { BackgroundSnapshots, type WriterResult } from "./snapshot-writer.js";
import { cacheBlocks, FACTS_CACHE_FILE, FactsCacheWriter, openBlock, type LogReader } from "./facts-cache.js";
import { FactsCodecError, type FactsBlockDecoder } from "./facts-codec.js";
import type { CallRecord, Fact } from "./types.js";
import { encodeEntry, entryProblem, GENESIS, type Envelope } from "./chain.js";
import { bytesToHex, hexToBytes } from "../crypto/encoding.js";
import { checkpointLine, CHECKPOINTS, loadAuditKey, readCheckpoints, readText, signCheckpoint, type AuditKey } from "./checkpoint.js";

export type Durability = "fsync" | "group" | "none";

export interface FileStoreOptions {
  /** When an append is on disk (see the module comment). Default "group". */
  durability?: Durability;
  /** The group-commit window in milliseconds (durability "group" only). Default 10. */
  groupWindowMs?: number;
  /** Told about a stale lock taken over, a torn tail cut, a background fsync that failed. Default console.warn. */
  onWarning?: (message: string) => void;
  /** Sign a checkpoint every this many records (and at close). Default 1000; 0 turns checkpoints off. */
  checkpointEvery?: number;
  /** The Ed25519 audit key (32 bytes or 64 hex digits). Default: the store's audit-key.json, made on first use. */
  auditKey?: Uint8Array | string;
  /**
   * Write a state snapshot every this many records, when a simulator is attached (see "Snapshots" above). Default
   * 10,000; 0: none along the way.
   */
  snapshotEvery?: number;
  /** Write a state snapshot at close (when records were added since the last one). Default true. */
  snapshotOnClose?: boolean;
  /**
   * Write the periodic snapshots from a worker thread's replica of the simulator (see "Snapshots" above), so that the
   * append that finds one due is not held up. Default true; false: captured, sealed and written inside that append.
   */
  snapshotThread?: boolean;
  /**
   * Keep a binary copy of the log's facts beside it (facts.cache, src/events/facts-cache.ts), so that replay need not
   * parse each record's JSON. Default true. The log stays the record: the cache is checked against it and keyed by
   * the simulator key, and a store without it (or with a damaged one) replays from the log's lines.
   */
  factsCache?: boolean;
}

/** What the last snapshot write cost (for the bench and operators). */
export interface SnapshotStats {
  written: number;
  /**
   * The last one: its sequence, its size in bytes, and the milliseconds spent bringing the background writer's replica
   * to its record (0 inline), capturing and sealing it, and writing it (fsyncs included).
   */
  lastSeq: number;
  lastBytes: number;
  lastCatchUpMs: number;
  lastCaptureMs: number;
  lastWriteMs: number;
  /** The milliseconds the append that found the last one due spent on it (inline: all of it; background: posting). */
  lastPauseMs: number;
}

/** Another writer holds the store. `holder` is what its lock file says (undefined if it could not be read). */
export class StoreLockedError extends Error {
  override readonly name = "StoreLockedError";
  constructor(
    readonly dir: string,
    readonly holder: LockHolder | undefined,
    options?: { cause?: unknown },
  ) {
    const who = !holder
      ? "another process (its lock file could not be read)"
      : holder.pid === process.pid && holder.host === hostname()
        ? `this process (pid ${holder.pid}): another FileEventStore on it is open; close it or share its Simulator`
        : `process ${holder.pid} on ${holder.host} (started ${holder.started})`;
    super(
      `hsmsim: the event store in ${dir} is in use by ${who}. A store has one writer at a time: to share one ` +
        `simulator between processes, run "hsmsim serve" on the store and connect the others to it.`,
      options,
    );
  }
}

/** The log is damaged before its last line, or a line does not chain. Nothing was cut or changed. */
export class StoreCorruptError extends Error {
  override readonly name = "StoreCorruptError";
  constructor(
    readonly file: string,
    /** The first bad sequence: the entry that line should hold. */
    readonly seq: number,
    /** Byte offset of the bad line. */
    readonly offset: number,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(
      `hsmsim: ${file} is corrupt at seq ${seq} (byte ${offset}): ${problem}. Only a torn last record is ever cut; ` +
        `the log was left as it is: restore it from a backup, or move it aside to start a new store.`,
      options,
    );
  }
}

/** An append or a sync failed: the store accepts no more appends (the simulator's state is ahead of its log). */
export class StoreWriteError extends Error {
  override readonly name = "StoreWriteError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The contents of a lock file. */
export interface LockHolder {
  pid: number;
  host: string;
  /** When the holding process started (ISO time). */
  started: string;
  /** When it took the lock (ISO time). */
  acquired: string;
  /** Linux: the process's start time in clock ticks since boot (/proc/<pid>/stat), to tell a reused pid. */
  procStart?: string;
  /** Unique per lock taken: release removes only its own lock. */
  id: string;
}

/** What a simulator on this store is created with (see `FileEventStore.settings`). */
export interface StoreSettings {
  options: Record<string, string | number>;
  simulatorKey: Uint8Array;
}

const LOG = "events.log";
/** snapshot-<seq, 16 digits>.snap; written as .snap.tmp and renamed into place. */
const SNAPSHOT_FILE = /^snapshot-(\d{16})\.snap$/;
const SNAPSHOT_HEADER = /^hsmsim-snapshot-file 1 (\d+) ([0-9a-f]{64}) (\d+)\n/;
/** Snapshots kept: the newest and the one before it (the fallback if the newest does not open). */
const SNAPSHOTS_KEPT = 2;
/** How long close waits for the background snapshot writer (a large state's snapshot takes seconds). */
const WRITER_WAIT_MS = 120_000;
const LOCK = "events.lock";
const SETTINGS = "simulator.json";
/** One index entry (the byte offset of a line) per this many records, so `read(from)` starts near `from`. */
const INDEX_EVERY = 1024;
const CHUNK = 1 << 20;

const DURABILITIES: readonly Durability[] = ["fsync", "group", "none"];

/** A long walk's progress, as the CLI draws it (src/cli/progress.ts). */
export interface WalkProgress {
  update(done: number): void;
  finish(): void;
}

export class FileEventStore implements EventStore {
  /**
   * Told of the long walks over a log: verifying it at open (`"verify"`) and reading it (`"read"`), with the number of
   * records to walk; answers what to tell of the walk's progress. The CLI sets it to draw progress bars on a terminal.
   */
  static onWalk: ((what: "verify" | "read", total: number) => WalkProgress) | undefined;

  readonly dir: string;
  readonly file: string;
  readonly durability: Durability;
  private readonly windowMs: number;
  private readonly warn: (message: string) => void;
  private readonly lock: Lock;
  private fd = -1;
  /** Bytes of whole, verified or written lines: the log's length. */
  private size = 0;
  private last = 0;
  private head = GENESIS;
  /**
   * index[k] = byte offset of the line of seq k * INDEX_EVERY + 1. Opened from a snapshot, the entries before the
   * snapshot's sequence are filled only when a read first needs them (indexPrefix).
   */
  private readonly index: number[] = [];
  /** Where the open's walk started: the record after the snapshot it trusted (seq 0, offset 0: the whole log). */
  private base = { seq: 0, offset: 0 };
  private prefixIndexed = true;
  private readonly snapshotEvery: number;
  private readonly snapshotOnClose: boolean;
  private capture: ((seq: number, head: string) => Uint8Array | undefined) | undefined;
  /** How to build a replica of the attached simulator (the background writer's), when it gave one. */
  private replica: ReplicaSpec | undefined;
  private readonly snapshotThread: boolean;
  /** The background writer, from half-way to the first snapshot due on (see "Snapshots"). */
  private writer: BackgroundSnapshots | undefined;
  /** The sequence of the last snapshot written or tried (0: none). */
  private snapshotSeq = 0;
  private snapshotWarned = false;
  private readonly stats: SnapshotStats = { written: 0, lastSeq: 0, lastBytes: 0, lastCatchUpMs: 0, lastCaptureMs: 0, lastWriteMs: 0, lastPauseMs: 0 };
  /** When the oldest append not yet fdatasync'ed was written (group mode), or null. */
  private dirtySince: number | null = null;
  private timer: NodeJS.Timeout | undefined;
  private failed: Error | undefined;
  private closed = false;
  private readonly checkpointEvery: number;
  private readonly auditKeyOption: Uint8Array | string | undefined;
  private auditKey: AuditKey | undefined;
  /** The sequence of the last checkpoint written (0: none). */
  private checkpointed = 0;
  /** Whether the facts cache is kept and read (option `factsCache`), and its writer once the simulator keyed it. */
  private readonly factsCacheOn: boolean;
  private factsCache: FactsCacheWriter | undefined;

  /** Open (creating if needed) the store in `dir`: take the lock, verify the log, cut a torn last record. */
  constructor(dir: string, opts: FileStoreOptions = {}) {
    if (typeof dir !== "string" || dir === "") throw new TypeError(`"dir" expected a non-empty string`);
    const durability = opts.durability ?? "group";
    if (!DURABILITIES.includes(durability)) throw new RangeError(`"durability" expected fsync, group or none, got ${String(durability)}`);
    const windowMs = opts.groupWindowMs ?? 10;
    if (!Number.isFinite(windowMs) || windowMs < 0) throw new RangeError(`"groupWindowMs" expected a number >= 0, got ${windowMs}`);
    this.dir = resolve(dir);
    this.file = join(this.dir, LOG);
    this.durability = durability;
    this.windowMs = windowMs;
    this.warn = opts.onWarning ?? ((m) => console.warn(m));
    const every = opts.checkpointEvery ?? 1000;
    if (!Number.isSafeInteger(every) || every < 0) throw new RangeError(`"checkpointEvery" expected an integer >= 0, got ${opts.checkpointEvery}`);
    this.checkpointEvery = every;
    this.auditKeyOption = opts.auditKey;
    const snapEvery = opts.snapshotEvery ?? 10_000;
    if (!Number.isSafeInteger(snapEvery) || snapEvery < 0) throw new RangeError(`"snapshotEvery" expected an integer >= 0, got ${opts.snapshotEvery}`);
    this.snapshotEvery = snapEvery;
    this.snapshotOnClose = opts.snapshotOnClose ?? true;
    this.snapshotThread = opts.snapshotThread ?? true;
    this.factsCacheOn = opts.factsCache ?? true;
    fs.mkdirSync(this.dir, { recursive: true });
    this.lock = Lock.acquire(this.dir, this.warn);
    try {
      const existed = fs.existsSync(this.file);
      this.fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o644);
      // A new log's directory entry must be durable too, or a power loss could lose the whole file.
      if (!existed && durability !== "none") syncDir(this.dir);
      this.recover();
      // A given audit key is checked against the store's audit.pub now, not at the first checkpoint.
      if (this.auditKeyOption !== undefined && this.checkpointEvery > 0) {
        this.auditKey = loadAuditKey(this.dir, this.auditKeyOption, () => new Uint8Array(nodeRandomBytes(32)), durability !== "none");
      }
    } catch (e) {
      if (this.fd >= 0) fs.closeSync(this.fd);
      this.lock.release();
      throw e;
    }
    OPEN.add(this);
    registerExitHook();
  }

  get lastSeq(): number {
    return this.last;
  }

  /** The hash of the last entry (GENESIS when empty): it commits to the whole log. */
  get headHash(): string {
    return this.head;
  }

  append(record: CallRecord): void {
    if (this.closed) throw new StoreWriteError(`hsmsim: the event store in ${this.dir} is closed`);
    if (this.failed) throw new StoreWriteError(`hsmsim: the event store in ${this.dir} failed earlier and takes no more appends`, { cause: this.failed });
    if (record.seq !== this.last + 1) throw new RangeError(`"record.seq" expected ${this.last + 1}, got ${record.seq}`);
    // The state is that of `last` now (the dispatcher appends before it evolves): the moment to snapshot it.
    if (this.writer) this.collect(this.writer.results());
    if (this.snapshotEvery > 0 && this.capture) {
      const since = this.last - this.snapshotSeq;
      if (since >= this.snapshotEvery) this.snapshotDue();
      // The writer thread and its replica are started half-way to the first snapshot due, so that it is warm by then.
      else if (!this.writer && this.snapshotThread && this.replica && since >= this.snapshotEvery / 2) this.startWriter();
    }
    const { line, hash } = encodeEntry(this.head, record);
    const bytes = Buffer.from(line + "\n", "utf8");
    try {
      // O_APPEND: every write lands at the end. A short write (disk full) is continued; a failed one is undone below.
      for (let done = 0; done < bytes.length; ) done += fs.writeSync(this.fd, bytes, done, bytes.length - done);
    } catch (e) {
      // Leave no partial line behind: a later append after it would turn a torn tail into mid-log corruption.
      try {
        fs.ftruncateSync(this.fd, this.size);
      } catch {
        // The next open cuts it as a torn tail.
      }
      this.failed = e as Error;
      throw new StoreWriteError(`hsmsim: could not append seq ${record.seq} to ${this.file}: ${(e as Error).message}`, { cause: e });
    }
    if ((record.seq - 1) % INDEX_EVERY === 0) this.index[(record.seq - 1) / INDEX_EVERY] = this.size;
    this.factsCache?.add(record.seq, record.facts, this.size, hash);
    this.size += bytes.length;
    this.last = record.seq;
    this.head = hash;
    if (this.checkpointEvery > 0 && record.seq % this.checkpointEvery === 0) this.checkpoint();
    if (this.durability === "fsync") this.syncNow();
    else if (this.durability === "group") {
      const now = Date.now();
      if (this.dirtySince === null) {
        this.dirtySince = now;
        this.timer = setTimeout(() => this.backgroundSync(), this.windowMs);
        this.timer.unref();
      } else if (now - this.dirtySince >= this.windowMs) {
        // A run of appends that never yields to the event loop still gets its fsync on time.
        this.syncNow();
      }
    }
  }

  /** Records in order from `from`, read from the file (records appended while iterating are included). */
  *read(from = 1): Iterable<CallRecord> {
    const start = Math.max(1, Math.floor(from));
    if (start > this.last) return;
    let { seq, offset } = this.locate(start);
    const walk = FileEventStore.onWalk?.("read", this.last - start + 1);
    try {
      yield* this.records(seq, offset, start, walk);
    } finally {
      walk?.finish();
    }
  }

  private *records(seq: number, offset: number, start: number, walk: WalkProgress | undefined): Generator<CallRecord> {
    for (const l of lines(() => this.openFd(), offset, () => this.size)) {
      seq++;
      if (seq < start) continue;
      walk?.update(seq - start + 1);
      // The record alone is parsed when the line has the layout encodeEntry writes (the hashes are not needed here).
      const head = `{"seq":${seq},"prev":"`;
      const at = head.length + 64 + 10 + 64 + 11;
      if (l.text.startsWith(head) && l.text.startsWith(`","record":`, at - 11)) {
        yield JSON.parse(l.text.slice(at, -1)) as CallRecord;
        continue;
      }
      const e = JSON.parse(l.text) as Envelope;
      if (e.seq !== seq) throw new StoreCorruptError(this.file, seq, l.start, `envelope seq is ${e.seq} (the log changed under the store)`);
      yield e.record;
    }
  }

  /**
   * Records from `from` as replay needs them: the sequence and the facts (see "Replay" above). Each line's facts are cut
   * out of its bytes and parsed alone; a line not laid out as encodeEntry writes it is parsed whole.
   */
  *readFacts(from = 1): Iterable<ReplayItem> {
    const start = Math.max(1, Math.floor(from));
    if (start > this.last) return;
    const walk = FileEventStore.onWalk?.("read", this.last - start + 1);
    try {
      yield* this.factsOfLines(start, Infinity, walk ? (seq) => walk.update(seq - start + 1) : undefined);
    } finally {
      walk?.finish();
    }
  }

  /**
   * The records from `from` as replay needs them, each handed to `apply` (sequence, facts): from the facts cache where
   * it has them and they check (facts-cache.ts; `factsKey` is the simulator's), from the log's lines elsewhere. A
   * callback, not an iterator: at a few hundred nanoseconds a record, an iterator's result and item objects were a
   * quarter of what a replay allocates.
   */
  eachFacts(from: number, factsKey: Uint8Array, apply: (seq: number, facts: readonly Fact[]) => void): void {
    const start = Math.max(1, Math.floor(from));
    if (start > this.last) return;
    const walk = FileEventStore.onWalk?.("read", this.last - start + 1);
    const done = walk ? (seq: number) => walk.update(seq - start + 1) : undefined;
    const lines = (from: number, until: number) => {
      for (const r of this.factsOfLines(from, until, done)) apply(r.seq, r.facts);
    };
    let cacheFd = -1;
    try {
      try {
        if (this.factsCacheOn) cacheFd = fs.openSync(join(this.dir, FACTS_CACHE_FILE), "r");
      } catch {
        // No cache (yet): the log's lines.
      }
      if (cacheFd < 0) return lines(start, Infinity);
      const blocks = cacheBlocks(cacheFd, fs.fstatSync(cacheFd).size);
      const log = this.logReader();
      let next = start;
      let bi = 0;
      let warned = false;
      while (next <= this.last) {
        while (bi < blocks.length && blocks[bi]!.first + blocks[bi]!.count <= next) bi++;
        const b = blocks[bi];
        if (!b || b.first > next || b.first + b.count - 1 > this.last) {
          // Not cached: the lines up to the next block (or the end; records appended meanwhile included).
          const until = b && b.first > next ? b.first - 1 : Infinity;
          lines(next, until);
          if (until === Infinity) return;
          next = until + 1;
          continue;
        }
        bi++;
        const end = b.first + b.count;
        const d = openBlock(cacheFd, b, factsKey, log);
        let problem = d ? undefined : "does not match the log";
        if (d) {
          const r = applyBlock(d, b.first, end, next, done, apply);
          next = r.next;
          problem = r.problem;
        }
        if (problem !== undefined && !warned) {
          warned = true;
          this.warn(`hsmsim: the facts cache of ${this.dir} ${problem} at seq ${next}-${end - 1} (replay reads those records from the log)`);
        }
        if (next < end) lines(next, end - 1);
        next = end;
      }
    } finally {
      if (cacheFd >= 0) fs.closeSync(cacheFd);
      walk?.finish();
    }
  }

  /** The facts of the records `start`…`until` (or the log's end) from the log's lines. */
  private *factsOfLines(start: number, until: number, done: ((seq: number) => void) | undefined): Generator<ReplayItem> {
    if (start > this.last || start > until) return;
    let { seq, offset } = this.locate(start);
    for (const l of byteLines(() => this.openFd(), offset, () => this.size)) {
      seq++;
      if (!l.complete) throw new StoreCorruptError(this.file, seq, l.start, "a record without its newline inside the log (the log changed under the store)");
      if (seq < start) continue;
      done?.(seq);
      yield { seq, facts: factsOfLine(l.buf, l.from, l.to, seq) ?? this.factsParsedWhole(l, seq) };
      if (seq >= until) return;
    }
  }

  /** Reads bytes of the log at an offset (the facts cache checks that its blocks are bound to this log). */
  private logReader(): LogReader {
    return (offset, n) => {
      const b = Buffer.alloc(n);
      const got = offset < this.size ? fs.readSync(this.openFd(), b, 0, Math.min(n, this.size - offset), offset) : 0;
      return b.subarray(0, got);
    };
  }

  /**
   * Keep the facts cache from now on (facts-cache.ts), keyed by `key` (the simulator's, crypto/keys.ts): the simulator
   * calls this once it has replayed the log. Off with `factsCache: false`. A cache that cannot be opened is
   * a warning, never a failed store.
   */
  cacheFacts(key: Uint8Array): void {
    if (!this.factsCacheOn || this.factsCache || this.closed) return;
    try {
      this.factsCache = new FactsCacheWriter(this.dir, key, this.last, this.logReader(), this.warn);
    } catch (e) {
      this.warn(`hsmsim: no facts cache for ${this.dir} (replay reads the log): ${(e as Error).message}`);
    }
  }

  /** A line's facts from the whole envelope parsed (a line in another layout than encodeEntry's). */
  private factsParsedWhole(l: ByteLine, seq: number): readonly Fact[] {
    const e = JSON.parse(l.buf.toString("utf8", l.from, l.to)) as Envelope;
    if (e.seq !== seq) throw new StoreCorruptError(this.file, seq, l.start, `envelope seq is ${e.seq} (the log changed under the store)`);
    return e.record.facts;
  }

  /** fdatasync now (group and none modes; fsync mode is always synced). */
  sync(): void {
    if (this.closed) return;
    this.syncNow();
  }

  /** Sync (unless durability is "none"), close the log and release the lock. Idempotent. */
  close(): void {
    if (this.closed) return;
    try {
      this.settleWriter(true);
      if (this.snapshotOnClose && this.capture && this.last > this.snapshotSeq && !this.failed) this.snapshot();
      if (this.checkpointEvery > 0 && this.last > this.checkpointed && !this.failed) this.checkpoint();
      if (this.durability !== "none" && this.dirtySince !== null && !this.failed) this.syncNow();
    } finally {
      this.closed = true;
      this.factsCache?.close();
      clearTimeout(this.timer);
      OPEN.delete(this);
      fs.closeSync(this.fd);
      this.lock.release();
    }
  }

  /**
   * The simulator options and key this store's simulator is created with: read from simulator.json, or, for a new
   * store, written there (mode 0600) from `requested` and a fresh random 32-byte key. The key keys the PIN verifiers
   * and the sealed values in the log, so a reopened store needs it to log in and to replay digests; it is as secret as
   * the store itself (SoftHSM's token directory is too). An option given that differs from the stored one (or, when
   * not stored, from `defaults`) is a RangeError: the log's facts were decided under the stored options. A new store
   * stores `defaults` too, so that they are explicit in its settings.
   */
  settings(requested: Record<string, string | number> = {}, defaults: Record<string, string | number> = {}): StoreSettings {
    const path = join(this.dir, SETTINGS);
    let text: string | undefined;
    try {
      text = fs.readFileSync(path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    if (text === undefined) {
      if (this.last > 0) {
        throw new RangeError(
          `hsmsim: ${this.dir} holds ${this.last} records but no ${SETTINGS}: it was written by a simulator created in code; ` +
            `open it the same way, with the same options and simulatorKey`,
        );
      }
      const simulatorKey = new Uint8Array(nodeRandomBytes(32));
      const options = { ...defaults, ...requested };
      const body = JSON.stringify({ options, simulatorKey: bytesToHex(simulatorKey) }, null, 2) + "\n";
      // Written aside and renamed into place (under the store's lock), so a crash never leaves half a settings file.
      const tmp = path + ".tmp";
      const fd = fs.openSync(tmp, "w", 0o600);
      try {
        fs.writeFileSync(fd, body);
        if (this.durability !== "none") fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, path);
      if (this.durability !== "none") syncDir(this.dir);
      return { options, simulatorKey };
    }
    let stored: { options: Record<string, string | number>; simulatorKey: string };
    try {
      stored = JSON.parse(text) as typeof stored;
      if (typeof stored.options !== "object" || stored.options === null || !/^[0-9a-f]{64}$/.test(stored.simulatorKey)) throw new Error("bad shape");
    } catch (e) {
      throw new RangeError(`hsmsim: ${path} is not a valid settings file`, { cause: e });
    }
    for (const [k, v] of Object.entries(requested)) {
      const was = stored.options[k] ?? defaults[k];
      if (was !== v) {
        throw new RangeError(
          `hsmsim: ${this.dir} was created with ${k}=${was ?? "(not set)"}, not ${k}=${v}: open it without "${k}" or with the same value`,
        );
      }
    }
    return { options: { ...stored.options }, simulatorKey: hexToBytes(stored.simulatorKey) };
  }

  /**
   * The settings a store was created with, read without opening it (no lock taken: readers such as `hsmsim replay`
   * and `audit show` may look at a store another process is writing). Undefined when the store has none.
   */
  static readSettings(dir: string): StoreSettings | undefined {
    const path = join(resolve(dir), SETTINGS);
    const text = readText(path);
    if (text === undefined) return undefined;
    try {
      const stored = JSON.parse(text) as { options: Record<string, string | number>; simulatorKey: string };
      if (typeof stored.options !== "object" || stored.options === null || !/^[0-9a-f]{64}$/.test(stored.simulatorKey)) throw new Error("bad shape");
      return { options: { ...stored.options }, simulatorKey: hexToBytes(stored.simulatorKey) };
    } catch (e) {
      throw new RangeError(`hsmsim: ${path} is not a valid settings file`, { cause: e });
    }
  }

  /** The sequence of the last signed checkpoint (0: none yet). */
  get lastCheckpoint(): number {
    return this.checkpointed;
  }

  /** State snapshots (see "Snapshots" above): the simulator restores from them and attaches its capture. */
  get snapshots(): SnapshotHost {
    return {
      candidates: () => this.snapshotCandidates(),
      attach: (capture, replica) => {
        this.capture = capture;
        this.replica = replica;
        // The snapshot the log matched at open counts as written: the next one is due `snapshotEvery` records later.
        this.snapshotSeq = Math.max(this.snapshotSeq, this.base.seq);
      },
      warn: this.warn,
    };
  }

  /** What snapshot writing has cost so far. */
  get snapshotStats(): Readonly<SnapshotStats> {
    if (this.writer) this.collect(this.writer.results());
    return { ...this.stats };
  }

  /** Write a state snapshot now (when a simulator is attached and records were added since the last one). */
  snapshotNow(): void {
    if (this.closed) throw new StoreWriteError(`hsmsim: the event store in ${this.dir} is closed`);
    // One writer of snapshot files at a time: the background writer's markers are finished first.
    this.settleWriter(false);
    if (this.capture && this.last > this.snapshotSeq && !this.failed) this.snapshot();
  }

  // ---- internals ---------------------------------------------------------------------------------------------------

  /**
   * A snapshot of the state as of `last` is due: posted to the background writer (see "Snapshots"), or, without one
   * (`snapshotThread: false`, no replica given, or the writer could not be started), taken inline.
   */
  private snapshotDue(): void {
    const t0 = performance.now();
    if (!this.writer && this.snapshotThread && this.replica) this.startWriter();
    if (!this.writer) return this.snapshot();
    this.writer.post({ seq: this.last, head: this.head, offset: this.size });
    this.snapshotSeq = this.last;
    this.stats.lastPauseMs = performance.now() - t0;
  }

  /** Start the background writer (its thread, once per process, and this store's replica on it). */
  private startWriter(): void {
    try {
      this.writer = new BackgroundSnapshots({
        dir: this.dir,
        file: this.file,
        sync: this.durability !== "none",
        replica: this.replica!,
        source: this.snapshotFiles().find((f) => f.seq === this.replica!.restored && f.headerBytes > 0),
        kept: SNAPSHOTS_KEPT,
        from: { seq: this.last, offset: this.size },
      });
    } catch (e) {
      this.warn(`hsmsim: cannot write snapshots in the background (${(e as Error).message}): writing them inline`);
      this.replica = undefined;
    }
  }

  /** Wait for the background writer's markers (at close, and before an inline snapshot); `close`: then stop it. */
  private settleWriter(close: boolean): void {
    const writer = this.writer;
    if (!writer) return;
    this.collect(writer.settle(WRITER_WAIT_MS));
    if (close && this.writer) {
      this.writer.close();
      this.writer = undefined;
    }
  }

  /**
   * The background writer's results: stats, and warnings (a failed snapshot warns once per store, as inline). A writer
   * whose thread ended is let go: the snapshots due from then on are taken inline.
   */
  private collect(results: WriterResult[]): void {
    if (this.writer?.dead) {
      this.writer.close();
      this.writer = undefined;
      this.replica = undefined;
      this.warn(`hsmsim: the background snapshot writer of ${this.dir} ended: its snapshots are written inline from now on`);
    }
    for (const r of results) {
      if (r.kind === "written") {
        Object.assign(this.stats, {
          written: this.stats.written + 1,
          lastSeq: r.seq,
          lastBytes: r.bytes,
          lastCatchUpMs: r.catchUpMs,
          lastCaptureMs: r.captureMs,
          lastWriteMs: r.writeMs,
        });
      } else if (r.kind === "warning") this.warn(r.message);
      else if (r.kind === "failed" && !this.snapshotWarned) {
        this.snapshotWarned = true;
        this.warn(`hsmsim: could not write a state snapshot${r.seq ? ` of seq ${r.seq}` : ""} in ${this.dir}: ${r.message}`);
      }
    }
  }

  /**
   * Capture, seal and write a snapshot of the state as of `last`: to a temporary file, fsync'ed, renamed into place,
   * the directory fsync'ed (durability "none": no fsync), then older ones beyond the newest SNAPSHOTS_KEPT removed. The
   * log is synced first, so a snapshot on disk never describes records a power loss could take away. A snapshot that
   * cannot be taken or written is a warning (once per store), never a failed call: the log is the truth, the snapshot
   * only a shortcut.
   */
  private snapshot(): void {
    const seq = this.last;
    const head = this.head;
    const offset = this.size;
    this.snapshotSeq = seq;
    const t0 = performance.now();
    try {
      const body = this.capture!(seq, head);
      if (!body) return;
      const t1 = performance.now();
      if (this.durability !== "none" && this.dirtySince !== null) this.syncNow();
      writeSnapshotFile(this.dir, { seq, head, offset }, body, this.durability !== "none");
      const t2 = performance.now();
      Object.assign(this.stats, { written: this.stats.written + 1, lastSeq: seq, lastBytes: body.length, lastCatchUpMs: 0, lastCaptureMs: t1 - t0, lastWriteMs: t2 - t1, lastPauseMs: t2 - t0 });
    } catch (e) {
      if (e instanceof StoreWriteError) throw e; // the log's own sync failed: the store has stopped
      if (!this.snapshotWarned) this.warn(`hsmsim: could not write a state snapshot of seq ${seq} in ${this.dir}: ${(e as Error).message}`);
      this.snapshotWarned = true;
    }
  }

  /** The snapshot files in the directory, newest first, with what their headers say (unreadable headers: seq only). */
  private snapshotFiles(): SnapshotFile[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const files: SnapshotFile[] = [];
    for (const name of names) {
      const m = SNAPSHOT_FILE.exec(name);
      if (m) files.push({ name, seq: Number(m[1]), offset: -1, head: "", headerBytes: 0 });
      else if (name.endsWith(".snap.tmp") && !this.capture) rmQuiet(join(this.dir, name)); // a write a crash cut short
    }
    files.sort((a, b) => b.seq - a.seq);
    for (const f of files) {
      try {
        const fd = fs.openSync(join(this.dir, f.name), "r");
        try {
          const b = Buffer.alloc(200);
          const n = fs.readSync(fd, b, 0, b.length, 0);
          const h = SNAPSHOT_HEADER.exec(b.toString("latin1", 0, n));
          if (h && Number(h[1]) === f.seq) Object.assign(f, { head: h[2], offset: Number(h[3]), headerBytes: h[0].length });
        } finally {
          fs.closeSync(fd);
        }
      } catch {
        // unreadable: snapshotProblem says so
      }
    }
    return files;
  }

  /** Why a snapshot file cannot stand for the log's first `seq` records (size: the log's length), or undefined. */
  private snapshotProblem(f: SnapshotFile, size: number): string | undefined {
    if (f.headerBytes === 0) return "its header is missing or damaged";
    if (f.offset > size) return `the log ends before seq ${f.seq}`;
    const e = this.entryEndingAt(f.offset);
    if (e === undefined) return `the log ends before seq ${f.seq}, or seq ${f.seq} does not end at byte ${f.offset}`;
    if (entryProblem(e, f.seq, e.prev) !== undefined || e.hash !== f.head) return `the log's record ${f.seq} is not the one it was taken at`;
    return undefined;
  }

  /** The entry on the line that ends just before byte `end` (whose newline is byte end - 1), if it parses. */
  private entryEndingAt(end: number): Envelope | undefined {
    if (end <= 0) return undefined;
    let want = 4096;
    for (;;) {
      const from = Math.max(0, end - want);
      const b = Buffer.alloc(end - from);
      const n = fs.readSync(this.fd, b, 0, b.length, from);
      if (n !== b.length || b[b.length - 1] !== 10) return undefined;
      const nl = b.lastIndexOf(10, b.length - 2);
      if (nl >= 0 || from === 0) {
        try {
          const e = JSON.parse(b.toString("utf8", nl + 1, b.length - 1)) as Envelope;
          return e !== null && typeof e === "object" && typeof e.prev === "string" ? e : undefined;
        } catch {
          return undefined;
        }
      }
      want *= 4;
    }
  }

  /** The snapshots that match the log, newest first; each one passed over is a warning. */
  private *snapshotCandidates(): Generator<SnapshotCandidate> {
    for (const f of this.snapshotFiles()) {
      const problem = f.seq > this.last ? `the log ends at seq ${this.last}, before it` : this.snapshotProblem(f, this.size);
      if (problem) {
        this.warn(`hsmsim: snapshot ${f.name} is stale or foreign, passed over: ${problem}`);
        continue;
      }
      const path = join(this.dir, f.name);
      yield { seq: f.seq, head: f.head, name: f.name, body: () => new Uint8Array(fs.readFileSync(path).subarray(f.headerBytes)) };
    }
  }

  /** Where to start reading for record `start`: the sequence before the line at `offset`. */
  private locate(start: number): { seq: number; offset: number } {
    const k = Math.floor((start - 1) / INDEX_EVERY);
    // Opened from a snapshot: records after it are read from the snapshot's offset or the index built since.
    if (start > this.base.seq && (k * INDEX_EVERY < this.base.seq || this.index[k] === undefined)) return this.base;
    if (this.index[k] === undefined && !this.prefixIndexed) this.indexPrefix();
    const j = Math.min(k, this.index.length - 1);
    return { seq: j * INDEX_EVERY, offset: this.index[j]! };
  }

  /** Fill the index for the records before the snapshot the store was opened from (one pass over their newlines). */
  private indexPrefix(): void {
    let seq = 0;
    let pos = 0;
    const buf = Buffer.allocUnsafe(CHUNK);
    this.index[0] = 0;
    while (pos < this.base.offset) {
      const n = fs.readSync(this.fd, buf, 0, Math.min(CHUNK, this.base.offset - pos), pos);
      if (n === 0) break;
      for (let i = buf.indexOf(10, 0); i >= 0 && i < n; i = buf.indexOf(10, i + 1)) {
        seq++;
        if (seq % INDEX_EVERY === 0) this.index[seq / INDEX_EVERY] = pos + i + 1;
      }
      pos += n;
    }
    this.prefixIndexed = true;
  }

  /**
   * Sign (seq, head, now) and append it to checkpoints.log. The log line it covers is written first, so a checkpoint
   * never names a record the log lacks. A checkpoint that cannot be written is a warning, not a failed append: the
   * record is in the log; only the protection against cutting it short waits for the next checkpoint.
   */
  private checkpoint(): void {
    try {
      // The log first: a checkpoint on disk must never sign records that a power loss could still take away.
      if (this.durability !== "none" && this.dirtySince !== null) this.syncNow();
      this.auditKey ??= loadAuditKey(this.dir, this.auditKeyOption, () => new Uint8Array(nodeRandomBytes(32)), this.durability !== "none");
      const line = checkpointLine(signCheckpoint(this.auditKey, this.last, this.head, new Date().toISOString())) + "\n";
      const fd = fs.openSync(join(this.dir, CHECKPOINTS), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o644);
      try {
        fs.writeSync(fd, line);
        if (this.durability !== "none") fs.fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      this.checkpointed = this.last;
    } catch (e) {
      this.warn(`hsmsim: could not write a checkpoint for seq ${this.last} in ${this.dir}: ${(e as Error).message}`);
    }
  }

  /**
   * The checkpoints against the log as recovered: a torn last checkpoint line is cut (its write never finished); a
   * checkpoint past the log's end or naming another head means the log was cut or changed after it was signed, and
   * the store is refused (appending would reuse the sequences it signed). Signatures are the verifier's job.
   */
  private recoverCheckpoints(heads: Map<number, string>, checkpoints: ReturnType<typeof readCheckpoints>): void {
    const file = join(this.dir, CHECKPOINTS);
    const { lines, torn, tornOffset } = checkpoints;
    if (torn) {
      fs.truncateSync(file, tornOffset);
      this.warn(`hsmsim: cut a torn checkpoint at the end of ${file} (a write that did not finish)`);
    }
    for (const l of lines) {
      const c = l.checkpoint;
      if (!c) continue; // a damaged line: `hsmsim audit verify` names it
      if (c.seq > this.last) {
        throw new StoreCorruptError(
          this.file,
          this.last + 1,
          this.size,
          `the log ends at seq ${this.last} but ${CHECKPOINTS} line ${l.line} signed seq ${c.seq}: records were removed from its end`,
        );
      }
      const h = heads.get(c.seq);
      if (h !== undefined && h !== c.head) {
        throw new StoreCorruptError(this.file, c.seq, 0, `the chain hash at seq ${c.seq} is not the one ${CHECKPOINTS} line ${l.line} signed`);
      }
      this.checkpointed = Math.max(this.checkpointed, c.seq);
    }
  }

  private openFd(): number {
    if (this.closed) throw new StoreWriteError(`hsmsim: the event store in ${this.dir} is closed`);
    return this.fd;
  }

  /** Verify the whole log and cut a torn last line; sets size, last, head and the index. */
  private recover(): void {
    // The sequences checkpoints name, so the walk can keep the chain hash at each of them.
    const wanted = new Set<number>();
    // Read once (a 10M-record log has 10,000 of them): the walk wants their sequences, recoverCheckpoints the rest.
    const checkpoints = readCheckpoints(join(this.dir, CHECKPOINTS));
    for (const l of checkpoints.lines) if (l.checkpoint) wanted.add(l.checkpoint.seq);
    const heads = new Map<number, string>();
    const size = fs.fstatSync(this.fd).size;
    // The newest snapshot that matches the log: the records up to it are trusted (see "Snapshots"), the rest walked.
    const base = this.snapshotFiles().find((f) => this.snapshotProblem(f, size) === undefined) ?? { seq: 0, offset: 0, head: GENESIS };
    this.base = { seq: base.seq, offset: base.offset };
    this.prefixIndexed = base.seq === 0;
    if (base.seq > 0) heads.set(base.seq, base.head);
    let seq = base.seq;
    let prev = base.head;
    let good = base.offset;
    let torn: { offset: number; reason: string } | undefined;
    const walk = FileEventStore.onWalk?.("verify", Math.max(0, lastSeqOfLog(this.file) - base.seq));
    try {
      for (const l of lines(() => this.fd, base.offset, () => size)) {
        const expect = seq + 1;
        walk?.update(expect - base.seq);
        if (!l.complete) {
          torn = { offset: l.start, reason: "no newline at its end" };
          break;
        }
        let e: unknown;
        try {
          e = JSON.parse(l.text);
        } catch (err) {
          if (l.next === size) {
            torn = { offset: l.start, reason: "not JSON" };
            break;
          }
          throw new StoreCorruptError(this.file, expect, l.start, "not JSON", { cause: err });
        }
        const problem = entryProblem(e, expect, prev, l.text);
        if (problem !== undefined) throw new StoreCorruptError(this.file, expect, l.start, problem);
        if ((expect - 1) % INDEX_EVERY === 0) this.index[(expect - 1) / INDEX_EVERY] = l.start;
        seq = expect;
        prev = (e as Envelope).hash;
        if (wanted.has(seq)) heads.set(seq, prev);
        good = l.next;
      }
    } finally {
      walk?.finish();
    }
    if (torn) {
      fs.ftruncateSync(this.fd, good);
      fs.fdatasyncSync(this.fd);
      this.warn(
        `hsmsim: cut a torn record at the end of ${this.file} (seq ${seq + 1}, ${size - torn.offset} bytes at byte ${torn.offset}, ` +
          `${torn.reason}): a write that did not finish, never acknowledged`,
      );
    }
    this.size = good;
    this.last = seq;
    this.head = prev;
    this.recoverCheckpoints(heads, checkpoints);
  }

  private syncNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.dirtySince = null;
    try {
      fs.fdatasyncSync(this.fd);
    } catch (e) {
      // After a failed fsync the kernel may have dropped the dirty pages: retrying could report success for data
      // that is gone. The store stops here.
      this.failed = e as Error;
      throw new StoreWriteError(`hsmsim: could not sync ${this.file}: ${(e as Error).message}`, { cause: e });
    }
  }

  private backgroundSync(): void {
    if (this.closed || this.dirtySince === null || this.failed) return;
    try {
      this.syncNow();
    } catch (e) {
      this.warn(`${(e as Error).message}; appends to this store will fail`);
    }
  }

  /** @internal At process exit: sync what group commit still holds and release the lock (all synchronous). */
  exitNow(): void {
    try {
      this.close();
    } catch {
      // Exiting anyway; the next open takes the lock over and verifies the log.
    }
  }
}

interface SnapshotFile {
  name: string;
  seq: number;
  /** The log's length when it was taken (the byte after record seq's newline); -1 when the header is unreadable. */
  offset: number;
  head: string;
  headerBytes: number;
}

/**
 * Write `body` as the snapshot of record `at.seq` (whose line ends at byte `at.offset`, chain hash `at.head`): to a
 * temporary file, fsync'ed (`sync`), renamed into place, the directory fsync'ed, then the snapshots past it (they
 * describe records the log no longer holds) and all but the newest SNAPSHOTS_KEPT removed. The caller has synced the
 * log first. A crash at any point leaves the whole snapshot or none (a temporary file, removed at the next open).
 */
export function writeSnapshotFile(dir: string, at: { seq: number; head: string; offset: number }, body: Uint8Array, sync: boolean): void {
  const name = `snapshot-${String(at.seq).padStart(16, "0")}.snap`;
  const tmp = join(dir, name + ".tmp");
  try {
    const fd = fs.openSync(tmp, "w", 0o600);
    try {
      writeAll(fd, Buffer.from(`hsmsim-snapshot-file 1 ${at.seq} ${at.head} ${at.offset}\n`, "latin1"));
      writeAll(fd, body);
      if (sync) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, join(dir, name));
  } catch (e) {
    rmQuiet(tmp);
    throw e;
  }
  if (sync) syncDir(dir);
  const seqs = fs
    .readdirSync(dir)
    .map((n) => SNAPSHOT_FILE.exec(n))
    .filter((m) => m !== null)
    .map((m) => ({ name: m[0], seq: Number(m[1]) }))
    .sort((a, b) => b.seq - a.seq);
  for (const old of seqs.filter((f) => f.seq > at.seq)) rmQuiet(join(dir, old.name));
  for (const old of seqs.filter((f) => f.seq <= at.seq).slice(SNAPSHOTS_KEPT)) rmQuiet(join(dir, old.name));
}

function writeAll(fd: number, b: Uint8Array): void {
  for (let done = 0; done < b.length; ) done += fs.writeSync(fd, b, done, b.length - done);
}

/**
 * The sequence of the last whole record of a log file, read from its end (0 when it has none, or its last line is not
 * a record as the file store writes it): the total a bar over the log counts to.
 */
export function lastSeqOfLog(file: string): number {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch {
    return 0;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const b = Buffer.alloc(Math.min(size, 1 << 16));
    fs.readSync(fd, b, 0, b.length, size - b.length);
    const end = b.lastIndexOf(10);
    if (end < 0) return 0;
    const start = b.lastIndexOf(10, end - 1) + 1;
    const m = /^\{"seq":(\d+),/.exec(b.toString("latin1", start, Math.min(end, start + 40)));
    return m ? Number(m[1]) : 0;
  } finally {
    fs.closeSync(fd);
  }
}

// ---- the facts of a line ------------------------------------------------------------------------------------------

const ascii = (t: string) => Buffer.from(t, "latin1");
const SEQ_KEY = ascii(`{"seq":`);
const PREV_KEY = ascii(`,"prev":"`);
const HASH_KEY = ascii(`","hash":"`);
const RECORD_APP_KEY = ascii(`","record":{"app":`);
const ARGS_KEY = ascii(`,"args":`);
const FACTS_KEY = ascii(`,"facts":`);
/** What follows the facts array in a canonical record (keys sorted: app, args, facts, fn, …). */
const FACTS_END = ascii(`],"fn":"`);
const NO_FACTS: readonly Fact[] = Object.freeze([]);

/** Whether b[i…] holds `t`. */
function holds(b: Buffer, i: number, t: Buffer): boolean {
  for (let k = 0; k < t.length; k++) if (b[i + k] !== t[k]) return false;
  return true;
}

/** The index after the decimal digits at b[i…] (i itself when there are none). */
function digitsEnd(b: Buffer, i: number, end: number): number {
  while (i < end && b[i]! >= 48 && b[i]! <= 57) i++;
  return i;
}

/**
 * The index after the JSON object or array that starts at b[i] (a `{` or `[`), or -1 when it does not end before
 * `end`. Strings are skipped whole, escapes included, so brackets inside them do not count.
 */
function skipContainer(b: Buffer, i: number, end: number): number {
  let depth = 0;
  while (i < end) {
    const c = b[i]!;
    if (c === 34 /* " */) {
      for (i++; i < end && b[i] !== 34; i++) if (b[i] === 92 /* \ */) i++;
    } else if (c === 123 /* { */ || c === 91 /* [ */) depth++;
    else if (c === 125 /* } */ || c === 93 /* ] */) {
      if (--depth === 0) return i + 1;
    }
    i++;
  }
  return -1;
}

/**
 * The facts of the line b[s, e) at sequence `seq`, decoded without parsing the rest of the line; undefined when the
 * line is not laid out as encodeEntry writes it (the caller then parses it whole).
 *
 * The layout: `{"seq":N,"prev":"<64>","hash":"<64>","record":` and the record's canonical JSON, whose keys are sorted,
 * so it reads `{"app":N,"args":{…},"facts":[…],"fn":"…",…}`. The args object is skipped by bracket counting (strings
 * skipped whole). The facts array then ends at the first `],"fn":"` after it: no string can hold that text (a `"`
 * inside a JSON string is escaped, so `,"` never occurs in one), and a `]` followed by a key "fn" inside the facts
 * would close an inner array, leaving the cut text unbalanced: JSON.parse then throws and the line is parsed whole.
 * A cut that parses is therefore exactly the record's facts array.
 */
export function factsOfLine(b: Buffer, s: number, e: number, seq: number): readonly Fact[] | undefined {
  if (!holds(b, s, SEQ_KEY)) return undefined;
  let i = s + SEQ_KEY.length;
  let n = 0;
  const seqEnd = digitsEnd(b, i, e);
  for (let k = i; k < seqEnd; k++) n = n * 10 + b[k]! - 48;
  if (seqEnd === i || n !== seq || !holds(b, seqEnd, PREV_KEY)) return undefined;
  i = seqEnd + PREV_KEY.length + 64;
  if (!holds(b, i, HASH_KEY)) return undefined;
  i += HASH_KEY.length + 64;
  if (!holds(b, i, RECORD_APP_KEY)) return undefined;
  i = digitsEnd(b, i + RECORD_APP_KEY.length, e);
  if (!holds(b, i, ARGS_KEY) || b[i + ARGS_KEY.length] !== 123 /* { */) return undefined;
  i = skipContainer(b, i + ARGS_KEY.length, e);
  if (i < 0 || !holds(b, i, FACTS_KEY)) return undefined;
  i += FACTS_KEY.length;
  if (b[i] !== 91 /* [ */) return undefined;
  if (b[i + 1] === 93 /* ] */) return NO_FACTS;
  const close = b.indexOf(FACTS_END, i);
  if (close < 0 || close >= e) return undefined;
  try {
    const facts: unknown = JSON.parse(b.toString("utf8", i, close + 1));
    return Array.isArray(facts) ? (facts as Fact[]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The records of a log file from byte `offset` (the line of record `seq` + 1) to byte `end`, as replay needs them, each
 * with where its line starts and where the next one does: how the background snapshot writer's replica follows the log
 * the store appends to (snapshot-writer.ts). The lines were verified by the store that wrote them.
 */
export function* logFacts(fd: number, seq: number, offset: number, end: number): Generator<ReplayItem & { start: number; next: number }> {
  for (const l of byteLines(() => fd, offset, () => end)) {
    seq++;
    if (!l.complete) throw new RangeError(`the log holds no whole line for seq ${seq} before byte ${end}`);
    const facts = factsOfLine(l.buf, l.from, l.to, seq) ?? (JSON.parse(l.buf.toString("utf8", l.from, l.to)) as Envelope).record.facts;
    yield { seq, facts, start: l.start, next: l.next };
  }
}

// ---- reading lines -----------------------------------------------------------------------------------------------

interface Line {
  text: string;
  /** Byte offset of the line's first byte, and of the byte after its newline (or after its last byte). */
  start: number;
  next: number;
  /** Ended by a newline. Only the last line of a file can be incomplete. */
  complete: boolean;
}

/** The lines of the file from byte `from` to `end()` (re-read at each refill, so lines appended meanwhile count). */
function* lines(fd: () => number, from: number, end: () => number): Generator<Line> {
  for (const l of byteLines(fd, from, end)) yield { text: l.buf.toString("utf8", l.from, l.to), start: l.start, next: l.next, complete: l.complete };
}

/** A line as bytes: buf[from, to) without its newline; start / next / complete as in Line. */
interface ByteLine {
  buf: Buffer;
  from: number;
  to: number;
  start: number;
  next: number;
  complete: boolean;
}

/**
 * The lines of the file from byte `from` to `end()` as bytes, read in CHUNK-sized reads (`end` is re-read at each
 * refill, so lines appended meanwhile count). One object is yielded again and again, changed: use it before the next.
 */
function* byteLines(fd: () => number, from: number, end: () => number): Generator<ByteLine> {
  let buf = Buffer.alloc(0);
  let base = from; // file offset of buf[0]
  let off = 0; // first unconsumed byte of buf
  const l: ByteLine = { buf, from: 0, to: 0, start: 0, next: 0, complete: true };
  for (;;) {
    const nl = buf.indexOf(10, off);
    if (nl >= 0) {
      l.buf = buf;
      l.from = off;
      l.to = nl;
      l.start = base + off;
      l.next = base + nl + 1;
      yield l;
      off = nl + 1;
      continue;
    }
    const at = base + buf.length;
    const limit = end();
    if (at >= limit) {
      if (off < buf.length) yield Object.assign(l, { buf, from: off, to: buf.length, start: base + off, next: at, complete: false });
      return;
    }
    // Refill, keeping the unfinished line.
    const keep = buf.length - off;
    const want = Math.min(CHUNK, limit - at);
    const next = Buffer.allocUnsafe(keep + want);
    buf.copy(next, 0, off);
    let got = 0;
    while (got < want) {
      const n = fs.readSync(fd(), next, keep + got, want - got, at + got);
      if (n === 0) break;
      got += n;
    }
    buf = next.subarray(0, keep + got);
    base += off;
    off = 0;
    if (got === 0) {
      if (keep > 0) yield Object.assign(l, { buf, from: 0, to: keep, start: base, next: base + keep, complete: false });
      return;
    }
  }
}

// ---- the lock ----------------------------------------------------------------------------------------------------

const PROCESS_STARTED = new Date(Date.now() - process.uptime() * 1000).toISOString();

/** Linux: a process's state and start time (clock ticks since boot), fields 3 and 22 of /proc/<pid>/stat. */
function procStat(pid: number): { state: string; start: string } | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
    // Fields after the command (which may hold spaces and parentheses) start at field 3.
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { state: f[0]!, start: f[22 - 3]! };
  } catch {
    return undefined;
  }
}

function parseHolder(text: string | undefined): LockHolder | undefined {
  if (!text) return undefined;
  try {
    const h = JSON.parse(text) as LockHolder;
    return Number.isSafeInteger(h.pid) && h.pid > 0 && typeof h.host === "string" && typeof h.id === "string" ? h : undefined;
  } catch {
    return undefined;
  }
}


/** Whether the process that wrote a lock may still be running. */
function holderRunning(h: LockHolder): boolean {
  if (h.host !== hostname()) return true; // another machine's processes cannot be checked
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") return false;
    // EPERM: running, as another user.
  }
  const stat = procStat(h.pid);
  if (!stat) return true;
  // A killed process whose parent has not reaped it yet (a zombie) still answers kill(pid, 0).
  if (stat.state === "Z" || stat.state === "X") return false;
  // Running, but is it the same process? After a crash the pid may have been reused (containers restart with the
  // same small pids), and a lock that outlived its process would then never be released.
  return h.procStart === undefined || stat.start === h.procStart;
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

class Lock {
  private constructor(
    private readonly path: string,
    private readonly holder: LockHolder,
  ) {}

  static acquire(dir: string, warn: (m: string) => void): Lock {
    const path = join(dir, LOCK);
    const me: LockHolder = {
      pid: process.pid,
      host: hostname(),
      started: PROCESS_STARTED,
      acquired: new Date().toISOString(),
      procStart: procStat(process.pid)?.start,
      id: randomUUID(),
    };
    let unreadable = 0;
    for (let attempt = 0; attempt < 20; attempt++) {
      let fd: number;
      try {
        fd = fs.openSync(path, "wx", 0o644);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        let text: string | undefined;
        try {
          text = readText(path);
        } catch (err) {
          throw new StoreLockedError(dir, undefined, { cause: err }); // e.g. EACCES: someone else's lock
        }
        if (text === undefined) continue; // released meanwhile: try again
        const holder = parseHolder(text);
        if (holder) {
          if (holderRunning(holder)) throw new StoreLockedError(dir, holder);
          if (takeOver(path, text)) warn(`hsmsim: took over the lock on ${dir} left by process ${holder.pid} (started ${holder.started}), which is no longer running`);
          continue;
        }
        // Empty or garbled: a writer between creating the file and writing it (a millisecond), or one that died
        // there. Wait a little before judging it stale.
        if (++unreadable < 5) {
          sleep(20);
          continue;
        }
        if (takeOver(path, text)) warn(`hsmsim: took over an unreadable lock file on ${dir} (left by a process that died while taking it)`);
        continue;
      }
      try {
        fs.writeSync(fd, JSON.stringify(me));
      } finally {
        fs.closeSync(fd);
      }
      return new Lock(path, me);
    }
    throw new StoreLockedError(dir, parseHolder(readText(path)));
  }

  release(): void {
    try {
      if (parseHolder(readText(this.path))?.id === this.holder.id) fs.unlinkSync(this.path);
    } catch {
      // Gone already, or unreadable: nothing of ours to remove.
    }
  }
}

/**
 * Remove a stale lock whose contents were `seen`, unless it changed meanwhile (someone else took it over first).
 * Only one process at a time does this, under an O_EXCL marker; true when this call removed it.
 */
function takeOver(path: string, seen: string): boolean {
  const marker = path + ".takeover";
  let fd: number;
  try {
    fd = fs.openSync(marker, "wx", 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    const pid = Number(readText(marker));
    // Another opener is taking it over now: let it finish. One that died doing so leaves its marker: remove it.
    if (Number.isSafeInteger(pid) && pid > 0 && holderRunning({ pid, host: hostname() } as LockHolder)) sleep(5);
    else rmQuiet(marker);
    return false;
  }
  try {
    fs.writeSync(fd, String(process.pid));
    if (readText(path) !== seen) return false;
    rmQuiet(path);
    return true;
  } finally {
    fs.closeSync(fd);
    rmQuiet(marker);
  }
}

function rmQuiet(path: string): void {
  try {
    fs.unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

// ---- process exit ------------------------------------------------------------------------------------------------

/** Stores open in this process: an exit without close() still syncs them and releases their locks. */
const OPEN = new Set<FileEventStore>();
let exitHook = false;

function registerExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.on("exit", () => {
    for (const s of [...OPEN]) s.exitNow();
  });
}

/**
 * One cache block's records from `next` on, each handed to `apply`: the next record not applied, and what is wrong
 * with the block if it does not decode whole. A function of its own, apart from eachFacts' walk over blocks, so that
 * the JIT compiles this loop small and early: the first tens of thousands of records of a replay run before the
 * optimizing compiler has caught up (docs/notes/replay-speed.md, "Warm-up").
 */
function applyBlock(
  d: FactsBlockDecoder,
  first: number,
  end: number,
  next: number,
  done: ((seq: number) => void) | undefined,
  apply: (seq: number, facts: readonly Fact[]) => void,
): { next: number; problem: string | undefined } {
  try {
    for (let seq = first; seq < end; seq++) {
      const facts = d.next() as Fact[];
      if (seq < next) continue;
      done?.(seq);
      apply(seq, facts);
      next = seq + 1;
    }
    return { next, problem: d.done ? undefined : "has bytes past its records" };
  } catch (e) {
    if (!(e instanceof FactsCodecError)) throw e;
    return { next, problem: `does not decode (${e.message})` };
  }
}
