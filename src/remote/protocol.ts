/**
 * The wire protocol of distributed hsmsim (issue 4): the subjects, the message shapes and the error names shared by
 * `hsmsim serve` (src/service), the JetStream event store (src/events/jetstream-store.ts), the async remote client
 * (src/remote/client.ts), the synchronous pkcs11js drop-in over NATS and `hsmsim project`. One module, so that every
 * side agrees by construction. Design: docs/notes/nats-design.md §7.
 *
 * Subjects, for a simulator named `<sim>` under the subject prefix `<prefix>` (default "hsmsim"):
 *
 * | subject                      | kind                               | body                                       |
 * |------------------------------|------------------------------------|--------------------------------------------|
 * | `<prefix>.<sim>.events.sim`  | JetStream (stream `HSMSIM` default, subjects `<prefix>.*.events.>`) | EventBatch lines |
 * | `<prefix>.<sim>.events.tok.<token>` | JetStream, the same stream: the records of one token (below) | EventBatch lines |
 * | `<prefix>.<sim>.call`        | request/reply, queue group "hsmsim" | CallRequest → CallReply                   |
 * | `<prefix>.<sim>.info`        | request/reply, queue group "hsmsim" | (empty) → ServiceInfo                     |
 * | `<prefix>.<sim>.readmodel`   | request/reply, queue group "hsmsim" | (empty) → ReadModelImage                  |
 * | `<prefix>.<sim>.hb.<app>`    | core publish, every `intervalMs`   | Heartbeat                                  |
 * | `<prefix>.<sim>.health`      | core publish by the service, every second | Health                              |
 *
 * KV buckets: `hsmsim-writers` (the writer lease, key `sim.<sim>`) and `hsmsim-health` (key `svc.<sim>`, the last
 * Health). Their names do not depend on the prefix.
 *
 * Event messages. One message is one group commit: the chain envelopes (chain.ts `encodeEntry`) of consecutive call
 * records, one per line, the same bytes as a file store's events.log lines, so the hash chain runs through the stream.
 * Headers: `Nats-Msg-Id: <sim>/<writerId>/<firstSeq>` (unique per writer incarnation, see nats-design §2) and
 * `Hsm-Seq: <first>-<last>`. Subjects per token (design note §11, events/token-subjects.ts): a record whose facts change
 * one token's persistent state, or whose call acted on one token, goes to `<prefix>.<sim>.events.tok.<token id>`,
 * every other record to `<prefix>.<sim>.events.sim`; one record sequence and one hash chain run through all of a simulator's subjects in
 * stream order, so the whole log is read with the filter `<prefix>.<sim>.events.>` (`Subjects.events`), and one
 * token's persistent state with its own subject alone (events/token-replay.ts). A simulator whose log is in the
 * single-subject layout of earlier versions (`<prefix>.<sim>.events`) is refused with a clear error.
 *
 * Calls. The body of a request or reply is JSON with byte strings (Uint8Array, Buffer) encoded as `{"$b":"<base64>"}`
 * (`encodeWire`/`decodeWire`). A reply carries the sequence of the call's record (`seq`): it is sent only once that
 * record and every earlier one is stored in JetStream. PINs travel in call requests (as they do over p11-kit's RPC):
 * use TLS between clients and the service when that matters; they never reach an event.
 *
 * Errors. A service that cannot store answers `rv: CKR_DEVICE_ERROR` with `error: "StoreFailed"` and stops; a client
 * whose request found no service or timed out answers CKR_DEVICE_ERROR itself (error "ServiceUnavailable" /
 * "CallTimeout": for a timeout the outcome is unknown, the call may be in the log).
 */
import type { Call } from "../events/calls.js";
import type { ProfileOptions } from "../pkcs11/profiles.js";

export const PROTOCOL_VERSION = 1;
export const DEFAULT_PREFIX = "hsmsim";
export const DEFAULT_STREAM = "HSMSIM";
export const DEFAULT_SIM = "default";
/** The queue group every service instance of a simulator joins. */
export const QUEUE_GROUP = "hsmsim";
export const LEASE_BUCKET = "hsmsim-writers";
export const HEALTH_BUCKET = "hsmsim-health";
/** Sealed state snapshots of `hsmsim serve` (events/jetstream-store.ts): `<prefix>.<sim>.meta` and its chunks. */
export const SNAPSHOT_BUCKET = "hsmsim-snapshots";
/** KV bucket of the services' signed checkpoints (events/jetstream-checkpoints.ts), key `<sim>.<seq>`. */
export const AUDIT_BUCKET = "hsmsim-audit";

