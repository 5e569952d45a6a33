/**
 * The envelope of a saved operation state (C_GetOperationState in the default profile): the application holds the
 * blob, so it is sealed and authenticated with XChaCha20-Poly1305 (@noble/ciphers) under a key derived from the
 * simulator's sealing key (HKDF-SHA256, label "operation state v1"): only the simulator that saved it (or one started
 * with the same simulator key, e.g. after a restart) can open it, and any change to any byte is detected.
 *
 * Layout: "hsmsim-opstate" (14 bytes) || version (1 byte, 1) || nonce (24 bytes) || ciphertext || tag (16 bytes).
 * The header is authenticated as associated data, so a blob of another format or version never opens as this one.
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, utf8ToBytes } from "./encoding.js";

const MAGIC = utf8ToBytes("hsmsim-opstate");
export const OPERATION_BLOB_VERSION = 1;
const HEADER = concatBytes(MAGIC, Uint8Array.of(OPERATION_BLOB_VERSION));
export const OPERATION_BLOB_NONCE_AT = HEADER.length;
const NONCE = 24;
const TAG = 16;

export function operationStateKey(sealKey: Uint8Array): Uint8Array {
  return hkdf(sha256, sealKey, undefined, utf8ToBytes("operation state v1"), 32);
}

export function sealOperation(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  if (nonce.length !== NONCE) throw new RangeError(`"nonce" expected ${NONCE} bytes, got ${nonce.length}`);
  return concatBytes(HEADER, nonce, xchacha20poly1305(key, nonce, HEADER).encrypt(plaintext));
}

/** The plaintext, or null for anything that is not a blob this key sealed (wrong header, tampered, foreign). */
export function openOperation(key: Uint8Array, blob: Uint8Array): Uint8Array | null {
  if (blob.length < HEADER.length + NONCE + TAG) return null;
  for (let i = 0; i < HEADER.length; i++) if (blob[i] !== HEADER[i]) return null;
  const nonce = blob.subarray(HEADER.length, HEADER.length + NONCE);
  try {
    return xchacha20poly1305(key, nonce, HEADER).decrypt(blob.subarray(HEADER.length + NONCE));
  } catch {
    return null;
  }
}
