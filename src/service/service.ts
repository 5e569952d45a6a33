/**
 * `hsmsim serve`: one simulator as a NATS service (issue 4). Design: docs/notes/nats-design.md §7.
 *
 * - Start: take the writer lease (lease.ts), open the JetStream event store on `<prefix>.<sim>.events.>` (a full
 *   replay of the simulator's subjects, verifying the hash chain), and build the Simulator on it (it replays the
 *   records as it does for any store that holds some).
 * - Calls: a queue subscription on `<prefix>.<sim>.call` (queue group "hsmsim"). Each request is dispatched at once,
 *   synchronously and in arrival order (validate → decide → append → evolve → read model: the Simulator's one
 *   path); only the reply waits, for `store.flush(seq)`, so a call is answered only once its record and every earlier
 *   one is stored. Concurrent calls' records are group-committed by the store.
 * - Applications: each remote client's C_Initialize makes an application. The service tracks when each application
 *   was last heard from (its calls and its heartbeats on `<prefix>.<sim>.hb.<app>`); one silent for `expiryMs` has
 *   vanished: its sessions are closed (C_CloseAllSessions per slot that has any) and it is finalized (C_Finalize),
 *   as calls recorded in its name. Applications found in the rebuilt state get a full window from the start.
 *   A request naming an application the simulator does not know (finalized, expired), or one another client started
 *   (requests and heartbeats carry the client's connection id), is dispatched as no application:
 *   CKR_CRYPTOKI_NOT_INITIALIZED. Which client started an application is not in the log, so after a restart an
 *   application rebuilt from the stream is bound to the first client that calls for it.
 * - Health: published every second on `<prefix>.<sim>.health` and put in KV `hsmsim-health` (key `svc.<sim>`, bucket
 *   TTL 5 s: a dead service's entry expires). `<prefix>.<sim>.info` answers a ServiceInfo.
 * - Failure is fail-stop: if the store fails (fence lost to a second writer, a batch not acknowledged within its
 *   retry deadline) or the lease is lost, the service answers every waiting and later call CKR_DEVICE_ERROR (error
 *   "StoreFailed"), leaves the queue group, and `stopped` resolves with the error (the CLI exits 1). Its state may be
 *   ahead of its log (facts are applied at dispatch, before the commit); a restart rebuilds from the stream.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import { Application, Simulator, type SimulatorOptions } from "../actors/simulator.js";
import type { Call } from "../events/calls.js";
import { JetStreamEventStore } from "../events/jetstream-store.js";
import { CK } from "../pkcs11/constants.js";
import type { ProfileOptions } from "../pkcs11/profiles.js";
import {
  DEFAULT_PREFIX,
  DEFAULT_STREAM,
  decodeWire,
  encodeWire,
  HEALTH_BUCKET,
  HEARTBEAT_EXPIRY_MS,
  HEARTBEAT_INTERVAL_MS,
  PROTOCOL_VERSION,
  QUEUE_GROUP,
  subjects,
  type CallReply,
  type CallRequest,
  type Health,
  type Heartbeat,
  type ReadModelImage,
  type ServiceInfo,
  type SimConfig,
  type Subjects,
} from "../remote/protocol.js";
import { Lease } from "./lease.js";

/** Which client started an application rebuilt from the stream is not known: the first to call for it is bound. */
const REBUILT = "(rebuilt)";
import { STATE_CODEC } from "../events/snapshot.js";

export interface ServiceOptions {
  nc: NatsConnection;
  sim: string;
  stream?: string;
  prefix?: string;
  /** Stream and KV replicas (1, or 3 in a cluster). Default 1. */
  replicas?: number;
  /** Profile options and slots: what clients build their projection with. Must stay the same across restarts. */
  config?: SimConfig;
  /** The simulator key (32 bytes): the same across restarts, or PIN checks and replays of sealed data fail. */
  simulatorKey: Uint8Array;
  /** Simulator options for tests (clock, randomBytes). */
  simulator?: Pick<SimulatorOptions, "clock" | "randomBytes">;
  heartbeat?: { intervalMs?: number; expiryMs?: number };
  /** Take the KV writer lease (default true). Without it, only the fence keeps a second writer out. */
  lease?: boolean;
  leaseTtlMs?: number;
  /** Wait this long for a previous holder's lease to expire (a restart after a crash). Default 0. */
  leaseWaitMs?: number;
  /** Restore from and write state snapshots (KV `hsmsim-snapshots`), so start time does not grow with the log. Default true. */
  snapshots?: boolean;
  /** A snapshot every this many records (default 10,000) and at a clean stop. */
  snapshotEvery?: number;
  /** Store tuning (tests). */
  retryForMs?: number;
  publishTimeoutMs?: number;
  log?: (line: string) => void;
}

