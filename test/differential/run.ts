/**
 * Differential runner: replays a symbolic call sequence (sequence.ts) on one implementation and returns the list
 * of normalised observations, so that two implementations (SoftHSM 2.6.1 and hsmsim) can be compared call by call.
 *
 * ## How pkcs11js 2.1.7 maps the calls (found empirically against SoftHSM 2.6.1 and by reading its src/*.cpp)
 *
 * Errors
 * - Most C_* methods throw `Pkcs11Error` (name "Pkcs11Error", message "CKR_NAME", numeric `code`, `method` = the
 *   C_* name, or "" for C_Digest / C_DigestFinal because those are re-wrapped by an anonymous function).
 * - BUT C_FindObjects, C_CreateObject, C_SetAttributeValue and C_CopyObject throw a PLAIN `Error` whose message is
 *   "CKR_NAME:<decimal code>" (e.g. "CKR_OPERATION_NOT_INITIALIZED:145"), with `code` undefined and not
 *   `instanceof Pkcs11Error`. (C_FindObjects is re-wrapped with the *unwrapped* native method; the other three are
 *   JS subclass methods calling `super.X`, which shadow the wrapped instance properties.)
 * - Wrong argument count or types throw a `TypeError` before anything reaches the module
 *   (e.g. C_Login(s, 1) → "Parameters are required. Expected 3 arguments, but received 2.").
 * - Observations therefore record `err: { name, message, code }` for every throw, and `rv` = the CKR name.
 *
 * Arguments
 * - Every method checks the exact argument count (GET_ARGS): optional-looking parameters in index.d.ts
 *   (C_InitToken pin/label, C_InitPIN pin, C_Login pin) are NOT optional. A NULL PIN cannot be passed.
 * - Strings (PINs, labels) are passed as UTF-8 bytes, NUL-terminated, with the byte length (no NUL) as length;
 *   "" → a non-NULL pointer with length 0 (so C_Login(..., "") reaches SoftHSM and gives CKR_PIN_INCORRECT).
 * - C_InitToken(slot, pin, label) does NOT pad the label: it passes a buffer of strlen(label)+1 bytes (label +
 *   NUL) and SoftHSM reads exactly 32 bytes. A 31-byte label gives label + "\0"; a shorter one makes SoftHSM read
 *   past the buffer (observed "abc" + 29 NULs, but that is heap garbage by luck); longer labels are cut to 32.
 *   C_GetTokenInfo then returns the 32 bytes verbatim (NULs included). The generator only uses labels ≥ 32 bytes.
 *   C_InitToken returns undefined (index.d.ts claims a string).
 * - An empty Buffer (Buffer.alloc(0)) is passed as a NULL pointer with length 0: C_DigestUpdate(s, empty) and
 *   C_Digest(s, empty, out) → CKR_ARGUMENTS_BAD from SoftHSM (and the digest operation stays active).
 *   An empty template [] is passed as pTemplate = NULL, ulCount = 0: fine for C_FindObjectsInit (matches all),
 *   CKR_ARGUMENTS_BAD for C_CreateObject / C_GetAttributeValue / C_SetAttributeValue (before the session check).
 * - C_FindObjects(s, 0) allocates a 0-length vector → phObject = NULL → CKR_ARGUMENTS_BAD.
 * - Numbers (flags, user types, CK_ULONG attribute values) go through napi_get_value_uint32: 32-bit only.
 * - Attribute values: boolean → 1 byte CK_BBOOL; number → 8-byte CK_ULONG; string → UTF-8 bytes (no NUL counted;
 *   "" → non-NULL pointer, length 0); Buffer → bytes (empty → NULL, 0); undefined/null → NULL, 0.
 * - C_Initialize() always passes a non-NULL, zeroed CK_C_INITIALIZE_ARGS (flags from `{flags}` if given).
 *
 * Results
 * - Handles (slots, sessions, objects) are 8-byte little-endian Buffers.
 * - C_GetSlotList(tokenPresent) ALWAYS does the size query (pSlotList = NULL) first, then the fill call; so with
 *   SoftHSM every C_GetSlotList after a C_InitToken already shows the new uninitialised slot. If the size query
 *   returns 0 it returns [] without a second call.
 * - C_GetTokenInfo: flags, ulMax/ulSessionCount, ulMax/ulRwSessionCount, pin lengths are napi uint32, so
 *   CK_UNAVAILABLE_INFORMATION (~0UL) arrives as 4294967295 (sessionCount, rwSessionCount); the 4 memory fields are
 *   BigInt (CK_UNAVAILABLE_INFORMATION = 18446744073709551615n); label/manufacturerID/model/serialNumber are the
 *   fixed-size fields verbatim (padding kept); utcTime is a 16-char string.
 * - C_GetSessionInfo: { slotID: Buffer(8), state, flags, deviceError }.
 * - C_GetAttributeValue does a length query then a fill call; returns the template array (mutated) with `value`
 *   Buffers; CKA_CLASS comes back as 8 bytes, booleans as 1 byte. Any non-OK rv of either call throws (so
 *   [CKA_LABEL, CKA_SIGN] throws CKR_ATTRIBUTE_TYPE_INVALID, no partial result).
 * - C_FindObjects(s, n) returns an array of Buffers; C_FindObjects(s) (1 arg) returns one Buffer or null.
 * - C_WaitForSlotEvent(CKF_DONT_BLOCK) returns null on CKR_NO_EVENT (no throw); flags without DONT_BLOCK throws
 *   CKR_FUNCTION_NOT_SUPPORTED (even before C_Initialize).
 * - C_Digest(s, in, out) / C_DigestFinal(s, out) return `out.subarray(0, len)`; a too-small `out` gives
 *   CKR_BUFFER_TOO_SMALL and the operation stays active.
 * - C_Initialize, C_Finalize, C_InitToken, C_InitPIN, C_SetPIN, C_Login, ... return undefined.
 *
 * ## Normalisation (what is random per SoftHSM run)
 * - Token serials (16 hex chars from a random UUID) → `serial#k`, k = creation order of the token in the sequence
 *   (the runner learns each serial by a probe C_GetTokenInfo right after every successful C_InitToken).
 *   Slot IDs derived from a serial (last 8 hex digits & 0x7fffffff) → `slot:serial#k`; small slot IDs (< 1024:
 *   the "uninitialised slot"/in-place numbering) are kept as numbers. The slot description "SoftHSM slot ID 0x…"
 *   is rewritten the same way (and trimmed). utcTime is dropped. BigInts become "<digits>n".
 * - C_GetSlotList order: SoftHSM sorts initialised slots by (random) slot ID, so the order of serial-derived slots
 *   is random. The observation lists them in canonical order (by k) and appends "!unsorted:<raw>" if the raw
 *   serial-derived IDs were not ascending. Slot references ("slot index k") resolve against the canonical list.
 * - Object handles found by C_FindObjectsInit for objects this process holds no valid handle for are handed out
 *   in SoftHSM's (random: UUID file names) token-object iteration order, so which object gets which number is
 *   random, and a later find matching a subset would show different numbers. To keep replays deterministic, before
 *   every C_FindObjectsInit the runner does hidden finds, one per object identity that may exist (each generated
 *   object carries CKA_APPLICATION = "o<step>", its identity), in identity order, with the real template plus that
 *   CKA_APPLICATION (Init, FindObjects, Final). They hand out exactly the handles the real Init would, but in a
 *   deterministic order; the real Init then reuses them. Object references resolve by identity; the
 *   C_FindObjectsInit observation gets `probe.found`: the identities matched. Handle NUMBERS are compared exactly.
 * - The hidden calls (serial probe, hidden finds) are made on both implementations alike; they are not recorded as
 *   observations, but what they learn is (`probe`).
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";
import { createSoftHsmEnv, type Pkcs11Like } from "../support/softhsm.js";
import { CK } from "../../src/pkcs11/constants.js";
import { CRYPTO_OUT } from "../../src/events/call-schema.js";
import {
  CKA_APPLICATION,
  IDENTITY_PREFIX,
  NEVER_HANDLE,
  type ObjectRef,
  type SessionRef,
  type Sequence,
  type SlotRef,
  type Step,
  type SymArg,
  type TemplateAttr,
} from "./sequence.js";

// ---------------------------------------------------------------------------------------------------------------
// Wire format: JSON-safe arguments and results (shared by the in-process driver and the SoftHSM worker)

/** A handle argument, sent as an 8-byte little-endian Buffer. */
export interface WireHandle {
  $h: number;
}
/** An input Buffer (hex). */
export interface WireBuf {
  $buf: string;
}
/** A zero-filled output Buffer of the given length. */
export interface WireAlloc {
  $alloc: number;
}
export type Wire = null | boolean | number | string | WireHandle | WireBuf | WireAlloc | Wire[] | { [key: string]: Wire };

