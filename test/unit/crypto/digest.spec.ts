/**
 * Digests (src/crypto/mechanisms/digest.ts): FIPS 180-4's examples and RFC 1321's suite, single-part on both engines
 * and multi-part through the plain-data noble contexts, with the state sent through JSON between parts.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { digest, hashContext } from "../../../src/crypto/mechanisms/digest.js";
import type { HashName } from "../../../src/crypto/mechanisms/engines.js";
import { ENGINES, hex, runDigest, splitAt } from "./harness.js";
import { FIPS180_VECTORS, RFC1321_VECTORS, type DigestVector } from "./vectors.js";

const message = (v: DigestVector) => new Uint8Array(Buffer.from(v.message.repeat(v.repeat ?? 1), "ascii"));

const cases = [...FIPS180_VECTORS, ...RFC1321_VECTORS].flatMap((v) =>
  (Object.entries(v.digest) as [HashName, string][]).map(([hash, expected]) => ({ label: `${hash} ${v.name}`, v, hash, expected })),
);

describe.each(ENGINES)("known answers on the %s engine", (_name, { hash: engine }) => {
  it.each(cases)("$label", ({ v, hash, expected }) => {
    const d = digest(engine, hash);
    const m = message(v);
    expect(hex(d.once(m))).toBe(expected);
    // Multi-part: one part, then parts that straddle the 64- and 128-byte blocks, state through JSON each time.
    expect(runDigest(d, [m])).toBe(expected);
    const cuts = m.length > 1000 ? [1, 63, 64, 65, 127, 128, 129, 1000, 777_777] : [1, 3, 55, 56, 57, 64, 111, 112];
    expect(runDigest(d, splitAt(m, cuts), true)).toBe(expected);
  });
});

describe("the plain-data context", () => {
  const names: HashName[] = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"];

  it.each(names)("%s: sizes, and a state that says where it is", (name) => {
    const ctx = hashContext(name);
    expect(ctx.size).toBe(createHash(name).digest().length);
    expect(ctx.blockLen).toBe(name === "sha384" || name === "sha512" ? 128 : 64);
    const s = ctx.update(ctx.init(), new Uint8Array(ctx.blockLen + 3).fill(0x61));
    expect(s.length).toBe(ctx.blockLen + 3);
    expect(s.buffer).toBe("616161");
    expect(s.h).toHaveLength(name === "md5" ? 32 : name === "sha1" ? 40 : name.startsWith("sha2") ? 64 : 128);
    // Updating never changes the state it was given.
    const before = JSON.stringify(s);
    ctx.update(s, new Uint8Array(100));
    ctx.final(s);
    expect(JSON.stringify(s)).toBe(before);
  });

  it("parseState refuses states this module did not write", () => {
    const ctx = hashContext("sha256");
    const good = ctx.update(ctx.init(), new Uint8Array(70));
    expect(ctx.parseState(good)).toEqual(good);
    const bad: unknown[] = [
      null,
      [],
      { ...good, extra: 1 },
      { ...good, h: good.h.slice(2) },
      { ...good, h: good.h.toUpperCase() },
      { ...good, buffer: good.buffer + "00" }, // length no longer agrees
      { ...good, length: -1 },
      { ...good, length: 2 ** 60 },
      { ...good, buffer: "zz".repeat(6) },
      { h: good.h, buffer: good.buffer },
      { ...good, buffer: "00".repeat(64), length: 64 + 64 },
    ];
    for (const b of bad) expect(ctx.parseState(b), JSON.stringify(b)).toBeUndefined();
    // A state from another hash has the wrong number of chaining words.
    const sha1 = hashContext("sha1");
    expect(ctx.parseState(sha1.update(sha1.init(), new Uint8Array(3)))).toBeUndefined();
  });
});
