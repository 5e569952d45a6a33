/**
 * What the keyed operations share (encrypt.ts, sign.ts): SoftHSM 2.6.1's check order for C_EncryptInit,
 * C_DecryptInit, C_SignInit and C_VerifyInit (docs/notes/softhsm-keys.md §3), the decoding of CK_MECHANISM
 * parameters into the registry's parameter shapes, the key an operation holds, and the facts of its steps.
 *
 * Init checks, first failure wins (the symmetric and MAC paths; the notes' table, rows 1–12):
 *
 * | #  | check                                                                 | rv                          |
 * |----|-----------------------------------------------------------------------|-----------------------------|
 * | 1  | not initialised                                                       | CRYPTOKI_NOT_INITIALIZED    |
 * | 2  | pMechanism NULL                                                       | ARGUMENTS_BAD               |
 * | 3  | session                                                               | SESSION_HANDLE_INVALID      |
 * | 4  | any operation active (the session chart)                              | OPERATION_ACTIVE            |
 * | 5  | key handle unknown, invalidated or gone                               | OBJECT_HANDLE_INVALID       |
 * | 6  | private key, not a user session                                       | USER_NOT_LOGGED_IN          |
 * | 7  | CKA_ENCRYPT / DECRYPT / SIGN / VERIFY false or absent                 | KEY_FUNCTION_NOT_PERMITTED  |
 * | 8  | mechanism not listed (profile), or CKA_ALLOWED_MECHANISMS lacks it    | MECHANISM_INVALID           |
 * | 9  | key type                                                              | KEY_TYPE_INCONSISTENT       |
 * | 10 | parameters (the registry's `init`, parameters before key size)        | ARGUMENTS_BAD / PARAM_INVALID |
 * | 11 | HMAC key shorter than the hash                                        | KEY_SIZE_RANGE              |
 * | 12 | AES key not 16/24/32 bytes, CBC IV not 16 bytes                       | MECHANISM_INVALID           |
 *
 * Mechanisms off those two paths take SoftHSM's "Asym" path: C_EncryptInit skips row 8, C_DecryptInit, C_SignInit
 * and C_VerifyInit run row 8 first; then an RSA key pair's mechanisms start their operation (functions/rsa.ts), and
 * otherwise C_EncryptInit / C_DecryptInit answer KEY_TYPE_INCONSISTENT for the RSA encryption mechanisms on a key
 * that is not CKK_RSA, and MECHANISM_INVALID for the rest.
 *
 * The key: SoftHSM copies the key into the operation at init, so the operation outlives the object. Here the
 * CryptoStarted fact names the key object and carries the key's value in the sealed form the object already has
 * (model/key-material.ts: CKA_VALUE as the ObjectCreated fact sealed it), so starting an operation seals nothing new:
 * noble's XChaCha20-Poly1305 costs ~30-60 µs per small value here, the whole budget of a 64-byte operation. `evolve`
 * takes the key from the live object when it is still the same value, and opens the sealed form otherwise; the
 * operation keeps the sealed form, and `keyOf` opens it at most once per operation (cached beside the state, never
 * in it). The parameters go into the fact as they are (an IV, a counter block, a tag or MAC length are not secret),
 * except GCM's additional authenticated data, which is the caller's and goes sealed.
 */
import type { CallArgs, Mechanism } from "../events/calls.js";
import type { Fact } from "../events/types.js";
import { bytesToHex, hexToBytes } from "../crypto/encoding.js";
import { cipherEntry, macEntry, type CipherEntry, type MacEntry } from "../crypto/mechanisms/lookup.js";
import { fromHex, toHex } from "../crypto/mechanisms/bytes.js";
import type { CbcParams, CtrParams, Failure, GcmParams, HmacParams } from "../crypto/mechanisms/index.js";
import type { CryptoKind, CryptoOp, ObjectState } from "../model/state.js";
import { resolveObjectHandle } from "../model/state.js";
import type { Profile } from "../pkcs11/profiles.js";
import type { CkrName } from "../pkcs11/constants.js";
import { readUlong } from "../pkcs11/attributes.js";
import { keyValueOf } from "../model/key-material.js";
import { listedMechanism } from "./mechanisms.js";
import { rsaInit } from "./rsa.js";
import { readAccess } from "./objects.js";
import { answer, CK, findSession, firstFailure, isDecision, reject, startOperation, type DecideContext, type Decision, type SessionRef } from "./context.js";