/** Message headers on event messages. */
export const HEADER_SEQ = "Hsm-Seq";
export const HEADER_MSG_ID = "Nats-Msg-Id";

/**
 * Heartbeat defaults: a client beats every `intervalMs`; the service expires an application silent for `expiryMs`.
 * The async client beats from its main thread, so the expiry must outlast a main thread kept busy for a while (a
 * synchronous drop-in call blocking it up to its timeout, 3 s in the cluster test, did expire applications at 5 s).
 */
export const HEARTBEAT_INTERVAL_MS = 1000;
export const HEARTBEAT_EXPIRY_MS = 15_000;
/** A client's request timeout (ms) before it answers CKR_DEVICE_ERROR with error "CallTimeout". */
export const CALL_TIMEOUT_MS = 5000;

/** Default for both remote clients: stop following the stream after this long (ms) without a local read. */
export const PROJECTION_IDLE_MS = 250;

/** A NATS subject token: no dots, spaces, wildcards or control characters. */
const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

export function checkToken(what: string, v: string): string {
  if (typeof v !== "string" || !TOKEN.test(v)) throw new TypeError(`"${what}" expected 1-64 of A-Z a-z 0-9 _ -, got ${JSON.stringify(v)}`);
  return v;
}

export interface Subjects {
  /** The filter of the simulator's whole log (all its event subjects), read in stream order. */
  events: string;
  /** Records of calls on no token (C_Initialize, C_Finalize, slot lists…), or changing several tokens. */
  eventsSim: string;
  /** Records that change this token's persistent state or act on it (token ids: `slot<n>`, `tok<n>`). */
  eventsToken(token: string): string;
  /** The single-subject layout's subject (logs written before subjects per token): refused, never written. */
  eventsLegacy: string;
  /** Every event subject of the simulator in either layout: for `last_by_subj` (not a consumer filter on 2.9). */
  eventsAny: string;
  call: string;
  info: string;
  readModel: string;
  heartbeat(app: number): string;
  heartbeats: string;
  health: string;
  leaseKey: string;
  healthKey: string;
}

/** The subjects of simulator `sim` under `prefix`. */
export function subjects(sim: string, prefix: string = DEFAULT_PREFIX): Subjects {
  checkToken("sim", sim);
  checkToken("prefix", prefix);
  const base = `${prefix}.${sim}`;
  return {
    events: `${base}.events.>`,
    eventsSim: `${base}.events.sim`,
    eventsToken: (token) => `${base}.events.tok.${checkToken("token", token)}`,
    eventsLegacy: `${base}.events`,
    eventsAny: `${base}.>`,
    call: `${base}.call`,
    info: `${base}.info`,
    readModel: `${base}.readmodel`,
    heartbeat: (app) => `${base}.hb.${app}`,
    heartbeats: `${base}.hb.*`,
    health: `${base}.health`,
    leaseKey: `sim.${sim}`,
    healthKey: `svc.${sim}`,
  };
}

/** The stream's subjects: every simulator's event subjects under `prefix`. */
export function streamSubjects(prefix: string = DEFAULT_PREFIX): string {
  return `${checkToken("prefix", prefix)}.*.events.>`;
}

/** The stream subject of the single-subject layout (before subjects per token). */
export function legacyStreamSubjects(prefix: string = DEFAULT_PREFIX): string {
  return `${checkToken("prefix", prefix)}.*.events`;
}

