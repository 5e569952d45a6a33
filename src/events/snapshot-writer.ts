/**
 * The stores' background snapshot writer (issue 5): periodic state snapshots sealed (and, for the file store, written)
 * by a worker thread, so that the call that finds one due is not held up by it. The file store's replica reads the
 * log file itself; the JetStream store hands over the records' canonical texts with each marker and gets the sealed
 * body back, to upload to KV (jetstream-store.ts "Snapshots").
 *
 * Why a replica and not a copy. A snapshot must describe the state after its record exactly, and the write model is
 * mutated in place by the calls that follow, so whatever is deferred must not read the live state. Copying it
 * costs about as much as encoding it: for 100,000 objects and 10,000 sessions the codec's walk alone takes 0.9–1.4 s
 * of the 2.4 s a snapshot took, structuredClone of the tokens 2–3 s (docs/notes/snapshot-pause.md). What does not
 * change is the log: record `seq` and every one before it are on disk, written with writeSync, before the append
 * after it returns. So the worker keeps its own simulator, a replica of the attached one (same options and simulator
 * key, restored from the same snapshot), and brings it to record `seq` by replaying the log's facts from where it
 * left off, exactly as a simulator reopened on the store would (deterministic replay, test/property/replay); then it
 * seals it (snapshot.ts) and writes the file (file-store.ts writeSnapshotFile), the log fdatasync'ed first. All the
 * calling append does is post the marker `{ seq, head, offset }`: the record, its chain hash, where its line ends.
 *
 * One worker thread per process serves every file store that writes snapshots this way (a test file opens hundreds
 * of stores), each store through its own MessagePort and a shared counter of the markers it has finished. The thread
 * and a store's replica are started half-way to the store's first snapshot due, not at open (most stores never reach
 * one); the thread is unref'ed (it never keeps a process alive) and goes once no store has used it for 10 s. A thread
 * that ended (a crash) is noticed by the stores using it: they warn and write their snapshots inline. Per store, markers are handled in order, one at a time: at most one snapshot is being written. Markers that
 * pile up while one is written are thinned to the newest SNAPSHOTS_KEPT (2): the store keeps only that many files, so
 * an older one would be removed as soon as a newer one landed; the files left are the ones writing every marker in
 * turn would leave. The store collects the results (stats, warnings) without waiting, at its next appends, and waits
 * for all its markers at close (and at process exit, through close) before it writes its closing snapshot inline.
 *
 * The replica's key and options are handed to the worker in memory (postMessage within the process), never written.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { isMainThread, MessageChannel, parentPort, receiveMessageOnPort, Worker, workerData, type MessagePort } from "node:worker_threads";
import type { Simulator as SimulatorType } from "../actors/simulator.js";
import type { EventStore, ReplayItem, ReplicaSpec, SnapshotCandidate } from "./store.js";

const ROLE = "hsmsim-snapshot-writer";

/** The snapshot the replica restores from: the one the attached simulator was restored from. */
export interface SnapshotSource {
  name: string;
  seq: number;
  head: string;
  /** The byte after record `seq`'s line in the log, and the length of the file's header line (a file). */
  offset: number;
  headerBytes: number;
  /** The sealed body itself, when the store hands it over (the JetStream store) instead of a file name. */
  body?: Uint8Array;
}

export interface WriterConfig {
  /** Where snapshot files go (the file store); without it the sealed body is sent back (the JetStream store). */
  dir?: string;
  /**
   * The log file the replica reads (the file store); without it the store hands over the records' canonical texts:
   * `lines` here (the records after the source up to `from`), then with each marker.
   */
  file?: string;
  lines?: string;
  /** fsync the log, the snapshot and the directory (durability other than "none"). */
  sync: boolean;
  replica: ReplicaSpec;
  source: SnapshotSource | undefined;
  kept: number;
  /** The log's end when the writer was started: the replica is built up to it at once, before any marker comes. */
  from: { seq: number; offset: number };
}

