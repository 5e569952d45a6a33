/**
 * `hsmsim/pkcs11js`: a drop-in for the npm package pkcs11js 2.1.7. Same class, methods, constants, 8-byte Buffer
 * handles, output written into the caller's Buffer, and the same errors, down to pkcs11js's own quirks, so that code
 * which passes here passes against a real module through pkcs11js:
 * - ulong arguments go through uint32 (2**32 becomes 0), token counts come back as uint32 (CK_UNAVAILABLE_INFORMATION
 *   reads 4294967295) and the memory fields as BigInt;
 * - C_GetSlotList asks for the count first (a size query: SoftHSM adds its new uninitialised slot there), and
 *   C_GetAttributeValue and C_GetOperationState make two calls (lengths, then values), as does C_GetMechanismList
 *   (the count, then the list); C_GenerateRandom fills the caller's Buffer and returns it;
 * - errors: `Pkcs11Error` with message CKR_NAME, numeric code and method; but C_CreateObject, C_SetAttributeValue,
 *   C_CopyObject and C_FindObjects throw a plain Error "CKR_NAME:code" (pkcs11js does not wrap them), and the
 *   functions pkcs11js post-processes (C_Digest, C_DigestFinal, C_Encrypt, …) give an empty `method`; an rv pkcs11js
 *   has no name for is CKR_VENDOR_DEFINED (e.g. CKR_ACTION_PROHIBITED);
 * - an empty Buffer (no memory behind it) is a NULL pointer: as data it is CKR_ARGUMENTS_BAD, as an output buffer a
 *   size query; an empty view into a larger buffer is a real zero-length input.
 *
 * `load("memory:?profile=softhsm2&slots=2")` attaches a new private simulator; `load("file:./dir?profile=softhsm2")`
 * one on a file event store (src/events/file-store.ts) that persists across processes and runs: the state is
 * rebuilt from the log on load, the store is locked while loaded and released by `close()`; `load(simulator)` attaches
 * a new application to an existing one, so two instances behave like two processes sharing one token directory.
 * `load("nats://host:port/<name>")` attaches to the simulator `<name>` served by `hsmsim serve` (src/remote/sync-client.ts:
 * a worker thread owns the connection, each call blocks until the service answers; CKR_DEVICE_ERROR when it cannot).
 * Every call goes through the simulator's dispatcher and is recorded.
 */
import { fileURLToPath } from "node:url";
import { Application, Simulator, type SimulatorOptions } from "../actors/simulator.js";
import { FileEventStore, StoreCorruptError, StoreLockedError, type Durability } from "../events/file-store.js";
import type { Call, CallOut, FnName, Mechanism as CallMechanism, Template } from "../events/calls.js";
import { readUlong } from "./attributes.js";
import { CK, PKCS11JS_CONSTANTS, pkcs11jsRvName } from "./constants.js";
import type { ProfileName } from "./profiles.js";
import type { Answer } from "../events/types.js";
import { SyncRemote } from "../remote/sync-client.js";

export type Handle = Buffer;
/** What C_GenerateKeyPair returns (pkcs11js 2.1.7). */
export interface KeyPair {
  privateKey: Handle;
  publicKey: Handle;
}

export class NativeError extends Error {
  method: string;
  nativeStack: string;
  code: number;
  constructor(message?: string, method?: string) {
    super(message ?? "");
    this.name = "NativeError";
    this.method = method ?? "";
    this.nativeStack = "";
    // As pkcs11js: a "NAME:code" message is split into message and code; any other has code 0.
    const m = /(\w+):(\d+)/.exec(this.message.split("\n")[0]!);
    if (m) {
      this.message = m[1]!;
      this.code = Number(m[2]);
    } else this.code = 0;
  }
}

/** A load() failure whose message may hold "host:port" (which the NativeError constructor would read as "NAME:code"). */
function loadError(message: string): NativeError {
  const e = new NativeError("", "load");
  e.message = message;
  return e;
}

/** What pkcs11js throws for a call on an instance with no library loaded. */
const notLoaded = () => new NativeError("PKCS11 module not loaded yet");

export class Pkcs11Error extends NativeError {
  declare code: number;
  constructor(message?: string, code?: number, method?: string) {
    super(message, method);
    this.name = "Pkcs11Error";
    this.code = code ?? 0;
    const m = /(CKR_[^:]+):(\d+)/.exec(message ?? "");
    if (m) {
      this.message = m[1]!;
      this.code = Number(m[2]);
    }
  }
  static readonly messageReg = /(CKR_[^:]+):(\d+)/;
  static isPkcs11(message: string): boolean {
    return /(CKR_[^:]+):(\d+)/.test(message);
  }
}

/** Methods pkcs11js leaves unwrapped: their failures are plain Errors "CKR_NAME:code" (see the module comment). */
const PLAIN_ERROR = new Set(["C_CreateObject", "C_SetAttributeValue", "C_CopyObject", "C_FindObjects"]);
/** Methods pkcs11js post-processes: their Pkcs11Error has an empty `method`. */
const NO_METHOD = new Set([
  "C_Digest",
  "C_DigestFinal",
  "C_Sign",
  "C_SignFinal",
  "C_Encrypt",
  "C_EncryptFinal",
  "C_Decrypt",
  "C_DecryptFinal",
  "C_EncryptUpdate",
  "C_DecryptUpdate",
  "C_Verify",
  "C_VerifyFinal",
  "C_GenerateKey",
  "C_GenerateKeyPair",
  "C_DeriveKey",
  "C_WrapKey",
  "C_UnwrapKey",
]);

function rvError(method: string, rv: number): Error {
  const name = pkcs11jsRvName(rv);
  if (PLAIN_ERROR.has(method)) return new Error(`${name}:${rv}`);
  return new Pkcs11Error(name, rv, NO_METHOD.has(method) ? "" : method);
}

const UNAVAILABLE = CK.CK_UNAVAILABLE_INFORMATION;

// ---- argument conversion, as pkcs11js's native layer does it ------------------------------------------------------

function required(args: IArguments | unknown[], i: number): void {
  if (args.length <= i) throw new TypeError(`Argument ${i} is required`);
}

function handleArg(args: IArguments | unknown[], i: number): number {
  required(args, i);
  const v = args[i];
  if (!Buffer.isBuffer(v)) throw new TypeError(`Argument ${i} has wrong type. Should be a Buffer`);
  if (v.length !== 8) throw new TypeError(`Argument ${i} has wrong length. Should be 8 bytes.`);
  // Larger than any handle the simulator issues: keep it invalid rather than let it round onto a real one. (readUlong
  // rounds anything above 2^53 - 1 to at least 2^53, so the clamp catches it.)
  return Math.min(readUlong(v), Number.MAX_SAFE_INTEGER);
}

function ulongArg(args: IArguments | unknown[], i: number): number {
  required(args, i);
  const v = args[i];
  if (typeof v !== "number") throw new TypeError(`Argument ${i} has wrong type. Should be a Number`);
  return uint32(v);
}

