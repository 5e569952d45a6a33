/**
 * The digest mechanisms C_DigestInit accepts, as SoftHSM 2.6.1 does: CKM_MD5, CKM_SHA_1, CKM_SHA224, CKM_SHA256,
 * CKM_SHA384, CKM_SHA512; anything else is CKR_MECHANISM_INVALID (docs/notes/softhsm-data-objects.md §6). The
 * running context is a noble hash (the operation's state in the write model); src/crypto/mechanisms/digest.ts holds
 * the saveable, plain-data form that C_GetOperationState will use.
 */
import { md5, sha1 } from "@noble/hashes/legacy.js";
import { sha224, sha256, sha384, sha512 } from "@noble/hashes/sha2.js";
import { CK } from "../pkcs11/constants.js";

export interface HashContext {
  update(b: Uint8Array): HashContext;
  digest(): Uint8Array;
  clone(): HashContext;
}

type Hash = { create(): unknown; outputLen: number };
const entry = (h: Hash) => ({ size: h.outputLen, create: () => h.create() as HashContext });

const DIGESTS = new Map<number, { size: number; create: () => HashContext }>([
  [CK.CKM_MD5, entry(md5)],
  [CK.CKM_SHA_1, entry(sha1)],
  [CK.CKM_SHA224, entry(sha224)],
  [CK.CKM_SHA256, entry(sha256)],
  [CK.CKM_SHA384, entry(sha384)],
  [CK.CKM_SHA512, entry(sha512)],
]);

export function digestMechanism(mechanism: number): { size: number; create: () => HashContext } | undefined {
  return DIGESTS.get(mechanism);
}