// ---- attributes ---------------------------------------------------------------------------------------------------

/** SoftHSM's getBooleanValue(type, false): a 1-byte true value, else false (absent included). */
export function boolAttr(o: ObjectState, type: number): boolean {
  const v = o.attrs.get(type);
  return v !== undefined && v.length === 1 && v[0] !== 0;
}

/** SoftHSM's getUnsignedLongValue(type, fallback): an 8-byte little-endian value. */
export function ulongAttr(o: ObjectState, type: number, fallback: number): number {
  const v = o.attrs.get(type);
  if (v === undefined || v.length !== 8) return fallback;
  return Math.min(readUlong(v), Number.MAX_SAFE_INTEGER);
}

/** SoftHSM's isMechanismPermitted, second half: an empty (or absent) CKA_ALLOWED_MECHANISMS allows everything. */
export function allowedByKey(o: ObjectState, mechanism: number): boolean {
  const v = o.attrs.get(CK.CKA_ALLOWED_MECHANISMS);
  if (!v || v.length < 8) return true;
  const view = new DataView(v.buffer, v.byteOffset, v.length);
  for (let i = 0; i + 8 <= v.length; i += 8) if (view.getBigUint64(i, true) === BigInt(mechanism)) return true;
  return false;
}

const USAGE: Record<CryptoKind, number> = {
  encrypt: CK.CKA_ENCRYPT,
  decrypt: CK.CKA_DECRYPT,
  sign: CK.CKA_SIGN,
  verify: CK.CKA_VERIFY,
};

// ---- SoftHSM's mechanism classes ----------------------------------------------------------------------------------

/** isSymMechanism: C_EncryptInit / C_DecryptInit take the symmetric path for these. */
const SYM = new Set<number>([
  CK.CKM_DES_ECB, CK.CKM_DES_CBC, CK.CKM_DES_CBC_PAD, CK.CKM_DES3_ECB, CK.CKM_DES3_CBC, CK.CKM_DES3_CBC_PAD,
  CK.CKM_AES_ECB, CK.CKM_AES_CBC, CK.CKM_AES_CBC_PAD, CK.CKM_AES_CTR, CK.CKM_AES_GCM,
]);
/** isMacMechanism (without GOST, absent from this build), plus the _GENERAL HMACs where the profile has them. */
const MAC = new Set<number>([
  CK.CKM_MD5_HMAC, CK.CKM_SHA_1_HMAC, CK.CKM_SHA224_HMAC, CK.CKM_SHA256_HMAC, CK.CKM_SHA384_HMAC, CK.CKM_SHA512_HMAC,
  CK.CKM_DES3_CMAC, CK.CKM_AES_CMAC,
]);
const RSA_ENCRYPTION = new Set<number>([CK.CKM_RSA_PKCS, CK.CKM_RSA_X_509, CK.CKM_RSA_PKCS_OAEP]);
const DES_KEYS = new Set<number>([CK.CKK_DES, CK.CKK_DES2, CK.CKK_DES3]);

