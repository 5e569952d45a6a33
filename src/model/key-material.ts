/**
 * Key material in the write model. A secret key's CKA_VALUE (any attribute the attribute table marks `secret`) is
 * held in clear in `ObjectState.attrs` for the deciders, and sealed in `ObjectState.sealed` (the form the facts carry,
 * XChaCha20-Poly1305 under the simulator key, crypto/seal.ts). A simulator replaying a log without its key cannot
 * open the sealed form: the object is still rebuilt, its secret attributes hold SEALED_VALUE, and every operation
 * that needs the bytes answers a CK_RV (CKR_GENERAL_ERROR) instead of throwing.
 *
 * Also here: the readers deciders use for key attributes, and CKA_CHECK_VALUE (docs/notes/softhsm-keys.md §1).
 */
import { CK } from "../pkcs11/constants.js";
import { readUlong } from "../pkcs11/attributes.js";
import { nobleAes, nodeHash } from "../crypto/mechanisms/engines.js";
import type { ObjectState } from "./state.js";

/** The value of a secret attribute whose sealed form did not open (replay without the simulator key). */
export const SEALED_VALUE: Uint8Array = new Uint8Array(0);

/** Whether an attribute value is the unopened placeholder (identity, not content: an empty key value is real). */
export const isSealedPlaceholder = (v: Uint8Array | undefined): boolean => v === SEALED_VALUE;

/** The plaintext CKA_VALUE of a key, or undefined (no value, or sealed and not opened). */
export function keyValueOf(o: ObjectState): Uint8Array | undefined {
  const v = o.attrs.get(CK.CKA_VALUE);
  return v === undefined || v === SEALED_VALUE ? undefined : v;
}

/** A CK_BBOOL attribute: true only when present and non-zero; undefined when the object lacks it. */
export function boolOf(o: ObjectState, type: number): boolean | undefined {
  const v = o.attrs.get(type);
  return v === undefined ? undefined : v.length > 0 && v[0] !== 0;
}

/** A CK_ULONG attribute, or undefined when absent or not 8 bytes. */
export function ulongOf(o: ObjectState, type: number): number | undefined {
  const v = o.attrs.get(type);
  return v === undefined || v.length !== 8 ? undefined : readUlong(v);
}

export const classOf = (o: ObjectState) => ulongOf(o, CK.CKA_CLASS);
export const keyTypeOf = (o: ObjectState) => ulongOf(o, CK.CKA_KEY_TYPE);

/** A secret key of this key type (CKO_SECRET_KEY and CKA_KEY_TYPE). */
export function isSecretKey(o: ObjectState, keyType?: number): boolean {
  return classOf(o) === CK.CKO_SECRET_KEY && (keyType === undefined || keyTypeOf(o) === keyType);
}

/** CKA_VALUE is withheld from C_GetAttributeValue (SoftHSM ck7): CKA_SENSITIVE true or CKA_EXTRACTABLE not true. */
export function valueWithheld(o: ObjectState): boolean {
  return boolOf(o, CK.CKA_SENSITIVE) === true || boolOf(o, CK.CKA_EXTRACTABLE) !== true;
}

const AES_LENGTHS = new Set([16, 24, 32]);

/**
 * A secret key's CKA_CHECK_VALUE as SoftHSM computes it: AES → the first 3 bytes of AES-ECB(key, 16 zero bytes), and
 * empty for a key that is not 16, 24 or 32 bytes (SoftHSM's computation fails silently); every other secret key type
 * → the first 3 bytes of SHA-1(value).
 */
export function keyCheckValue(keyType: number, value: Uint8Array): Uint8Array {
  if (keyType === CK.CKK_AES) {
    // One block: noble's AES, whose key setup costs less than an OpenSSL cipher context (~5 µs against ~8 µs here,
    // on every generated, imported or unwrapped AES key); node's AES is for bulk data (engines.ts).
    return AES_LENGTHS.has(value.length) ? nobleAes.ecb(true, value, new Uint8Array(16)).slice(0, 3) : new Uint8Array(0);
  }
  return nodeHash.digest("sha1", value).slice(0, 3);
}

/** A certificate's CKA_CHECK_VALUE: the first 3 bytes of SHA-1(CKA_VALUE). */
export function certCheckValue(value: Uint8Array): Uint8Array {
  return nodeHash.digest("sha1", value).slice(0, 3);
}