/** One call's result as reported by a driver. */
export interface Observation {
  fn: string;
  /** "CKR_OK", "CKR_…" (from a thrown error), or "THROW" for a non-PKCS#11 throw (TypeError etc.). */
  rv: string;
  /** Normalised return value (Buffers as hex strings, handles as numbers, BigInt as "<digits>n"). */
  out?: unknown;
  /** Present when the call threw: the error's name, message and code (null when absent). */
  err?: { name: string; message: string; code: number | null };
}

/** A driver for one application (one process, for SoftHSM). */
export interface AppDriver {
  call(fn: string, args: Wire[]): Promise<Observation>;
  /** End of sequence: C_Finalize (result ignored) and release per-sequence resources. */
  close?(): Promise<void>;
}

export type MakeApp = ((i: number) => AppDriver) & { dispose?: () => void | Promise<void> };

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x) && !Buffer.isBuffer(x);
}

export function handleBuffer(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

export function handleNumber(b: Buffer): number {
  const v = b.readBigUInt64LE(0);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : Number.NaN;
}

/** Wire args → pkcs11js args. */
export function toNativeArg(w: unknown): unknown {
  if (Array.isArray(w)) return w.map(toNativeArg);
  if (isObj(w)) {
    if (typeof w.$h === "number") return handleBuffer(w.$h);
    if (typeof w.$buf === "string") return w.$buf.length === 0 ? Buffer.alloc(0) : Buffer.from(w.$buf, "hex");
    if (typeof w.$alloc === "number") return Buffer.alloc(w.$alloc);
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(w)) o[k] = toNativeArg(v);
    return o;
  }
  return w;
}