/** The key types each mechanism SoftHSM knows on these paths takes (row 9). */
function keyTypeFits(mechanism: number, keyType: number): boolean {
  switch (mechanism) {
    case CK.CKM_DES_ECB:
    case CK.CKM_DES_CBC:
    case CK.CKM_DES_CBC_PAD:
      return keyType === CK.CKK_DES;
    case CK.CKM_DES3_ECB:
    case CK.CKM_DES3_CBC:
    case CK.CKM_DES3_CBC_PAD:
    case CK.CKM_DES3_CMAC:
      return keyType === CK.CKK_DES2 || keyType === CK.CKK_DES3;
    case CK.CKM_AES_CMAC:
      return keyType === CK.CKK_AES;
  }
  if (cipherEntry(mechanism)) return keyType === CK.CKK_AES;
  const hmac = HMAC_KEY_TYPE.get(mechanism);
  if (hmac !== undefined) return keyType === CK.CKK_GENERIC_SECRET || keyType === hmac;
  return !DES_KEYS.has(keyType);
}

/** Each HMAC mechanism, its _GENERAL variant, and the key type made for it (CKK_GENERIC_SECRET fits them all). */
const HMAC_KEY_TYPE = new Map<number, number>(
  (
    [
      [CK.CKM_MD5_HMAC, CK.CKM_MD5_HMAC_GENERAL, CK.CKK_MD5_HMAC],
      [CK.CKM_SHA_1_HMAC, CK.CKM_SHA_1_HMAC_GENERAL, CK.CKK_SHA_1_HMAC],
      [CK.CKM_SHA224_HMAC, CK.CKM_SHA224_HMAC_GENERAL, CK.CKK_SHA224_HMAC],
      [CK.CKM_SHA256_HMAC, CK.CKM_SHA256_HMAC_GENERAL, CK.CKK_SHA256_HMAC],
      [CK.CKM_SHA384_HMAC, CK.CKM_SHA384_HMAC_GENERAL, CK.CKK_SHA384_HMAC],
      [CK.CKM_SHA512_HMAC, CK.CKM_SHA512_HMAC_GENERAL, CK.CKK_SHA512_HMAC],
    ] as const
  ).flatMap(([mechanism, general, keyType]) => [
    [mechanism, keyType],
    [general, keyType],
  ]),
);

/** Whether the profile's crypto runs the mechanism at all (a _GENERAL HMAC only where the profile lists it). */
function performed(profile: Profile, mechanism: number): CipherEntry | MacEntry | undefined {
  const e = cipherEntry(mechanism) ?? macEntry(mechanism);
  if (!e) return undefined;
  return e.softhsm || listedMechanism(profile, mechanism) ? e : undefined;
}

// ---- parameters ---------------------------------------------------------------------------------------------------

/** Parameters as plain data, for the sealed fact and the operation (hex strings). */
export type PlainParams =
  | { kind: "none" }
  | { kind: "iv"; iv: string | null }
  | { kind: "ctr"; counterBits: number; cb: string }
  | { kind: "gcm"; iv: string; aad: string; tagBits: number }
  | { kind: "mac-length"; macLength: number };

/** The largest counterBits a JS number need carry: anything above 128 is refused the same way. */
const CLAMP = 1n << 40n;

/**
 * CK_MECHANISM's pParameter for the registry's parameter kinds, as SoftHSM reads it: CBC's IV is the raw parameter
 * (NULL or empty → ARGUMENTS_BAD); CK_AES_CTR_PARAMS must be exactly 24 bytes (ulCounterBits little-endian, then the
 * counter block) and CK_GCM_PARAMS exactly its 48-byte struct (anything else → ARGUMENTS_BAD); CK_MAC_GENERAL_PARAMS is
 * a CK_ULONG.
 */
