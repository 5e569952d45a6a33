/**
 * Re-execution of a pkcs11-spy trace (`hsmsim replay --spy`): each call the trace records is made again against an
 * hsmsim simulator, through its one dispatcher, and hsmsim's return code and outputs are compared with the traced
 * module's.
 *
 * - Processes: each process block of the trace (one pkcs11-spy banner) is one application. A process that ended
 *   without C_Finalize (a tool that aborted) is finalized on its behalf when its block ends, as the process's exit
 *   ended its sessions on the real module; the report says so.
 * - Handles: slot IDs, session handles and object handles are the traced module's; hsmsim's may differ. They are
 *   mapped as outputs establish them (C_GetSlotList's list by position, C_OpenSession's handle, the handle of
 *   C_CreateObject, C_CopyObject and C_GenerateKey, a search's objects by identity, below), and arguments are translated
 *   through the maps; a value never seen as an output is passed as it is (an invalid handle stays invalid). A handle
 *   seen again must map to the same hsmsim handle: a search finding another object is a divergence.
 * - Serials: a new token's serial is the one the trace shows for it later (the first serial number a C_GetTokenInfo
 *   reveals after the C_InitToken that does not belong to a token hsmsim has), so that SoftHSM's slot IDs, derived from
 *   serials, are the trace's; with no such serial hsmsim draws one and the report shows the difference.
 * - Time: each call is made at the trace's timestamp; C_GetTokenInfo's utcTime is not compared (the module read its
 *   clock after pkcs11-spy printed the time, so the two may straddle a second).
 * - PINs: the trace's PIN bytes are passed to hsmsim, which records them only by length; no PIN is printed, stored or
 *   put in the report (the report holds return codes and outputs only).
 * - Objects found: a new process numbers the objects it meets in the order the module lists them (SoftHSM: files
 *   named by random UUIDs), so a search's results are matched object by object, by the attributes the trace reveals of
 *   each later, not by position (see `mapByIdentity`).
 * - Keys: a key the traced module generated has a value no trace shows, so hsmsim's differs: under such a key, encrypt
 *   and sign outputs are compared by length and decrypt and verify calls are made (to keep the session's state) but
 *   not compared; the report counts them. A key imported through the trace (C_CreateObject with its CKA_VALUE) is the
 *   same key, and its outputs are compared byte for byte. No value of a secret attribute, and no decrypted plaintext,
 *   is shown in a divergence.
 * - Known behaviour of the traced module: SoftHSM 2.6.1's C_GetMechanismInfo ORs some mechanisms' flags (AES ECB,
 *   AES CBC PAD, as real traces show: their flags are hsmsim's | the previous answer's, and only when pkcs11-tool reuses
 *   one CK_MECHANISM_INFO) into the caller's structure. A flags difference that is exactly that OR is listed under
 *   `explained`, not counted as a divergence; any other flags difference is one.
 * - Skipped calls: a function hsmsim's dispatcher does not have (its function table, `CALL_SCHEMA`), a function whose
 *   arguments this reader cannot rebuild from the trace, and a call the trace cut off before it returned. Each is
 *   counted by function with the reason.
 */
import { Simulator, type Application, type SimulatorOptions } from "../actors/simulator.js";
import { CRYPTO_OUT, isKnownFunction } from "../events/call-schema.js";
import type { Call, FnName, Template } from "../events/calls.js";
import type { Shell } from "../functions/context.js";
import type { CallRecord } from "../events/types.js";
import { resolveObjectHandle } from "../model/state.js";
import { CK } from "../pkcs11/constants.js";
import { bufferOf, infoOf, templateOf, ulongOf, type SpyCall, type SpyField, type SpyTrace } from "./spy-parse.js";

export interface SpyDiff {
  field: string;
  trace: unknown;
  hsmsim: unknown;
}

export interface SpyDivergence {
  process: number;
  index: number;
  line: number;
  fn: string;
  rv: { trace: number; hsmsim: number };
  diffs: SpyDiff[];
}

export interface SpyReport {
  processes: number;
  calls: number;
  reexecuted: number;
  /** Re-executed calls with the same rv and outputs. */
  matched: number;
  /** Re-executed calls by function. */
  compared: Record<string, number>;
  divergences: SpyDivergence[];
  /** Skipped calls by function: how many, and why. */
  skipped: Record<string, { count: number; reason: string }>;
  /** Processes finalized on their behalf (their block ended without C_Finalize). */
  finalizedOnBehalf: number;
  /** New tokens whose serial came from the trace; and those for which the trace showed none. */
  serials: { fromTrace: number; drawn: number };
  /**
   * Calls under a key the traced module generated (its value is in no trace, so hsmsim's key differs): encrypt and
   * sign outputs compared by length, decrypt and verify re-executed (to keep the session's state) but not compared.
   */
  underGeneratedKeys: Record<string, number>;
  /**
   * Differences a known behaviour of the traced module explains, each listed (not counted as divergences): SoftHSM
   * 2.6.1's C_GetMechanismInfo ORs some mechanisms' flags into the caller's structure, which pkcs11-tool reuses.
   */
  explained: (SpyDiff & { process: number; index: number; line: number; fn: string })[];
}

/** Attributes whose values a divergence report may show (never secret). */
const SHOWN_ATTRS = new Set(
  ["CKA_CLASS", "CKA_LABEL", "CKA_ID", "CKA_APPLICATION", "CKA_OBJECT_ID", "CKA_CHECK_VALUE", "CKA_VALUE_LEN", "CKA_KEY_TYPE"]
    .map((n) => (CK as Record<string, number>)[n])
    .filter((v): v is number => typeof v === "number"),
);

