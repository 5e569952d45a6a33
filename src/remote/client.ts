/**
 * The async remote client (issue 4): `connect("nats://host:port/<name>")` gives a simulator served by `hsmsim serve`
 * with the typed call API of the in-process one (`application().call({ fn, args })`), answering Promises.
 * Protocol: remote/protocol.ts. Design: docs/notes/nats-design.md §7.6–§7.7.
 *
 * - Each `application()` is one PKCS#11 application of the simulator: C_Initialize gives it an id (the service's),
 *   from then on it heartbeats on `<prefix>.<sim>.hb.<app>` until C_Finalize or `close()`. A client that vanishes
 *   (killed, disconnected longer than the service's expiry) has its sessions closed and its login ended by the
 *   service, as recorded calls.
 * - State-changing calls go to the service (request/reply on `<prefix>.<sim>.call`); the reply comes once the call's
 *   record is stored in JetStream and carries its sequence.
 * - Read calls (C_GetSessionInfo, C_GetTokenInfo, C_GetSlotList, C_GetSlotInfo) are answered from a projection the
 *   client keeps: a read model (projections/read-model.ts) fed by the simulator's event subject (followSubject: caught
 *   up by the fast reader, then an ordered consumer; each record's seq and facts only) (started at the first read, or at connect with `projection: "eager"`, from the service's current read
 *   model so that it does not replay the whole log), decided by the same pure deciders the service runs. It stops
 *   following after `projectionIdleMs` (250) without a read, and the next read starts again from the service's read
 *   model: a client that only writes for a while is not sent every other application's records. A read first waits until the projection has reached
 *   the sequence of the last reply this client got (read-your-writes), then answers locally, without a round trip.
 *   Where the profile makes a read change state (softhsm2: a size query of C_GetSlotList may add a slot, and
 *   C_GetTokenInfo is a look at the token's objects, both facts), or the projection does not know the application,
 *   the read goes to the service like any call. Reads answered locally are not recorded in the simulator's log.
 * - Failures are answers, never throws: no service (no responders) → CKR_DEVICE_ERROR at once; no reply within the
 *   timeout → CKR_DEVICE_ERROR (the outcome is unknown: the call may be in the log); a projection that does not
 *   catch up within the timeout → CKR_DEVICE_ERROR. `lastError` on the application says which.
 */