export function decodeParameter(kind: CipherEntry["param"], p: Mechanism["parameter"]): PlainParams | Failure {
  const bad = (rv: CkrName): Failure => ({ ok: false, rv, reason: "param" });
  switch (kind) {
    case "none":
      return { kind: "none" };
    case "iv":
      if (!(p instanceof Uint8Array) || p.length === 0) return { kind: "iv", iv: null };
      return { kind: "iv", iv: toHex(p) };
    case "ctr": {
      if (!(p instanceof Uint8Array) || p.length !== 24) return bad("CKR_ARGUMENTS_BAD");
      const bitsBig = new DataView(p.buffer, p.byteOffset, 8).getBigUint64(0, true);
      const counterBits = Number(bitsBig > CLAMP ? CLAMP : bitsBig);
      return { kind: "ctr", counterBits, cb: toHex(p.subarray(8, 24)) };
    }
    case "gcm": {
      if (!p || p instanceof Uint8Array || p.size !== 48) return bad("CKR_ARGUMENTS_BAD");
      return { kind: "gcm", iv: toHex(p.iv), aad: toHex(p.aad ?? new Uint8Array(0)), tagBits: p.tagBits };
    }
    case "mac-length": {
      if (!(p instanceof Uint8Array) || p.length !== 8) return bad("CKR_MECHANISM_PARAM_INVALID");
      const n = new DataView(p.buffer, p.byteOffset, 8).getBigUint64(0, true);
      return { kind: "mac-length", macLength: Number(n > CLAMP ? CLAMP : n) };
    }
  }
}

/**
 * The IV SoftHSM 2.6.1 really uses for GCM (OSSLEVPSymmetricAlgorithm::encryptInit): an empty IV becomes 16 zero bytes;
 * one longer than OpenSSL's 128-byte limit is refused by EVP_CTRL_GCM_SET_IVLEN, which SoftHSM ignores, so OpenSSL
 * keeps its default 12-byte length and reads the first 12 bytes. The default profile refuses both instead
 * (CKR_MECHANISM_PARAM_INVALID, crypto/mechanisms/aes-gcm.ts).
 */
function softhsmGcmIv(p: PlainParams): PlainParams {
  if (p.kind !== "gcm") return p;
  if (p.iv.length === 0) return { ...p, iv: "00".repeat(16) };
  if (p.iv.length > 2 * 128) return { ...p, iv: p.iv.slice(0, 24) };
  return p;
}

/** The registry's parameter object for plain parameters. */
export function runtimeParams(p: PlainParams): unknown {
  switch (p.kind) {
    case "none":
      return undefined;
    case "iv":
      return { iv: p.iv === null ? null : fromHex(p.iv) } satisfies CbcParams;
    case "ctr":
      return { counterBits: p.counterBits, cb: fromHex(p.cb) } satisfies CtrParams;
    case "gcm":
      return { iv: fromHex(p.iv), aad: fromHex(p.aad), tagBits: p.tagBits } satisfies GcmParams;
    case "mac-length":
      return { macLength: p.macLength } satisfies HmacParams;
  }
}

// ---- the key an operation holds ------------------------------------------------------------------------------------

/** A GCM parameter's AAD is the caller's data: the fact carries it sealed (`sealAad`), the rest as it is. */
export function paramsForFact(p: PlainParams, seal: (b: Uint8Array) => string): { params: PlainParams; aad?: string } {
  if (p.kind !== "gcm" || p.aad === "") return { params: p };
  return { params: { ...p, aad: "" }, aad: seal(hexToBytes(p.aad)) };
}

export function paramsFromFact(params: PlainParams, aad: string | undefined, unseal: (s: string) => Uint8Array): PlainParams {
  return aad === undefined || params.kind !== "gcm" ? params : { ...params, aad: bytesToHex(unseal(aad)) };
}

/** Keys of running operations, opened once each (a cache beside the plain-data state, never part of it). */
const KEYS = new WeakMap<CryptoOp, Uint8Array>();

export function rememberKey(op: CryptoOp, key: Uint8Array): void {
  KEYS.set(op, key);
}

/** The key of a running operation (opened from its sealed form if this process has not seen it yet). */
export function keyOf(op: CryptoOp, unseal: (sealed: string) => Uint8Array): Uint8Array {
  let k = KEYS.get(op);
  if (!k) KEYS.set(op, (k = unseal(op.sealed)));
  return k;
}

