/**
 * Byte helpers for the mechanism modules: hex for the plain-data states (through node's Buffer, which encodes and
 * decodes in native code: a 1 MiB GCM chunk costs about a millisecond), checked hex for states read back from
 * storage, constant-time comparison for MACs and tags, and 128-bit counter arithmetic for CTR and GCM.
 */
import { Buffer } from "node:buffer";

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** Decode hex that this module wrote itself (states in flight). States from storage go through `isHex` first. */
export function fromHex(h: string): Uint8Array {
  return Buffer.from(h, "hex");
}

/**
 * Base64, for the one state field that grows with the input (GCM's buffered data): node encodes and decodes it
 * about 4× faster than hex (0.7 ms against 2.8 ms a MiB here) and it is a third shorter.
 */
export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}

export function fromBase64(s: string): Uint8Array {
  return Buffer.from(s, "base64");
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The byte length of canonical base64 (with padding), or -1 when `x` is not that. */
export function base64Length(x: unknown): number {
  if (typeof x !== "string" || !BASE64.test(x)) return -1;
  return (x.length / 4) * 3 - (x.endsWith("==") ? 2 : x.endsWith("=") ? 1 : 0);
}

const HEX = /^(?:[0-9a-f]{2})*$/;

/** Lowercase hex of whole bytes, optionally of a byte length within [min, max]. */
export function isHex(x: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): x is string {
  return typeof x === "string" && x.length >= 2 * min && x.length <= 2 * max && HEX.test(x);
}

export function isUint(x: unknown, max = Number.MAX_SAFE_INTEGER): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0 && x <= max;
}

export function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** Exactly these keys, no more: a restored state with extra fields is not one this module wrote. */
export function hasKeys(x: Record<string, unknown>, keys: readonly string[]): boolean {
  const own = Object.keys(x);
  return own.length === keys.length && keys.every((k) => Object.hasOwn(x, k));
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  // Both parts overwrite the whole buffer: no need to zero it first (a MiB of zeroing costs as much as the copy).
  const out = Buffer.allocUnsafe(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export function concatAll(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Constant-time equality (for MACs and tags: the time must not tell how many leading bytes matched). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

const TWO_128 = 1n << 128n;

export function blockToBigInt(b: Uint8Array): bigint {
  return BigInt("0x" + (toHex(b) || "0"));
}

export function bigIntToBlock(n: bigint): Uint8Array {
  return fromHex(n.toString(16).padStart(32, "0"));
}

/**
 * The counter block `blocks` increments later, where only the low `bits` bits count (PKCS#11 CK_AES_CTR_PARAMS
 * ulCounterBits; GCM's inc32 is bits = 32): the low bits wrap, the high bits never change.
 */
export function addToCounter(counter: Uint8Array, blocks: bigint, bits: number): Uint8Array {
  if (blocks === 0n) return counter;
  const n = blockToBigInt(counter);
  const mod = bits >= 128 ? TWO_128 : 1n << BigInt(bits);
  const low = n % mod;
  return bigIntToBlock(n - low + ((low + blocks) % mod));
}

/** How many blocks the low `bits` bits of `counter` can still count before they wrap (the current block included). */
export function blocksBeforeWrap(counter: Uint8Array, bits: number): bigint {
  const mod = bits >= 128 ? TWO_128 : 1n << BigInt(bits);
  return mod - (blockToBigInt(counter) % mod);
}
