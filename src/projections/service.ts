/**
 * Projections as their own processes (issue 4, `hsmsim project`): a projector follows one simulator's event subject
 * in JetStream, folds every record into its read models, and answers queries about them on NATS. It needs nothing but
 * the stream: no service, no write model (nats-design.md §7.9).
 *
 * The read models:
 * - sessions per application, with each session's CKS_* state (src/projections/read-model.ts: the same views the
 *   simulator answers C_GetSessionInfo from);
 * - login state per application and slot;
 * - token flags (C_GetTokenInfo's `flags`, for the tokens the log has touched), label, serial, session counts;
 * - call counts per function and return code (every record, whatever its outcome).
 *
 * Position. The projector's state and the stream sequence it has reached are stored together, as one value, in the
 * KV bucket `hsmsim-projections` (entry `<sim>.<projection>.meta` and its chunks, events/kv-blob.ts), at message boundaries: every `snapshotEvery` records, at
 * most once per `snapshotMs`, and on a clean stop. A restarted projector (clean stop or kill -9) loads that value and
 * follows the subject from the next message, so what it had counted is never counted again and what it had not yet
 * stored is folded in again exactly once. Records at or below the snapshot's record sequence are skipped, and the hash
 * chain is checked across every message boundary (a gap or a foreign message stops the projector rather than
 * miscounting).
 *
 * Queries: request/reply on `<prefix>.<sim>.query.<projection>` (queue group "hsmsim-project", so several projectors
 * of one projection share the load). Body `{ q, app?, slotID?, minSeq?, timeoutMs? }` with q one of "sessions",
 * "logins", "tokens", "calls", "status"; every answer carries `seq`, the last record folded in. With `minSeq`, the
 * answer waits until the projector has reached that record (read-your-writes for a client that knows the seq of its
 * last call, as every reply of `hsmsim serve` gives it), or answers `error: "Behind"` after `timeoutMs`.
 */
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { entryHash, canonicalJson, GENESIS, type Envelope } from "../events/chain.js";
import { followSubject } from "../events/jetstream-store.js";
import { ValueCodec } from "../events/snapshot-codec.js";
import { getBlob, putBlob } from "../events/kv-blob.js";

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();
import type { CallRecord } from "../events/types.js";
import { rvName } from "../pkcs11/constants.js";
import { resolveProfile, type Profile, type ProfileOptions } from "../pkcs11/profiles.js";
import { DEFAULT_PREFIX, DEFAULT_STREAM, checkToken, decodeWire, encodeWire, subjects, type ServiceInfo } from "../remote/protocol.js";
import { ReadModel, sessionState, tokenFlags } from "./read-model.js";

export const PROJECTION_BUCKET = "hsmsim-projections";
export const PROJECTION_QUEUE = "hsmsim-project";
export const DEFAULT_PROJECTION = "default";

/** The query subject of projection `name` of simulator `sim`. */
export function querySubject(sim: string, name: string = DEFAULT_PROJECTION, prefix: string = DEFAULT_PREFIX): string {
  return `${subjects(sim, prefix).call.replace(/\.call$/, "")}.query.${checkToken("projection", name)}`;
}

export type QueryName = "sessions" | "logins" | "tokens" | "calls" | "status";
export interface Query {
  q: QueryName;
  /** sessions, logins: only this application. */
  app?: number;
  /** logins, tokens: only this slot (tokens: the token in it, as the application `app` sees the slot). */
  slotID?: number;
  /** Wait until the projection has folded in record `minSeq`. */
  minSeq?: number;
  /** How long to wait for `minSeq` (ms, default 5000). */
  timeoutMs?: number;
}

