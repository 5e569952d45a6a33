/**
 * RSA operations with CKK_RSA key pairs (SoftHSM 2.6.1's Asym* paths in src/lib/SoftHSM.cpp; rvs observed on the
 * Debian library): C_SignInit / C_Sign / C_SignUpdate / C_SignFinal with CKM_RSA_PKCS and CKM_SHA1/224/256/384/512_RSA_PKCS
 * on the private key, C_EncryptInit / C_Encrypt with CKM_RSA_PKCS on the public key, C_DecryptInit / C_Decrypt with
 * CKM_RSA_PKCS on the private key, C_VerifyInit / C_Verify / C_VerifyUpdate / C_VerifyFinal with the signing
 * mechanisms on the public key; CKA_ALWAYS_AUTHENTICATE and C_Login(CKU_CONTEXT_SPECIFIC).
 *
 * Inits run functions/crypto-op.ts's rows 1–7 (session, OPERATION_ACTIVE, handle, access, CKA_SIGN / DECRYPT /
 * ENCRYPT), then, off the symmetric and MAC paths, the Asym order: sign and decrypt check the mechanism list and
 * CKA_ALLOWED_MECHANISMS (MECHANISM_INVALID), encrypt does not; then the key here (`rsaInit`). A private key with
 * CKA_ALWAYS_AUTHENTICATE starts its sign or decrypt operation awaiting re-authentication (the session chart,
 * machines/session.ts), and SoftHSM's steps check it right after "the operation runs":
 *
 * | step          | after the session chart's "a … operation runs"                                                   |
 * |---------------|--------------------------------------------------------------------------------------------------|
 * | C_Sign        | after an update, or mechanism … → OPERATION_NOT_INITIALIZED (ends); re-auth pending → USER_NOT_LOGGED_IN (ends); size query / BUFFER_TOO_SMALL (keep it; size = modulus bytes); CKM_RSA_PKCS data > k − 11 → GENERAL_ERROR (ends); OK (ends) |
 * | C_SignUpdate  | CKM_RSA_PKCS (single-part only) → OPERATION_NOT_INITIALIZED (ends); re-auth pending → USER_NOT_LOGGED_IN (ends); OK |
 * | C_SignFinal   | CKM_RSA_PKCS → OPERATION_NOT_INITIALIZED (keeps it); re-auth pending → USER_NOT_LOGGED_IN (ends); size; OK (ends) |
 * | C_Encrypt     | size query / BUFFER_TOO_SMALL (keep it); data > k − 11 → GENERAL_ERROR (ends); OK (ends)          |
 * | C_Decrypt     | re-auth pending → USER_NOT_LOGGED_IN (ends); size (the modulus length, whatever the plaintext); input not k bytes, not below the modulus, or bad padding → GENERAL_ERROR (ends); OK (ends) |
 * | C_Verify      | after an update → OPERATION_NOT_INITIALIZED; signature not k bytes → SIGNATURE_LEN_RANGE; wrong → SIGNATURE_INVALID; all end it |
 * | C_VerifyUpdate | CKM_RSA_PKCS → OPERATION_NOT_INITIALIZED (ends); else OK                                      |
 * | C_VerifyFinal | CKM_RSA_PKCS → OPERATION_NOT_INITIALIZED (keeps it); else as C_Verify                             |
 * | C_EncryptUpdate / Final, C_DecryptUpdate / Final | FUNCTION_NOT_SUPPORTED, the operation kept                     |
 *
 * The operation's state is plain data: a multi-part signature's running hash (the digest registry's state; SoftHSM
 * hashes as it goes too), so an update costs what its data costs. Its key is the CryptoStarted fact's, sealed (the
 * components as crypto/rsa.ts encodes them); the KeyObject built from it is cached beside the operation, never in it.
 * Encryption's padding bytes come from the shell's random source; nothing of an answer enters the state.
 */
import type { KeyObject } from "node:crypto";
import type { Mechanism } from "../events/calls.js";
import type { Fact } from "../events/types.js";
import {
  decodeRsaKey,
  digestInfo,
  encodeRsaKey,
  isPrivateComponents,
  modulusBytes,
  pkcs1Decrypt,
  pkcs1Encrypt,
  pkcs1Sign,
  pkcs1Verify,
  privateKeyObject,
  publicKeyObject,
  RSA_SIGN_HASH,
  type RsaComponents,
  type RsaPublic,
} from "../crypto/rsa.js";
import { digestStream } from "../crypto/mechanisms/lookup.js";
import type { DigestState } from "../crypto/mechanisms/index.js";
import { isSealedPlaceholder } from "../model/key-material.js";
import type { CryptoKind, CryptoOp, ObjectState } from "../model/state.js";
import type { CkrName } from "../pkcs11/constants.js";
import { answer, CK, reject, type DecideContext, type Decision, type SessionRef } from "./context.js";