/** Generic JSON-safe conversion: Buffer → hex, bigint → "<digits>n", undefined → null. */
export function plain(x: unknown): unknown {
  if (Buffer.isBuffer(x)) return x.toString("hex");
  if (typeof x === "bigint") return `${x.toString()}n`;
  if (x === undefined) return null;
  if (Array.isArray(x)) return x.map(plain);
  if (isObj(x)) {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) o[k] = plain(v);
    return o;
  }
  return x;
}

const asHandle = (x: unknown): unknown => (Buffer.isBuffer(x) && x.length === 8 ? handleNumber(x) : plain(x));

/** pkcs11js result → JSON-safe `out` (handles as numbers). */
export function wireOut(fn: string, result: unknown): unknown {
  switch (fn) {
    case "C_GetSlotList":
      return Array.isArray(result) ? result.map(asHandle) : plain(result);
    case "C_OpenSession":
    case "C_CreateObject":
    case "C_CopyObject":
    case "C_GenerateKey":
    case "C_UnwrapKey":
    case "C_WaitForSlotEvent":
      return asHandle(result);
    case "C_FindObjects":
      return Array.isArray(result) ? result.map(asHandle) : asHandle(result);
    case "C_GetSessionInfo":
      if (isObj(result)) return { ...(plain(result) as Record<string, unknown>), slotID: asHandle(result.slotID) };
      return plain(result);
    case "C_GetAttributeValue":
      return Array.isArray(result)
        ? result.map((a: unknown) => (isObj(a) ? { type: a.type, value: a.value === undefined ? null : plain(a.value) } : plain(a)))
        : plain(result);
    default:
      return plain(result);
  }
}

const { CKA_ID, CKA_CHECK_VALUE } = CK;
const CKA_VALUE = CK.CKA_VALUE;

const CKR_RE = /^(CKR_[A-Z0-9_]+)(?::(\d+))?$/;

/** Invoke one pkcs11js(-compatible) method and observe the outcome. */
export function invokePkcs11(p: Pkcs11Like, fn: string, args: readonly unknown[]): Observation {
  const method = p[fn];
  if (typeof method !== "function") {
    return { fn, rv: "THROW", err: { name: "TypeError", message: `no method ${fn}`, code: null } };
  }
  try {
    const result: unknown = (method as (...a: unknown[]) => unknown).apply(p, args.map(toNativeArg));
    return { fn, rv: "CKR_OK", out: wireOut(fn, result) };
  } catch (e) {
    const err = e as { name?: unknown; message?: unknown; code?: unknown };
    const name = typeof err.name === "string" ? err.name : "unknown";
    const message = typeof err.message === "string" ? err.message : String(e);
    const code = typeof err.code === "number" ? err.code : null;
    const m = CKR_RE.exec(message);
    return { fn, rv: m?.[1] ?? "THROW", err: { name, message, code } };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Drivers

/**
 * In-process applications for any pkcs11js-compatible class: one instance per application, `.load(loadArg)`
 * (a library path for pkcs11js, the `sim` object for hsmsim). Call once per sequence.
 * Note: two instances of the real pkcs11js in one process share the library's state (they are NOT two
 * processes); use `softhsmApps()` for multi-application SoftHSM runs.
 */
export function pkcs11jsApps(PKCS11Class: new () => unknown, loadArg: unknown): MakeApp {
  const instances = new Map<number, Pkcs11Like>();
  const make = (i: number): AppDriver => {
    let p = instances.get(i);
    if (!p) {
      p = new PKCS11Class() as Pkcs11Like;
      p.load(loadArg);
      instances.set(i, p);
    }
    const inst = p;
    return {
      call: (fn, args) => Promise.resolve(invokePkcs11(inst, fn, args)),
      close: () => {
        invokePkcs11(inst, "C_Finalize", []);
        return Promise.resolve();
      },
    };
  };
  return make;
}

// --- SoftHSM worker processes (one per application index, reused across sequences) ---------------------------

export type WorkerRequestBody = { op: "call"; conf: string; fn: string; args: Wire[] } | { op: "reset" };
export type WorkerRequest = WorkerRequestBody & { id: number };
export interface WorkerResponse {
  id: number;
  obs?: Observation;
  error?: string;
}

const here = dirname(fileURLToPath(import.meta.url));
const WORKER_PATH = resolve(here, "softhsm-worker.ts");
const PROJECT_ROOT = resolve(here, "..", "..");

class SoftHsmWorker {
  private readonly child: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: WorkerResponse) => void; reject: (e: Error) => void }>();
  private dead: Error | undefined;

  constructor(readonly index: number) {
    this.child = fork(WORKER_PATH, [], {
      cwd: PROJECT_ROOT,
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    this.child.on("message", (m: WorkerResponse) => {
      const p = this.pending.get(m.id);
      if (p) {
        this.pending.delete(m.id);
        p.resolve(m);
      }
    });
    this.child.on("exit", (code, signal) => {
      this.dead = new Error(`SoftHSM worker ${index} exited (code ${String(code)}, signal ${String(signal)})`);
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
      workers.delete(index);
    });
  }

  request(req: WorkerRequestBody): Promise<WorkerResponse> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolvePromise, reject) => {
      this.pending.set(id, { resolve: resolvePromise, reject });
      this.child.send({ ...req, id } as WorkerRequest);
    });
  }

  stop(): Promise<void> {
    if (this.dead) return Promise.resolve();
    return new Promise((r) => {
      this.child.once("exit", () => r());
      this.child.disconnect();
      setTimeout(() => {
        if (!this.dead) this.child.kill("SIGKILL");
      }, 2000).unref();
    });
  }
}

