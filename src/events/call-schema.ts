/**
 * The shape of every call's arguments, as one table. It drives two things:
 * - validation at the dispatcher's door: a value of the wrong JS type is not a crash but CKR_ARGUMENTS_BAD, recorded
 *   like any other answer (non-negotiable 4);
 * - redaction for the log: PINs become `{ len }`, data to digest becomes `{ len }`, template values become lengths
 *   (the values that matter are in the facts), so a record can never carry a secret argument.
 */
import { hash } from "node:crypto";
import type { Bytes, Call, FnName, GcmParameter, Mechanism, Template } from "./calls.js";
import { bytesToHex } from "../crypto/encoding.js";
import { OPERATION_BLOB_NONCE_AT } from "../crypto/operation-blob.js";

type Kind =
  | "ulong" // a CK_ULONG: handle, slot ID, flags, user type, count
  | "ulong?" // a CK_ULONG or null (a NULL length pointer / size query)
  | "bool"
  | "pin" // Uint8Array | string | null (NULL)
  | "bytes" // Uint8Array | null (NULL)
  | "label" // Uint8Array | string | null
  | "template" // Template[] | null
  | "mechanism" // { mechanism, parameter? } | null
  | "nullptr" // an output pointer: undefined (given) or null (NULL)
  | "any"; // opaque (pReserved, init args)

export const CALL_SCHEMA: { [F in FnName]: Record<string, Kind> } = {
  C_Initialize: { pInitArgs: "any" },
  C_Finalize: { pReserved: "any" },
  C_GetInfo: { pInfo: "nullptr" },
  C_GetSlotList: { tokenPresent: "bool", pSlotList: "ulong?", pulCount: "nullptr" },
  C_GetSlotInfo: { slotID: "ulong", pInfo: "nullptr" },
  C_GetTokenInfo: { slotID: "ulong", pInfo: "nullptr" },
  C_InitToken: { slotID: "ulong", pin: "pin", label: "label" },
  C_InitPIN: { hSession: "ulong", pin: "pin" },
  C_SetPIN: { hSession: "ulong", oldPin: "pin", newPin: "pin" },
  C_GetMechanismList: { slotID: "ulong", pMechanismList: "ulong?", pulCount: "nullptr" },
  C_GetMechanismInfo: { slotID: "ulong", type: "ulong", pInfo: "nullptr" },
  C_OpenSession: { slotID: "ulong", flags: "ulong", phSession: "nullptr" },
  C_CloseSession: { hSession: "ulong" },
  C_CloseAllSessions: { slotID: "ulong" },
  C_GetSessionInfo: { hSession: "ulong", pInfo: "nullptr" },
  C_GetOperationState: { hSession: "ulong" },
  C_SetOperationState: { hSession: "ulong", state: "bytes", hEncryptionKey: "ulong", hAuthenticationKey: "ulong" },
  C_Login: { hSession: "ulong", userType: "ulong", pin: "pin" },
  C_Logout: { hSession: "ulong" },
  C_WaitForSlotEvent: { flags: "ulong" },
  C_GetFunctionStatus: { hSession: "ulong" },
  C_CancelFunction: { hSession: "ulong" },
  C_CreateObject: { hSession: "ulong", template: "template", phObject: "nullptr" },
  C_DestroyObject: { hSession: "ulong", hObject: "ulong" },
  C_CopyObject: { hSession: "ulong", hObject: "ulong", template: "template", phNewObject: "nullptr" },
  C_GetObjectSize: { hSession: "ulong", hObject: "ulong", pulSize: "nullptr" },
  C_GetAttributeValue: { hSession: "ulong", hObject: "ulong", template: "template" },
  C_SetAttributeValue: { hSession: "ulong", hObject: "ulong", template: "template" },
  C_FindObjectsInit: { hSession: "ulong", template: "template" },
  C_FindObjects: { hSession: "ulong", maxCount: "ulong", phObject: "nullptr" },
  C_FindObjectsFinal: { hSession: "ulong" },
  C_DigestInit: { hSession: "ulong", mechanism: "mechanism" },
  C_Digest: { hSession: "ulong", data: "bytes", outLen: "ulong?" },
  C_DigestUpdate: { hSession: "ulong", data: "bytes" },
  C_DigestFinal: { hSession: "ulong", outLen: "ulong?" },
  // The seed is caller data: the log keeps its length only ("bytes" redacts to { len }).
  C_SeedRandom: { hSession: "ulong", seed: "bytes" },
  C_GenerateRandom: { hSession: "ulong", ulRandomLen: "ulong", pRandomData: "nullptr" },
  // Key management: template values are lengths only (key values reach the log sealed, in the facts); a wrapped key
  // given to C_UnwrapKey is kept as its length ("bytes"), and C_WrapKey's output likewise (recordOut).
  C_GenerateKey: { hSession: "ulong", mechanism: "mechanism", template: "template", phKey: "nullptr" },
  C_GenerateKeyPair: {
    hSession: "ulong",
    mechanism: "mechanism",
    publicTemplate: "template",
    privateTemplate: "template",
    phPublicKey: "nullptr",
    phPrivateKey: "nullptr",
  },
  C_WrapKey: { hSession: "ulong", mechanism: "mechanism", hWrappingKey: "ulong", hKey: "ulong", outLen: "ulong?", pulWrappedKeyLen: "nullptr" },
  C_UnwrapKey: { hSession: "ulong", mechanism: "mechanism", hUnwrappingKey: "ulong", wrappedKey: "bytes", template: "template", phKey: "nullptr" },
  // Data to encrypt, decrypt, sign or verify is caller data: lengths only. What an operation must remember of it
  // reaches the log sealed, in the facts (functions/encrypt.ts, functions/sign.ts).
  C_EncryptInit: { hSession: "ulong", mechanism: "mechanism", hKey: "ulong" },
  C_Encrypt: { hSession: "ulong", data: "bytes", outLen: "ulong?", pulLen: "nullptr" },
  C_EncryptUpdate: { hSession: "ulong", data: "bytes", outLen: "ulong?", pulLen: "nullptr" },
  C_EncryptFinal: { hSession: "ulong", outLen: "ulong?", pulLen: "nullptr" },
  C_DecryptInit: { hSession: "ulong", mechanism: "mechanism", hKey: "ulong" },
  C_Decrypt: { hSession: "ulong", data: "bytes", outLen: "ulong?", pulLen: "nullptr" },
  C_DecryptUpdate: { hSession: "ulong", data: "bytes", outLen: "ulong?", pulLen: "nullptr" },
  C_DecryptFinal: { hSession: "ulong", outLen: "ulong?", pulLen: "nullptr" },
  C_DigestKey: { hSession: "ulong", hKey: "ulong" },
  C_SignInit: { hSession: "ulong", mechanism: "mechanism", hKey: "ulong" },
  C_Sign: { hSession: "ulong", data: "bytes", outLen: "ulong?", pulLen: "nullptr" },
  C_SignUpdate: { hSession: "ulong", data: "bytes" },
  C_SignFinal: { hSession: "ulong", outLen: "ulong?", pulLen: "nullptr" },
  C_VerifyInit: { hSession: "ulong", mechanism: "mechanism", hKey: "ulong" },
  C_Verify: { hSession: "ulong", data: "bytes", signature: "bytes" },
  C_VerifyUpdate: { hSession: "ulong", data: "bytes" },
  C_VerifyFinal: { hSession: "ulong", signature: "bytes" },
};

