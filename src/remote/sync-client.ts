/**
 * The synchronous face of a remote simulator, for the pkcs11js drop-in: `new PKCS11().load("nats://host:port/<name>")`
 * (nats-design.md §4). pkcs11js is synchronous and NATS is not, so a worker thread (sync-worker.ts) owns the async
 * client and the connection, and the calling thread blocks in `Atomics.wait` until the worker has the answer:
 *
 *   main: ctrl[0] = 0; port.postMessage({ id, call }); Atomics.wait(ctrl, 0, 0, left) … receiveMessageOnPort(port)
 *   worker: answer = await client.call(call); port.postMessage({ id, answer }); ctrl[0] = 1; Atomics.notify(ctrl, 0)
 *
 * The overhead over an async request is the worker round trip, about 10 µs. Reads (C_GetSessionInfo, C_GetTokenInfo,
 * C_GetSlotList, C_GetSlotInfo) do not make it: they are answered on the calling thread from a projection the worker
 * feeds (sync-projection.ts), after it has caught up with the application's last answered call. The worker follows
 * the stream for it only while the application reads: from the first read on, until a call finds no read in the last
 * `projectionIdleMs` (that call carries `unfollow`); the next read starts following again from the service's read
 * model.
 *
 * A call never hangs: the worker's request times out first (`timeout`, default CALL_TIMEOUT_MS) and answers
 * CKR_DEVICE_ERROR, as it does at once when no service answers (NATS "no responders") or the connection is down;
 * `Atomics.wait` has its own deadline (the timeout plus a second) in case the worker itself is stuck, and a late
 * answer to a call given up on is recognised by its id and dropped. Whether a timed-out call took effect is unknown
 * (it may be in the log), exactly as for a PKCS#11 device that stops answering mid-call: CKR_DEVICE_ERROR says so.
 *
 * The worker and its port are unref'd: a script that never calls `close()` still exits, and an application still
 * initialised then sends its C_Finalize from the process's "exit" hook (synchronously, through the worker), so the
 * service closes its sessions at once rather than when its heartbeats stop.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from "node:worker_threads";
import type { Call } from "../events/calls.js";
import type { Answer } from "../events/types.js";
import { CK } from "../pkcs11/constants.js";
import { CALL_TIMEOUT_MS, parseSimUrl, type SimConfig } from "./protocol.js";
import { CallingThreadProjection } from "./sync-projection.js";

/** What the main thread sends the worker. */
export type SyncRequest =
  /** `unfollow`: stop following the stream for the projection (no local read for a while) before the call. */
  | { id: number; op: "call"; call: Call; unfollow?: boolean }
  | { id: number; op: "close" }
  /** Start following the stream as projection generation `gen` (no reply: the feed says when it has started). */
  | { id: number; op: "follow"; gen: number };
/** What the worker sends back: an answer (with the seq of the call's record), or a failure to connect or close. */
export type SyncReply =
  | { id: number; ok: true; answer: Answer; seq: number; app: number; config?: SimConfig }
  | { id: number; ok: false; error: string; name: string };

/** Set in the shared control words by the worker. */
export const CTRL_READY = 0; // 1 once an answer is posted
export const CTRL_ID = 1; // the id of that answer

/** workerData of sync-worker.ts. */
export interface SyncWorkerData {
  /** `nats://host:port[,host:port…]/<name>` */
  target: string;
  prefix?: string;
  timeoutMs: number;
  connectTimeoutMs: number;
  ctrl: SharedArrayBuffer;
  port: MessagePort;
  /** Where the worker posts the records it follows, for the calling thread's projection (sync-projection.ts). */
  feed: MessagePort;
}

export interface SyncRemoteOptions {
  /** Request timeout in ms (default CALL_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Subject prefix (default "hsmsim"). */
  prefix?: string;
  /** How long `load()` waits for the first connection (ms, default 10 s). */
  connectTimeoutMs?: number;
  /** Stop following the stream for local reads after this long without one (ms, default PROJECTION_IDLE_MS). */
  projectionIdleMs?: number;
  /**
   * Answer reads from the calling thread's projection (default true). false sends them to the service like any call,
   * so that they are recorded in the log (an audit of every call), at a round trip each.
   */
  localReads?: boolean;
}

/** The connection could not be made: thrown by the constructor (so by `load()`), with the worker's reason. */
export class RemoteConnectError extends Error {
  override readonly name = "RemoteConnectError";
}

const LIVE = new Set<SyncRemote>();
let exitHook = false;

/**
 * One remote application: `call()` blocks until the simulator service answers (or the call times out). The same
 * shape as `Application.call` (src/actors/simulator.ts), so the drop-in drives either.
 */
export class SyncRemote {
  /** The application id the service gave at C_Initialize (0 before, and after C_Finalize). */
  appId = 0;
  /** The seq of the record of this application's last call that made one. */
  lastSeq = 0;
  readonly sim: string;
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly feed: MessagePort;
  private readonly ctrl: Int32Array;
  private readonly projection: CallingThreadProjection;
  private readonly timeoutMs: number;
  private readonly localReads: boolean;
  private nextId = 1;
  private closed = false;