const workers = new Map<number, SoftHsmWorker>();

function worker(i: number): SoftHsmWorker {
  let w = workers.get(i);
  if (!w) {
    w = new SoftHsmWorker(i);
    workers.set(i, w);
  }
  return w;
}

/** Stop all SoftHSM worker processes (call in afterAll). */
export async function stopSoftHsmWorkers(): Promise<void> {
  const all = [...workers.values()];
  workers.clear();
  await Promise.all(all.map((w) => w.stop()));
}

/**
 * SoftHSM applications: application i is the long-lived worker process i (forked on first use, reused across
 * sequences). Each call of softhsmApps() makes a fresh token directory shared by the applications of one sequence.
 */
export function softhsmApps(): MakeApp {
  const env = createSoftHsmEnv();
  const make = (i: number): AppDriver => {
    const w = worker(i);
    return {
      async call(fn, args) {
        const r = await w.request({ op: "call", conf: env.confPath, fn, args });
        if (!r.obs) throw new Error(`worker ${i}: ${r.error ?? "no observation"}`);
        return r.obs;
      },
      async close() {
        await w.request({ op: "reset" });
      },
    };
  };
  make.dispose = () => env.remove();
  return make;
}

// ---------------------------------------------------------------------------------------------------------------
// Runner

/** An observation as recorded by runSequence. */
export interface StepObservation extends Observation {
  /** Index of the step in the sequence. */
  step: number;
  app: number;
  /** Extra facts learnt by hidden probes (compared like the rest). */
  probe?: unknown;
  /** The resolved wire arguments (shown in reports; NOT compared: raw slot IDs and handles may differ). */
  args?: Wire[];
}

const SMALL_SLOT_LIMIT = 1024;

/** Slot ID → symbol mapping shared by all applications of one run. */
class Symbols {
  private readonly serialBySlot = new Map<number, number>(); // derived slot id → token index k
  private nextSerial = 0;
  private readonly unknownSlots = new Map<number, number>();

  static derivedSlot(serial: string): number {
    return parseInt(serial.slice(8), 16) & 0x7fffffff;
  }

  /** Learn a serial (first sight allocates the next token index). */
  serial(serial: string): string {
    if (!/^[0-9a-f]{16}$/.test(serial)) return serial;
    const id = Symbols.derivedSlot(serial);
    let k = this.serialBySlot.get(id);
    if (k === undefined) {
      k = this.nextSerial++;
      this.serialBySlot.set(id, k);
    }
    return `serial#${k}`;
  }

  slot(id: number): number | string {
    if (!Number.isFinite(id) || id < SMALL_SLOT_LIMIT) return id;
    const k = this.serialBySlot.get(id);
    if (k !== undefined) return `slot:serial#${k}`;
    let u = this.unknownSlots.get(id);
    if (u === undefined) {
      u = this.unknownSlots.size;
      this.unknownSlots.set(id, u);
    }
    return `slot:unknown#${u}`;
  }

  rank(id: number): number {
    const k = this.serialBySlot.get(id);
    if (k !== undefined) return k;
    return 1e6 + (this.unknownSlots.get(id) ?? 0);
  }
}

interface SessionRec {
  h: number;
  slot: number;
  live: boolean;
  lifetime: number;
}

interface AppState {
  lifetime: number;
  sessions: SessionRec[];
  lastClosed: number | undefined;
  /** Last slot list, canonical order, raw IDs. */
  slots: number[];
  handleToIdent: Map<number, number>;
  identToHandle: Map<number, number>;
  stale: number[];
  lastCreated: number | undefined;
}

function newAppState(): AppState {
  return {
    lifetime: 0,
    sessions: [],
    lastClosed: undefined,
    slots: [],
    handleToIdent: new Map(),
    identToHandle: new Map(),
    stale: [],
    lastCreated: undefined,
  };
}

function pickMod<T>(list: readonly T[], k: number): T | undefined {
  if (list.length === 0) return undefined;
  const i = ((k % list.length) + list.length) % list.length;
  return list[i];
}