interface Live {
  lastSeen: number;
  client: string;
}

export class SimulatorService {
  readonly writerId: string;
  readonly subjects: Subjects;
  private readonly apps = new Map<number, Live>();
  private subs: Subscription[] = [];
  private timers: NodeJS.Timeout[] = [];
  private failed: Error | undefined;
  private stopping = false;
  private resolveStopped!: (e: Error | undefined) => void;
  /** Resolves when the service stopped: with the error if it failed, undefined after `stop()`. */
  readonly stopped: Promise<Error | undefined>;
  private readonly since = new Date().toISOString();
  private healthKv: KV | undefined;
  readonly stats = { calls: 0, expired: 0 };

  private constructor(
    readonly nc: NatsConnection,
    readonly simulator: Simulator,
    readonly store: JetStreamEventStore,
    private readonly lease: Lease | undefined,
    private readonly o: ServiceOptions & { config: SimConfig; intervalMs: number; expiryMs: number; log: (l: string) => void },
    writerId: string,
  ) {
    this.writerId = writerId;
    this.subjects = subjects(o.sim, o.prefix ?? DEFAULT_PREFIX);
    this.stopped = new Promise((r) => (this.resolveStopped = r));
  }

  static async start(opts: ServiceOptions): Promise<SimulatorService> {
    const o = {
      ...opts,
      config: opts.config ?? { profile: {} },
      intervalMs: opts.heartbeat?.intervalMs ?? HEARTBEAT_INTERVAL_MS,
      expiryMs: opts.heartbeat?.expiryMs ?? HEARTBEAT_EXPIRY_MS,
      log: opts.log ?? ((l: string) => console.error(l)),
    };
    const writerId = randomUUID();
    let service: SimulatorService | undefined;
    const lease =
      opts.lease === false
        ? undefined
        : await Lease.acquire({
            nc: opts.nc,
            sim: opts.sim,
            key: subjects(opts.sim, opts.prefix ?? DEFAULT_PREFIX).leaseKey,
            writer: writerId,
            ttlMs: opts.leaseTtlMs,
            waitMs: opts.leaseWaitMs,
            replicas: opts.replicas,
            onLost: (e) => service?.fail(e),
          });
    try {
      const t0 = performance.now();
      const open = (restore: boolean) =>
        JetStreamEventStore.open({
          nc: opts.nc,
          sim: opts.sim,
          stream: opts.stream ?? DEFAULT_STREAM,
          prefix: opts.prefix ?? DEFAULT_PREFIX,
          replicas: opts.replicas,
          retryForMs: opts.retryForMs,
          publishTimeoutMs: opts.publishTimeoutMs,
          snapshots: opts.snapshots ?? true,
          snapshotEvery: opts.snapshotEvery,
          restore,
          onWarning: o.log,
        });
      const build = (store: JetStreamEventStore) =>
        new Simulator({
          ...(o.config.profile as ProfileOptions),
          ...(o.config.slots !== undefined ? { slots: o.config.slots } : {}),
          ...opts.simulator,
          simulatorKey: opts.simulatorKey,
          store,
        });
      let store = await open(true);
      let simulator: Simulator;
      try {
        simulator = build(store);
      } catch (e) {
        if (store.stats.restoredFrom === 0) throw e;
        // The simulator refused the snapshot (another key or profile): replay the whole subject.
        o.log(`hsmsim serve: the snapshot at seq ${store.stats.restoredFrom} was not restored (${(e as Error).message}); replaying from the start`);
        store = await open(false);
        simulator = build(store);
      }
      const from = store.stats.restoredFrom;
      o.log(
        `hsmsim serve: simulator "${opts.sim}" rebuilt from ${store.subject}: ` +
          (from > 0 ? `snapshot at seq ${from} + ` : "full replay, ") +
          `${store.stats.loadedRecords} records in ${store.stats.loadedMessages} messages, ${(performance.now() - t0).toFixed(0)} ms (${store.lastSeq} records in all)`,
      );
      service = new SimulatorService(opts.nc, simulator, store, lease, o, writerId);
      await service.listen();
      return service;
    } catch (e) {
      await lease?.release();
      throw e;
    }
  }

