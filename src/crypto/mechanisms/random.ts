/**
 * Random sources for C_GenerateRandom / C_SeedRandom (PKCS#11 v2.40 §5.15) and for generated key values. Randomness
 * is drawn outside the deciders (the shell) and the bytes land in the facts, so replay never draws again; this module
 * only supplies the sources.
 *
 * - `systemRandom`: node's CSPRNG (OpenSSL's, as SoftHSM uses). C_SeedRandom is accepted and has no observable
 *   effect: OpenSSL reseeds itself, and SoftHSM's RAND_seed call likewise changes nothing a caller can see.
 * - `seededRandom(seed)`: a deterministic AES-256 CTR_DRBG (NIST SP 800-90A, @noble/ciphers) for tests and
 *   reproducible runs. Any seed length: the seed is hashed with SHA-384 to the DRBG's 48-byte seed; C_SeedRandom
 *   data is mixed in the same way (a reseed), so seeding changes the stream deterministically.
 */
import { randomBytes } from "node:crypto";
import { rngAesCtrDrbg256 } from "@noble/ciphers/aes.js";
import { sha384 } from "@noble/hashes/sha2.js";

export interface RandomSource {
  /** `length` fresh random bytes. */
  bytes(length: number): Uint8Array;
  /** C_SeedRandom: mix caller-supplied seed material in. */
  seed(material: Uint8Array): void;
}

function checkLength(length: number): void {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`"length" expected a byte count, got ${length}`);
}

export const systemRandom: RandomSource = {
  bytes(length) {
    checkLength(length);
    const b = randomBytes(length);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  },
  seed(material) {
    if (!(material instanceof Uint8Array)) throw new TypeError(`"material" expected Uint8Array`);
  },
};

/** SP 800-90A Table 3 caps one AES CTR_DRBG request at 2^19 bits (64 KiB); longer requests are chunked. */
const DRBG_MAX_REQUEST = 2 ** 16;

export function seededRandom(seed: Uint8Array): RandomSource {
  if (!(seed instanceof Uint8Array)) throw new TypeError(`"seed" expected Uint8Array`);
  const drbg = rngAesCtrDrbg256(sha384(seed));
  return {
    bytes(length) {
      checkLength(length);
      const out = new Uint8Array(length);
      for (let at = 0; at < length; at += DRBG_MAX_REQUEST) {
        out.set(drbg.randomBytes(Math.min(DRBG_MAX_REQUEST, length - at)), at);
      }
      return out;
    },
    seed(material) {
      if (!(material instanceof Uint8Array)) throw new TypeError(`"material" expected Uint8Array`);
      drbg.addEntropy(sha384(material));
    },
  };
}