/** napi_get_value_uint32: ToUint32 for finite numbers, 0 for NaN/Infinity. */
function uint32(v: number): number {
  return Number.isFinite(v) ? Math.trunc(v) >>> 0 : 0;
}

function stringArg(args: IArguments | unknown[], i: number): Uint8Array {
  required(args, i);
  const v = args[i];
  if (typeof v !== "string") throw new TypeError(`Argument ${i} has wrong type. Should be a String`);
  return new TextEncoder().encode(v);
}

function bufferArg(args: IArguments | unknown[], i: number): Buffer {
  required(args, i);
  const v = args[i];
  if (!Buffer.isBuffer(v)) throw new TypeError(`Argument ${i} has wrong type. Should be a Buffer`);
  return v;
}

/** A Buffer with no memory behind it reaches C as a NULL pointer. */
const isNullBuffer = (b: Buffer) => b.length === 0 && b.buffer.byteLength === 0;

/** The bytes C sees for a Buffer argument: NULL for one with no memory behind it, else a view (no copy). */
const cBytes = (b: Buffer): Uint8Array | null => (isNullBuffer(b) ? null : new Uint8Array(b.buffer, b.byteOffset, b.length));

function attributeValue(v: unknown): Uint8Array | null {
  if (v === undefined || v === null) return null;
  if (typeof v === "number") {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(uint32(v), 0);
    return b;
  }
  if (typeof v === "boolean") return Uint8Array.of(v ? 1 : 0);
  if (typeof v === "string") return new TextEncoder().encode(v);
  if (v instanceof Date) return new TextEncoder().encode(v.toISOString().slice(0, 10).replace(/-/g, ""));
  if (Buffer.isBuffer(v)) return v.length === 0 ? null : new Uint8Array(v);
  throw new TypeError("Attribute value has wrong type. Should be Number, Boolean, String, Date or Buffer");
}

/** A CK_MECHANISM as pkcs11js takes it: `{ mechanism, parameter? }`, the parameter a Buffer (or a CK_PARAMS object). */
export interface Mechanism {
  mechanism: number;
  parameter?: Buffer | object | null;
}

/** pkcs11js's mechanism conversion for the key functions: an object with a numeric `mechanism`; a Buffer parameter as its bytes. */
function keyMechanismArg(args: IArguments | unknown[], i: number): { mechanism: number; parameter?: Uint8Array | null } {
  required(args, i);
  const m = args[i] as { mechanism?: unknown; parameter?: unknown } | undefined;
  if (!m || typeof m !== "object") throw new TypeError(`Argument ${i} has wrong type. Should be an Object`);
  if (typeof m.mechanism !== "number") throw new TypeError("Attribute 'mechanism' has wrong type. Should be a Number");
  const p = m.parameter;
  if (p === undefined || p === null) return { mechanism: uint32(m.mechanism) };
  if (Buffer.isBuffer(p)) return { mechanism: uint32(m.mechanism), parameter: p.length === 0 ? null : new Uint8Array(p) };
  // CK_PARAMS objects (GCM, CTR, …) are not key-management parameters: a TypeError, as pkcs11js gives for unknown ones.
  throw new TypeError("Attribute 'parameter' has wrong type. Should be a Buffer");
}

export interface Attribute {
  type: number;
  value?: number | boolean | string | Buffer | Date | null;
}

const isDate = (type: number) => type === CK.CKA_START_DATE || type === CK.CKA_END_DATE;
const hex8 = (type: number) => `0x${type.toString(16).toUpperCase().padStart(8, "0")}`;

/** A date value as pkcs11js sends it: at least 8 bytes (a TypeError otherwise), then the bytes as given. */
function dateIn(type: number, v: unknown): void {
  const n = typeof v === "string" ? new TextEncoder().encode(v).length : Buffer.isBuffer(v) ? v.length : undefined;
  if (n !== undefined && n < 8) {
    throw new TypeError(`Attribute with type ${hex8(type)} is not convertible to CK_DATE. The length of the data should be at least 8 bytes.`);
  }
}

/** C's atoi over a byte string: leading blanks, an optional sign, then digits. */
function atoi(b: Uint8Array): number {
  let i = 0;
  while (i < b.length && (b[i] === 0x20 || (b[i]! >= 0x09 && b[i]! <= 0x0d))) i++;
  let sign = 1;
  if (b[i] === 0x2d || b[i] === 0x2b) sign = b[i++] === 0x2d ? -1 : 1;
  let n = 0;
  while (i < b.length && b[i]! >= 0x30 && b[i]! <= 0x39) n = n * 10 + (b[i++]! - 0x30);
  return sign * n;
}

/** A date as pkcs11js returns it: snprintf("%04d%02d%02d", atoi(year), atoi(month), atoi(day)), cut to 8 characters. */
function dateOut(type: number, v: Buffer): Buffer {
  if (v.length !== 8) throw new TypeError(`Attribute ${hex8(type)} has wrong length. Should be 8, but is ${v.length}`);
  const f = (x: number, w: number) => (x < 0 ? `-${String(-x).padStart(w - 1, "0")}` : String(x).padStart(w, "0"));
  return Buffer.from(`${f(atoi(v.subarray(0)), 4)}${f(atoi(v.subarray(4)), 2)}${f(atoi(v.subarray(6)), 2)}`.slice(0, 8), "latin1");
}

function templateArg(args: IArguments | unknown[], i: number): Template[] {
  required(args, i);
  const v = args[i];
  if (!Array.isArray(v)) throw new TypeError(`Argument ${i} has wrong type. Should be an Array`);
  return v.map((a: Attribute) => {
    if (!a || typeof a !== "object" || typeof a.type !== "number") {
      throw new TypeError(`Argument ${i} has wrong type. Should be an Array of Attributes`);
    }
    if (isDate(uint32(a.type))) dateIn(uint32(a.type), a.value);
    return { type: uint32(a.type), value: attributeValue(a.value) };
  });
}

const handleOut = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  // Handles are below 2^32 in practice: two 32-bit writes, not a BigInt (~1 µs).
  if (n <= 0xffffffff) b.writeUInt32LE(n, 0);
  else b.writeBigUInt64LE(BigInt(n));
  return b;
};

const u32 = (v: number) => (v === UNAVAILABLE ? 0xffffffff : v >>> 0);
const u64 = (v: number) => (v === UNAVAILABLE ? 0xffffffffffffffffn : BigInt(v));

// ---- load() targets ------------------------------------------------------------------------------------------------

/** The simulator options of a target's query (`profile`, `slots`, …), and `durability` for a `file:` target. */
function parseQuery(query: string, url: string, file: boolean): { opts: SimulatorOptions & Record<string, string | number>; durability?: Durability } {
  const opts: SimulatorOptions & Record<string, string | number> = {};
  let durability: Durability | undefined;
  for (const [k, v] of new URLSearchParams(query)) {
    if (k === "profile") opts.profile = v as ProfileName;
    else if (k === "slots" || k === "pinRetries" || k === "maxSessions" || k === "maxRwSessions") {
      const n = Number(v);
      if (!Number.isSafeInteger(n)) throw new NativeError(`hsmsim: "${k}" expected an integer, got "${v}"`, "load");
      opts[k] = n;
    } else if (k === "durability" && file) durability = v as Durability; // the store checks the value
    else throw new NativeError(`hsmsim: unknown option "${k}" in "${url}"`, "load");
  }
  return { opts, durability };
}