/** The init and the steps of an encrypt, decrypt, sign or verify operation. */
const CRYPTO_INIT = /^C_(Encrypt|Decrypt|Sign|Verify)Init$/;
const CRYPTO_STEP = /^C_(Encrypt|Decrypt|Sign|Verify)(Update|Final)?$/;

type Maps = { slots: Map<number, number>; sessions: Map<number, number>; objects: Map<number, number> };

const MECH_BY_NAME = new Map<string, number>();
const CKU_BY_NAME = new Map<string, number>();
const ENUM_BY_NAME = new Map<string, number>();
for (const [k, v] of Object.entries(CK)) {
  if (typeof v !== "number") continue;
  if (k.startsWith("CKM_")) MECH_BY_NAME.set(k, v);
  if (k.startsWith("CKU_")) CKU_BY_NAME.set(k, v);
  if (/^CK[OKC]_/.test(k)) ENUM_BY_NAME.set(k, v);
}

/** A mechanism as printed: a name, or `Unknown Mechanism (%08lx)`, or a number. */
function mechanismOf(s: string): number | undefined {
  const v = s.trim();
  const unknown = /Unknown Mechanism \(([0-9a-f]+)\)/i.exec(v);
  if (unknown) return parseInt(unknown[1]!, 16);
  return MECH_BY_NAME.get(v) ?? ulongOf(v);
}

function ulongBytes(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
}

/** Why a call cannot be rebuilt from the trace. */
class NotReadable extends Error {}

const fieldOf = (c: SpyCall, dir: "in" | "out", name: string | RegExp): SpyField | undefined =>
  c.fields.find((f) => f.dir === dir && (typeof name === "string" ? f.name === name : name.test(f.name)));

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new NotReadable(what);
  return v;
}

function ulongIn(c: SpyCall, name: string): number {
  const f = need(fieldOf(c, "in", name), `no [in] ${name}`);
  return need(ulongOf(f.value), `[in] ${name} is not a number`);
}

/** An input buffer's bytes (PINs, data, labels), or null for a NULL pointer. */
function bytesIn(c: SpyCall, name: RegExp): Uint8Array | null {
  const f = need(fieldOf(c, "in", name), `no [in] ${name.source}`);
  const b = need(bufferOf(f.value, f.lines), `[in] ${f.name} is not a buffer`).buf;
  if (b.isNull) return null;
  if (b.len === 0) return new Uint8Array(0);
  return need(b.bytes, `[in] ${f.name}'s bytes are not in the trace`);
}

/** `[in] pMechanism->type` and `pMechanism->pParameter[ulParameterLen]` (raw parameter bytes, or NULL). */
function mechanismIn(c: SpyCall): { mechanism: number; parameter: Uint8Array | null } {
  const type = need(mechanismOf(need(fieldOf(c, "in", "pMechanism->type"), "no [in] pMechanism->type").value), "the mechanism is not readable");
  const p = fieldOf(c, "in", /^pMechanism->pParameter/);
  if (p && !/^pMechanism->pParameter\[ulParameterLen\]$/.test(p.name)) throw new NotReadable(`a structured mechanism parameter (${p.name}) is not read from traces`);
  const param = p ? need(bufferOf(p.value, p.lines), "the mechanism parameter is not readable").buf : undefined;
  if (param && !param.isNull && param.len > 0 && !param.bytes) throw new NotReadable("the mechanism parameter's bytes are not in the trace");
  return { mechanism: type, parameter: !param || param.isNull ? null : (param.bytes ?? new Uint8Array(0)) };
}

/** A template with values (print_attribute_list: C_CreateObject, C_SetAttributeValue, C_FindObjectsInit, ...). */
function valueTemplate(c: SpyCall): Template[] {
  const f = need(fieldOf(c, "in", /^pTemplate\[\d+\]:?$/), "no [in] pTemplate");
  const attrs = need(templateOf(f), "the template is not readable");
  return attrs.map((a) => {
    if (a.shown !== undefined) {
      if (a.shown === "True" || a.shown === "False") return { type: a.type, value: new Uint8Array([a.shown === "True" ? 1 : 0]) };
      const notFound = /^Value ([0-9A-F]+) not found/i.exec(a.shown);
      const n = notFound ? parseInt(notFound[1]!, 16) : ENUM_BY_NAME.get(a.shown);
      if (n === undefined) throw new NotReadable(`the value of ${a.name} ("${a.shown}") is not readable`);
      return { type: a.type, value: ulongBytes(n) };
    }
    const b = a.buffer!;
    if (b.isNull) return { type: a.type, value: null };
    if (b.len === 0) return { type: a.type, value: new Uint8Array(0) };
    return { type: a.type, value: need(b.bytes, `the value of ${a.name} is not in the trace`) };
  });
}

/** A C_GetAttributeValue request template (print_attribute_list_req): buffers by presence and size. */
function requestTemplate(c: SpyCall): Template[] {
  const f = need(fieldOf(c, "in", /^pTemplate\[\d+\]:?$/), "no [in] pTemplate");
  const attrs = need(templateOf(f), "the template is not readable");
  return attrs.map((a) => ({ type: a.type, value: !a.buffer || a.buffer.isNull ? null : new Uint8Array(a.buffer.len) }));
}

const OK = CK.CKR_OK;
const TOO_SMALL = CK.CKR_BUFFER_TOO_SMALL;