/** The sealed form of a key object's CKA_VALUE (what ObjectCreated carried), or a fresh seal if it has none. */
export function sealedKeyOf(o: ObjectState, value: Uint8Array, seal: (b: Uint8Array) => string): string {
  return o.sealed?.get(CK.CKA_VALUE) ?? seal(value);
}

// ---- error codes per profile ---------------------------------------------------------------------------------------

/**
 * A registry failure as the profile answers it. SoftHSM reports several situations with codes the spec does not give
 * for them (profile switch `cryptoErrors`, a row of PROFILE_DIFFERENCES): a bad CBC pad and a failed GCM tag are
 * CKR_GENERAL_ERROR there and CKR_ENCRYPTED_DATA_INVALID in PKCS#11 v2.40 §5.9; an AES key of the wrong length is
 * CKR_MECHANISM_INVALID there and CKR_KEY_SIZE_RANGE in the spec; a CBC IV of the wrong length is CKR_MECHANISM_INVALID
 * there and CKR_MECHANISM_PARAM_INVALID in the spec; GCM input shorter than its tag is CKR_GENERAL_ERROR there and
 * CKR_ENCRYPTED_DATA_LEN_RANGE in the spec.
 */
export function failureRv(profile: Profile, f: Failure): CkrName {
  if (profile.cryptoErrors === "softhsm") return f.rv;
  switch (f.reason) {
    case "padding":
    case "auth-tag":
      return "CKR_ENCRYPTED_DATA_INVALID";
    case "key-size":
      return f.rv === "CKR_MECHANISM_INVALID" ? "CKR_KEY_SIZE_RANGE" : f.rv;
    case "param":
      return f.rv === "CKR_MECHANISM_INVALID" ? "CKR_MECHANISM_PARAM_INVALID" : f.rv;
    case "encrypted-data-len":
      return f.rv === "CKR_GENERAL_ERROR" ? "CKR_ENCRYPTED_DATA_LEN_RANGE" : f.rv;
    default:
      return f.rv;
  }
}

// ---- init ----------------------------------------------------------------------------------------------------------

type InitArgs = CallArgs["C_EncryptInit"];