  private async listen(): Promise<void> {
    const now = Date.now();
    // Applications of the rebuilt state get a full window to be heard from.
    for (const app of this.simulator.state.apps.keys()) this.apps.set(app, { lastSeen: now, client: REBUILT });
    const s = this.subjects;
    this.subs.push(
      this.nc.subscribe(s.call, {
        queue: QUEUE_GROUP,
        callback: (err, m) => {
          if (!err) this.onCall(m);
        },
      }),
      this.nc.subscribe(s.info, {
        queue: QUEUE_GROUP,
        callback: (err, m) => {
          if (!err) m.respond(encodeWire(this.info()));
        },
      }),
      this.nc.subscribe(s.readModel, {
        queue: QUEUE_GROUP,
        callback: (err, m) => {
          if (!err) this.onReadModel(m);
        },
      }),
      this.nc.subscribe(s.heartbeats, {
        callback: (err, m) => {
          if (err) return;
          const app = Number(m.subject.slice(m.subject.lastIndexOf(".") + 1));
          const live = this.apps.get(app);
          if (!live) return;
          let client: string;
          try {
            client = String(decodeWire<Heartbeat>(m.data).client);
          } catch {
            return;
          }
          // Only the application's own client keeps it alive (another's beats would keep a vanished one's sessions).
          if (live.client === client || live.client === REBUILT) live.lastSeen = Date.now();
        },
      }),
    );
    const sweep = setInterval(() => this.sweep(), Math.max(50, Math.min(250, this.o.expiryMs / 4)));
    sweep.unref();
    this.timers.push(sweep);
    try {
      this.healthKv = await new Kvm(this.nc).create(HEALTH_BUCKET, { ttl: 5000, history: 1, replicas: this.o.replicas ?? 1 });
    } catch (e) {
      this.o.log(`hsmsim serve: no health bucket (${(e as Error).message}); health goes to ${s.health} only`);
    }
    const beat = setInterval(() => this.publishHealth(), 1000);
    beat.unref();
    this.timers.push(beat);
    this.publishHealth();
    await this.nc.flush();
  }

  /**
   * Whether a request from `client` may act as application `appId`: the client that started it, or, for an
   * application rebuilt from the stream (the service restarted, and which client started it is not in the log), the
   * first client that calls for it, which it is then bound to.
   */
  private mayActFor(appId: number, client: string): boolean {
    const live = this.apps.get(appId);
    if (!live) {
      this.apps.set(appId, { lastSeen: Date.now(), client }); // not tracked (should not happen): bound from now on
      return true;
    }
    if (live.client === REBUILT) live.client = client;
    return live.client === client;
  }

  info(): ServiceInfo {
    return {
      v: PROTOCOL_VERSION,
      sim: this.o.sim,
      stream: this.store.stream,
      prefix: this.o.prefix ?? DEFAULT_PREFIX,
      writer: this.writerId,
      config: this.o.config,
      lastSeq: this.store.lastSeq,
      durableSeq: this.store.durableSeq,
    };
  }

  health(): Health {
    return {
      sim: this.o.sim,
      writer: this.writerId,
      pid: process.pid,
      host: hostname(),
      since: this.since,
      status: this.failed ? "failed" : this.stopping ? "stopping" : "serving",
      lastSeq: this.store.lastSeq,
      durableSeq: this.store.durableSeq,
      apps: this.apps.size,
      at: new Date().toISOString(),
    };
  }

  private publishHealth(): void {
    const h = encodeWire(this.health());
    try {
      this.nc.publish(this.subjects.health, h);
    } catch {
      // closed connection: nothing to tell
    }
    this.healthKv?.put(this.subjects.healthKey, h).catch(() => undefined);
  }

  private onCall(m: Msg): void {
    this.stats.calls++;
    let req: CallRequest;
    try {
      req = decodeWire<CallRequest>(m.data);
      if (!req || typeof req !== "object" || typeof req.app !== "number" || req.call === null || typeof req.call !== "object") throw new TypeError("not a call request");
    } catch (e) {
      this.reply(m, { v: PROTOCOL_VERSION, rv: CK.CKR_ARGUMENTS_BAD, seq: 0, error: "ProtocolError", message: (e as Error).message });
      return;
    }
    if (this.failed || this.stopping) {
      this.reply(m, this.failedReply());
      return;
    }
    const app = new Application(this.simulator);
    // An application the simulator does not know (finalized, expired) is no application; nor is one started by another
    // client: its sessions and login are that client's (an application is one client's C_Initialize…C_Finalize).
    app.appId = this.simulator.state.apps.has(req.app) && this.mayActFor(req.app, String(req.client)) ? req.app : 0;
    const before = this.simulator.lastSeq;
    const answer = this.simulator.dispatch(app, req.call as Call);
    const seq = this.simulator.lastSeq;
    if (seq === before) {
      // No record: the store refused the append (it failed). Nothing was applied.
      this.reply(m, this.failedReply());
      if (this.store.failure) this.fail(this.store.failure);
      return;
    }
    const reply: CallReply = { v: PROTOCOL_VERSION, rv: answer.rv, seq };
    if (answer.out !== undefined) reply.out = answer.out;
    const fn = (req.call as Call).fn;
    if (fn === "C_Initialize" && answer.rv === CK.CKR_OK) {
      reply.app = app.appId;
      reply.init = { config: this.o.config, heartbeat: { intervalMs: this.o.intervalMs, expiryMs: this.o.expiryMs } };
    }
    if (app.appId !== 0) this.apps.set(app.appId, { lastSeen: Date.now(), client: String(req.client) });
    if (fn === "C_Finalize" && answer.rv === CK.CKR_OK) this.apps.delete(req.app);
    this.store.flush(seq).then(
      () => this.reply(m, reply),
      (e: unknown) => {
        this.reply(m, this.failedReply());
        this.fail(e as Error);
      },
    );
  }