/** Largest CK_ULONG a JS number carries exactly enough for hsmsim (handles and IDs are far below it). */
const isUlong = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isBytes = (v: unknown): v is Bytes => v instanceof Uint8Array;

function valid(kind: Kind, v: unknown): boolean {
  switch (kind) {
    case "ulong":
      return isUlong(v);
    case "ulong?":
      return v === null || isUlong(v);
    case "bool":
      return typeof v === "boolean";
    case "pin":
    case "label":
      return v === null || typeof v === "string" || isBytes(v);
    case "bytes":
      return v === null || isBytes(v);
    case "template":
      return (
        v === null ||
        (Array.isArray(v) &&
          v.every((t) => t !== null && typeof t === "object" && isUlong((t as Template).type) && ((t as Template).value === null || isBytes((t as Template).value))))
      );
    case "mechanism":
      return v === null || (typeof v === "object" && isUlong((v as { mechanism: unknown }).mechanism) && validParameter((v as Mechanism).parameter));
    case "nullptr":
      return v === undefined || v === null;
    case "any":
      return true;
  }
}

/** pParameter: absent, NULL, raw bytes, or a GCM struct whose fields have their C types. */
function validParameter(p: unknown): boolean {
  if (p === undefined || p === null || isBytes(p)) return true;
  if (typeof p !== "object") return false;
  const g = p as GcmParameter;
  return g.type === "gcm" && isBytes(g.iv) && (g.aad === null || isBytes(g.aad)) && isUlong(g.ivBits) && isUlong(g.tagBits) && isUlong(g.size);
}

/** The schema as arrays, computed once: the dispatcher walks these on every call. */
const ENTRIES = Object.fromEntries(Object.entries(CALL_SCHEMA).map(([fn, s]) => [fn, Object.entries(s)])) as Record<
  FnName,
  [string, Kind][]
>;

export function isKnownFunction(fn: unknown): fn is FnName {
  return typeof fn === "string" && Object.prototype.hasOwnProperty.call(CALL_SCHEMA, fn);
}