function resolveSlot(ref: SlotRef, st: AppState): number {
  if ("id" in ref) return ref.id;
  return pickMod(st.slots, ref.index) ?? 0;
}

function resolveSession(ref: SessionRef, st: AppState): number {
  if ("value" in ref) return ref.value;
  if ("live" in ref) {
    const live = st.sessions.filter((s) => s.live);
    const s = pickMod(live, ref.live) ?? pickMod(st.sessions, ref.live);
    return s?.h ?? 1;
  }
  if ("any" in ref) return pickMod(st.sessions, ref.any)?.h ?? 1;
  if ("closed" in ref) return st.lastClosed ?? NEVER_HANDLE;
  const objs = [...st.handleToIdent.keys()].sort((a, b) => a - b);
  return pickMod(objs, ref.objectAsSession) ?? NEVER_HANDLE;
}

function resolveObject(ref: ObjectRef, st: AppState, run?: RunState): number {
  if ("value" in ref) return ref.value;
  if ("key" in ref) {
    const idents = [...st.identToHandle.keys()].filter((i) => run?.identAttr.get(i) === CKA_ID).sort((a, b) => a - b);
    const id = pickMod(idents, ref.key);
    return id === undefined ? NEVER_HANDLE : (st.identToHandle.get(id) ?? NEVER_HANDLE);
  }
  if ("ident" in ref) {
    const idents = [...st.identToHandle.keys()].sort((a, b) => a - b);
    const id = pickMod(idents, ref.ident);
    return id === undefined ? NEVER_HANDLE : (st.identToHandle.get(id) ?? NEVER_HANDLE);
  }
  if ("lastCreated" in ref) return st.lastCreated ?? NEVER_HANDLE;
  if ("stale" in ref) return pickMod([...st.stale].sort((a, b) => a - b), ref.stale) ?? NEVER_HANDLE;
  const sessions = st.sessions.filter((s) => s.lifetime === st.lifetime).map((s) => s.h);
  return pickMod(sessions, ref.sessionAsObject) ?? NEVER_HANDLE;
}

function wireTemplate(attrs: readonly TemplateAttr[]): Wire[] {
  return attrs.map((a) => {
    const o: { [k: string]: Wire } = { type: a.type };
    if (a.value !== undefined) o.value = typeof a.value === "object" ? { $buf: a.value.hex } : a.value;
    return o;
  });
}

function resolveArg(a: SymArg, st: AppState, run?: RunState): Wire {
  switch (a.k) {
    case "slot":
      return { $h: resolveSlot(a.ref, st) };
    case "session":
      return { $h: resolveSession(a.ref, st) };
    case "object":
      return { $h: resolveObject(a.ref, st, run) };
    case "template":
      return wireTemplate(a.attrs);
    case "bytes":
      return { $buf: a.hex };
    case "alloc":
      return { $alloc: a.len };
    case "mechanism":
      return a.parameter === undefined ? { mechanism: a.mechanism } : { mechanism: a.mechanism, parameter: { $buf: a.parameter } };
    case "initArgs":
      return { flags: a.flags };
    case "lit":
      return a.v;
  }
}

/**
 * The identity a creating template gives its object: CKA_APPLICATION = "o<step>" for data objects, CKA_ID = "o<step>"
 * for keys and certificates (which have no CKA_APPLICATION; sequence-keys.ts).
 */
function identityOf(template: readonly TemplateAttr[]): number | undefined {
  for (const a of template) {
    if ((a.type === CKA_APPLICATION || a.type === CKA_ID) && typeof a.value === "string" && a.value.startsWith(IDENTITY_PREFIX)) {
      const n = Number(a.value.slice(IDENTITY_PREFIX.length));
      if (Number.isInteger(n)) return n;
    }
  }
  return undefined;
}

function learnHandle(st: AppState, h: number, ident: number): void {
  const old = st.identToHandle.get(ident);
  if (old !== undefined && old !== h) {
    st.handleToIdent.delete(old);
    st.stale.push(old);
  }
  st.identToHandle.set(ident, h);
  st.handleToIdent.set(h, ident);
}

function forgetLifetime(st: AppState): void {
  for (const s of st.sessions) s.live = false;
  st.handleToIdent.clear();
  st.identToHandle.clear();
  st.stale = [];
  st.lastCreated = undefined;
  // st.slots is kept: an application may still use slot IDs from before (stale after a renumbering)
  st.lifetime++;
}

/** Per-run state shared by the applications of one sequence. */
interface RunState {
  sym: Symbols;
  /** Identities of objects successfully created (by any application). */
  created: Set<number>;
  /** Identities of objects successfully destroyed (by any application). */
  destroyed: Set<number>;
  /** The attribute that carries each identity: CKA_APPLICATION (data objects) or CKA_ID (keys, certificates). */
  identAttr: Map<number, number>;
  /**
   * Identities of keys whose value is random on each implementation (C_GenerateKey, and copies of such keys): their
   * CKA_VALUE, CKA_CHECK_VALUE and wrapped forms are compared by length only.
   */
  random: Set<number>;
  /**
   * Sessions ("app:handle") whose running encryption, decryption, MAC or digest uses a key of `random` (issue 3's
   * crypto calls, sequence-crypto.ts): their outputs are compared by length only.
   */
  randomOps: Set<string>;
}