/**
 * An RSA operation's plain-data state: the running hash of a multi-part CKM_SHA*_RSA_PKCS signature or verification
 * (the digest registry's state, as C_Digest keeps it), null for the single-part mechanisms.
 */
export interface RsaState {
  rsaDigest: DigestState | null;
}

/** The digest mechanism behind each hashing RSA mechanism. */
const HASH_MECHANISM: Readonly<Record<string, number>> = {
  sha1: CK.CKM_SHA_1,
  sha224: CK.CKM_SHA224,
  sha256: CK.CKM_SHA256,
  sha384: CK.CKM_SHA384,
  sha512: CK.CKM_SHA512,
};
const hashStream = (mechanism: number) => {
  const hash = RSA_SIGN_HASH.get(mechanism);
  return hash ? digestStream(HASH_MECHANISM[hash]!) : undefined;
};

/** Whether a CryptoStarted fact of this kind and mechanism starts an RSA operation (evolve's question). */
export function isRsaMechanism(kind: CryptoKind, mechanism: number): boolean {
  if (kind === "sign" || kind === "verify") return RSA_SIGN_HASH.has(mechanism);
  return (kind === "encrypt" || kind === "decrypt") && mechanism === CK.CKM_RSA_PKCS;
}

export const isRsaOp = (op: CryptoOp): boolean => op.state !== null && typeof op.state === "object" && "rsaDigest" in (op.state as object);

export function startRsaState(mechanism: number): RsaState {
  return { rsaDigest: hashStream(mechanism)?.init() ?? null };
}

export function updateRsaState(mechanism: number, s: RsaState, data: Uint8Array): RsaState {
  const stream = hashStream(mechanism);
  return { rsaDigest: stream && s.rsaDigest !== null ? stream.update(s.rsaDigest, data) : s.rsaDigest };
}

/** The block a multi-part operation signs or verifies: DigestInfo ‖ the running hash's final value. */
function finalBlock(op: CryptoOp): Uint8Array {
  const hash = RSA_SIGN_HASH.get(op.mechanism)!;
  return digestInfo(hash, hashStream(op.mechanism)!.final((op.state as RsaState).rsaDigest!));
}

// ---- init ----------------------------------------------------------------------------------------------------------

const COMPONENTS: readonly [keyof RsaComponents, number][] = [
  ["n", CK.CKA_MODULUS],
  ["e", CK.CKA_PUBLIC_EXPONENT],
  ["d", CK.CKA_PRIVATE_EXPONENT],
  ["p", CK.CKA_PRIME_1],
  ["q", CK.CKA_PRIME_2],
  ["dp", CK.CKA_EXPONENT_1],
  ["dq", CK.CKA_EXPONENT_2],
  ["qi", CK.CKA_COEFFICIENT],
];

/** The key's components from its attributes (undefined: one is missing or still sealed — SoftHSM's key load fails). */
function componentsOf(key: ObjectState, priv: boolean): RsaPublic | RsaComponents | undefined {
  const out: Record<string, Uint8Array> = {};
  for (const [name, type] of priv ? COMPONENTS : COMPONENTS.slice(0, 2)) {
    const v = key.attrs.get(type);
    if (v === undefined || isSealedPlaceholder(v) || v.length === 0) return undefined;
    out[name] = v;
  }
  return out as unknown as RsaPublic;
}

const bool = (o: ObjectState, type: number) => o.attrs.get(type)?.[0] === 1;

/**
 * The RSA part of an Asym init, once rows 1–7 and (sign, decrypt) the mechanism list have passed: undefined when
 * the key is not a CKK_RSA key of the class the operation takes, or the mechanism is not one hsmsim runs (the caller
 * answers as before); otherwise the decision.
 */