/** The first argument of the wrong shape, or undefined. */
export function invalidArgument(call: Call): string | undefined {
  // A missing args value means no arguments; anything but a plain object is a malformed call.
  const args = (call.args === undefined ? {} : call.args) as Record<string, unknown>;
  if (args === null || typeof args !== "object" || Array.isArray(args)) return "args";
  for (const [name, kind] of ENTRIES[call.fn]) if (!valid(kind, args[name])) return name;
  return undefined;
}

const len = (v: unknown) => (v === null || v === undefined ? null : { len: typeof v === "string" ? new TextEncoder().encode(v).length : (v as Bytes).length });

/** A mechanism parameter as the log holds it: lengths (an IV is not secret, but GCM's AAD may be), numbers as given. */
function redactParameter(p: Mechanism["parameter"]): unknown {
  if (p === undefined || p === null || isBytes(p)) return len(p);
  return { type: p.type, iv: len(p.iv), aad: len(p.aad), ivBits: p.ivBits, tagBits: p.tagBits, size: p.size };
}

/** The arguments as the log may hold them. */
export function redactArgs(call: Call): Record<string, unknown> {
  const args = (call.args ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [name, kind] of ENTRIES[call.fn]) {
    const v = args[name];
    if (v === undefined) continue;
    switch (kind) {
      case "pin":
      case "bytes":
        out[name] = len(v);
        break;
      case "label":
        out[name] = v === null ? null : typeof v === "string" ? v : Buffer.from(v as Bytes).toString("latin1");
        break;
      case "template":
        out[name] = v === null ? null : (v as Template[]).map((t) => ({ type: t.type, len: t.value === null ? null : t.value.length }));
        break;
      case "mechanism":
        out[name] = v === null ? null : { mechanism: (v as Mechanism).mechanism, parameter: redactParameter((v as Mechanism).parameter) };
        break;
      case "any":
        out[name] = v === null ? null : typeof v === "object" ? JSON.parse(JSON.stringify(v)) : String(v);
        break;
      default:
        out[name] = v;
    }
  }
  return out;
}

/**
 * What the log keeps of a cryptographic output. Ciphertexts and MACs: the length and a SHA-256 of the bytes, enough
 * for an auditor or `replay --check` to tie an answer to its record, while the log itself stays free of the bytes
 * (ECB ciphertext shows which blocks repeat; keeping a hash gives away nothing an observer of the ciphertext does not
 * already have). Plaintexts (C_Decrypt*): the length only, since a hash of a short or guessable plaintext can be
 * inverted by trying candidates. A saved operation state (C_GetOperationState) is sealed already; it is kept as a length,
 * its nonce (a draw, so re-execution can repeat it) and a hash.
 */
/** The encrypt, decrypt and sign steps: their output is data bytes (`{ data, length }`). */
export const CRYPTO_OUT: ReadonlySet<FnName> = new Set<FnName>([
  "C_Encrypt",
  "C_EncryptUpdate",
  "C_EncryptFinal",
  "C_Decrypt",
  "C_DecryptUpdate",
  "C_DecryptFinal",
  "C_Sign",
  "C_SignFinal",
]);

/**
 * Outputs as the log holds them: bytes as hex; attribute values as lengths (the values are in the facts); random
 * bytes as their length only (functions/random.ts says why).
 */
export function recordOut(fn: FnName, out: unknown): unknown {
  if (out === undefined) return undefined;
  if (fn === "C_GetAttributeValue") {
    return { attrs: (out as { attrs: { type: number; length: number }[] }).attrs.map((a) => ({ type: a.type, length: a.length })) };
  }
  if (fn === "C_Digest" || fn === "C_DigestFinal") {
    const d = out as { digest: Bytes | null; length: number };
    return { digest: d.digest ? bytesToHex(d.digest) : null, length: d.length };
  }
  if (fn === "C_GenerateRandom") return { length: (out as { random: Bytes }).random.length };
  // A wrapped key is ciphertext, but under a key the log's reader may hold (an imported KEK), so only its length.
  if (fn === "C_WrapKey") return { length: (out as { length: number }).length };
  if (CRYPTO_OUT.has(fn)) {
    const o = out as { data: Bytes | null; length: number };
    if (!o.data || fn.startsWith("C_Decrypt")) return { length: o.length };
    // crypto.hash (one-shot, Node ≥ 20.12): the same SHA-256, without a Hash object (half the time on 64 bytes).
    return { length: o.length, sha256: hash("sha256", o.data, "hex") };
  }
  if (fn === "C_GetOperationState") {
    const st = (out as { state: Bytes }).state;
    const nonce = bytesToHex(st.subarray(OPERATION_BLOB_NONCE_AT, OPERATION_BLOB_NONCE_AT + 24));
    return { length: st.length, nonce, sha256: hash("sha256", st, "hex") };
  }
  return out;
}