/**
 * A snapshot due: of record `seq`, chain hash `head`, whose line ends at byte `offset` of the log (a log file; 0
 * otherwise), and, without a log file, the canonical texts of the records since the previous marker, one a line.
 */
export interface Marker {
  seq: number;
  head: string;
  offset: number;
  lines?: string;
}

/** What became of a marker. Times in milliseconds, spent by the worker. */
export type WriterResult =
  | { kind: "written"; seq: number; bytes: number; catchUpMs: number; captureMs: number; writeMs: number }
  /** Sealed and sent back (no `dir`): the store keeps it. */
  | { kind: "sealed"; seq: number; head: string; body: Uint8Array; catchUpMs: number; captureMs: number }
  | { kind: "skipped"; seq: number; why: string }
  | { kind: "failed"; seq: number; message: string }
  /** Told by the replica as it restores (not a marker's result). */
  | { kind: "warning"; message: string };

/** Slots of the process-wide shared counter: [0] set to 1 when the worker died. */
const DEAD = 0;

/** How long the writer thread stays once no store uses it (a process that opens stores one after another keeps it). */
const IDLE_MS = 10_000;

interface WriterThread {
  worker: Worker;
  status: Int32Array;
  /** Stores using it. */
  users: number;
  idle: NodeJS.Timeout | undefined;
}

let thread: WriterThread | undefined;

/** The process's writer thread, started on first use. */
function writerThread(): WriterThread {
  if (thread) return thread;
  const status = new Int32Array(new SharedArrayBuffer(4));
  const worker = startWorker({ role: ROLE, status });
  worker.unref();
  const t: WriterThread = { worker, status, users: 0, idle: undefined };
  // A worker that ended (it crashed, or was let go when idle) is replaced at the next use; stores using it see DEAD.
  worker.on("error", () => undefined);
  worker.on("exit", () => {
    Atomics.store(status, DEAD, 1);
    if (thread === t) thread = undefined;
  });
  thread = t;
  return t;
}

/**
 * @internal For tests: end the writer thread now, as a crash would (the stores using it see it ended and write their
 * snapshots inline from then on).
 */
export async function stopWriterThread(): Promise<void> {
  const t = thread;
  if (!t) return;
  await t.worker.terminate();
  Atomics.store(t.status, DEAD, 1);
  if (thread === t) thread = undefined;
}

/** One store's side of the writer: post markers, collect results, wait for them at close. */
export class BackgroundSnapshots {
  private readonly port: MessagePort;
  /** [0]: markers finished by the worker (written, skipped or failed). */
  private readonly done = new Int32Array(new SharedArrayBuffer(4));
  private readonly status: Int32Array;
  private posted = 0;
  private collected = 0;

  private readonly thread: WriterThread;

  constructor(config: WriterConfig) {
    const t = (this.thread = writerThread());
    this.status = t.status;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    // Throws (DataCloneError) for options that are not plain data: the store then writes its snapshots inline.
    t.worker.postMessage({ config, port: port2, done: this.done }, [port2]);
    t.users++;
    clearTimeout(t.idle);
  }

  /** The worker thread ended (crashed): no marker will be finished any more. */
  get dead(): boolean {
    return Atomics.load(this.status, DEAD) === 1;
  }

  post(m: Marker): void {
    this.port.postMessage(m);
    this.posted++;
  }

  private waiting: (() => void)[] = [];

  /**
   * Take the results as they come, on the event loop (a store that runs there: the JetStream store), instead of
   * collecting them with `results`. The port does not keep the process alive.
   */
  listen(onResult: (r: WriterResult) => void): void {
    this.port.on("message", (r: WriterResult) => {
      if (r.kind !== "warning") this.collected++;
      onResult(r);
      if (this.collected >= this.posted) for (const f of this.waiting.splice(0)) f();
    });
    this.port.unref();
  }

