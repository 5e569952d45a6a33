/**
 * CK_ULONG bytes (src/pkcs11/attributes.ts): ulongBytes and readUlong take a fast path for 32-bit numbers and plain
 * 8-byte reads; they must give exactly what the 64-bit BigInt conversion gives, at the edges (2^32, 2^53, 2^64 - 1,
 * rounding above 2^53) and on random values.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { readUlong, ulongBytes } from "../../src/pkcs11/attributes.js";

const viaBigInt = (v: number | bigint) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
};
const readViaBigInt = (b: Uint8Array) => Number(new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(0, true));

describe("CK_ULONG bytes", () => {
  const edges: (number | bigint)[] = [0, 1, 0x1f, 0xff, 0x100, 0xffffffff, 2 ** 32, 2 ** 32 + 1, 2 ** 53 - 1, 2n ** 53n + 1n, 2n ** 64n - 1n];

  it("ulongBytes writes what the BigInt conversion writes", () => {
    for (const v of edges) expect(ulongBytes(v)).toEqual(viaBigInt(v));
    for (let i = 0; i < 2000; i++) {
      const v = randomBytes(4).readUInt32LE(0);
      expect(ulongBytes(v)).toEqual(viaBigInt(v));
    }
  });

  it("readUlong reads what Number() of the 64-bit value reads, rounding included, at any byte offset", () => {
    for (const v of edges) expect(readUlong(viaBigInt(v))).toBe(readViaBigInt(viaBigInt(v)));
    for (let i = 0; i < 2000; i++) {
      const raw = new Uint8Array(randomBytes(9));
      if (i % 3 === 0) raw.fill(0, 5);
      const b = raw.subarray(1);
      expect(readUlong(b)).toBe(readViaBigInt(b));
    }
  });

  it("a short value is the same RangeError as before", () => {
    expect(() => readUlong(new Uint8Array(4))).toThrow(RangeError);
  });
});