export interface SessionRow {
  app: number;
  handle: number;
  slotID: number;
  token: string;
  rw: boolean;
  /** CKS_* as C_GetSessionInfo reports it. */
  state: number;
}
export interface LoginRow {
  app: number;
  slotID: number;
  login: "public" | "user" | "so";
}
export interface TokenRow {
  token: string;
  initialized: boolean;
  label: string;
  serial: string;
  /** CKF_* as C_GetTokenInfo reports it. */
  flags: number;
  sessions: number;
  rwSessions: number;
}
export interface QueryAnswer {
  seq: number;
  sessions?: SessionRow[];
  logins?: LoginRow[];
  tokens?: TokenRow[];
  /** function → return code name → count. */
  calls?: Record<string, Record<string, number>>;
  /** `storedSeq`: the record seq of the last position written (or being written) to KV. */
  status?: { sim: string; projection: string; streamSeq: number; records: number; resumedFrom: number; snapshots: number; storedSeq: number };
  error?: "Behind" | "BadQuery";
  message?: string;
}

/** The projector's whole state: what a snapshot holds. */
interface ProjectionState {
  rm: ReadModel;
  calls: Map<string, Map<number, number>>;
  /** Stream sequence of the last message folded in. */
  streamSeq: number;
  /** Hash of the last envelope folded in (the chain head). */
  head: string;
  /** Records folded in by every incarnation (the count of calls, for status). */
  records: number;
}

const CODEC = new ValueCodec().registerFields("ReadModel", ReadModel);

export interface ProjectorOptions {
  nc: NatsConnection;
  sim: string;
  /** The projection's name (its KV key and query subject); several projections of one simulator can coexist. */
  name?: string;
  stream?: string;
  prefix?: string;
  /** The simulator's profile (token flags depend on its PIN retries). Default: asked from the service, else "default". */
  profile?: ProfileOptions;
  /** Store the position after this many records (default 1000). */
  snapshotEvery?: number;
  /** …or after this many ms with records not yet stored (default 1000). */
  snapshotMs?: number;
  /** KV replicas of the position bucket when it is created (3 in a cluster). Default 1. */
  replicas?: number;
}

/** The stream did not continue the chain the projector holds: it stops rather than miscount. */
export class ProjectionChainError extends Error {
  override readonly name = "ProjectionChainError";
}

export class Projector {
  readonly sim: string;
  readonly name: string;
  /** Record seq the last restart resumed from (0: from the start). */
  resumedFrom = 0;
  snapshots = 0;
  storedSeq = 0;
  /** Set when following stopped on an error (a broken chain): the projector answers no more queries. */
  failure: Error | undefined;
  private st!: ProjectionState;
  private kv!: KV;
  private js!: JetStreamClient;
  private follow: { stop(): Promise<void>; done: Promise<void> } | undefined;
  private sub: Subscription | undefined;
  private sinceSnapshot = 0;
  private lastSnapshotAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private waiters: { seq: number; wake: () => void }[] = [];
  private writing: Promise<unknown> = Promise.resolve();

  private constructor(private readonly opts: ProjectorOptions) {
    this.sim = checkToken("sim", opts.sim);
    this.name = checkToken("projection", opts.name ?? DEFAULT_PROJECTION);
  }

  /** Load the stored position (if any), follow the stream from there, and answer queries. */
  static async start(opts: ProjectorOptions): Promise<Projector> {
    const p = new Projector(opts);
    await p.open();
    return p;
  }

  get seq(): number {
    return this.st.rm.position;
  }

  private get key(): string {
    return `${this.sim}.${this.name}`;
  }

  private async open(): Promise<void> {
    const { nc } = this.opts;
    this.js = jetstream(nc);
    this.kv = await new Kvm(nc).create(PROJECTION_BUCKET, { history: 1, replicas: this.opts.replicas ?? 1 });
    // The state is a blob in chunks (kv-blob.ts): a read model of many thousands of sessions outgrows one KV value.
    const stored = await getBlob(this.kv, this.key);
    if (stored) {
      const v = JSON.parse(utf8d.decode(stored.body)) as { tree: unknown; bytes: string };
      this.st = CODEC.decode(v.tree, Buffer.from(v.bytes, "base64")) as ProjectionState;
      this.resumedFrom = this.storedSeq = this.st.rm.position;
    } else {
      this.st = { rm: new ReadModel(await this.profile()), calls: new Map(), streamSeq: 0, head: GENESIS, records: 0 };
    }
    this.follow = await followSubject(this.js, this.opts.stream ?? DEFAULT_STREAM, subjects(this.sim, this.opts.prefix).events, this.st.streamSeq + 1, (m) => {
      if (this.failure) return;
      try {
        this.fold(m.streamSeq, m.envelopes);
      } catch (e) {
        this.failure = e as Error;
        void this.follow?.stop();
      }
    });
    this.follow.done.catch((e: Error) => (this.failure ??= e));
    this.timer = setInterval(() => this.maybeSnapshot(true), this.opts.snapshotMs ?? 1000);
    this.timer.unref();
    this.sub = nc.subscribe(querySubject(this.sim, this.name, this.opts.prefix), {
      queue: PROJECTION_QUEUE,
      callback: (err, msg) => {
        if (!err) void this.answer(msg);
      },
    });
    await nc.flush(); // the server knows the subscription: queries from now on find it
  }