  /** With `listen`: resolves once every marker posted is finished, the thread ended, or `timeoutMs` passed. */
  async drained(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.collected < this.posted && !this.dead && performance.now() < deadline) {
      await new Promise<void>((r) => {
        this.waiting.push(r);
        setTimeout(r, 100); // to look at `dead` again
      });
    }
  }

  /** The results finished since the last call, without waiting (`all`: warnings too, though no marker finished). */
  results(all = false): WriterResult[] {
    const out: WriterResult[] = [];
    const dead = this.dead;
    if (!all && !dead && Atomics.load(this.done, 0) === this.collected) return out;
    let m: { message: WriterResult } | undefined;
    while ((m = receiveMessageOnPort(this.port) as { message: WriterResult } | undefined)) {
      out.push(m.message);
      if (m.message.kind !== "warning") this.collected++;
    }
    if (dead && this.collected < this.posted) {
      out.push({ kind: "failed", seq: 0, message: "the snapshot writer thread ended" });
      this.collected = this.posted;
    }
    return out;
  }

  /**
   * Wait until every marker posted is finished (or `timeoutMs` passed, or the worker died: the markers left are then
   * failures); the results not collected before, warnings included.
   */
  settle(timeoutMs: number): WriterResult[] {
    const out = this.results();
    const deadline = performance.now() + timeoutMs;
    while (this.collected < this.posted) {
      const seen = Atomics.load(this.done, 0);
      if (seen > this.collected) {
        out.push(...this.results());
        continue;
      }
      const left = deadline - performance.now();
      if (Atomics.load(this.status, DEAD) === 1 || left <= 0) {
        const why = left <= 0 ? `not finished after ${timeoutMs} ms` : "the snapshot writer thread ended";
        out.push({ kind: "failed", seq: 0, message: why });
        this.collected = this.posted;
        break;
      }
      Atomics.wait(this.done, 0, seen, Math.min(left, 100));
    }
    out.push(...this.results(true));
    return out;
  }

  /** Stop using the worker (after `settle`): it drops this store's replica; the thread goes once idle for IDLE_MS. */
  close(): void {
    this.port.close();
    const t = this.thread;
    if (--t.users > 0) return;
    t.idle = setTimeout(() => {
      if (t.users > 0) return;
      if (thread === t) thread = undefined;
      void t.worker.terminate();
    }, IDLE_MS);
    t.idle.unref();
  }
}

/**
 * The worker: this module started again in a worker thread. Run from the TypeScript sources (vitest, tsx), through
 * tsx's loader registered inside the worker (a worker does not inherit the loader of the thread that started it), as
 * src/remote/sync-client.ts starts its own.
 */
function startWorker(data: { role: string; status: Int32Array }): Worker {
  const self = import.meta.url;
  if (self.endsWith(".ts")) {
    const pkg = createRequire(self).resolve("tsx/package.json");
    const entry = (JSON.parse(fs.readFileSync(pkg, "utf8")) as { exports: Record<string, { import: { default: string } }> }).exports["./esm/api"]!;
    const tsx = pathToFileURL(join(dirname(pkg), entry.import.default)).href;
    const code = `import(${JSON.stringify(tsx)}).then((a) => { a.register(); return import(${JSON.stringify(self)}); });`;
    return new Worker(code, { eval: true, workerData: data });
  }
  return new Worker(new URL(self), { workerData: data });
}

// ---- the worker side ------------------------------------------------------------------------------------------------

interface OpenMessage {
  config: WriterConfig;
  port: MessagePort;
  done: Int32Array;
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) {
  const status = (workerData as { status: Int32Array }).status;
  process.on("exit", () => {
    Atomics.store(status, DEAD, 1);
    Atomics.notify(status, DEAD);
  });
  void runWorker(status);
}