/** Functions whose output derives from the session's operation key: the crypto steps, and digests (C_DigestKey). */
const KEYED_OUTPUT: ReadonlySet<string> = new Set([...CRYPTO_OUT, "C_Digest", "C_DigestFinal"]);

function normaliseTokenInfo(out: unknown, sym: Symbols): unknown {
  if (!isObj(out)) return out;
  const o: Record<string, unknown> = { ...out };
  delete o.utcTime;
  if (typeof o.serialNumber === "string") o.serialNumber = sym.serial(o.serialNumber);
  return o;
}

export interface RunOptions {
  /** Record the resolved wire args in each observation (default true). */
  recordArgs?: boolean;
}

/**
 * Run one sequence. `makeApp(i)` gives the driver of application i (called at most once per i, lazily).
 * All used applications are closed (C_Finalize, result ignored) at the end, then `makeApp.dispose?.()`.
 */
export async function runSequence(seq: Sequence, makeApp: MakeApp, opts: RunOptions = {}): Promise<StepObservation[]> {
  const recordArgs = opts.recordArgs ?? true;
  const run: RunState = { sym: new Symbols(), created: new Set(), destroyed: new Set(), identAttr: new Map(), random: new Set(), randomOps: new Set() };
  const drivers = new Map<number, AppDriver>();
  const states = new Map<number, AppState>();
  const result: StepObservation[] = [];
  const driverOf = (i: number): AppDriver => {
    let d = drivers.get(i);
    if (!d) {
      d = makeApp(i);
      drivers.set(i, d);
    }
    return d;
  };
  const stateOf = (i: number): AppState => {
    let s = states.get(i);
    if (!s) {
      s = newAppState();
      states.set(i, s);
    }
    return s;
  };

  try {
    for (let index = 0; index < seq.steps.length; index++) {
      const step = seq.steps[index] as Step;
      const d = driverOf(step.app);
      const st = stateOf(step.app);
      const args = step.args.map((a) => resolveArg(a, st, run));

      let found: string[] | undefined;
      if (step.fn === "C_FindObjectsInit") found = await hiddenFind(d, st, run, args);

      const obs = await d.call(step.fn, args);
      const rec: StepObservation = { step: index, app: step.app, ...obs };
      if (found !== undefined && obs.rv === "CKR_OK") rec.probe = { found };
      if (recordArgs) rec.args = args;
      await afterCall(step, args, rec, st, d, run);
      result.push(rec);
    }
  } finally {
    for (const d of drivers.values()) {
      try {
        await d.close?.();
      } catch {
        // a crashed worker is reported by the observation that failed
      }
    }
    await makeApp.dispose?.();
  }
  return result;
}

/**
 * Hidden finds before a C_FindObjectsInit, one per object identity that may exist (created in this sequence and
 * not known destroyed), in ascending identity order, each with the real template plus
 * CKA_APPLICATION = "o<identity>" (Init, FindObjects, Final). Together they hand out exactly the handles the real
 * Init would (each matching object this process has no valid handle for gets one), but in a deterministic order;
 * the real Init then finds every match already holding a handle. Returns the identities found, or undefined when
 * a hidden Init fails (the real one then fails the same way and changes nothing).
 */
async function hiddenFind(d: AppDriver, st: AppState, run: RunState, args: Wire[]): Promise<string[] | undefined> {
  const [session, template] = args;
  if (session === undefined || !Array.isArray(template)) return undefined;
  if (template.some((a) => isObj(a) && (a.type === CKA_APPLICATION || a.type === CKA_ID))) return undefined; // not generated; keep it simple
  const found: string[] = [];
  const idents = [...run.created].filter((i) => !run.destroyed.has(i)).sort((a, b) => a - b);
  for (const ident of idents) {
    const t: Wire[] = [...template, { type: run.identAttr.get(ident) ?? CKA_APPLICATION, value: `${IDENTITY_PREFIX}${ident}` }];
    const init = await d.call("C_FindObjectsInit", [session, t]);
    if (init.rv !== "CKR_OK") return undefined;
    const r = await d.call("C_FindObjects", [session, 4]);
    await d.call("C_FindObjectsFinal", [session]);
    const hs = r.rv === "CKR_OK" && Array.isArray(r.out) ? r.out.filter((h): h is number => typeof h === "number") : [];
    const h = hs[0];
    if (h !== undefined) {
      learnHandle(st, h, ident);
      found.push(`${IDENTITY_PREFIX}${ident}`);
    }
    if (hs.length > 1) found.push(`!duplicate:${IDENTITY_PREFIX}${ident}`);
  }
  return found;
}

const handleArg = (w: Wire | undefined): number | undefined => {
  const h: unknown = isObj(w) ? w.$h : undefined;
  return typeof h === "number" ? h : undefined;
};