/** The call to make for a traced call, its handles mapped. */
function rebuild(c: SpyCall, fn: FnName, maps: Maps): Call {
  const slot = (name = "slotID") => {
    const v = ulongIn(c, name);
    return maps.slots.get(v) ?? v;
  };
  const session = () => {
    const v = ulongIn(c, "hSession");
    return maps.sessions.get(v) ?? v;
  };
  const object = (name = "hObject") => {
    const v = ulongIn(c, name);
    return maps.objects.get(v) ?? v;
  };
  /** An output buffer's capacity as far as the trace tells: its printed length when the call succeeded. */
  const outCapacity = (name: RegExp): number | null => {
    const f = need(fieldOf(c, "out", name), `no [out] ${name.source}`);
    const b = need(bufferOf(f.value, f.lines), `[out] ${f.name} is not a buffer`).buf;
    if (b.isNull) return null;
    return c.rv === TOO_SMALL ? 0 : b.len;
  };
  /** An encrypt / decrypt / sign output buffer: its printed length when the call succeeded (see outCapacity). */
  const cryptoCapacity = (): number | null => {
    const f = c.fields.find((x) => x.dir === "out" && /\[\*pul\w+\]$/.test(x.name));
    if (!f) {
      if (c.rv === OK || c.rv === TOO_SMALL) throw new NotReadable("no [out] buffer");
      return 1 << 16; // a failed call prints no output; its capacity did not decide the failure
    }
    return outCapacity(new RegExp(`^${f.name.replace(/[[\]*]/g, "\\$&")}$`));
  };
  const listCapacity = (name: RegExp): number | null => {
    const f = fieldOf(c, "out", name);
    if (!f) {
      // A failed call prints no list; what the caller passed is not in the trace.
      if (c.rv === OK) throw new NotReadable(`no [out] ${name.source}`);
      return null;
    }
    if (f.lines.some((l) => /^Count is \d+$/.test(l.trim()))) return null;
    return c.rv === TOO_SMALL ? 0 : f.lines.filter((l) => l.trim() !== "").length;
  };
  switch (fn) {
    case "C_Initialize": {
      // Init arguments (mutex callbacks, CKF_OS_LOCKING_OK) are not read from the trace: a given pInitArgs is made
      // again as a structure with no callbacks and no flags, which every module accepts; the rv comparison shows
      // where the traced module answered otherwise.
      const f = fieldOf(c, "in", "pInitArgs");
      return { fn, args: f && f.value !== "(nil)" && f.value !== "NULL" ? { pInitArgs: {} } : {} };
    }
    case "C_Finalize":
    case "C_GetInfo":
      return { fn, args: {} } as Call;
    case "C_GetSlotList":
      return { fn, args: { tokenPresent: ulongIn(c, "tokenPresent") !== 0, pSlotList: listCapacity(/^pSlotList:?$/) } };
    case "C_GetSlotInfo":
    case "C_GetTokenInfo":
      return { fn, args: { slotID: slot() } } as Call;
    case "C_GetMechanismList":
      return { fn, args: { slotID: slot(), pMechanismList: listCapacity(/^pMechanismList(\[\d+\])?:?$/) } };
    case "C_GetMechanismInfo":
      return { fn, args: { slotID: slot(), type: need(mechanismOf(need(fieldOf(c, "in", "type"), "no [in] type").value), "the mechanism is not readable") } };
    case "C_InitToken": {
      const label = bytesIn(c, /^pLabel/);
      return { fn, args: { slotID: slot(), pin: bytesIn(c, /^pPin/), label } };
    }
    case "C_InitPIN":
      return { fn, args: { hSession: session(), pin: bytesIn(c, /^pPin/) } };
    case "C_SetPIN":
      return { fn, args: { hSession: session(), oldPin: bytesIn(c, /^pOldPin/), newPin: bytesIn(c, /^pNewPin/) } };
    case "C_OpenSession":
      return { fn, args: { slotID: slot(), flags: ulongIn(c, "flags") } };
    case "C_CloseSession":
    case "C_GetSessionInfo":
    case "C_Logout":
    case "C_FindObjectsFinal":
    case "C_GetFunctionStatus":
    case "C_CancelFunction":
      return { fn, args: { hSession: session() } } as Call;
    case "C_CloseAllSessions":
      return { fn, args: { slotID: slot() } };
    case "C_Login": {
      const ut = need(fieldOf(c, "in", "userType"), "no [in] userType").value.trim();
      const userType = need(CKU_BY_NAME.get(ut) ?? ulongOf(ut), `user type ${ut} is not readable`);
      return { fn, args: { hSession: session(), userType, pin: bytesIn(c, /^pPin/) } };
    }
    case "C_CreateObject":
      return { fn, args: { hSession: session(), template: valueTemplate(c) } };
    case "C_CopyObject":
      return { fn, args: { hSession: session(), hObject: object(), template: valueTemplate(c) } };
    case "C_SetAttributeValue":
      return { fn, args: { hSession: session(), hObject: object(), template: valueTemplate(c) } };
    case "C_FindObjectsInit":
      return { fn, args: { hSession: session(), template: valueTemplate(c) } };
    case "C_DestroyObject":
    case "C_GetObjectSize":
      return { fn, args: { hSession: session(), hObject: object() } } as Call;
    case "C_GetAttributeValue":
      return { fn, args: { hSession: session(), hObject: object(), template: requestTemplate(c) } };
    case "C_FindObjects":
      return { fn, args: { hSession: session(), maxCount: ulongIn(c, "ulMaxObjectCount") } };
    case "C_DigestInit":
      return { fn, args: { hSession: session(), mechanism: mechanismIn(c) } } as Call;
    case "C_GenerateKey":
      return { fn, args: { hSession: session(), mechanism: mechanismIn(c), template: valueTemplate(c) } } as Call;
    case "C_EncryptInit":
    case "C_DecryptInit":
    case "C_SignInit":
    case "C_VerifyInit":
      return { fn, args: { hSession: session(), mechanism: mechanismIn(c), hKey: object("hKey") } } as Call;
    case "C_Encrypt":
    case "C_Decrypt":
    case "C_Sign":
    case "C_EncryptUpdate":
    case "C_DecryptUpdate":
      return { fn, args: { hSession: session(), data: bytesIn(c, /^p(Encrypted)?(Data|Part)\[/), outLen: cryptoCapacity() } } as Call;
    case "C_EncryptFinal":
    case "C_DecryptFinal":
    case "C_SignFinal":
      return { fn, args: { hSession: session(), outLen: cryptoCapacity() } } as Call;
    case "C_SignUpdate":
    case "C_VerifyUpdate":
      return { fn, args: { hSession: session(), data: bytesIn(c, /^p(Data|Part)\[/) } } as Call;
    case "C_Verify":
      return { fn, args: { hSession: session(), data: bytesIn(c, /^pData\[/), signature: bytesIn(c, /^pSignature\[/) } };
    case "C_VerifyFinal":
      return { fn, args: { hSession: session(), signature: bytesIn(c, /^pSignature\[/) } };
    case "C_DigestUpdate":
      return { fn, args: { hSession: session(), data: bytesIn(c, /^pPart/) } };
    case "C_Digest":
      return { fn, args: { hSession: session(), data: bytesIn(c, /^pData/), outLen: c.rv === OK || c.rv === TOO_SMALL ? outCapacity(/^pDigest/) : 64 } };
    case "C_DigestFinal":
      return { fn, args: { hSession: session(), outLen: c.rv === OK || c.rv === TOO_SMALL ? outCapacity(/^pDigest/) : 64 } };
    case "C_SeedRandom":
      return { fn, args: { hSession: session(), seed: bytesIn(c, /^pSeed/) } };
    case "C_GenerateRandom": {
      const f = need(fieldOf(c, "out", /^RandomData/), "no [out] RandomData");
      const b = need(bufferOf(f.value, f.lines), "[out] RandomData is not a buffer").buf;
      return { fn, args: { hSession: session(), ulRandomLen: b.len, ...(b.isNull ? { pRandomData: null } : {}) } };
    }
    default:
      throw new NotReadable("no trace reader for its arguments yet");
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Comparing outputs.

const versionText = (v: { major: number; minor: number }) => `${v.major}.${v.minor}`;

function compareInfo(f: SpyField | undefined, out: Record<string, unknown>, keys: [trace: string, ours: string, kind: "text" | "num" | "hex" | "ver"][], diffs: SpyDiff[]): void {
  if (!f) return;
  const info = infoOf(f);
  for (const [tk, ok, kind] of keys) {
    const t = info.get(tk);
    if (t === undefined) continue;
    const o = out[ok];
    let same: boolean;
    let shown: unknown = o;
    // Text fields as pkcs11-spy prints them: the whole padded field, blanks included.
    if (kind === "text") same = String(o) === t;
    else if (kind === "ver") {
      shown = versionText(o as { major: number; minor: number });
      same = shown === t;
    } else if (kind === "hex") {
      same = parseInt(t, 16) === o;
      shown = (o as number).toString(16);
    } else same = ulongOf(t) === o;
    if (!same) diffs.push({ field: ok, trace: t, hsmsim: shown });
  }
}

const TOKEN_KEYS: [string, string, "text" | "num" | "hex" | "ver"][] = [
  ["label", "label", "text"],
  ["manufacturerID", "manufacturerID", "text"],
  ["model", "model", "text"],
  ["serialNumber", "serialNumber", "text"],
  ["ulMaxSessionCount", "maxSessionCount", "num"],
  ["ulSessionCount", "sessionCount", "num"],
  ["ulMaxRwSessionCount", "maxRwSessionCount", "num"],
  ["ulRwSessionCount", "rwSessionCount", "num"],
  ["ulMaxPinLen", "maxPinLen", "num"],
  ["ulMinPinLen", "minPinLen", "num"],
  ["ulTotalPublicMemory", "totalPublicMemory", "num"],
  ["ulFreePublicMemory", "freePublicMemory", "num"],
  ["ulTotalPrivateMemory", "totalPrivateMemory", "num"],
  ["ulFreePrivateMemory", "freePrivateMemory", "num"],
  ["hardwareVersion", "hardwareVersion", "ver"],
  ["firmwareVersion", "firmwareVersion", "ver"],
  ["flags", "flags", "hex"],
];
const SLOT_KEYS: [string, string, "text" | "num" | "hex" | "ver"][] = [
  ["slotDescription", "slotDescription", "text"],
  ["manufacturerID", "manufacturerID", "text"],
  ["hardwareVersion", "hardwareVersion", "ver"],
  ["firmwareVersion", "firmwareVersion", "ver"],
  ["flags", "flags", "hex"],
];
const MODULE_KEYS: [string, string, "text" | "num" | "hex" | "ver"][] = [
  ["cryptokiVersion", "cryptokiVersion", "ver"],
  ["manufacturerID", "manufacturerID", "text"],
  ["flags", "flags", "hex"],
  ["libraryDescription", "libraryDescription", "text"],
  ["libraryVersion", "libraryVersion", "ver"],
];

/** Map trace handles to hsmsim's position by position; a handle already mapped must map the same way. */
function mapHandles(map: Map<number, number>, trace: number[], ours: number[], field: string, diffs: SpyDiff[]): void {
  if (trace.length !== ours.length) {
    diffs.push({ field: `${field} (count)`, trace: trace.length, hsmsim: ours.length });
    return;
  }
  trace.forEach((t, i) => {
    const known = map.get(t);
    if (known !== undefined && known !== ours[i]) diffs.push({ field: `${field}[${i}]`, trace: t, hsmsim: `${ours[i]} (the trace's ${t} was hsmsim's ${known})` });
    else map.set(t, ours[i]!);
  });
}

const hexOf = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString("hex") : null);

/** Compare a re-executed call's outputs with the trace's, and learn handle mappings from them. */
/** What a comparison carries from call to call within a process. */
interface CompareContext {
  /** The flags the trace's previous C_GetMechanismInfo answered. */
  prevMechanismFlags?: number;
  /** Differences explained by a known behaviour of the traced module (see the report's `explained`). */
  explained: SpyDiff[];
  /** Which of hsmsim's handles is the object the trace's handle names (by the attributes the trace reveals of it). */
  identify: (traceHandle: number, candidates: number[]) => number | undefined;
}

/**
 * A search's objects: the same ones, whatever their order. A module numbers the objects a new process meets in the
 * order it lists them (SoftHSM: its object files, named by random UUIDs), and a search answers in handle order, so
 * the objects the trace's C_FindObjects calls return over one search (C_FindObjectsInit to C_FindObjectsFinal) are
 * matched to the handles hsmsim's search found by what the trace reveals of each later (its class, ID, label, ...
 * from C_GetAttributeValue), and by position when it reveals nothing. A count that differs, or a handle already
 * mapped to an object hsmsim did not find, is a divergence.
 */
function mapByIdentity(map: Map<number, number>, trace: number[], ours: number[], identify: CompareContext["identify"], diffs: SpyDiff[]): void {
  if (trace.length !== ours.length) {
    diffs.push({ field: "objects found (over the search's C_FindObjects calls)", trace: trace.length, hsmsim: ours.length });
    return;
  }
  const free = new Set(ours);
  const fresh: number[] = [];
  for (const t of trace) {
    const known = map.get(t);
    if (known === undefined) fresh.push(t);
    else if (!free.delete(known)) diffs.push({ field: "handles", trace: t, hsmsim: `not found (the trace's ${t} was hsmsim's ${known})` });
  }
  for (const t of fresh) {
    const pick = identify(t, [...free]) ?? [...free][0]!;
    free.delete(pick);
    map.set(t, pick);
  }
}

function compareOut(c: SpyCall, fn: FnName, out: Record<string, unknown> | undefined, rv: number, maps: Maps, diffs: SpyDiff[], ctx: CompareContext, generatedKey = false): void {
  if (!out) return;
  const bothOk = rv === OK && c.rv === OK;
  switch (fn) {
    case "C_GetInfo":
      if (bothOk) compareInfo(fieldOf(c, "out", /^pInfo:?$/), out, MODULE_KEYS, diffs);
      break;
    case "C_GetSlotInfo":
      if (bothOk) compareInfo(fieldOf(c, "out", /^pInfo:?$/), out, SLOT_KEYS, diffs);
      break;
    case "C_GetTokenInfo":
      if (bothOk) compareInfo(fieldOf(c, "out", /^pInfo:?$/), out, TOKEN_KEYS, diffs);
      break;
    case "C_GetSlotList": {
      const f = fieldOf(c, "out", /^pSlotList:?$/);
      if (!f || (rv !== OK && rv !== TOO_SMALL)) break;
      const count = f.lines.map((l) => /^Count is (\d+)$/.exec(l.trim())).find(Boolean);
      const traceCount = fieldOf(c, "out", "*pulCount");
      const tc = count ? Number(count[1]) : traceCount ? ulongOf(traceCount.value) : undefined;
      if (tc !== undefined && tc !== out.count) diffs.push({ field: "count", trace: tc, hsmsim: out.count });
      if (!count && bothOk) {
        const slots = f.lines.map((l) => /^Slot (\d+)$/.exec(l.trim())).filter(Boolean).map((m) => Number(m![1]));
        mapHandles(maps.slots, slots, out.slots as number[], "slots", diffs);
      }
      break;
    }
    case "C_GetMechanismList": {
      const f = fieldOf(c, "out", /^pMechanismList/);
      if (!f || (rv !== OK && rv !== TOO_SMALL)) break;
      const count = f.lines.map((l) => /^Count is (\d+)$/.exec(l.trim())).find(Boolean);
      if (count) {
        if (Number(count[1]) !== out.count) diffs.push({ field: "count", trace: Number(count[1]), hsmsim: out.count });
        break;
      }
      if (!bothOk) break;
      const traced = f.lines.map((l) => l.trim()).filter(Boolean).map((l) => mechanismOf(l) ?? l);
      const ours = out.mechanisms as number[];
      const name = (m: unknown) => (typeof m === "number" ? [...MECH_BY_NAME].find(([, v]) => v === m)?.[0] ?? `0x${m.toString(16)}` : String(m));
      const missing = traced.filter((m) => !ours.includes(m as number)).map(name);
      const extra = ours.filter((m) => !traced.includes(m)).map(name);
      if (missing.length || extra.length) diffs.push({ field: "mechanisms", trace: { notInHsmsim: missing }, hsmsim: { notInTrace: extra } });
      else if (traced.join() !== ours.join()) diffs.push({ field: "mechanisms (order)", trace: traced.map(name), hsmsim: ours.map(name) });
      break;
    }
    case "C_GetMechanismInfo": {
      const f = fieldOf(c, "out", /^pInfo:?$/);
      const m = f && /min:(\d+) max:(\d+) flags:0x([0-9A-F]+)/i.exec(f.lines.join(" "));
      if (!bothOk || !m) break;
      const t = { minKeySize: Number(m[1]), maxKeySize: Number(m[2]), flags: parseInt(m[3]!, 16) };
      const prev = ctx.prevMechanismFlags;
      ctx.prevMechanismFlags = t.flags;
      for (const k of ["minKeySize", "maxKeySize", "flags"] as const) {
        if (t[k] === out[k]) continue;
        // SoftHSM 2.6.1 ORs some mechanisms' flags into the caller's CK_MECHANISM_INFO instead of setting them, so a
        // caller that reuses one structure (pkcs11-tool does) sees the previous answer's flags too. Listed, not hidden.
        if (k === "flags" && prev !== undefined && t.flags === ((out.flags as number) | prev)) {
          ctx.explained.push({ field: "flags", trace: t.flags.toString(16), hsmsim: `${(out.flags as number).toString(16)}, | the previous answer's ${prev.toString(16)}` });
          continue;
        }
        diffs.push({ field: k, trace: t[k], hsmsim: out[k] });
      }
      break;
    }
    case "C_OpenSession": {
      const f = fieldOf(c, "out", "*phSession");
      const t = f && ulongOf(f.value);
      if (bothOk && t !== undefined) mapHandles(maps.sessions, [t], [out.hSession as number], "hSession", diffs);
      break;
    }
    case "C_CreateObject":
    case "C_CopyObject": {
      const f = fieldOf(c, "out", /^\*ph(New)?Object$/);
      const t = f && ulongOf(f.value);
      if (bothOk && t !== undefined) mapHandles(maps.objects, [t], [out.hObject as number], "hObject", diffs);
      break;
    }
    case "C_FindObjects": {
      if (!bothOk) break;
      const f = fieldOf(c, "out", "ulObjectCount");
      if (!f) break;
      const handles = f.lines.map((l) => /^Object (0x[0-9a-f]+|\d+) matches$/i.exec(l.trim())).filter(Boolean).map((m) => Number(m![1]));
      // Which objects: matched when the search started (C_FindObjectsInit); here, how many this call returned.
      if (handles.length !== (out.handles as number[]).length) diffs.push({ field: "handles (count)", trace: handles.length, hsmsim: (out.handles as number[]).length });
      break;
    }
    case "C_GetSessionInfo": {
      const f = fieldOf(c, "out", /^pInfo:?$/);
      if (!bothOk || !f) break;
      const info = infoOf(f);
      const slotID = ulongOf(info.get("slotID") ?? "");
      if (slotID !== undefined && (maps.slots.get(slotID) ?? slotID) !== out.slotID) diffs.push({ field: "slotID", trace: slotID, hsmsim: out.slotID });
      const state = info.get("state")?.trim();
      const ours = Object.entries(CK).find(([k, v]) => k.startsWith("CKS_") && v === out.state)?.[0];
      if (state !== undefined && state !== ours) diffs.push({ field: "state", trace: state, hsmsim: ours });
      const flags = info.get("flags");
      if (flags !== undefined && parseInt(flags, 16) !== out.flags) diffs.push({ field: "flags", trace: flags, hsmsim: (out.flags as number).toString(16) });
      break;
    }
    case "C_GetObjectSize": {
      const f = fieldOf(c, "out", "*pulSize");
      const t = f && ulongOf(f.value);
      if (bothOk && t !== undefined && t !== out.size) diffs.push({ field: "size", trace: t, hsmsim: out.size });
      break;
    }
    case "C_GetAttributeValue": {
      const f = fieldOf(c, "out", /^pTemplate\[\d+\]:?$/);
      const attrs = f && templateOf(f);
      if (!attrs) break;
      const ours = out.attrs as { type: number; value: Uint8Array | null; length: number }[];
      attrs.forEach((a, i) => {
        const o = ours[i];
        if (!o) return;
        const name = a.name;
        if (a.shown !== undefined) {
          // A value printed by meaning: a boolean or an enum.
          const v = o.value;
          const ourShown = !v ? null : v.length === 1 ? (v[0] ? "True" : "False") : v.length === 8 ? [...ENUM_BY_NAME].find(([k, n]) => n === Number(new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true)) && k.startsWith(name === "CKA_CLASS" ? "CKO_" : name === "CKA_KEY_TYPE" ? "CKK_" : "CKC_"))?.[0] : undefined;
          if (ourShown !== undefined && ourShown !== a.shown) diffs.push({ field: name, trace: a.shown, hsmsim: ourShown });
          return;
        }
        const b = a.buffer!;
        // A generated key's value (and its check value) differ by design: their lengths are compared.
        const keyBytes = generatedKey && (a.type === CK.CKA_VALUE || a.type === (CK as Record<string, number>).CKA_CHECK_VALUE);
        if (keyBytes && b.len === o.length) return;
        if (b.len !== o.length) diffs.push({ field: `${name} (length)`, trace: b.len === CK.CK_UNAVAILABLE_INFORMATION ? -1 : b.len, hsmsim: o.length === CK.CK_UNAVAILABLE_INFORMATION ? -1 : o.length });
        else if (b.bytes && o.value && hexOf(b.bytes) !== hexOf(o.value)) {
          // Values are shown only for attributes that are never secret: a key's CKA_VALUE stays out of any report.
          const shown = SHOWN_ATTRS.has(a.type);
          diffs.push({ field: name, trace: shown ? hexOf(b.bytes) : "(not shown)", hsmsim: shown ? hexOf(o.value) : `(differs, ${o.length} bytes, not shown)` });
        }
      });
      break;
    }
    case "C_Digest":
    case "C_DigestFinal": {
      const f = fieldOf(c, "out", /^pDigest/);
      const b = f && bufferOf(f.value, f.lines)?.buf;
      if (!b) break;
      if (b.len !== out.length && (rv === OK || rv === TOO_SMALL)) diffs.push({ field: "length", trace: b.len, hsmsim: out.length });
      else if (bothOk && b.bytes && hexOf(b.bytes) !== hexOf(out.digest as Uint8Array | null)) diffs.push({ field: "digest", trace: hexOf(b.bytes), hsmsim: hexOf(out.digest as Uint8Array) });
      break;
    }
    case "C_GenerateRandom": {
      // Random bytes differ by design; their number is compared.
      const f = fieldOf(c, "out", /^RandomData/);
      const b = f && bufferOf(f.value, f.lines)?.buf;
      if (bothOk && b && b.len !== (out.random as Uint8Array).length) diffs.push({ field: "length", trace: b.len, hsmsim: (out.random as Uint8Array).length });
      break;
    }
    default:
      // The encrypt, decrypt and sign steps (call-schema.ts CRYPTO_OUT): their data output.
      if (!CRYPTO_OUT.has(fn)) break;
      const f = c.fields.find((x) => x.dir === "out" && /\[\*pul\w+\]$/.test(x.name));
      const b = f && bufferOf(f.value, f.lines)?.buf;
      if (!b || (rv !== OK && rv !== TOO_SMALL) || c.rv !== rv) break;
      const ours = out.data as Uint8Array | null;
      if (b.len !== out.length) diffs.push({ field: "length", trace: b.len, hsmsim: out.length });
      else if (bothOk && !generatedKey && b.bytes && ours && hexOf(b.bytes) !== hexOf(ours)) {
        // Plaintext (a decrypt's output) may be a secret: only ciphertexts and signatures are shown.
        const shown = !fn.startsWith("C_Decrypt");
        diffs.push({ field: "output", trace: shown ? hexOf(b.bytes) : "(not shown)", hsmsim: shown ? hexOf(ours) : "(differs, not shown)" });
      }
      break;
  }
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * The handles a search returned over its C_FindObjects calls in the trace (from the C_FindObjectsInit at `at` to the
 * session's C_FindObjectsFinal or last empty page); `complete` when the search was paged to its end.
 */
function searchResults(calls: SpyCall[], at: number): { handles: number[]; complete: boolean } {
  const init = calls[at]!;
  const session = ulongOf(fieldOf(init, "in", "hSession")?.value ?? "");
  const handles: number[] = [];
  for (let i = at + 1; i < calls.length; i++) {
    const c = calls[i]!;
    if (c.process !== init.process) break;
    if (ulongOf(fieldOf(c, "in", "hSession")?.value ?? "") !== session) continue;
    if (c.fn === "C_FindObjects" && c.rv === OK) {
      const f = fieldOf(c, "out", "ulObjectCount");
      const page = (f?.lines ?? []).map((l) => /^Object (0x[0-9a-f]+|\d+) matches$/i.exec(l.trim())).filter(Boolean).map((m) => Number(m![1]));
      handles.push(...page);
      const max = ulongOf(fieldOf(c, "in", "ulMaxObjectCount")?.value ?? "");
      if (max !== undefined && page.length < max) return { handles, complete: true };
      continue;
    }
    // Other calls on the session (reading the attributes of what was found) go on; a search ended before its last
    // page (C_FindObjectsFinal, a new C_FindObjectsInit, C_CloseSession) says only part of what it found.
    if (c.fn === "C_FindObjectsFinal" || c.fn === "C_FindObjectsInit" || c.fn === "C_CloseSession") break;
  }
  return { handles, complete: false };
}

/** Per process, per trace object handle: the attribute values the trace's C_GetAttributeValue answers reveal. */
function revealedAttributes(trace: SpyTrace): Map<number, Map<number, Map<number, string>>> {
  const out = new Map<number, Map<number, Map<number, string>>>();
  for (const c of trace.calls) {
    if (c.fn !== "C_GetAttributeValue") continue;
    const h = fieldOf(c, "in", "hObject");
    const handle = h && ulongOf(h.value);
    const f = fieldOf(c, "out", /^pTemplate\[\d+\]:?$/);
    const attrs = f && templateOf(f);
    if (handle === undefined || !attrs) continue;
    const byHandle = out.get(c.process) ?? out.set(c.process, new Map()).get(c.process)!;
    const known = byHandle.get(handle) ?? byHandle.set(handle, new Map()).get(handle)!;
    for (const a of attrs) {
      if (a.shown === "True" || a.shown === "False") known.set(a.type, a.shown === "True" ? "01" : "00");
      else if (a.shown !== undefined) {
        const n = ENUM_BY_NAME.get(a.shown);
        if (n !== undefined) known.set(a.type, hexOf(ulongBytes(n))!);
      } else if (a.buffer?.bytes && a.buffer.len !== CK.CK_UNAVAILABLE_INFORMATION) known.set(a.type, hexOf(a.buffer.bytes)!);
    }
  }
  return out;
}

export interface SpyRunOptions {
  simulator: Omit<SimulatorOptions, "clock" | "shell">;
  progress?: (done: number, total: number) => void;
}

export function runSpyTrace(trace: SpyTrace, opts: SpyRunOptions): { report: SpyReport; simulator: Simulator } {
  // The serials the trace reveals, with the index of the call that first shows each.
  const firstSeen = new Map<string, number>();
  trace.calls.forEach((c, i) => {
    if (c.fn !== "C_GetTokenInfo" || c.rv !== OK) return;
    const f = fieldOf(c, "out", /^pInfo:?$/);
    const serial = f ? infoOf(f).get("serialNumber")?.trim() : undefined;
    if (serial && !firstSeen.has(serial)) firstSeen.set(serial, i);
  });
  let at = 0;
  let now = Date.now();
  const used = new Set<string>();
  const report: SpyReport = {
    processes: trace.modules.length,
    calls: trace.calls.length,
    reexecuted: 0,
    matched: 0,
    compared: {},
    divergences: [],
    skipped: {},
    finalizedOnBehalf: 0,
    serials: { fromTrace: 0, drawn: 0 },
    underGeneratedKeys: {},
    explained: [],
  };
  let sim: Simulator;
  const shell = (base: Shell): Shell => ({
    ...base,
    newSerial: () => {
      const have = new Set([...sim.state.tokens.values()].map((t) => t.serial));
      for (const [serial, i] of firstSeen) {
        if (i > at && !used.has(serial) && !have.has(serial) && /^[0-9a-f]{16}$/.test(serial)) {
          used.add(serial);
          report.serials.fromTrace++;
          return serial;
        }
      }
      report.serials.drawn++;
      return base.newSerial();
    },
  });
  sim = new Simulator({ ...opts.simulator, clock: () => now, shell });

  const skip = (fn: string, reason: string) => {
    const s = (report.skipped[fn] ??= { count: 0, reason });
    s.count++;
  };
  let process = -1;
  let app: Application | undefined;
  let maps: Maps = { slots: new Map(), sessions: new Map(), objects: new Map() };
  const globalSlots = new Map<number, number>();
  const endProcess = () => {
    if (app && app.appId !== 0) {
      app.call({ fn: "C_Finalize", args: {} });
      report.finalizedOnBehalf++;
    }
  };
  // Keys the traced module generated (hsmsim object ids), and per session whether its operation runs under one.
  const generated = new Set<string>();
  let opKeys = new Map<number, boolean>();
  let prevMechanismFlags: number | undefined;
  const isGenerated = (handle: number): boolean => {
    const a = app && sim.state.apps.get(app.appId);
    const found = a ? resolveObjectHandle(sim.state, a, handle) : undefined;
    return !!found && generated.has(found.object.id);
  };
  let captured: CallRecord | undefined;
  sim.subscribe((r) => (captured = r));
  const revealed = revealedAttributes(trace);
  const pendingDiffs: SpyDiff[] = [];
  const identify = (t: number, candidates: number[]): number | undefined => {
    const known = revealed.get(process)?.get(t);
    const a = app && sim.state.apps.get(app.appId);
    if (!known || !a) return undefined;
    return candidates.find((h) => {
      const o = resolveObjectHandle(sim.state, a, h)?.object;
      if (!o) return false;
      for (const [type, hex] of known) {
        if (type === CK.CKA_VALUE) continue; // a generated key's value is hsmsim's own
        const v = o.attrs.get(type);
        if (!v || hexOf(v) !== hex) return false;
      }
      return true;
    });
  };
  trace.calls.forEach((c, i) => {
    at = i;
    if (c.process !== process) {
      endProcess();
      process = c.process;
      app = sim.application();
      maps = { slots: globalSlots, sessions: new Map(), objects: new Map() };
      opKeys = new Map();
      prevMechanismFlags = undefined;
    }
    if (c.time !== undefined) now = c.time;
    opts.progress?.(i + 1, trace.calls.length);
    if (!isKnownFunction(c.fn)) return skip(c.fn, "not a function hsmsim implements");
    if (c.rv === undefined) return skip(c.fn, "the trace ends before it returned");
    let call: Call;
    try {
      call = rebuild(c, c.fn, maps);
    } catch (e) {
      if (e instanceof NotReadable) return skip(c.fn, `its arguments cannot be rebuilt from the trace: ${e.message}`);
      throw e;
    }
    const args = call.args as { hSession?: number; hKey?: number; hObject?: number };
    // Whether the call works under (or reads) a key the traced module generated: its value is not in the trace.
    const underGenerated =
      (CRYPTO_STEP.test(c.fn) && args.hSession !== undefined && opKeys.get(args.hSession) === true) ||
      (c.fn === "C_GetAttributeValue" && args.hObject !== undefined && isGenerated(args.hObject));
    captured = undefined;
    const answer = app!.call(call as never);
    report.reexecuted++;
    if (CRYPTO_INIT.test(c.fn) && args.hSession !== undefined && answer.rv === OK) opKeys.set(args.hSession, isGenerated(args.hKey!));
    if (c.fn === "C_FindObjectsInit" && answer.rv === OK && c.rv === OK) {
      const found = (captured as CallRecord | undefined)?.facts.find((f) => f.type === "FindStarted") as { handles: number[] } | undefined;
      const traced = searchResults(trace.calls, i);
      // Only a search the trace pages to its end says which objects it found.
      if (found && traced.complete) {
        const diffs: SpyDiff[] = [];
        mapByIdentity(maps.objects, traced.handles, found.handles, identify, diffs);
        if (diffs.length) pendingDiffs.push(...diffs);
      }
    }
    if (c.fn === "C_GenerateKey" && answer.rv === OK) {
      const made = (captured as CallRecord | undefined)?.facts.find((f) => f.type === "ObjectCreated") as { object: { id: string } } | undefined;
      if (made) generated.add(made.object.id);
      const t = fieldOf(c, "out", /^h?Key$|^\*?phKey$/);
      const tv = t && ulongOf(t.value);
      if (tv !== undefined) maps.objects.set(tv, (answer.out as { hKey: number }).hKey);
    }
    if (underGenerated && c.fn !== "C_GetAttributeValue") {
      report.underGeneratedKeys[c.fn] = (report.underGeneratedKeys[c.fn] ?? 0) + 1;
      if (/^C_(Decrypt|Verify)/.test(c.fn)) return;
    }
    report.compared[c.fn] = (report.compared[c.fn] ?? 0) + 1;
    const diffs: SpyDiff[] = pendingDiffs.splice(0);
    const cmp: CompareContext = { explained: [], identify, ...(prevMechanismFlags !== undefined ? { prevMechanismFlags } : {}) };
    compareOut(c, c.fn, answer.out as Record<string, unknown> | undefined, answer.rv, maps, diffs, cmp, underGenerated);
    prevMechanismFlags = cmp.prevMechanismFlags;
    for (const x of cmp.explained) report.explained.push({ process: c.process, index: c.index, line: c.line, fn: c.fn, ...x });
    if (answer.rv !== c.rv || diffs.length) {
      report.divergences.push({ process: c.process, index: c.index, line: c.line, fn: c.fn, rv: { trace: c.rv, hsmsim: answer.rv }, diffs });
    } else report.matched++;
  });
  endProcess();
  return { report, simulator: sim };
}