async function runWorker(status: Int32Array): Promise<void> {
  let modules: [typeof import("../actors/simulator.js"), typeof import("./file-store.js")];
  try {
    modules = await Promise.all([import("../actors/simulator.js"), import("./file-store.js")]);
  } catch {
    // Nothing can be written: the stores see DEAD and write their snapshots inline.
    Atomics.store(status, DEAD, 1);
    Atomics.notify(status, DEAD);
    process.exit(1);
  }
  const [{ Simulator }, { logFacts, writeSnapshotFile }] = modules;

  /** One store's replica: a simulator on a read-only view of its log, brought forward marker by marker. */
  class Replica {
    /** The log, read-only: opened when the replica is first built (a failure then is that marker's result). */
    private fd = -1;
    private sim: SimulatorType | undefined;
    private capture: ((seq: number, head: string) => Uint8Array | undefined) | undefined;
    /** The last record applied, and the byte after its line. */
    private cursor = { seq: 0, offset: 0 };
    /** The last record of the current marker (the replica's log ends there). */
    private end = { seq: 0, offset: 0 };
    /** The last line read: where it starts (its chain hash is checked against the marker's). */
    private lastLine = -1;
    private queue: Marker[] = [];
    private scheduled = false;
    private closed = false;
    /** Without a log file: the records' texts handed over and not yet folded in, the first being record fedBase + 1. */
    private fed: string[] = [];
    private fedBase = 0;

    constructor(
      private readonly config: WriterConfig,
      private readonly port: MessagePort,
      private readonly done: Int32Array,
    ) {
      this.end = { ...config.from };
      if (!config.file) {
        this.fedBase = config.source?.seq ?? 0;
        if (config.lines) this.fed = config.lines.split("\n");
      }
      setImmediate(() => {
        if (this.closed || this.sim) return;
        try {
          this.build();
        } catch {
          // Tried again with the first marker, whose result says why.
        }
      });
      port.on("message", (m: Marker) => {
        this.take(m);
        this.schedule();
      });
      port.on("close", () => this.close());
    }

    /** A marker in: its records' texts are kept at once (a marker thinned away still brings its records). */
    private take(m: Marker): void {
      if (m.lines) for (const l of m.lines.split("\n")) this.fed.push(l);
      this.queue.push(m);
    }

    private schedule(): void {
      if (this.scheduled || this.closed) return;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.next();
      });
    }

    /** Handle the oldest marker worth writing; markers beyond the newest `kept` are thinned (see the module comment). */
    private next(): void {
      if (this.closed) return;
      let m: { message: Marker } | undefined;
      while ((m = receiveMessageOnPort(this.port) as typeof m)) this.take(m.message);
      while (this.queue.length > this.config.kept) this.finish({ kind: "skipped", seq: this.queue.shift()!.seq, why: "a newer one was due" });
      const marker = this.queue.shift();
      if (!marker) return;
      let result: WriterResult;
      try {
        result = this.write(marker);
      } catch (e) {
        result = { kind: "failed", seq: marker.seq, message: (e as Error).message };
      }
      this.finish(result);
      if (this.queue.length > 0) this.schedule();
    }

    private finish(r: WriterResult): void {
      this.port.postMessage(r, r.kind === "sealed" ? [r.body.buffer as ArrayBuffer] : []);
      Atomics.add(this.done, 0, 1);
      Atomics.notify(this.done, 0);
    }

    private write(m: Marker): WriterResult {
      const t0 = performance.now();
      this.end = { seq: m.seq, offset: m.offset };
      if (!this.sim) this.build();
      else this.sim.catchUp();
      if (this.cursor.seq !== m.seq || this.cursor.offset !== m.offset) throw new Error(`the replica reached seq ${this.cursor.seq}, not ${m.seq}`);
      this.checkHead(m);
      const t1 = performance.now();
      const body = this.capture?.(m.seq, m.head);
      if (!body) return { kind: "skipped", seq: m.seq, why: "the replica's state is not that of its record" };
      const t2 = performance.now();
      if (!this.config.file) {
        // The records folded in are let go; the store uploads the body once the record's message is acknowledged.
        this.fed.splice(0, this.cursor.seq - this.fedBase);
        this.fedBase = this.cursor.seq;
      }
      if (!this.config.dir) return { kind: "sealed", seq: m.seq, head: m.head, body, catchUpMs: t1 - t0, captureMs: t2 - t1 };
      // The log first: a snapshot on disk never describes records a power loss could take away. fdatasync on this
      // descriptor flushes the file's data, whoever wrote it.
      if (this.config.sync) fs.fdatasyncSync(this.fd);
      writeSnapshotFile(this.config.dir, m, body, this.config.sync);
      return { kind: "written", seq: m.seq, bytes: body.length, catchUpMs: t1 - t0, captureMs: t2 - t1, writeMs: performance.now() - t2 };
    }

    /** The replica: restored from the snapshot the attached simulator was restored from, the log replayed after it. */
    private build(): void {
      if (this.config.file && this.fd < 0) this.fd = fs.openSync(this.config.file, "r");
      // From scratch (a build that failed half-way may have moved them): the simulator says where it reads from.
      this.cursor = { seq: 0, offset: 0 };
      this.lastLine = -1;
      this.sim = new Simulator({ ...this.config.replica.options, simulatorKey: this.config.replica.simulatorKey, store: this.log() });
    }

    /** The log's line of record `m.seq` carries the chain hash the store gave: the replica read the records it wrote. */
    private checkHead(m: Marker): void {
      if (m.seq === 0 || this.lastLine < 0 || !this.config.file) return;
      const prefix = `{"seq":${m.seq},"prev":"`;
      const b = Buffer.alloc(prefix.length + 64 + 10 + 64);
      fs.readSync(this.fd, b, 0, b.length, this.lastLine);
      const hash = b.toString("latin1", prefix.length + 64 + 10);
      if (b.toString("latin1", 0, prefix.length) !== prefix || hash !== m.head) throw new Error(`the log's record ${m.seq} is not the one the store wrote`);
    }

    /** The replica's store: the log up to the current marker, read-only, and the snapshot the simulator restored. */
    private log(): EventStore {
      const source = this.config.source;
      const candidates: SnapshotCandidate[] = source
        ? [
            {
              seq: source.seq,
              head: source.head,
              name: source.name,
              body: () => source.body ?? new Uint8Array(fs.readFileSync(join(this.config.dir!, source.name)).subarray(source.headerBytes)),
            },
          ]
        : [];
      const end = () => this.end.seq;
      const refuse = (): never => {
        throw new Error("the snapshot writer's replica of the log is read-only");
      };
      return {
        get lastSeq() {
          return end();
        },
        append: refuse,
        read: refuse,
        readFacts: (from = 1) => this.facts(from),
        snapshots: {
          candidates: () => candidates,
          attach: (capture) => (this.capture = capture),
          warn: (message) => this.port.postMessage({ kind: "warning", message } satisfies WriterResult),
        },
      };
    }

    private *facts(from: number): Generator<ReplayItem> {
      if (!this.config.file) return yield* this.fedFacts(from);
      // From the record after the cursor, or (the simulator's first read) after the snapshot it restored.
      const source = this.config.source;
      if (from !== this.cursor.seq + 1) {
        if (source && from === source.seq + 1) this.cursor = { seq: source.seq, offset: source.offset };
        else if (from !== 1) throw new Error(`the replica cannot read from seq ${from}`);
      }
      for (const r of logFacts(this.fd, this.cursor.seq, this.cursor.offset, this.end.offset)) {
        this.cursor = { seq: r.seq, offset: r.next };
        this.lastLine = r.start;
        yield r;
      }
    }

    /** The records handed over, from `from` to the current marker: each text's facts (a record's canonical JSON). */
    private *fedFacts(from: number): Generator<ReplayItem> {
      for (let seq = from; seq <= this.end.seq; seq++) {
        const text = this.fed[seq - this.fedBase - 1];
        if (text === undefined) throw new Error(`the replica was not handed record ${seq}`);
        this.cursor = { seq, offset: 0 };
        yield { seq, facts: (JSON.parse(text) as { facts: ReplayItem["facts"] }).facts };
      }
    }

    private close(): void {
      if (this.closed) return;
      this.closed = true;
      this.queue = [];
      this.sim = undefined;
      this.port.close();
      if (this.fd >= 0) fs.closeSync(this.fd);
    }
  }
  parentPort!.on("message", (m: OpenMessage) => {
    new Replica(m.config, m.port, m.done);
  });
}
