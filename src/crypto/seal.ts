/**
 * Sealing: authenticated encryption (XChaCha20-Poly1305, @noble/ciphers) of values that must be recorded but must not
 * be readable in the log: data fed to a multi-part operation now, key material later. The 24-byte nonce comes from
 * the injected random source, so sealing is the shell's job; opening is deterministic and may run during replay.
 * Format (hex): nonce || ciphertext || tag.
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { bytesToHex, concatBytes, hexToBytes } from "./encoding.js";

export class SealError extends Error {
  override name = "SealError";
}

export function seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): string {
  if (nonce.length !== 24) throw new RangeError(`"nonce" expected 24 bytes, got ${nonce.length}`);
  return bytesToHex(concatBytes(nonce, xchacha20poly1305(key, nonce, aad).encrypt(plaintext)));
}

export function unseal(key: Uint8Array, sealed: string, aad?: Uint8Array): Uint8Array {
  const b = hexToBytes(sealed);
  try {
    return xchacha20poly1305(key, b.subarray(0, 24), aad).decrypt(b.subarray(24));
  } catch (cause) {
    throw new SealError("sealed value does not open under this simulator key", { cause });
  }
}