import { randomUUID } from "node:crypto";
import { connect as natsConnect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import type { Call, CallOut, FnName } from "../events/calls.js";
import type { Answer } from "../events/types.js";
import { followSubject } from "../events/jetstream-store.js";
import { invalidArgument } from "../events/call-schema.js";
import { CK } from "../pkcs11/constants.js";
import { resolveProfile, type Profile } from "../pkcs11/profiles.js";
import { newSimState, type SimState } from "../model/state.js";
import { ReadModel } from "../projections/read-model.js";
import type { DecideContext, Decision } from "../functions/context.js";
import * as slotToken from "../functions/slot-token.js";
import * as session from "../functions/session.js";
import { natsConnectOptions } from "./connect-options.js";
import { NO_RESPONDERS, Requests } from "./requests.js";
import {
  CALL_TIMEOUT_MS,
  decodeWire,
  DEFAULT_PREFIX,
  encodeWire,
  parseSimUrl,
  PROJECTION_IDLE_MS,
  PROTOCOL_VERSION,
  subjects,
  type CallReply,
  type CallRequest,
  type ErrorName,
  type ReadModelImage,
  type ServiceInfo,
  type Subjects,
} from "./protocol.js";
import { STATE_CODEC } from "../events/snapshot.js";

/** The reads answered by the local projection, and their deciders (the service runs the same ones). */
export const LOCAL_READS: Partial<Record<FnName, (ctx: DecideContext, args: never) => Decision>> = {
  C_GetSessionInfo: session.C_GetSessionInfo as never,
  C_GetTokenInfo: slotToken.C_GetTokenInfo as never,
  C_GetSlotList: slotToken.C_GetSlotList as never,
  C_GetSlotInfo: slotToken.C_GetSlotInfo as never,
};

export interface ConnectOptions {
  /** NATS connection options over those of `natsConnectOptions` (credentials and TLS from the environment). */
  nats?: Partial<NodeConnectionOptions>;
  /** An existing connection to use instead (not closed by `close()`). */
  nc?: NatsConnection;
  prefix?: string;
  /** Request timeout (ms) before CKR_DEVICE_ERROR "CallTimeout". Default 5000. */
  timeoutMs?: number;
  /** The clock local reads use (C_GetTokenInfo's utcTime). Default Date.now. */
  clock?: () => number;
  /** Answer reads locally from the projection (default true); false sends them to the service. */
  localReads?: boolean;
  /**
   * When the projection starts following the stream: "lazy" (default) at the first read it answers, "eager" at
   * connect. A client that only writes then costs the server and itself no delivery of every event.
   */
  projection?: "lazy" | "eager";
  /**
   * Stop following the stream after this long (ms) without a local read; the next read follows again, from the
   * service's read model. Default PROJECTION_IDLE_MS (250), as the drop-in; 0 never stops.
   */
  projectionIdleMs?: number;
}

/** A remote error, for diagnostics (the call's answer is CKR_DEVICE_ERROR). */
export interface RemoteError {
  name: ErrorName | "ProjectionTimeout";
  message: string;
}

export class RemoteSimulator {
  readonly clientId = randomUUID();
  readonly subjects: Subjects;
  read: ReadModel;
  readonly profile: Profile;
  private readonly state: SimState;
  /** The sequence of the last record the projection applied. */
  private projected = 0;
  /** The record the projection started from (the service's read model), 0 when it replayed from the start. */
  startedFrom = 0;
  /** The highest record sequence of any reply this client got. */
  private seen = 0;
  private waiters: { seq: number; resolve: () => void }[] = [];
  private follower: Promise<{ stop(): Promise<void> }> | undefined;
  /** Each start of following is a generation; messages of an older (stopped) follower are dropped. */
  private gen = 0;
  /** When the projection last answered a read (performance.now()), and the timer that stops an idle follower. */
  private lastRead = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly apps = new Set<RemoteApplication>();
  private readonly calls: Requests;
  private closed = false;

  private constructor(
    readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    readonly info: ServiceInfo,
    readonly sim: string,
    readonly o: { timeoutMs: number; clock: () => number; localReads: boolean; idleMs: number },
  ) {
    this.subjects = subjects(sim, info.prefix);
    this.calls = new Requests(nc);
    this.profile = resolveProfile(info.config.profile);
    this.state = newSimState(this.profile, info.config.slots ?? 1);
    this.read = new ReadModel(this.profile, this.state.fixedSlots);
  }

  static async connect(url: string, opts: ConnectOptions = {}): Promise<RemoteSimulator> {
    const { server, sim } = parseSimUrl(url);
    const nc = opts.nc ?? (await natsConnect({ ...natsConnectOptions(server), noAsyncTraces: true, ...opts.nats }));
    try {
      const s = subjects(sim, opts.prefix ?? DEFAULT_PREFIX);
      const timeoutMs = opts.timeoutMs ?? CALL_TIMEOUT_MS;
      let info: ServiceInfo;
      try {
        info = decodeWire<ServiceInfo>((await nc.request(s.info, new Uint8Array(0), { timeout: timeoutMs })).data);
      } catch (e) {
        throw new Error(`hsmsim: no simulator "${sim}" answers on ${server} (${(e as Error).message}); is "hsmsim serve --name ${sim}" running?`, { cause: e });
      }
      const idleMs = opts.projectionIdleMs ?? PROJECTION_IDLE_MS;
      if (!Number.isFinite(idleMs) || idleMs < 0) throw new RangeError(`"projectionIdleMs" expected a number >= 0, got ${idleMs}`);
      const r = new RemoteSimulator(nc, !opts.nc, info, sim, { timeoutMs, clock: opts.clock ?? Date.now, localReads: opts.localReads ?? true, idleMs });
      if (opts.projection === "eager") await r.follow();
      return r;
    } catch (e) {
      if (!opts.nc) await nc.close();
      throw e;
    }
  }

  /**
   * Feed the projection: from the service's read model (`<prefix>.<sim>.readmodel`) and the stream after it, or, if
   * the service gives none, from the simulator's first record.
   */
  private follow(): Promise<unknown> {
    if (!this.follower) {
      const gen = ++this.gen;
      this.lastRead = performance.now();
      this.follower = this.startFrom().then((streamSeq) => this.followFrom(streamSeq, gen));
      if (this.o.idleMs > 0 && !this.idleTimer) {
        this.idleTimer = setInterval(() => this.stopIfIdle(), this.o.idleMs);
        this.idleTimer.unref();
      }
    }
    return this.follower;
  }

  /**
   * Following costs this client every record of every application (received, parsed, applied) and the server a
   * delivery of each: a client that stopped reading stops following (as the drop-in does, sync-projection.ts). Not
   * while a read waits for the projection to catch up.
   */
  private stopIfIdle(): void {
    if (!this.follower || this.waiters.length > 0 || performance.now() - this.lastRead < this.o.idleMs) return;
    const f = this.follower;
    this.follower = undefined;
    this.gen++; // whatever the stopped follower still delivers is dropped
    clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    void f.then((x) => x.stop(), () => undefined);
  }

  /** Whether the projection follows the stream now (it starts at a read and stops when reads stop). */
  get following(): boolean {
    return this.follower !== undefined;
  }

  /** Take the service's read model; the stream sequence to follow from (1 without one). */
  private async startFrom(): Promise<number> {
    try {
      const m = await this.nc.request(this.subjects.readModel, new Uint8Array(0), { timeout: this.o.timeoutMs });
      const image = decodeWire<ReadModelImage>(m.data);
      // The service's image is never behind what this client projected (it only saw the service's records); equal
      // after a pause without writes, when taking it again is still cheaper than replaying the stream.
      if (image.tree === undefined || image.seq < this.projected) return 1;
      const read = STATE_CODEC.decode(image.tree);
      if (!(read instanceof ReadModel)) return 1;
      (read as { profile: Profile }).profile = this.profile;
      this.read = read;
      this.projected = image.seq;
      this.startedFrom = image.seq;
      return image.streamSeq;
    } catch {
      return 1;
    }
  }

  private async followFrom(streamSeq: number, gen: number): Promise<{ stop(): Promise<void> }> {
    const f = await followSubject(jetstream(this.nc), this.info.stream, this.subjects.events, streamSeq, (m) => {
      if (gen !== this.gen) return;
      // Each record's seq and facts (all the read model folds), the rest of it not parsed.
      for (const e of m.items) {
        // Records the read model already holds (the message that holds its record) are skipped.
        if (e.seq !== this.projected + 1) continue;
        this.read.apply(e);
        this.projected = e.seq;
      }
      if (this.waiters.length > 0) {
        let k = 0;
        while (k < this.waiters.length && this.waiters[k]!.seq <= this.projected) k++;
        for (const w of this.waiters.splice(0, k)) w.resolve();
      }
    });
    // A follower that ends on an error (its catch-up or live part could not go on) is dropped, so that the next read
    // follows again (a fresh read model, then the stream after it) instead of waiting on a dead one.
    f.done.catch(() => {
      if (gen !== this.gen) return;
      this.gen++;
      this.follower = undefined;
    });
    return f;
  }

  /** The sequence the projection has reached. */
  get projectedSeq(): number {
    return this.projected;
  }

  /** Resolves true once the projection reached `seq`, false after `timeoutMs`. */
  reach(seq: number, timeoutMs = this.o.timeoutMs): Promise<boolean> {
    if (this.projected >= seq) return Promise.resolve(true);
    this.follow().catch(() => (this.follower = undefined));
    return new Promise((resolve) => {
      const w = {
        seq,
        resolve: () => {
          clearTimeout(t);
          resolve(true);
        },
      };
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
      }, timeoutMs);
      const n = this.waiters.length;
      if (n === 0 || this.waiters[n - 1]!.seq <= seq) this.waiters.push(w);
      else this.waiters.splice(this.waiters.findIndex((x) => x.seq > seq), 0, w);
    });
  }

  /** A new caller: an application once it calls C_Initialize. */
  application(): RemoteApplication {
    const a = new RemoteApplication(this);
    this.apps.add(a);
    return a;
  }

  /** Send one call to the service; CKR_DEVICE_ERROR (with `error`) when it cannot be answered. */
  async request(appId: number, call: Call, timeoutMs = this.o.timeoutMs): Promise<CallReply> {
    const req: CallRequest = { v: PROTOCOL_VERSION, app: appId, client: this.clientId, call };
    let body: Uint8Array;
    try {
      body = encodeWire(req);
    } catch (e) {
      // Not representable as JSON (a cyclic argument, a bigint): the call's arguments are bad.
      return { v: PROTOCOL_VERSION, rv: CK.CKR_ARGUMENTS_BAD, seq: 0, error: "ProtocolError", message: (e as Error).message };
    }
    const m = await this.calls.request(this.subjects.call, body, timeoutMs);
    if (typeof m === "string") {
      return { v: PROTOCOL_VERSION, rv: CK.CKR_DEVICE_ERROR, seq: 0, error: m === NO_RESPONDERS ? "ServiceUnavailable" : "CallTimeout", message: m };
    }
    const reply = decodeWire<CallReply>(m.data);
    if (reply.seq > this.seen) this.seen = reply.seq;
    return reply;
  }


  /** Answer a read from the projection, or undefined when it must go to the service. */
  async localRead(appId: number, call: Call): Promise<Answer | RemoteError | undefined> {
    const decider = LOCAL_READS[call.fn];
    if (!decider || !this.o.localReads) return undefined;
    this.lastRead = performance.now();
    if (!this.follower) {
      try {
        await this.follow();
      } catch (e) {
        this.follower = undefined;
        return { name: "ProjectionTimeout", message: `the projection could not follow ${this.subjects.events}: ${(e as Error).message}` };
      }
    }
    if (!(await this.reach(this.seen))) {
      return { name: "ProjectionTimeout", message: `the projection did not reach seq ${this.seen} in ${this.o.timeoutMs} ms` };
    }
    if (appId !== 0 && !this.read.apps.has(appId)) return undefined; // finalized or expired: the service says what
    if (invalidArgument(call) !== undefined) return { rv: CK.CKR_ARGUMENTS_BAD };
    const ctx: DecideContext = { state: this.state, read: this.read, appId, app: undefined, time: this.o.clock(), shell: undefined as never };
    const d = decider(ctx, (call.args ?? {}) as never);
    if (d.facts.length > 0) return undefined; // a read that changes state (softhsm2): recorded by the service
    const rv = CK[d.rv];
    return d.out === undefined ? { rv } : { rv, out: d.out };
  }

  /**
   * Finalize the applications still initialized (C_Finalize, recorded: their sessions close now rather than when the
   * service notices the silence; `finalize: false` leaves them to that, as a process that dies does), then stop
   * heartbeats, the projection, and the connection (if this client opened it). Never throws.
   */
  async close(opts: { finalize?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (opts.finalize !== false) {
      const live = [...this.apps].filter((a) => a.appId !== 0);
      await Promise.all(live.map((a) => this.request(a.appId, { fn: "C_Finalize", args: {} }, Math.min(this.o.timeoutMs, 1000))));
    }
    for (const a of this.apps) a.stopHeartbeat();
    clearInterval(this.idleTimer);
    this.calls.close();
    for (const w of this.waiters.splice(0)) w.resolve();
    await this.follower?.then((f) => f.stop(), () => undefined);
    if (this.ownsConnection) await this.nc.close();
  }
}