export function rsaInit(ctx: DecideContext, ref: SessionRef, key: ObjectState, kind: CryptoKind, mechanism: Mechanism): Decision | undefined {
  if (!isRsaMechanism(kind, mechanism.mechanism)) return undefined;
  const cls = key.attrs.get(CK.CKA_CLASS);
  const keyType = key.attrs.get(CK.CKA_KEY_TYPE);
  const wantPrivate = kind === "sign" || kind === "decrypt";
  const clsWanted = wantPrivate ? CK.CKO_PRIVATE_KEY : CK.CKO_PUBLIC_KEY;
  if (!cls || cls.length !== 8 || cls[0] !== clsWanted || !keyType || keyType.length !== 8 || keyType.some((b) => b !== 0)) return undefined;
  const components = componentsOf(key, wantPrivate);
  // SoftHSM's getRSAPrivateKey / getRSAPublicKey failing (here: material this simulator cannot open) → GENERAL_ERROR.
  if (!components) return reject("CKR_GENERAL_ERROR");
  const reauth = wantPrivate && bool(key, CK.CKA_ALWAYS_AUTHENTICATE);
  const fact: Fact = {
    type: "CryptoStarted",
    app: ctx.appId,
    session: ref.session.handle,
    kind,
    mechanism: mechanism.mechanism,
    object: key.id,
    key: ctx.shell.seal(encodeRsaKey(components)),
    params: { kind: "none" },
    ...(reauth ? { reauth: true as const } : {}),
  };
  return answer("CKR_OK", undefined, [fact]);
}

// ---- steps ---------------------------------------------------------------------------------------------------------

const KEYS = new WeakMap<CryptoOp, KeyObject>();
const SIZES = new WeakMap<CryptoOp, number>();

/** The operation's key as a node KeyObject and the modulus length (opened from the sealed form once per operation). */
function keyOfRsa(op: CryptoOp, unseal: (s: string) => Uint8Array): { key: KeyObject; k: number } | undefined {
  let key = KEYS.get(op);
  if (!key) {
    let c: RsaPublic | RsaComponents | null;
    try {
      c = decodeRsaKey(unseal(op.sealed));
    } catch {
      return undefined; // a log replayed without its simulator key
    }
    if (!c) return undefined;
    key = isPrivateComponents(c) ? privateKeyObject(c) : publicKeyObject(c);
    KEYS.set(op, key);
    SIZES.set(op, modulusBytes(c));
  }
  return { key, k: SIZES.get(op)! };
}

function ended(ctx: DecideContext, h: number): Fact {
  return { type: "OperationEnded", app: ctx.appId, session: h };
}
const endWith = (ctx: DecideContext, h: number, rv: CkrName) => answer(rv, undefined, [ended(ctx, h)]);

function sized(outLen: number | null, size: number): Decision | undefined {
  if (outLen === null) return answer("CKR_OK", { data: null, length: size });
  if (outLen < size) return answer("CKR_BUFFER_TOO_SMALL", { data: null, length: size });
  return undefined;
}

/** The re-authentication rule of every sign and decrypt step (the session chart's `reauthPending` tag). */
function reauthMissing(ctx: DecideContext, ref: SessionRef): Decision | undefined {
  return ref.slot.actor.reauthPending(ref.session.handle) ? endWith(ctx, ref.session.handle, "CKR_USER_NOT_LOGGED_IN") : undefined;
}

const singlePartOnly = (op: CryptoOp) => op.mechanism === CK.CKM_RSA_PKCS;

/** C_Sign on an RSA operation. */
export function rsaSign(ctx: DecideContext, ref: SessionRef, op: CryptoOp, data: Uint8Array, outLen: number | null): Decision {
  const h = ref.session.handle;
  if (op.updated) return endWith(ctx, h, "CKR_OPERATION_NOT_INITIALIZED");
  const missing = reauthMissing(ctx, ref);
  if (missing) return missing;
  return signOut(ctx, h, op, data, outLen);
}

/** Sign the data (or, `block`, a DigestInfo already built from the running hash). */
function signOut(ctx: DecideContext, h: number, op: CryptoOp, data: Uint8Array, outLen: number | null, block = false): Decision {
  const kk = keyOfRsa(op, ctx.shell.unseal);
  if (!kk) return endWith(ctx, h, "CKR_GENERAL_ERROR");
  const early = sized(outLen, kk.k);
  if (early) return early;
  const sig = pkcs1Sign(kk.key, kk.k, block ? null : (RSA_SIGN_HASH.get(op.mechanism) ?? null), data);
  if (!sig) return endWith(ctx, h, "CKR_GENERAL_ERROR");
  return answer("CKR_OK", { data: sig, length: sig.length }, [ended(ctx, h)]);
}

/** C_SignUpdate on an RSA operation. */
export function rsaSignUpdate(ctx: DecideContext, ref: SessionRef, op: CryptoOp, data: Uint8Array, update: () => Fact): Decision {
  const h = ref.session.handle;
  if (singlePartOnly(op)) return endWith(ctx, h, "CKR_OPERATION_NOT_INITIALIZED");
  const missing = reauthMissing(ctx, ref);
  if (missing) return missing;
  void data;
  return answer("CKR_OK", undefined, [update()]);
}