  /**
   * A client's projection asks where to start: the read model now (record `seq`), replied once that record is stored,
   * with the stream sequence of the last message stored when it was taken (that message and the ones after it hold
   * every record after `seq`).
   */
  private onReadModel(m: Msg): void {
    if (this.failed || this.stopping) return; // no reply: the client times out and replays from the start
    const seq = this.simulator.lastSeq;
    const streamSeq = Math.max(1, this.store.streamSeq);
    let image: ReadModelImage;
    try {
      const { tree, bytes } = STATE_CODEC.encode(this.simulator.read, "read model");
      image = { v: PROTOCOL_VERSION, seq, streamSeq, tree };
      if (bytes.length > 0) image = { v: PROTOCOL_VERSION, seq: 0, streamSeq: 1 };
    } catch {
      image = { v: PROTOCOL_VERSION, seq: 0, streamSeq: 1 };
    }
    let body = encodeWire(image);
    if (body.length > this.nc.info!.max_payload - 1024) body = encodeWire({ v: PROTOCOL_VERSION, seq: 0, streamSeq: 1 });
    this.store.flush(seq).then(
      () => this.reply(m, body),
      () => undefined,
    );
  }

  private failedReply(): CallReply {
    return { v: PROTOCOL_VERSION, rv: CK.CKR_DEVICE_ERROR, seq: 0, error: "StoreFailed", message: this.failed?.message ?? "the service is stopping" };
  }

  private reply(m: Msg, r: CallReply | Uint8Array): void {
    try {
      m.respond(r instanceof Uint8Array ? r : encodeWire(r));
    } catch {
      // The connection closed: the client times out (CKR_DEVICE_ERROR).
    }
  }

  /** Applications not heard from for `expiryMs` vanished: close their sessions and finalize them, as calls. */
  private sweep(): void {
    if (this.failed || this.stopping) return;
    const now = Date.now();
    for (const [appId, live] of this.apps) {
      if (now - live.lastSeen <= this.o.expiryMs) continue;
      this.apps.delete(appId);
      if (!this.simulator.state.apps.has(appId)) continue;
      this.expire(appId, now - live.lastSeen);
    }
  }

  private expire(appId: number, silentMs: number): void {
    this.stats.expired++;
    const app = new Application(this.simulator);
    app.appId = appId;
    const slots = new Set<number>();
    for (const s of this.simulator.read.sessions.get(appId)?.values() ?? []) slots.add(s.slotID);
    const rvs: string[] = [];
    for (const slotID of [...slots].sort((a, b) => a - b)) rvs.push(`C_CloseAllSessions(${slotID})=${app.call({ fn: "C_CloseAllSessions", args: { slotID } }).rv}`);
    rvs.push(`C_Finalize=${app.call({ fn: "C_Finalize", args: {} }).rv}`);
    this.o.log(`hsmsim serve: application ${appId} silent for ${silentMs} ms: vanished; ${rvs.join(", ")}`);
    const seq = this.simulator.lastSeq;
    this.store.flush(seq).catch((e: unknown) => this.fail(e as Error));
  }

  /** Fail-stop (see the module comment). */
  fail(e: Error): void {
    if (this.failed) return;
    // The store's own failure (FenceLostError, …) rather than a flush's StoreWriteError wrapping it.
    this.failed = this.store.failure ?? e;
    e = this.failed;
    this.o.log(`hsmsim serve: stopping: ${e.name}: ${e.message}`);
    this.publishHealth();
    void this.shutdown().then(() => this.resolveStopped(e));
  }

  private async shutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    // Leave the queue group first: no new call reaches this instance.
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    if (!this.failed) await this.store.close();
    await this.lease?.release();
  }

  /** Stop serving: leave the queue group, wait for the records in flight to be stored, release the lease. */
  async stop(): Promise<void> {
    if (this.stopping || this.failed) {
      await this.stopped;
      return;
    }
    this.stopping = true;
    this.publishHealth();
    await this.shutdown();
    this.resolveStopped(undefined);
  }

  /** Applications the service is watching. */
  get liveApps(): number[] {
    return [...this.apps.keys()];
  }
}
