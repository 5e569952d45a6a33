/** Byte helpers shared by the codec and the crypto shell (noble's, re-exported so every file takes them from here). */
export { bytesToHex, hexToBytes, utf8ToBytes, concatBytes } from "@noble/hashes/utils.js";

/** A PIN or label argument as bytes: strings are UTF-8 (pkcs11js passes them that way). */
export function toBytes(v: Uint8Array | string): Uint8Array {
  return typeof v === "string" ? new TextEncoder().encode(v) : v;
}

/** Constant-time equality for MACs. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