function parseMemoryUrl(url: string): SimulatorOptions {
  return parseQuery(url.slice("memory:".length).replace(/^\/*\?/, ""), url, false).opts;
}

/** `file:./dir?query` (a path, relative to the working directory) or `file:///abs/dir?query` (a file URL). */
function parseFileUrl(url: string): { dir: string; query: string } {
  const rest = url.slice("file:".length);
  const q = rest.indexOf("?");
  const where = q < 0 ? rest : rest.slice(0, q);
  const dir = where.startsWith("//") ? fileURLToPath("file:" + where) : where;
  if (dir === "") throw new NativeError(`hsmsim: "${url}" names no directory: use e.g. "file:./hsm"`, "load");
  return { dir, query: q < 0 ? "" : rest.slice(q + 1) };
}

export class PKCS11 {
  libPath = "";
  private app: Application | SyncRemote | undefined;
  /** The file store this instance opened (`file:` targets): closed, and so unlocked, by `close()`. */
  private store: FileEventStore | undefined;

  constructor(libPath?: string | Simulator) {
    if (libPath !== undefined) this.load(libPath);
  }

  /**
   * `memory:[?profile=softhsm2&slots=N&pinRetries=N&maxSessions=N]`; `file:<dir>[?<the same>&durability=fsync|group|none]`
   * (the options are stored with a new store and may be left out when reopening it; a different value is an error;
   * a store in use elsewhere throws StoreLockedError, a damaged one StoreCorruptError); or an existing Simulator.
   */
  load(target: string | Simulator): void {
    this.releaseStore();
    if (target instanceof Simulator) {
      this.app = target.application();
      this.libPath = "hsmsim:simulator";
      return;
    }
    if (typeof target !== "string") throw new TypeError("Argument 0 has wrong type. Should be a String");
    if (target.startsWith("file:")) return this.loadFile(target);
    if (/^(nats|tls):\/\//.test(target)) return this.loadRemote(target);
    if (!target.startsWith("memory:")) {
      throw new NativeError(`hsmsim: cannot load "${target}": use "memory:", "file:<dir>", "nats://host:port/<name>" or a Simulator`, "load");
    }
    let opts: SimulatorOptions;
    try {
      opts = parseMemoryUrl(target);
      this.app = new Simulator(opts).application();
    } catch (e) {
      if (e instanceof NativeError) throw e;
      throw new NativeError(`hsmsim: ${(e as Error).message}`, "load");
    }
    this.libPath = target;
  }

  private loadFile(url: string): void {
    let store: FileEventStore | undefined;
    try {
      const { dir, query } = parseFileUrl(url);
      const { opts, durability } = parseQuery(query, url, true);
      store = new FileEventStore(dir, durability === undefined ? {} : { durability });
      // The options the store was created with (and its simulator key: PIN verifiers and sealed values need it).
      const saved = store.settings(opts, { profile: "default" });
      this.app = new Simulator({ ...(saved.options as SimulatorOptions), simulatorKey: saved.simulatorKey, store }).application();
    } catch (e) {
      store?.close();
      if (e instanceof NativeError || e instanceof StoreLockedError || e instanceof StoreCorruptError) throw e;
      throw new NativeError(`hsmsim: ${(e as Error).message.replace(/^hsmsim: /, "")}`, "load");
    }
    this.store = store;
    this.libPath = url;
  }

  /**
   * `nats://host:port/<name>[?timeout=MS&localReads=0]`: the simulator `<name>` of `hsmsim serve`, through a worker
   * (sync-client.ts). `localReads=0` sends the read calls to the service too, which records them.
   */
  private loadRemote(url: string): void {
    const q = url.indexOf("?");
    let timeoutMs: number | undefined;
    let localReads: boolean | undefined;
    for (const [k, v] of new URLSearchParams(q < 0 ? "" : url.slice(q + 1))) {
      if (k === "timeout" && Number.isSafeInteger(Number(v)) && Number(v) > 0) timeoutMs = Number(v);
      else if (k === "localReads" && (v === "0" || v === "1")) localReads = v === "1";
      else throw loadError(`hsmsim: unknown option "${k}=${v}" in "${url}" (a nats: target takes timeout=MS and localReads=0|1)`);
    }
    try {
      this.app = new SyncRemote(q < 0 ? url : url.slice(0, q), { timeoutMs, localReads });
    } catch (e) {
      throw loadError((e as Error).message);
    }
    this.libPath = url;
  }

  private releaseStore(): void {
    const store = this.store;
    this.store = undefined;
    store?.close();
    const app = this.app;
    if (app instanceof SyncRemote) {
      this.app = undefined;
      app.close();
    }
  }

  /** Unload. An application still initialised ends here, as a process's would (recorded as its C_Finalize). */
  close(): void {
    try {
      if (this.app && this.app.appId !== 0) this.invoke({ fn: "C_Finalize", args: {} });
    } finally {
      this.releaseStore();
      this.app = undefined;
    }
  }

  /** The simulator behind this instance (hsmsim extension: audit views, tests). */
  get simulator(): Simulator | undefined {
    return this.app instanceof Application ? this.app.simulator : undefined;
  }

  /** One call to the simulator: in process, or through the remote service. */
  private invoke(call: Call): Answer {
    if (!this.app) throw notLoaded();
    return this.app instanceof SyncRemote ? this.app.call(call) : this.app.simulator.dispatch(this.app, call);
  }

  private call<F extends FnName>(method: string, fn: F, args: Extract<Call, { fn: F }>["args"]): CallOut[F] {
    const r = this.invoke({ fn, args } as Call);
    if (r.rv !== CK.CKR_OK) throw rvError(method, r.rv);
    return r.out as CallOut[F];
  }

  private unsupported(method: string): never {
    // Recorded like any call: the simulator answers what it does not implement with CKR_FUNCTION_NOT_SUPPORTED.
    const r = this.invoke({ fn: method, args: {} } as unknown as Call);
    throw rvError(method, r.rv);
  }

  // ---- general ----
  C_Initialize(options?: { flags?: number; libraryParameters?: string } | null): void {
    if (options !== undefined && options !== null && typeof options !== "object") {
      throw new TypeError("Argument 0 has wrong type. Should be an Object");
    }
    // pkcs11js always passes a CK_C_INITIALIZE_ARGS with only `flags` set: no mutexes, pReserved NULL.
    this.call("C_Initialize", "C_Initialize", { pInitArgs: { flags: uint32(options?.flags ?? 0), mutexCallbacks: 0 } });
  }
  C_Finalize(): void {
    this.call("C_Finalize", "C_Finalize", {});
  }
  C_GetInfo() {
    return this.call("C_GetInfo", "C_GetInfo", {});
  }

  // ---- slots and tokens ----
  C_GetSlotList(tokenPresent?: boolean): Handle[] {
    if (arguments.length > 0 && typeof tokenPresent !== "boolean") {
      throw new TypeError("Argument 0 has wrong type. Should be a Boolean");
    }
    const present = tokenPresent ?? false;
    const { count } = this.call("C_GetSlotList", "C_GetSlotList", { tokenPresent: present, pSlotList: null });
    if (count === 0) return [];
    const { slots } = this.call("C_GetSlotList", "C_GetSlotList", { tokenPresent: present, pSlotList: count });
    return slots.map(handleOut);
  }
  C_GetSlotInfo(slot: Handle) {
    const slotID = handleArg(arguments, 0);
    return this.call("C_GetSlotInfo", "C_GetSlotInfo", { slotID });
  }
  C_GetTokenInfo(slot: Handle) {
    const slotID = handleArg(arguments, 0);
    const t = this.call("C_GetTokenInfo", "C_GetTokenInfo", { slotID });
    return {
      label: t.label,
      manufacturerID: t.manufacturerID,
      model: t.model,
      serialNumber: t.serialNumber,
      flags: u32(t.flags),
      maxSessionCount: u32(t.maxSessionCount),
      sessionCount: u32(t.sessionCount),
      maxRwSessionCount: u32(t.maxRwSessionCount),
      rwSessionCount: u32(t.rwSessionCount),
      maxPinLen: u32(t.maxPinLen),
      minPinLen: u32(t.minPinLen),
      hardwareVersion: t.hardwareVersion,
      firmwareVersion: t.firmwareVersion,
      utcTime: t.utcTime,
      totalPublicMemory: u64(t.totalPublicMemory),
      freePublicMemory: u64(t.freePublicMemory),
      totalPrivateMemory: u64(t.totalPrivateMemory),
      freePrivateMemory: u64(t.freePrivateMemory),
    };
  }
  C_InitToken(slot: Handle, pin?: string, label?: string): void {
    required(arguments, 2);
    const slotID = handleArg(arguments, 0);
    const p = stringArg(arguments, 1);
    const l = stringArg(arguments, 2);
    // C reads exactly 32 label bytes; pkcs11js passes the string as is, so a short label is space-padded here.
    const padded = new Uint8Array(32).fill(0x20);
    padded.set(l.subarray(0, 32));
    this.call("C_InitToken", "C_InitToken", { slotID, pin: p, label: padded });
  }
  C_InitPIN(session: Handle, pin?: string): void {
    required(arguments, 1);
    const hSession = handleArg(arguments, 0);
    this.call("C_InitPIN", "C_InitPIN", { hSession, pin: stringArg(arguments, 1) });
  }
  C_SetPIN(session: Handle, oldPin: string, newPin: string): void {
    required(arguments, 2);
    const hSession = handleArg(arguments, 0);
    this.call("C_SetPIN", "C_SetPIN", { hSession, oldPin: stringArg(arguments, 1), newPin: stringArg(arguments, 2) });
  }
  C_GetMechanismList(slot: Handle): number[] {
    const slotID = handleArg(arguments, 0);
    // pkcs11js: a size query, then the fill with exactly that many entries (two recorded calls).
    const { count } = this.call("C_GetMechanismList", "C_GetMechanismList", { slotID, pMechanismList: null });
    if (count === 0) return [];
    const { mechanisms } = this.call("C_GetMechanismList", "C_GetMechanismList", { slotID, pMechanismList: count });
    return mechanisms.map((m) => m >>> 0);
  }
  C_GetMechanismInfo(slot: Handle, mech: number): { minKeySize: number; maxKeySize: number; flags: number } {
    required(arguments, 1);
    const slotID = handleArg(arguments, 0);
    const type = ulongArg(arguments, 1);
    const i = this.call("C_GetMechanismInfo", "C_GetMechanismInfo", { slotID, type });
    // napi_create_uint32 on each CK_ULONG field.
    return { minKeySize: i.minKeySize >>> 0, maxKeySize: i.maxKeySize >>> 0, flags: i.flags >>> 0 };
  }

  // ---- sessions ----
  C_OpenSession(slot: Handle, flags: number): Handle {
    required(arguments, 1);
    const slotID = handleArg(arguments, 0);
    return handleOut(this.call("C_OpenSession", "C_OpenSession", { slotID, flags: ulongArg(arguments, 1) }).hSession);
  }
  C_CloseSession(session: Handle): void {
    this.call("C_CloseSession", "C_CloseSession", { hSession: handleArg(arguments, 0) });
  }
  C_CloseAllSessions(slot: Handle): void {
    this.call("C_CloseAllSessions", "C_CloseAllSessions", { slotID: handleArg(arguments, 0) });
  }
  C_GetSessionInfo(session: Handle) {
    const i = this.call("C_GetSessionInfo", "C_GetSessionInfo", { hSession: handleArg(arguments, 0) });
    return { slotID: handleOut(i.slotID), state: u32(i.state), flags: u32(i.flags), deviceError: u32(i.deviceError) };
  }
  C_GetOperationState(session: Handle): Buffer {
    const hSession = handleArg(arguments, 0);
    return Buffer.from(this.call("C_GetOperationState", "C_GetOperationState", { hSession }).state);
  }
  C_SetOperationState(session: Handle, state: Buffer, encryptionKey: Handle, authenticationKey: Handle): void {
    required(arguments, 3);
    const hSession = handleArg(arguments, 0);
    const s = bufferArg(arguments, 1);
    this.call("C_SetOperationState", "C_SetOperationState", {
      hSession,
      state: cBytes(s),
      hEncryptionKey: handleArg(arguments, 2),
      hAuthenticationKey: handleArg(arguments, 3),
    });
  }
  C_Login(session: Handle, userType: number, pin?: string): void {
    required(arguments, 2);
    const hSession = handleArg(arguments, 0);
    this.call("C_Login", "C_Login", { hSession, userType: ulongArg(arguments, 1), pin: stringArg(arguments, 2) });
  }
  C_Logout(session: Handle): void {
    this.call("C_Logout", "C_Logout", { hSession: handleArg(arguments, 0) });
  }

  // ---- objects ----
  C_CreateObject(session: Handle, template: Attribute[]): Handle {
    required(arguments, 1);
    const hSession = handleArg(arguments, 0);
    const t = templateArg(arguments, 1);
    return handleOut(this.call("C_CreateObject", "C_CreateObject", { hSession, template: t }).hObject);
  }
  C_CopyObject(session: Handle, object: Handle, template: Attribute[]): Handle {
    required(arguments, 2);
    const hSession = handleArg(arguments, 0);
    const hObject = handleArg(arguments, 1);
    const t = templateArg(arguments, 2);
    return handleOut(this.call("C_CopyObject", "C_CopyObject", { hSession, hObject, template: t }).hObject);
  }
  C_DestroyObject(session: Handle, object: Handle): void {
    required(arguments, 1);
    this.call("C_DestroyObject", "C_DestroyObject", { hSession: handleArg(arguments, 0), hObject: handleArg(arguments, 1) });
  }
  C_GetObjectSize(session: Handle, object: Handle): number {
    required(arguments, 1);
    const hSession = handleArg(arguments, 0);
    const hObject = handleArg(arguments, 1);
    // pkcs11js reads the CK_ULONG into a uint32: CK_UNAVAILABLE_INFORMATION arrives as 4294967295.
    return u32(this.call("C_GetObjectSize", "C_GetObjectSize", { hSession, hObject }).size);
  }
  C_GetAttributeValue(session: Handle, object: Handle, template: Attribute[]): { type: number; value: Buffer }[] {
    required(arguments, 2);
    const hSession = handleArg(arguments, 0);
    const hObject = handleArg(arguments, 1);
    const t = templateArg(arguments, 2);
    // pkcs11js: first call with the caller's template (lengths, or the caller's own buffers), then one with
    // buffers of exactly the reported lengths; any rv other than OK throws, so no partial result is ever seen.
    const first = this.call("C_GetAttributeValue", "C_GetAttributeValue", { hSession, hObject, template: t });
    const sized = first.attrs.map((a) => ({ type: a.type, value: a.length === 0 ? null : new Uint8Array(a.length) }));
    const second = this.call("C_GetAttributeValue", "C_GetAttributeValue", { hSession, hObject, template: sized });
    second.attrs.forEach((a, i) => {
      const v = a.value ? Buffer.from(a.value) : Buffer.alloc(0);
      // pkcs11js converts dates itself: anything but a CK_DATE's 8 bytes is a TypeError (an unset, empty date too),
      // and the 8 bytes come back reformatted through atoi (pkcs11.cpp C_GetAttributeValue).
      (template[i] as { value: Buffer }).value = isDate(a.type) ? dateOut(a.type, v) : v;
    });
    return template as { type: number; value: Buffer }[];
  }
  C_SetAttributeValue(session: Handle, object: Handle, template: Attribute[]): void {
    required(arguments, 2);
    const hSession = handleArg(arguments, 0);
    const hObject = handleArg(arguments, 1);
    this.call("C_SetAttributeValue", "C_SetAttributeValue", { hSession, hObject, template: templateArg(arguments, 2) });
  }
  C_FindObjectsInit(session: Handle, template: Attribute[]): void {
    required(arguments, 1);
    const hSession = handleArg(arguments, 0);
    this.call("C_FindObjectsInit", "C_FindObjectsInit", { hSession, template: templateArg(arguments, 1) });
  }
  C_FindObjects(session: Handle): Handle | null;
  C_FindObjects(session: Handle, maxObjectCount: number): Handle[];
  C_FindObjects(session: Handle, maxObjectCount?: number): Handle[] | Handle | null {
    const single = arguments.length < 2;
    const hSession = handleArg(arguments, 0);
    const n = single ? 1 : ulongArg(arguments, 1);
    // pkcs11js hands C a std::vector(n).data(): NULL for n = 0, hence CKR_ARGUMENTS_BAD.
    const out = this.call("C_FindObjects", "C_FindObjects", n === 0 ? { hSession, maxCount: 0, phObject: null } : { hSession, maxCount: n });
    const handles = out.handles.map(handleOut);
    return single ? (handles[0] ?? null) : handles;
  }
  C_FindObjectsFinal(session: Handle): void {
    this.call("C_FindObjectsFinal", "C_FindObjectsFinal", { hSession: handleArg(arguments, 0) });
  }

  // ---- digest ----
  C_DigestInit(session: Handle, mechanism: { mechanism: number; parameter?: unknown }): void {
    required(arguments, 1);
    const hSession = handleArg(arguments, 0);
    const m = arguments[1] as { mechanism?: unknown } | undefined;
    if (!m || typeof m !== "object") throw new TypeError("Argument 1 has wrong type. Should be an Object");
    if (typeof m.mechanism !== "number") throw new TypeError("Attribute 'mechanism' has wrong type. Should be a Number");
    this.call("C_DigestInit", "C_DigestInit", { hSession, mechanism: { mechanism: uint32(m.mechanism) } });
  }
  C_Digest(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_Digest(session: Handle, inData: Buffer, outData: Buffer, cb: (e: Error | null, d: Buffer | null) => void): void;
  C_Digest(session: Handle, inData: Buffer, outData: Buffer, cb?: (e: Error | null, d: Buffer | null) => void): Buffer | void {
    if (typeof cb === "function") return callback(() => this.C_Digest(session, inData, outData), cb);
    required(arguments, 2);
    const hSession = handleArg(arguments, 0);
    const data = bufferArg(arguments, 1);
    const out = bufferArg(arguments, 2);
    const r = this.call("C_Digest", "C_Digest", {
      hSession,
      data: cBytes(data),
      outLen: isNullBuffer(out) ? null : out.length,
    });
    return written(out, r);
  }
  C_DigestAsync(session: Handle, inData: Buffer, outData: Buffer): Promise<Buffer> {
    return promise(() => this.C_Digest(session, inData, outData));
  }
  C_DigestUpdate(session: Handle, inData: Buffer): void {
    required(arguments, 1);
    const hSession = handleArg(arguments, 0);
    const data = bufferArg(arguments, 1);
    this.call("C_DigestUpdate", "C_DigestUpdate", {
      hSession,
      data: cBytes(data),
    });
  }
  C_DigestFinal(session: Handle, outData: Buffer): Buffer;
  C_DigestFinal(session: Handle, outData: Buffer, cb: (e: Error | null, d: Buffer | null) => void): void;
  C_DigestFinal(session: Handle, outData: Buffer, cb?: (e: Error | null, d: Buffer | null) => void): Buffer | void {
    if (typeof cb === "function") return callback(() => this.C_DigestFinal(session, outData), cb);
    required(arguments, 1);
    const hSession = handleArg(arguments, 0);
    const out = bufferArg(arguments, 1);
    const r = this.call("C_DigestFinal", "C_DigestFinal", { hSession, outLen: isNullBuffer(out) ? null : out.length });
    return written(out, r);
  }
  C_DigestFinalAsync(session: Handle, outData: Buffer): Promise<Buffer> {
    return promise(() => this.C_DigestFinal(session, outData));
  }

  // ---- random ----
  C_SeedRandom(session: Handle, buf: Buffer): void {
    required(arguments, 1);
    const hSession = handleArg(arguments, 0);
    const seed = bufferArg(arguments, 1);
    this.call("C_SeedRandom", "C_SeedRandom", {
      hSession,
      seed: cBytes(seed),
    });
  }
  /** Fills the caller's Buffer and returns that same Buffer, as pkcs11js does. */
  C_GenerateRandom(session: Handle, buf: Buffer): Buffer {
    required(arguments, 1);
    const hSession = handleArg(arguments, 0);
    const out = bufferArg(arguments, 1);
    const r = this.call(
      "C_GenerateRandom",
      "C_GenerateRandom",
      isNullBuffer(out) ? { hSession, ulRandomLen: 0, pRandomData: null } : { hSession, ulRandomLen: out.length },
    );
    out.set(r.random);
    return out;
  }

  // ---- key management ----
  C_GenerateKey(session: Handle, mechanism: Mechanism, template: Attribute[]): Buffer;
  C_GenerateKey(session: Handle, mechanism: Mechanism, template: Attribute[], cb: (e: Error | null, k: Buffer | null) => void): void;
  C_GenerateKey(session: Handle, mechanism: Mechanism, template: Attribute[], cb?: (e: Error | null, k: Buffer | null) => void): Buffer | void {
    if (typeof cb === "function") return callback(() => this.C_GenerateKey(session, mechanism, template), cb);
    required(arguments, 2);
    const hSession = handleArg(arguments, 0);
    const m = keyMechanismArg(arguments, 1);
    const t = templateArg(arguments, 2);
    return handleOut(this.call("C_GenerateKey", "C_GenerateKey", { hSession, mechanism: m, template: t }).hKey);
  }
  /** pkcs11js 2.1.7's shape: `{ privateKey, publicKey }`, each an 8-byte handle Buffer. */
  C_GenerateKeyPair(session: Handle, mechanism: Mechanism, publicTemplate: Attribute[], privateTemplate: Attribute[]): KeyPair;
  C_GenerateKeyPair(session: Handle, mechanism: Mechanism, publicTemplate: Attribute[], privateTemplate: Attribute[], cb: (e: Error | null, k: KeyPair | null) => void): void;
  C_GenerateKeyPair(session: Handle, mechanism: Mechanism, publicTemplate: Attribute[], privateTemplate: Attribute[], cb?: (e: Error | null, k: KeyPair | null) => void): KeyPair | void {
    if (typeof cb === "function") return callback(() => this.C_GenerateKeyPair(session, mechanism, publicTemplate, privateTemplate), cb);
    required(arguments, 3);
    const hSession = handleArg(arguments, 0);
    const m = keyMechanismArg(arguments, 1);
    const publicT = templateArg(arguments, 2);
    const privateT = templateArg(arguments, 3);
    const r = this.call("C_GenerateKeyPair", "C_GenerateKeyPair", { hSession, mechanism: m, publicTemplate: publicT, privateTemplate: privateT });
    return { privateKey: handleOut(r.hPrivateKey), publicKey: handleOut(r.hPublicKey) };
  }
  /** Writes the wrapped key into the caller's Buffer and returns the written part; an empty Buffer is a size query. */
  C_WrapKey(session: Handle, mechanism: Mechanism, wrappingKey: Handle, key: Handle, wrappedKey: Buffer): Buffer;
  C_WrapKey(session: Handle, mechanism: Mechanism, wrappingKey: Handle, key: Handle, wrappedKey: Buffer, cb: (e: Error | null, d: Buffer | null) => void): void;
  C_WrapKey(session: Handle, mechanism: Mechanism, wrappingKey: Handle, key: Handle, wrappedKey: Buffer, cb?: (e: Error | null, d: Buffer | null) => void): Buffer | void {
    if (typeof cb === "function") return callback(() => this.C_WrapKey(session, mechanism, wrappingKey, key, wrappedKey), cb);
    required(arguments, 4);
    const hSession = handleArg(arguments, 0);
    const m = keyMechanismArg(arguments, 1);
    const hWrappingKey = handleArg(arguments, 2);
    const hKey = handleArg(arguments, 3);
    const out = bufferArg(arguments, 4);
    const r = this.call("C_WrapKey", "C_WrapKey", { hSession, mechanism: m, hWrappingKey, hKey, outLen: isNullBuffer(out) ? null : out.length });
    if (r.wrapped) out.set(r.wrapped);
    return out.subarray(0, r.length);
  }
  C_UnwrapKey(session: Handle, mechanism: Mechanism, unwrappingKey: Handle, wrappedKey: Buffer, template: Attribute[]): Buffer;
  C_UnwrapKey(session: Handle, mechanism: Mechanism, unwrappingKey: Handle, wrappedKey: Buffer, template: Attribute[], cb: (e: Error | null, k: Buffer | null) => void): void;
  C_UnwrapKey(session: Handle, mechanism: Mechanism, unwrappingKey: Handle, wrappedKey: Buffer, template: Attribute[], cb?: (e: Error | null, k: Buffer | null) => void): Buffer | void {
    if (typeof cb === "function") return callback(() => this.C_UnwrapKey(session, mechanism, unwrappingKey, wrappedKey, template), cb);
    required(arguments, 4);
    const hSession = handleArg(arguments, 0);
    const m = keyMechanismArg(arguments, 1);
    const hUnwrappingKey = handleArg(arguments, 2);
    const blob = bufferArg(arguments, 3);
    const t = templateArg(arguments, 4);
    return handleOut(
      this.call("C_UnwrapKey", "C_UnwrapKey", { hSession, mechanism: m, hUnwrappingKey, wrappedKey: cBytes(blob), template: t }).hKey,
    );
  }

  // ---- encryption, decryption, signing, verifying (issue 3) ----
  C_EncryptInit(session: Handle, mechanism: Mechanism, key: Handle): void {
    this.keyedInit("C_EncryptInit", arguments);
  }
  C_Encrypt(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_Encrypt(session: Handle, inData: Buffer, outData: Buffer, cb: (e: Error | null, d: Buffer | null) => void): void;
  C_Encrypt(session: Handle, inData: Buffer, outData: Buffer, cb?: (e: Error | null, d: Buffer | null) => void): Buffer | void {
    if (typeof cb === "function") return callback(() => this.dataStep("C_Encrypt", [session, inData, outData]), cb);
    return this.dataStep("C_Encrypt", arguments);
  }
  C_EncryptUpdate(session: Handle, inData: Buffer, outData: Buffer): Buffer {
    return this.dataStep("C_EncryptUpdate", arguments);
  }
  C_EncryptFinal(session: Handle, outData: Buffer): Buffer;
  C_EncryptFinal(session: Handle, outData: Buffer, cb: (e: Error | null, d: Buffer | null) => void): void;
  C_EncryptFinal(session: Handle, outData: Buffer, cb?: (e: Error | null, d: Buffer | null) => void): Buffer | void {
    if (typeof cb === "function") return callback(() => this.finalStep("C_EncryptFinal", [session, outData]), cb);
    return this.finalStep("C_EncryptFinal", arguments);
  }
  C_DecryptInit(session: Handle, mechanism: Mechanism, key: Handle): void {
    this.keyedInit("C_DecryptInit", arguments);
  }
  C_Decrypt(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_Decrypt(session: Handle, inData: Buffer, outData: Buffer, cb: (e: Error | null, d: Buffer | null) => void): void;
  C_Decrypt(session: Handle, inData: Buffer, outData: Buffer, cb?: (e: Error | null, d: Buffer | null) => void): Buffer | void {
    if (typeof cb === "function") return callback(() => this.dataStep("C_Decrypt", [session, inData, outData]), cb);
    return this.dataStep("C_Decrypt", arguments);
  }
  C_DecryptUpdate(session: Handle, inData: Buffer, outData: Buffer): Buffer {
    return this.dataStep("C_DecryptUpdate", arguments);
  }
  C_DecryptFinal(session: Handle, outData: Buffer): Buffer;
  C_DecryptFinal(session: Handle, outData: Buffer, cb: (e: Error | null, d: Buffer | null) => void): void;
  C_DecryptFinal(session: Handle, outData: Buffer, cb?: (e: Error | null, d: Buffer | null) => void): Buffer | void {
    if (typeof cb === "function") return callback(() => this.finalStep("C_DecryptFinal", [session, outData]), cb);
    return this.finalStep("C_DecryptFinal", arguments);
  }
  C_DigestKey(session: Handle, key: Handle): void {
    required(arguments, 1);
    const hSession = handleArg(arguments, 0);
    this.call("C_DigestKey", "C_DigestKey", { hSession, hKey: handleArg(arguments, 1) });
  }
  C_SignInit(session: Handle, mechanism: Mechanism, key: Handle): void {
    this.keyedInit("C_SignInit", arguments);
  }
  C_Sign(session: Handle, inData: Buffer, outData: Buffer): Buffer;
  C_Sign(session: Handle, inData: Buffer, outData: Buffer, cb: (e: Error | null, d: Buffer | null) => void): void;
  C_Sign(session: Handle, inData: Buffer, outData: Buffer, cb?: (e: Error | null, d: Buffer | null) => void): Buffer | void {
    if (typeof cb === "function") return callback(() => this.dataStep("C_Sign", [session, inData, outData]), cb);
    return this.dataStep("C_Sign", arguments);
  }
  C_SignUpdate(session: Handle, inData: Buffer): void {
    this.feed("C_SignUpdate", arguments);
  }
  C_SignFinal(session: Handle, outData: Buffer): Buffer;
  C_SignFinal(session: Handle, outData: Buffer, cb: (e: Error | null, d: Buffer | null) => void): void;
  C_SignFinal(session: Handle, outData: Buffer, cb?: (e: Error | null, d: Buffer | null) => void): Buffer | void {
    if (typeof cb === "function") return callback(() => this.finalStep("C_SignFinal", [session, outData]), cb);
    return this.finalStep("C_SignFinal", arguments);
  }
  C_VerifyInit(session: Handle, mechanism: Mechanism, key: Handle): void {
    this.keyedInit("C_VerifyInit", arguments);
  }
  /** true, or a thrown CKR_SIGNATURE_INVALID / CKR_SIGNATURE_LEN_RANGE: pkcs11js never returns false synchronously. */
  C_Verify(session: Handle, inData: Buffer, signature: Buffer): boolean;
  C_Verify(session: Handle, inData: Buffer, signature: Buffer, cb: (e: Error | null, ok: boolean | null) => void): void;
  C_Verify(session: Handle, inData: Buffer, signature: Buffer, cb?: (e: Error | null, ok: boolean | null) => void): boolean | void {
    if (typeof cb === "function") return callback(() => this.verify([session, inData, signature]), cb);
    return this.verify(arguments);
  }
  C_VerifyUpdate(session: Handle, inData: Buffer): void {
    this.feed("C_VerifyUpdate", arguments);
  }
  C_VerifyFinal(session: Handle, signature: Buffer): boolean;
  C_VerifyFinal(session: Handle, signature: Buffer, cb: (e: Error | null, ok: boolean | null) => void): void;
  C_VerifyFinal(session: Handle, signature: Buffer, cb?: (e: Error | null, ok: boolean | null) => void): boolean | void {
    if (typeof cb === "function") return callback(() => this.verifyFinal([session, signature]), cb);
    return this.verifyFinal(arguments);
  }

  private verify(args: IArguments | unknown[]): boolean {
    required(args, 2);
    const hSession = handleArg(args, 0);
    const data = bufferArg(args, 1);
    const sig = bufferArg(args, 2);
    this.call("C_Verify", "C_Verify", { hSession, data: cBytes(data), signature: cBytes(sig) });
    return true;
  }
  private verifyFinal(args: IArguments | unknown[]): boolean {
    required(args, 1);
    const hSession = handleArg(args, 0);
    this.call("C_VerifyFinal", "C_VerifyFinal", { hSession, signature: cBytes(bufferArg(args, 1)) });
    return true;
  }
  private keyedInit(fn: "C_EncryptInit" | "C_DecryptInit" | "C_SignInit" | "C_VerifyInit", args: IArguments): void {
    required(args, 2);
    const hSession = handleArg(args, 0);
    const mechanism = cryptoMechanismArg(args, 1);
    this.call(fn, fn, { hSession, mechanism, hKey: handleArg(args, 2) });
  }
  /** (session, data, out): the output written into `out`, pkcs11js's `out.subarray(0, *pulLen)` returned. */
  private dataStep(fn: "C_Encrypt" | "C_EncryptUpdate" | "C_Decrypt" | "C_DecryptUpdate" | "C_Sign", args: IArguments | unknown[]): Buffer {
    required(args, 2);
    const hSession = handleArg(args, 0);
    const data = bufferArg(args, 1);
    const out = bufferArg(args, 2);
    const r = this.call(fn, fn, { hSession, data: cBytes(data), outLen: isNullBuffer(out) ? null : out.length });
    return writtenOut(out, r);
  }
  private finalStep(fn: "C_EncryptFinal" | "C_DecryptFinal" | "C_SignFinal", args: IArguments | unknown[]): Buffer {
    required(args, 1);
    const hSession = handleArg(args, 0);
    const out = bufferArg(args, 1);
    return writtenOut(out, this.call(fn, fn, { hSession, outLen: isNullBuffer(out) ? null : out.length }));
  }
  private feed(fn: "C_SignUpdate" | "C_VerifyUpdate", args: IArguments): void {
    required(args, 1);
    const hSession = handleArg(args, 0);
    this.call(fn, fn, { hSession, data: cBytes(bufferArg(args, 1)) });
  }

  // ---- events and legacy ----
  C_WaitForSlotEvent(flags: number): Handle | null {
    const f = ulongArg(arguments, 0);
    const r = this.invoke({ fn: "C_WaitForSlotEvent", args: { flags: f } });
    if (r.rv === CK.CKR_NO_EVENT) return null;
    if (r.rv !== CK.CKR_OK) throw rvError("C_WaitForSlotEvent", r.rv);
    return handleOut((r.out as { slotID: number }).slotID);
  }
}

/** An output written into the caller's buffer; pkcs11js returns `out.subarray(0, length)`, length as a uint32. */
function writtenOut(out: Buffer, r: { data: Uint8Array | null; length: number }): Buffer {
  if (r.data) out.set(r.data);
  return out.subarray(0, r.length >>> 0);
}

/** sizeof(CK_GCM_PARAMS): pkcs11js's CK_AES_GCM_PARAMS, CK_GCM_PARAMS and CK_AES_GCM_240_PARAMS all have ulIvBits. */
const GCM_STRUCT = 48;

/**
 * pkcs11js's CK_MECHANISM conversion (get_args_mechanism, params.cpp): `mechanism` through uint32; a Buffer parameter
 * as its bytes; a Number as a CK_ULONG (8 bytes, little-endian); an object by its `type`: CK_PARAMS_AES_CBC (`iv` of
 * 16 bytes, as CK_AES_CBC_ENCRYPT_DATA_PARAMS: 32 bytes), CK_PARAMS_GCM, CK_PARAMS_AES_GCM_v240 and CK_PARAMS_AES_GCM
 * (the same 48-byte struct; pkcs11js leaves CK_PARAMS_AES_GCM's ulIvBits unset, which nobody reads). Other parameter
 * types hsmsim has no mechanism for: a TypeError.
 */
function cryptoMechanismArg(args: IArguments | unknown[], i: number): CallMechanism {
  required(args, i);
  const m = args[i] as { mechanism?: unknown; parameter?: unknown } | undefined;
  if (!m || typeof m !== "object") throw new TypeError(`Argument ${i} has wrong type. Should be an Object`);
  if (typeof m.mechanism !== "number") throw new TypeError("Attribute 'mechanism' has wrong type. Should be a Number");
  const mechanism = uint32(m.mechanism);
  const p = m.parameter;
  if (p === undefined || p === null) return { mechanism };
  if (Buffer.isBuffer(p)) return { mechanism, parameter: new Uint8Array(p) };
  if (typeof p === "number") {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setUint32(0, uint32(p), true);
    return { mechanism, parameter: b };
  }
  if (typeof p !== "object") throw new TypeError(`Argument ${i} has wrong type. Property 'parameter' should be an Object or Buffer`);
  const o = p as { type?: unknown; iv?: unknown; aad?: unknown; ivBits?: unknown; tagBits?: unknown };
  if (typeof o.type !== "number") throw new TypeError(`Argument ${i} has wrong type. Property 'type' should be a Number`);
  const bytes = (name: string, v: unknown, optional: boolean): Uint8Array | null => {
    if (v === undefined && optional) return null;
    if (!Buffer.isBuffer(v)) throw new TypeError(`Property '${name}' should be a Buffer`);
    return new Uint8Array(v);
  };
  const num = (name: string, v: unknown, optional: boolean): number => {
    if (v === undefined && optional) return 0;
    if (typeof v !== "number") throw new TypeError(`Property '${name}' should be a Number`);
    return uint32(v);
  };
  switch (o.type) {
    case CK.CK_PARAMS_AES_CBC: {
      const iv = bytes("iv", o.iv, false)!;
      if (iv.length !== 16) throw new TypeError("Property 'iv' of CK_AES_CBC_ENCRYPT_DATA_PARAMS mechanism parameter should be a Buffer of length 16");
      const struct = new Uint8Array(32);
      struct.set(iv);
      return { mechanism, parameter: struct };
    }
    case CK.CK_PARAMS_GCM:
    case CK.CK_PARAMS_AES_GCM_v240:
    case CK.CK_PARAMS_AES_GCM: {
      const size = GCM_STRUCT;
      const iv = bytes("iv", o.iv, false)!;
      const ivBits = o.type === CK.CK_PARAMS_AES_GCM ? 0 : num("ivBits", o.ivBits, false);
      return { mechanism, parameter: { type: "gcm", iv, aad: bytes("aad", o.aad, true), ivBits, tagBits: num("tagBits", o.tagBits, true), size } };
    }
    default:
      throw new TypeError(`hsmsim: mechanism parameter type ${o.type} is not supported`);
  }
}

/** The digest written into the caller's buffer; pkcs11js returns `out.subarray(0, length)`. */
function written(out: Buffer, r: { digest: Uint8Array | null; length: number }): Buffer {
  if (r.digest) out.set(r.digest);
  return out.subarray(0, r.length);
}

function callback<T>(f: () => T, cb: (e: Error | null, d: T | null) => void): void {
  setImmediate(() => {
    let v: T;
    try {
      v = f();
    } catch (e) {
      cb(e as Error, null);
      return;
    }
    cb(null, v);
  });
}

function promise<T>(f: () => T): Promise<T> {
  return new Promise((resolve, reject) => callback(f, (e, v) => (e ? reject(e) : resolve(v as T))));
}

/** Methods of pkcs11js that hsmsim does not implement yet: present, recorded, and answered CKR_FUNCTION_NOT_SUPPORTED. */
const NOT_YET = [
  "C_SignRecoverInit", "C_SignRecover", "C_VerifyRecoverInit", "C_VerifyRecover", "C_DeriveKey",
  "C_DigestEncryptUpdate", "C_DecryptDigestUpdate", "C_SignEncryptUpdate", "C_DecryptVerifyUpdate",
] as const;
for (const name of NOT_YET) {
  Object.defineProperty(PKCS11.prototype, name, {
    value: function (this: PKCS11, ...args: unknown[]) {
      const fail = () => (this as unknown as { unsupported(m: string): never }).unsupported(name);
      const cb = args[args.length - 1];
      if (typeof cb === "function") return callback(fail, cb as (e: Error | null, d: unknown) => void);
      return fail();
    },
    writable: true,
    configurable: true,
  });
}

/**
 * pkcs11js gives these methods a `…Callback` form (the callback last) and an `…Async` form (a promise), both running
 * the same call; the drop-in runs the synchronous call and delivers its result the same way, on a later tick.
 */
const WITH_CALLBACK = [
  "C_Digest", "C_DigestFinal", "C_GenerateKey", "C_GenerateKeyPair", "C_Sign", "C_SignFinal", "C_Verify",
  "C_VerifyFinal", "C_Encrypt", "C_EncryptFinal", "C_Decrypt", "C_DecryptFinal", "C_DeriveKey", "C_WrapKey",
  "C_UnwrapKey", "C_DigestEncryptUpdate", "C_DecryptDigestUpdate", "C_SignEncryptUpdate", "C_DecryptVerifyUpdate",
] as const;
for (const name of WITH_CALLBACK) {
  const proto = PKCS11.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  if (!Object.prototype.hasOwnProperty.call(proto, `${name}Callback`)) {
    Object.defineProperty(proto, `${name}Callback`, {
      value: function (this: PKCS11, ...args: unknown[]) {
        const cb = args.pop() as (e: Error | null, d: unknown) => void;
        callback(() => proto[name]!.apply(this, args), cb);
      },
      writable: true,
      configurable: true,
    });
  }
  if (!Object.prototype.hasOwnProperty.call(proto, `${name}Async`)) {
    Object.defineProperty(proto, `${name}Async`, {
      value: function (this: PKCS11, ...args: unknown[]) {
        return promise(() => proto[name]!.apply(this, args));
      },
      writable: true,
      configurable: true,
    });
  }
}

export interface PKCS11 {
  [method: `C_${string}`]: (...args: never[]) => unknown;
}

// The same constants pkcs11js exports, as named exports and on the default export.
export * from "./constants-table.js";
const pkcs11js = { ...PKCS11JS_CONSTANTS, PKCS11, Pkcs11Error, NativeError };
export default pkcs11js;