/** Update the app state from an observation and normalise its `out` in place. */
async function afterCall(step: Step, args: Wire[], rec: StepObservation, st: AppState, d: AppDriver, run: RunState): Promise<void> {
  const sym = run.sym;
  const ok = rec.rv === "CKR_OK";
  switch (step.fn) {
    case "C_Initialize":
      if (ok) forgetLifetime(st);
      break;
    case "C_Finalize":
      if (ok) forgetLifetime(st);
      break;
    case "C_GetSlotList": {
      if (!ok || !Array.isArray(rec.out)) break;
      const raw = rec.out.filter((x): x is number => typeof x === "number");
      const largePos: number[] = [];
      const large: number[] = [];
      raw.forEach((id, i) => {
        if (id >= SMALL_SLOT_LIMIT) {
          largePos.push(i);
          large.push(id);
        }
      });
      const ascending = large.every((v, i) => i === 0 || (large[i - 1] as number) < v);
      // make sure every large ID has a symbol before ranking (allocation order = raw order, only for unknowns)
      for (const id of large) sym.slot(id);
      const sorted = [...large].sort((a, b) => sym.rank(a) - sym.rank(b));
      const canonical = [...raw];
      largePos.forEach((p, j) => {
        canonical[p] = sorted[j] as number;
      });
      st.slots = canonical;
      const out: unknown[] = canonical.map((id) => sym.slot(id));
      if (!ascending) out.push(`!unsorted:${raw.join(",")}`);
      rec.out = out;
      break;
    }
    case "C_GetSlotInfo":
      if (ok && isObj(rec.out) && typeof rec.out.slotDescription === "string") {
        const desc = rec.out.slotDescription;
        rec.out = {
          ...rec.out,
          slotDescription: desc.replace(/0x([0-9a-f]+)/, (_m, hex: string) => String(sym.slot(parseInt(hex, 16)))).trimEnd(),
          slotDescriptionLength: desc.length,
        };
      }
      break;
    case "C_GetTokenInfo":
      if (ok) rec.out = normaliseTokenInfo(rec.out, sym);
      break;
    case "C_InitToken":
      if (ok) {
        // Probe: learn the serial (→ symbol in creation order) with a side-effect-free C_GetTokenInfo
        const probe = await d.call("C_GetTokenInfo", [args[0] as Wire]);
        rec.probe = probe.rv === "CKR_OK" ? normaliseTokenInfo(probe.out, sym) : { rv: probe.rv };
      }
      break;
    case "C_GetSessionInfo":
      if (ok && isObj(rec.out) && typeof rec.out.slotID === "number") rec.out = { ...rec.out, slotID: sym.slot(rec.out.slotID) };
      break;
    case "C_WaitForSlotEvent":
      if (ok && typeof rec.out === "number") rec.out = sym.slot(rec.out);
      break;
    case "C_OpenSession":
      if (ok && typeof rec.out === "number") {
        st.sessions.push({ h: rec.out, slot: handleArg(args[0]) ?? -1, live: true, lifetime: st.lifetime });
      }
      break;
    case "C_CloseSession":
      if (ok) {
        const h = handleArg(args[0]);
        for (const s of st.sessions) if (s.h === h && s.lifetime === st.lifetime) s.live = false;
        st.lastClosed = h;
      }
      break;
    case "C_CloseAllSessions":
      if (ok) {
        const slot = handleArg(args[0]);
        for (const s of st.sessions) {
          if (s.live && s.slot === slot) {
            s.live = false;
            st.lastClosed = s.h;
          }
        }
      }
      break;
    case "C_CreateObject":
      if (!ok) {
        // A failed key or certificate create may leave SoftHSM's orphan behind: look for it too.
        const t = step.args[1];
        const ident = t && t.k === "template" && t.attrs.some((a) => a.type === CKA_ID) ? identityOf(t.attrs) : undefined;
        if (ident !== undefined) {
          run.identAttr.set(ident, CKA_ID);
          run.created.add(ident);
        }
      }
      if (ok && typeof rec.out === "number") {
        const t = step.args[1];
        const ident = t && t.k === "template" ? identityOf(t.attrs) : undefined;
        if (ident !== undefined) {
          if (t && t.k === "template" && t.attrs.some((a) => a.type === CKA_ID)) run.identAttr.set(ident, CKA_ID);
          learnHandle(st, rec.out, ident);
          run.created.add(ident);
        }
        st.lastCreated = rec.out;
      }
      break;
    case "C_GenerateKey":
    case "C_UnwrapKey":
    case "C_CopyObject": {
      // Keys and copies carry their identity in CKA_ID. A failed create may still leave SoftHSM's half-made object
      // (carrying the identity if it got that far), so failed attempts are looked for by the hidden finds too.
      const t = step.args[step.fn === "C_UnwrapKey" ? 4 : 2];
      const ident = t && t.k === "template" ? identityOf(t.attrs) : undefined;
      if (ident === undefined) break;
      run.identAttr.set(ident, CKA_ID);
      run.created.add(ident);
      if (!ok || typeof rec.out !== "number") break;
      learnHandle(st, rec.out, ident);
      st.lastCreated = rec.out;
      const source = step.fn === "C_CopyObject" ? st.handleToIdent.get(handleArg(args[1]) ?? -1) : undefined;
      if (step.fn === "C_GenerateKey" || (source !== undefined && run.random.has(source))) run.random.add(ident);
      break;
    }
    case "C_GetAttributeValue": {
      const ident = st.handleToIdent.get(handleArg(args[1]) ?? -1);
      if (ok && ident !== undefined && run.random.has(ident) && Array.isArray(rec.out)) {
        rec.out = rec.out.map((a: unknown) =>
          isObj(a) && (a.type === CKA_VALUE || a.type === CKA_CHECK_VALUE) && typeof a.value === "string" ? { ...a, value: `random:${a.value.length / 2}` } : a,
        );
      }
      break;
    }
    case "C_EncryptInit":
    case "C_DecryptInit":
    case "C_SignInit":
    case "C_VerifyInit":
    case "C_DigestInit":
    case "C_DigestKey": {
      // Which key the session's operation runs with: a generated one makes its outputs random (compared by length).
      const op = `${step.app}:${handleArg(args[0]) ?? -1}`;
      const keyIdent = step.fn === "C_DigestInit" ? undefined : st.handleToIdent.get(handleArg(args[step.fn === "C_DigestKey" ? 1 : 2]) ?? -1);
      if (ok && keyIdent !== undefined && run.random.has(keyIdent)) run.randomOps.add(op);
      else if (ok && step.fn !== "C_DigestKey") run.randomOps.delete(op);
      break;
    }
    case "C_WrapKey": {
      const random = [args[2], args[3]].some((h) => run.random.has(st.handleToIdent.get(handleArg(h) ?? -1) ?? -1));
      if (ok && random && typeof rec.out === "string") rec.out = `random:${rec.out.length / 2}`;
      break;
    }
    case "C_DestroyObject":
      if (ok) {
        const h = handleArg(args[1]);
        if (h !== undefined) {
          const ident = st.handleToIdent.get(h);
          if (ident !== undefined) {
            st.handleToIdent.delete(h);
            st.identToHandle.delete(ident);
            run.destroyed.add(ident);
          }
          st.stale.push(h);
        }
      }
      break;
    default:
      // A keyed step whose key was generated (its value differs between the modules): compare lengths only.
      if (ok && KEYED_OUTPUT.has(step.fn) && run.randomOps.has(`${step.app}:${handleArg(args[0]) ?? -1}`) && typeof rec.out === "string") {
        rec.out = `random:${rec.out.length / 2}`;
      }
      break;
  }
}

