/**
 * The simulator's default random source (src/crypto/random.ts): small draws cut from a pooled block of node's CSPRNG.
 * Each draw has the length asked for and its own memory (a caller that keeps or wipes it touches no other draw), no
 * byte is handed out twice (draws across several pool refills never overlap), and large draws bypass the pool.
 */
import { describe, expect, it } from "vitest";
import { pooledRandomSource } from "../../src/crypto/random.js";

describe("pooledRandomSource", () => {
  it("gives each draw its own buffer of the asked length, across pool refills", () => {
    const random = pooledRandomSource();
    const seen = new Set<string>();
    const draws: Uint8Array[] = [];
    for (let i = 0; i < 2000; i++) {
      const n = 16 + (i % 48);
      const r = random(n);
      expect(r.length).toBe(n);
      expect(r.byteOffset).toBe(0);
      expect(r.buffer.byteLength).toBe(n);
      const hex = Buffer.from(r).toString("hex");
      // 16+ random bytes: a repeat means a byte range was handed out twice.
      expect(seen.has(hex)).toBe(false);
      seen.add(hex);
      draws.push(r);
    }
    const kept = draws.map((d) => Buffer.from(d).toString("hex"));
    for (const d of draws) d.fill(0);
    random(32);
    expect(kept.every((h) => !/^(00)+$/.test(h))).toBe(true);
  });

  it("zero-length and large draws", () => {
    const random = pooledRandomSource();
    expect(random(0).length).toBe(0);
    const big = random(1 << 16);
    expect(big.length).toBe(1 << 16);
    // Not all zero, and not one repeated 4 KiB block.
    expect(Buffer.from(big.subarray(0, 4096)).equals(Buffer.from(big.subarray(4096, 8192)))).toBe(false);
  });
});