/** One application of a remote simulator. */
export class RemoteApplication {
  appId = 0;
  /** Why the last call answered CKR_DEVICE_ERROR on the client side (undefined after a call the service answered). */
  lastError: RemoteError | undefined;
  /** The record sequence of the last call the service answered (0 for local reads and failures). */
  lastSeq = 0;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(readonly simulator: RemoteSimulator) {}

  async call<F extends FnName>(call: Extract<Call, { fn: F }>): Promise<Answer<CallOut[F]>> {
    this.lastError = undefined;
    this.lastSeq = 0;
    const c = call as Call;
    if (!c || typeof c !== "object") return { rv: CK.CKR_FUNCTION_NOT_SUPPORTED } as Answer<CallOut[F]>;
    const local = await this.simulator.localRead(this.appId, c);
    if (local !== undefined) {
      if ("name" in local) {
        this.lastError = local;
        return { rv: CK.CKR_DEVICE_ERROR } as Answer<CallOut[F]>;
      }
      return local as Answer<CallOut[F]>;
    }
    const reply = await this.simulator.request(this.appId, c);
    if (reply.error) this.lastError = { name: reply.error, message: reply.message ?? reply.error };
    this.lastSeq = reply.seq;
    if (c.fn === "C_Initialize" && reply.rv === CK.CKR_OK && reply.app !== undefined) {
      this.appId = reply.app;
      this.startHeartbeat(reply.init?.heartbeat.intervalMs ?? 1000);
    }
    if (c.fn === "C_Finalize" && reply.rv === CK.CKR_OK) {
      this.appId = 0;
      this.stopHeartbeat();
    }
    return (reply.out === undefined ? { rv: reply.rv } : { rv: reply.rv, out: reply.out }) as Answer<CallOut[F]>;
  }

  private startHeartbeat(intervalMs: number): void {
    this.stopHeartbeat();
    const app = this.appId;
    const subject = this.simulator.subjects.heartbeat(app);
    const body = encodeWire({ app, client: this.simulator.clientId });
    this.heartbeat = setInterval(() => {
      try {
        this.simulator.nc.publish(subject, body);
      } catch {
        // closed: the service expires the application
      }
    }, intervalMs);
    this.heartbeat.unref();
  }

  stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }
}

/** Connect to the simulator `nats://host:port/<name>` served by `hsmsim serve`. */
export function connect(url: string, opts: ConnectOptions = {}): Promise<RemoteSimulator> {
  return RemoteSimulator.connect(url, opts);
}