  /** The simulator's profile: given, or asked from its service, or the default. */
  private async profile(): Promise<Profile> {
    if (this.opts.profile) return resolveProfile(this.opts.profile);
    try {
      const m = await this.opts.nc.request(subjects(this.sim, this.opts.prefix).info, new Uint8Array(0), { timeout: 2000 });
      return resolveProfile(decodeWire<ServiceInfo>(m.data).config.profile);
    } catch {
      return resolveProfile({});
    }
  }

  /** Fold one message's records in, checking that it continues the chain. */
  private fold(streamSeq: number, envelopes: Envelope[]): void {
    const st = this.st;
    for (const e of envelopes) {
      if (e.seq <= st.rm.position) continue; // already folded in (cannot happen past a snapshot boundary, but cheap)
      if (e.seq !== st.rm.position + 1 || e.prev !== st.head) {
        throw new ProjectionChainError(`projection ${this.key}: record ${e.seq} (prev ${e.prev.slice(0, 12)}…) does not follow record ${st.rm.position} (${st.head.slice(0, 12)}…)`);
      }
      if (entryHash(e.seq, e.prev, canonicalJson(e.record)) !== e.hash) {
        throw new ProjectionChainError(`projection ${this.key}: record ${e.seq}: hash mismatch`);
      }
      this.apply(e.record);
      st.head = e.hash;
      st.records++;
      this.sinceSnapshot++;
    }
    st.streamSeq = streamSeq;
    this.wake();
    this.maybeSnapshot(false);
  }

  private apply(r: CallRecord): void {
    this.st.rm.apply(r);
    let byRv = this.st.calls.get(r.fn);
    if (!byRv) this.st.calls.set(r.fn, (byRv = new Map()));
    byRv.set(r.rv, (byRv.get(r.rv) ?? 0) + 1);
  }

  /** Store state and position, as one value, at this message boundary (serialised now, written in order). */
  private maybeSnapshot(timer: boolean): void {
    if (this.sinceSnapshot === 0) return;
    const every = this.opts.snapshotEvery ?? 1000;
    if (!timer && this.sinceSnapshot < every && Date.now() - this.lastSnapshotAt < (this.opts.snapshotMs ?? 1000)) return;
    this.snapshotNow();
  }

