/** Digest mechanisms hsmsim implements (issue 2: CKM_SHA256, enough for the one-operation-per-session rules). */
import { sha256 } from "@noble/hashes/sha2.js";
import { CK } from "../pkcs11/constants.js";

export interface HashContext {
  update(b: Uint8Array): HashContext;
  digest(): Uint8Array;
  clone(): HashContext;
}

const DIGESTS = new Map<number, { size: number; create: () => HashContext }>([
  [CK.CKM_SHA256, { size: 32, create: () => sha256.create() as unknown as HashContext }],
]);

export function digestMechanism(mechanism: number): { size: number; create: () => HashContext } | undefined {
  return DIGESTS.get(mechanism);
}
