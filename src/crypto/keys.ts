/**
 * The simulator key: one 32-byte secret per simulator, given by configuration or drawn from the injected random source
 * on creation, never logged. Four keys are derived from it (HKDF-SHA256, distinct labels) so that PIN verifiers and
 * sealed values never share a key: `pin` keys the PIN verifier MACs, `seal` the XChaCha20-Poly1305 envelopes,
 * `snapshot` the sealed state snapshots, `factsCache` the MACs of the file store's facts cache.
 */
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { utf8ToBytes } from "./encoding.js";

export interface SimulatorKeys {
  pin: Uint8Array;
  seal: Uint8Array;
  /** Seals state snapshots (src/events/snapshot.ts). */
  snapshot: Uint8Array;
  /** Authenticates the file store's facts cache (src/events/facts-cache.ts). */
  factsCache: Uint8Array;
}

export function deriveKeys(simulatorKey: Uint8Array): SimulatorKeys {
  if (!(simulatorKey instanceof Uint8Array) || simulatorKey.length !== 32) {
    throw new RangeError(`"simulatorKey" expected 32 bytes, got ${simulatorKey?.length}`);
  }
  const salt = utf8ToBytes("hsmsim simulator key v1");
  return {
    pin: hkdf(sha256, simulatorKey, salt, utf8ToBytes("pin verifier"), 32),
    seal: hkdf(sha256, simulatorKey, salt, utf8ToBytes("seal"), 32),
    snapshot: hkdf(sha256, simulatorKey, salt, utf8ToBytes("state snapshot"), 32),
    factsCache: hkdf(sha256, simulatorKey, salt, utf8ToBytes("facts cache"), 32),
  };
}