/** Convenience: run a sequence on SoftHSM (fresh token directory, reused worker processes). */
export function runOnSoftHsm(seq: Sequence, opts?: RunOptions): Promise<StepObservation[]> {
  return runSequence(seq, softhsmApps(), opts);
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics

export interface Histogram {
  /** fn → rv → count */
  byFn: Record<string, Record<string, number>>;
  /** rv → count */
  byRv: Record<string, number>;
  calls: number;
}

export function newHistogram(): Histogram {
  return { byFn: {}, byRv: {}, calls: 0 };
}

/** Add observations; C_Login is split by user type, C_FindObjects by "returned objects or not". */
export function addToHistogram(h: Histogram, seq: Sequence, obs: readonly StepObservation[]): void {
  for (const o of obs) {
    const step = seq.steps[o.step];
    let fn = o.fn;
    if (fn === "C_Login" && step) {
      const t = step.args[1];
      fn = `C_Login(${t && t.k === "lit" ? ["SO", "USER", "CONTEXT_SPECIFIC"][Number(t.v)] ?? String(t.v) : "?"})`;
    }
    let rv = o.rv;
    if (fn === "C_FindObjects" && rv === "CKR_OK") rv = Array.isArray(o.out) && o.out.length > 0 ? "CKR_OK(objects)" : "CKR_OK(none)";
    const row = (h.byFn[fn] ??= {});
    row[rv] = (row[rv] ?? 0) + 1;
    h.byRv[o.rv] = (h.byRv[o.rv] ?? 0) + 1;
    h.calls++;
  }
}

export function formatHistogram(h: Histogram): string {
  const lines: string[] = [];
  lines.push(`calls: ${h.calls}`);
  lines.push("per function:");
  for (const fn of Object.keys(h.byFn).sort()) {
    const row = h.byFn[fn] ?? {};
    const parts = Object.entries(row)
      .sort((a, b) => b[1] - a[1])
      .map(([rv, n]) => `${rv}=${n}`);
    lines.push(`  ${fn}: ${parts.join(" ")}`);
  }
  lines.push("per rv:");
  for (const [rv, n] of Object.entries(h.byRv).sort((a, b) => b[1] - a[1])) lines.push(`  ${rv}: ${n}`);
  return lines.join("\n");
}