/** `nats://host:port/<sim>` (or `tls://…`): the server URL and the simulator name (default "default"). */
export function parseSimUrl(url: string): { server: string; sim: string } {
  if (typeof url !== "string") throw new TypeError(`"url" expected string, got ${typeof url}`);
  const m = /^((?:nats|tls|wss?):\/\/[^/]+)(?:\/([^/?#]*))?\/?$/.exec(url);
  if (!m) throw new TypeError(`"url" expected nats://host:port/<name>, got ${JSON.stringify(url)}`);
  const sim = m[2] ? decodeURIComponent(m[2]) : DEFAULT_SIM;
  return { server: m[1]!, sim: checkToken("sim", sim) };
}

/** The simulator's configuration, as a client needs it to build the same read model. */
export interface SimConfig {
  profile: ProfileOptions;
  slots?: number;
}

/** Request on `<prefix>.<sim>.call`. */
export interface CallRequest {
  v: typeof PROTOCOL_VERSION;
  /** The application the call runs as: 0 before C_Initialize, then the id its reply gave. */
  app: number;
  /** The connection's client id (a UUID): for logs and to tell the clients of one application apart. */
  client: string;
  call: Call;
}

export type ErrorName =
  /** The store failed (fence lost, publish deadline passed): the service answers nothing more and exits. */
  | "StoreFailed"
  /** The request could not be parsed. Nothing was decided or recorded. */
  | "ProtocolError"
  /** Client side: no service answers the subject. Nothing was decided. */
  | "ServiceUnavailable"
  /** Client side: the request timed out. The outcome is unknown: the call may be in the log. */
  | "CallTimeout";

/** Reply to a CallRequest. */
export interface CallReply {
  v: typeof PROTOCOL_VERSION;
  rv: number;
  out?: unknown;
  /** The sequence of the call's record (0 if none was made); the record and every earlier one are stored. */
  seq: number;
  /** C_Initialize: the application id to send from now on. */
  app?: number;
  /** C_Initialize: what the client needs for its projection and heartbeats. */
  init?: { config: SimConfig; heartbeat: { intervalMs: number; expiryMs: number } };
  error?: ErrorName;
  message?: string;
}

/** Reply on `<prefix>.<sim>.info`. */
export interface ServiceInfo {
  v: typeof PROTOCOL_VERSION;
  sim: string;
  stream: string;
  prefix: string;
  writer: string;
  config: SimConfig;
  lastSeq: number;
  durableSeq: number;
}

/**
 * Reply on `<prefix>.<sim>.readmodel`: the service's read model as of record `seq` (stored), encoded by the state
 * codec (events/snapshot.ts STATE_CODEC; it holds no secret: token flags and labels, applications' slots and logins,
 * sessions), so that a client's projection starts there instead of at the first record. The client follows the
 * stream from `streamSeq` (a message at or before the one holding `seq + 1`), skipping records up to `seq`.
 * `tree` is absent when the image would not fit in one message: the client then replays from the start.
 */
export interface ReadModelImage {
  v: typeof PROTOCOL_VERSION;
  seq: number;
  streamSeq: number;
  tree?: unknown;
}

/** Published on `<prefix>.<sim>.hb.<app>` by a client, every `intervalMs`. */
export interface Heartbeat {
  app: number;
  client: string;
}

/** Published on `<prefix>.<sim>.health` and put in KV `hsmsim-health` key `svc.<sim>`. */
export interface Health {
  sim: string;
  writer: string;
  pid: number;
  host: string;
  since: string;
  status: "serving" | "failed" | "stopping";
  lastSeq: number;
  durableSeq: number;
  apps: number;
  at: string;
}

/** The lease value in KV `hsmsim-writers` key `sim.<sim>`. */
export interface LeaseHolder {
  writer: string;
  pid: number;
  host: string;
  since: string;
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

/**
 * JSON with byte strings as `{"$b": base64}`. Buffers are caught before their toJSON runs. An object whose only key
 * is "$b" is therefore reserved (no call's arguments or outputs have that shape).
 */
export function encodeWire(v: unknown): Uint8Array {
  return utf8.encode(
    JSON.stringify(v, function (this: Record<string, unknown>, k: string, x: unknown) {
      const orig = this[k];
      if (orig instanceof Uint8Array) return { $b: Buffer.from(orig.buffer, orig.byteOffset, orig.byteLength).toString("base64") };
      return x;
    }),
  );
}

/** The inverse of encodeWire: `{"$b"}` objects become Uint8Array. Throws SyntaxError for bytes that are not JSON. */
export function decodeWire<T>(data: Uint8Array): T {
  const text = utf8d.decode(data);
  // Without a "$b" key there is nothing to revive, and JSON.parse is several times faster without a reviver.
  if (!text.includes('"$b"')) return JSON.parse(text) as T;
  return JSON.parse(text, (_k, x: unknown) => {
    if (x !== null && typeof x === "object" && !Array.isArray(x)) {
      const b = (x as { $b?: unknown }).$b;
      if (typeof b === "string" && Object.keys(x).length === 1) return new Uint8Array(Buffer.from(b, "base64"));
    }
    return x;
  }) as T;
}