  private snapshotNow(): Promise<unknown> {
    const { tree, bytes } = CODEC.encode(this.st, "projection");
    const body = JSON.stringify({ tree, bytes: Buffer.concat(bytes).toString("base64") });
    this.sinceSnapshot = 0;
    this.storedSeq = this.st.rm.position;
    this.lastSnapshotAt = Date.now();
    this.snapshots++;
    const gen = this.storedSeq;
    this.writing = this.writing.then(() => putBlob(this.kv, this.key, gen, utf8.encode(body), {})).catch((e: Error) => (this.failure ??= e));
    return this.writing;
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.seq <= this.seq);
    this.waiters = this.waiters.filter((w) => w.seq > this.seq);
    for (const w of ready) w.wake();
  }

  /** Resolves true once record `seq` is folded in, false after `ms`. */
  reached(seq: number, ms: number): Promise<boolean> {
    if (seq <= this.seq) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = { seq, wake: () => (clearTimeout(t), resolve(true)) };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(false);
      }, ms);
      this.waiters.push(w);
    });
  }

  private async answer(msg: Msg): Promise<void> {
    let q: Query;
    try {
      q = decodeWire<Query>(msg.data);
    } catch {
      msg.respond(encodeWire({ seq: this.seq, error: "BadQuery", message: "the query is not JSON" } satisfies QueryAnswer));
      return;
    }
    if (q.minSeq !== undefined && !(await this.reached(q.minSeq, q.timeoutMs ?? 5000))) {
      msg.respond(encodeWire({ seq: this.seq, error: "Behind", message: `record ${q.minSeq} not reached yet` } satisfies QueryAnswer));
      return;
    }
    msg.respond(encodeWire(this.query(q)));
  }

  /** Answer a query from the current state (synchronous: one consistent view at `seq`). */
  query(q: Query): QueryAnswer {
    const rm = this.st.rm;
    const seq = this.seq;
    switch (q.q) {
      case "sessions": {
        const rows: SessionRow[] = [];
        for (const [app, m] of rm.sessions) {
          if (q.app !== undefined && app !== q.app) continue;
          for (const s of m.values()) {
            rows.push({ app, handle: s.handle, slotID: s.slotID, token: s.token, rw: s.rw, state: sessionState(rm.login(app, s.slotID), s.rw) });
          }
        }
        return { seq, sessions: rows };
      }
      case "logins": {
        const rows: LoginRow[] = [];
        for (const a of rm.apps.values()) {
          if (q.app !== undefined && a.id !== q.app) continue;
          for (const s of a.slots) {
            if (q.slotID !== undefined && s.slotID !== q.slotID) continue;
            rows.push({ app: a.id, slotID: s.slotID, login: rm.login(a.id, s.slotID) });
          }
        }
        return { seq, logins: rows };
      }
      case "tokens": {
        let only: string | null | undefined;
        if (q.slotID !== undefined) {
          const a = q.app !== undefined ? rm.apps.get(q.app) : rm.apps.values().next().value;
          only = a?.slots.find((s) => s.slotID === q.slotID)?.token ?? null;
        }
        const rows: TokenRow[] = [];
        for (const t of rm.tokens.values()) {
          if (only !== undefined && t.id !== only) continue;
          const c = rm.counts.get(t.id);
          rows.push({ token: t.id, initialized: t.initialized, label: t.label, serial: t.serial, flags: tokenFlags(t, rm.profile), sessions: c?.sessions ?? 0, rwSessions: c?.rwSessions ?? 0 });
        }
        return { seq, tokens: rows };
      }
      case "calls": {
        const calls: Record<string, Record<string, number>> = {};
        for (const [fn, byRv] of this.st.calls) {
          calls[fn] = {};
          for (const [rv, n] of byRv) calls[fn][rvName(rv)] = n;
        }
        return { seq, calls };
      }
      case "status":
        return {
          seq,
          status: { sim: this.sim, projection: this.name, streamSeq: this.st.streamSeq, records: this.st.records, resumedFrom: this.resumedFrom, snapshots: this.snapshots, storedSeq: this.storedSeq },
        };
      default:
        return { seq, error: "BadQuery", message: `unknown query ${JSON.stringify((q as { q?: unknown }).q)}: sessions, logins, tokens, calls or status` };
    }
  }

  /** Stop following and answering; store the position (a clean stop resumes exactly where it left off). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.sub?.drain().catch(() => undefined);
    await this.follow?.stop();
    if (!this.failure && this.sinceSnapshot > 0) await this.snapshotNow();
    await this.writing;
  }
}

/** Ask projection `name` of `sim` a query (a client of `hsmsim project`). */
export async function queryProjection(nc: NatsConnection, sim: string, q: Query, opts: { name?: string; prefix?: string; timeoutMs?: number } = {}): Promise<QueryAnswer> {
  const m = await nc.request(querySubject(sim, opts.name, opts.prefix), encodeWire(q), { timeout: opts.timeoutMs ?? (q.timeoutMs ?? 5000) + 1000 });
  return decodeWire<QueryAnswer>(m.data);
}
