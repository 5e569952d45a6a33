/**
 * PIN verifiers. A token stores HMAC-SHA256(pin key, salt || pin) with a fresh random salt, never the PIN: the
 * verifier can enter an event (non-negotiable 3) because without the simulator key it cannot even be brute-forced
 * offline. Checking a PIN recomputes the MAC and compares in constant time.
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { PinVerifier } from "../events/types.js";
import { bytesToHex, concatBytes, equalBytes, hexToBytes } from "./encoding.js";

export function makePinVerifier(pinKey: Uint8Array, pin: Uint8Array, salt: Uint8Array): PinVerifier {
  return { salt: bytesToHex(salt), mac: bytesToHex(hmac(sha256, pinKey, concatBytes(salt, pin))) };
}

export function pinMatches(pinKey: Uint8Array, verifier: PinVerifier | null, pin: Uint8Array): boolean {
  if (!verifier) return false;
  const mac = hmac(sha256, pinKey, concatBytes(hexToBytes(verifier.salt), pin));
  return equalBytes(mac, hexToBytes(verifier.mac));
}