/** C_SignFinal on an RSA operation. */
export function rsaSignFinal(ctx: DecideContext, ref: SessionRef, op: CryptoOp, outLen: number | null): Decision {
  const h = ref.session.handle;
  // Observed: SoftHSM refuses a single-part mechanism here without ending the operation.
  if (singlePartOnly(op)) return reject("CKR_OPERATION_NOT_INITIALIZED");
  const missing = reauthMissing(ctx, ref);
  if (missing) return missing;
  return signOut(ctx, h, op, finalBlock(op), outLen, true);
}

/** C_Encrypt on an RSA operation (the public key). */
export function rsaEncrypt(ctx: DecideContext, ref: SessionRef, op: CryptoOp, data: Uint8Array, outLen: number | null): Decision {
  const h = ref.session.handle;
  const kk = keyOfRsa(op, ctx.shell.unseal);
  if (!kk) return endWith(ctx, h, "CKR_GENERAL_ERROR");
  const early = sized(outLen, kk.k);
  if (early) return early;
  if (data.length > kk.k - 11) return endWith(ctx, h, "CKR_GENERAL_ERROR");
  const out = pkcs1Encrypt(kk.key, kk.k, data, ctx.shell.randomBytes(2 * kk.k));
  if (!out) return endWith(ctx, h, "CKR_GENERAL_ERROR");
  return answer("CKR_OK", { data: out, length: out.length }, [ended(ctx, h)]);
}

/** C_Decrypt on an RSA operation (the private key). */
export function rsaDecrypt(ctx: DecideContext, ref: SessionRef, op: CryptoOp, data: Uint8Array, outLen: number | null): Decision {
  const h = ref.session.handle;
  const missing = reauthMissing(ctx, ref);
  if (missing) return missing;
  const kk = keyOfRsa(op, ctx.shell.unseal);
  if (!kk) return endWith(ctx, h, "CKR_GENERAL_ERROR");
  const early = sized(outLen, kk.k);
  if (early) return early;
  const out = pkcs1Decrypt(kk.key, kk.k, data);
  if (!out) return endWith(ctx, h, "CKR_GENERAL_ERROR");
  return answer("CKR_OK", { data: out, length: out.length }, [ended(ctx, h)]);
}

/** C_Verify on an RSA operation (the public key). Every answer ends it. */
export function rsaVerify(ctx: DecideContext, ref: SessionRef, op: CryptoOp, data: Uint8Array, signature: Uint8Array): Decision {
  const h = ref.session.handle;
  if (op.updated) return endWith(ctx, h, "CKR_OPERATION_NOT_INITIALIZED");
  return verifyOut(ctx, h, op, data, signature);
}

/** Verify a signature of the data (or, `block`, of a DigestInfo already built from the running hash). */
function verifyOut(ctx: DecideContext, h: number, op: CryptoOp, data: Uint8Array, signature: Uint8Array, block = false): Decision {
  const kk = keyOfRsa(op, ctx.shell.unseal);
  if (!kk) return endWith(ctx, h, "CKR_GENERAL_ERROR");
  if (signature.length !== kk.k) return endWith(ctx, h, "CKR_SIGNATURE_LEN_RANGE");
  const ok = pkcs1Verify(kk.key, block ? null : (RSA_SIGN_HASH.get(op.mechanism) ?? null), data, signature);
  return endWith(ctx, h, ok ? "CKR_OK" : "CKR_SIGNATURE_INVALID");
}

/** C_VerifyUpdate on an RSA operation. */
export function rsaVerifyUpdate(ctx: DecideContext, ref: SessionRef, op: CryptoOp, update: () => Fact): Decision {
  if (singlePartOnly(op)) return endWith(ctx, ref.session.handle, "CKR_OPERATION_NOT_INITIALIZED");
  return answer("CKR_OK", undefined, [update()]);
}

/** C_VerifyFinal on an RSA operation. */
export function rsaVerifyFinal(ctx: DecideContext, ref: SessionRef, op: CryptoOp, signature: Uint8Array): Decision {
  const h = ref.session.handle;
  if (singlePartOnly(op)) return reject("CKR_OPERATION_NOT_INITIALIZED");
  return verifyOut(ctx, h, op, finalBlock(op), signature, true);
}

/** C_EncryptUpdate / C_EncryptFinal / C_DecryptUpdate / C_DecryptFinal on an RSA operation: SoftHSM has none. */
export const rsaMultiPart = (): Decision => reject("CKR_FUNCTION_NOT_SUPPORTED");