/** C_EncryptInit / C_DecryptInit / C_SignInit / C_VerifyInit: the checks above, then the CryptoStarted fact. */
export function keyedInit(ctx: DecideContext, args: InitArgs, kind: CryptoKind): Decision {
  const ref = startOperation(ctx, args.hSession, args.mechanism === null, kind);
  if (isDecision(ref)) return ref;
  const { session, slot, app } = ref;
  const found = resolveObjectHandle(ctx.state, app, args.hKey);
  if (!found) return reject("CKR_OBJECT_HANDLE_INVALID");
  const key = found.object;
  const mechanism = args.mechanism!.mechanism;
  const profile = ctx.state.profile;
  const cipherPath = kind === "encrypt" || kind === "decrypt";
  const onPath = cipherPath ? SYM.has(mechanism) : MAC.has(mechanism) || (macEntry(mechanism) !== undefined && listedMechanism(profile, mechanism));
  const keyType = ulongAttr(key, CK.CKA_KEY_TYPE, CK.CKK_VENDOR_DEFINED);
  const early = firstFailure([
    [!readAccess(slot.actor.login, key.private), "CKR_USER_NOT_LOGGED_IN"],
    [!boolAttr(key, USAGE[kind]), "CKR_KEY_FUNCTION_NOT_PERMITTED"],
  ]);
  if (early) return reject(early);
  const permitted = listedMechanism(profile, mechanism) && allowedByKey(key, mechanism);
  if (!onPath) {
    // SoftHSM's Asym*Init: C_EncryptInit never consults the allowed list; the others do, first.
    if (kind !== "encrypt" && !permitted) return reject("CKR_MECHANISM_INVALID");
    const rsa = rsaInit(ctx, ref!, key, kind, args.mechanism!);
    if (rsa) return rsa;
    return reject(cipherPath && RSA_ENCRYPTION.has(mechanism) && keyType !== CK.CKK_RSA ? "CKR_KEY_TYPE_INCONSISTENT" : "CKR_MECHANISM_INVALID");
  }
  const late = firstFailure([
    [!permitted, "CKR_MECHANISM_INVALID"],
    [!keyTypeFits(mechanism, keyType), "CKR_KEY_TYPE_INCONSISTENT"],
  ]);
  if (late) return reject(late);
  const entry = performed(profile, mechanism);
  // DES, 3DES and CMAC pass SoftHSM's checks with a DES or AES key; hsmsim does not run them.
  if (!entry) return reject("CKR_MECHANISM_INVALID");
  const decoded = decodeParameter(entry.param, args.mechanism!.parameter);
  if ("ok" in decoded) return reject(failureRv(profile, decoded));
  const params = profile.cryptoErrors === "softhsm" ? softhsmGcmIv(decoded) : decoded;
  const value = keyValueOf(key);
  // SoftHSM's getSymmetricKey failing (here: a sealed value this simulator cannot open) is CKR_GENERAL_ERROR.
  if (!value) return reject("CKR_GENERAL_ERROR");
  const runtime = runtimeParams(params);
  // The verdict only: evolve builds the state from the fact (a MAC's inner context costs two hash blocks).
  const refused =
    entry.family === "cipher"
      ? (kind === "encrypt" ? entry.cipher.encrypt : entry.cipher.decrypt).init(value, runtime)
      : (entry.mac.check(value, runtime as HmacParams | undefined) ?? { ok: true });
  if (!refused.ok) return reject(failureRv(profile, refused));
  const forFact = paramsForFact(params, ctx.shell.seal);
  return answer("CKR_OK", undefined, [
    {
      type: "CryptoStarted",
      app: ctx.appId,
      session: session.handle,
      kind,
      mechanism,
      object: key.id,
      key: sealedKeyOf(key, value, ctx.shell.seal),
      params: forFact.params,
      ...(forFact.aad === undefined ? {} : { aad: forFact.aad }),
    },
  ]);
}

// ---- steps ---------------------------------------------------------------------------------------------------------

export { isDecision };

/**
 * The opening of every step function: init, the NULL pointers SoftHSM checks before the session (data, the length
 * pointer), the session, then "an operation of this kind is running" (the chart).
 */
export function stepOpening(ctx: DecideContext, hSession: number, kind: CryptoKind, nullArg: boolean): SessionRef | Decision {
  const ref = startOperation(ctx, hSession, nullArg, kind, "Step");
  if (isDecision(ref)) return ref;
  // An operation rebuilt from a log without its simulator key has no state: SoftHSM's "cannot get the key".
  if ((ref.session.op as CryptoOp).state === null) return reject("CKR_GENERAL_ERROR");
  return ref;
}

export function ended(ctx: DecideContext, hSession: number): Fact {
  return { type: "OperationEnded", app: ctx.appId, session: hSession };
}

/** A failure that ends the operation (SoftHSM's resetOp before the return). */
export function endWith(ctx: DecideContext, hSession: number, rv: CkrName): Decision {
  return answer(rv, undefined, [ended(ctx, hSession)]);
}

/** The sealed input of an update step: evolve feeds it to the state again (replay rebuilds the exact state). */
export function updated(ctx: DecideContext, hSession: number, data: Uint8Array): Fact {
  return { type: "CryptoUpdated", app: ctx.appId, session: hSession, sealed: ctx.shell.seal(data) };
}

/**
 * Output buffers (§5.2): a NULL output pointer is a size query answering `size`, a buffer shorter than `size` is
 * CKR_BUFFER_TOO_SMALL with it; neither ends the operation. Otherwise undefined: go on and produce the output.
 */
export function sizeAnswer(outLen: number | null, size: number): Decision | undefined {
  if (outLen === null) return answer("CKR_OK", { data: null, length: size });
  if (outLen < size) return answer("CKR_BUFFER_TOO_SMALL", { data: null, length: size });
  return undefined;
}