  constructor(target: string, opts: SyncRemoteOptions = {}) {
    // `nats://a:4222,b:4222/<name>`: the host part may list several servers (a cluster).
    const { server, sim } = parseSimUrl(target);
    this.sim = sim;
    this.timeoutMs = opts.timeoutMs ?? CALL_TIMEOUT_MS;
    this.localReads = opts.localReads ?? true;
    const sab = new SharedArrayBuffer(16);
    this.ctrl = new Int32Array(sab);
    const { port1, port2 } = new MessageChannel();
    const feed = new MessageChannel();
    this.port = port1;
    this.feed = feed.port1;
    const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    const data: SyncWorkerData = { target, prefix: opts.prefix, timeoutMs: this.timeoutMs, connectTimeoutMs, ctrl: sab, port: port2, feed: feed.port2 };
    this.worker = startWorker(data, [port2, feed.port2]);
    this.worker.unref();
    this.port.unref();
    this.feed.unref();
    // The worker answers id 0 once connected (or with the reason it could not).
    const r = this.await(0, connectTimeoutMs + this.timeoutMs + 1000);
    if (!r || !r.ok) {
      void this.worker.terminate();
      throw new RemoteConnectError(r ? r.error : `hsmsim: cannot reach ${server} for "${sim}": no answer from the connection worker`);
    }
    this.projection = new CallingThreadProjection(
      r.config!,
      this.feed,
      this.ctrl,
      (gen) => this.port.postMessage({ id: 0, op: "follow", gen } satisfies SyncRequest),
      opts.projectionIdleMs,
    );
    LIVE.add(this);
    if (!exitHook) {
      exitHook = true;
      process.on("exit", () => {
        for (const r of LIVE) r.close();
      });
    }
  }

  /** One PKCS#11 call, synchronously. CKR_DEVICE_ERROR when the service cannot be reached or does not answer in time. */
  call(call: Call): Answer {
    if (this.closed) return { rv: CK.CKR_DEVICE_ERROR };
    const local = this.localReads ? this.projection.answer(this.appId, this.lastSeq, call, this.timeoutMs) : undefined;
    if (local) return local;
    const id = this.nextId++;
    Atomics.store(this.ctrl, CTRL_READY, 0);
    const req: SyncRequest = { id, op: "call", call };
    if (this.projection.idle()) req.unfollow = true;
    this.port.postMessage(req);
    const r = this.await(id, this.timeoutMs + 1000);
    if (!r || !r.ok) return { rv: CK.CKR_DEVICE_ERROR };
    this.appId = r.app;
    if (r.seq > this.lastSeq) this.lastSeq = r.seq;
    return r.answer;
  }

  /** Finalize the application if it is still initialised, then stop the worker (its connection drains). */
  close(): void {
    if (this.closed) return;
    try {
      if (this.appId !== 0) this.call({ fn: "C_Finalize", args: {} });
    } finally {
      this.closed = true;
      LIVE.delete(this);
      const id = this.nextId++;
      Atomics.store(this.ctrl, CTRL_READY, 0);
      this.port.postMessage({ id, op: "close" } satisfies SyncRequest);
      this.await(id, 2000);
      void this.worker.terminate();
      this.port.close();
      this.feed.close();
    }
  }

  /**
   * Block until the worker posts the reply with `id`, or `ms` pass (undefined). Replies with other ids are late
   * answers to calls given up on: dropped.
   */
  private await(id: number, ms: number): SyncReply | undefined {
    const deadline = performance.now() + ms;
    for (;;) {
      let m: { message: SyncReply } | undefined;
      while ((m = receiveMessageOnPort(this.port) as { message: SyncReply } | undefined)) {
        if (m.message.id === id) return m.message;
      }
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      Atomics.wait(this.ctrl, CTRL_READY, 0, left);
      Atomics.store(this.ctrl, CTRL_READY, 0);
    }
  }
}

/**
 * The worker: sync-worker.js next to this module. Run from the TypeScript sources (tests under vitest, tsx), the
 * worker is sync-worker.ts, loaded through tsx's loader registered inside the worker (a worker does not inherit the
 * loader of the thread that started it).
 */
function startWorker(data: SyncWorkerData, transfer: MessagePort[]): Worker {
  const self = import.meta.url;
  if (self.endsWith(".ts")) {
    // tsx's ESM API (its package exports' "import" entry: require.resolve would give the CommonJS one)
    const pkg = createRequire(self).resolve("tsx/package.json");
    const entry = (JSON.parse(readFileSync(pkg, "utf8")) as { exports: Record<string, { import: { default: string } }> }).exports["./esm/api"]!;
    const tsx = pathToFileURL(join(dirname(pkg), entry.import.default)).href;
    const worker = new URL("./sync-worker.ts", self).href;
    const code = `import(${JSON.stringify(tsx)}).then((a) => { a.register(); return import(${JSON.stringify(worker)}); });`;
    return new Worker(code, { eval: true, workerData: data, transferList: transfer });
  }
  return new Worker(new URL("./sync-worker.js", self), { workerData: data, transferList: transfer });
}
