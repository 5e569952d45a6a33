/**
 * Typed look-ups into the mechanism registry for the deciders and `evolve`: the family is checked once here, so the
 * callers get the stream of the right shape (or undefined for a mechanism of another family or none).
 */
import { MECHANISMS, type MechanismEntry } from "./index.js";
import type { DigestState } from "./digest.js";
import type { HmacParams, HmacState } from "./hmac.js";
import type { CipherPair, DigestStream, MacStream } from "./types.js";

export type CipherEntry = Extract<MechanismEntry, { family: "cipher" }>;
export type DigestEntry = Extract<MechanismEntry, { family: "digest" }>;
export type MacEntry = Extract<MechanismEntry, { family: "mac" }>;

export function cipherEntry(mechanism: number): CipherEntry | undefined {
  const e = MECHANISMS.get(mechanism);
  return e?.family === "cipher" ? e : undefined;
}

export function digestEntry(mechanism: number): DigestEntry | undefined {
  const e = MECHANISMS.get(mechanism);
  return e?.family === "digest" ? e : undefined;
}

export function macEntry(mechanism: number): MacEntry | undefined {
  const e = MECHANISMS.get(mechanism);
  return e?.family === "mac" ? e : undefined;
}

/** The digest stream of a mechanism the caller knows to be a digest (a recorded fact's). */
export function digestStream(mechanism: number): DigestStream<DigestState> {
  const e = digestEntry(mechanism);
  if (!e) throw new Error(`mechanism 0x${mechanism.toString(16)} is not a digest`);
  return e.digest;
}

export function cipherPair(mechanism: number): CipherPair<unknown, unknown, unknown> {
  const e = cipherEntry(mechanism);
  if (!e) throw new Error(`mechanism 0x${mechanism.toString(16)} is not a cipher`);
  return e.cipher;
}

export function macStream(mechanism: number): MacStream<HmacParams | undefined, HmacState> {
  const e = macEntry(mechanism);
  if (!e) throw new Error(`mechanism 0x${mechanism.toString(16)} is not a MAC`);
  return e.mac;
}
