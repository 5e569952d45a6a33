/**
 * CKM_AES_KEY_WRAP and CKM_AES_KEY_WRAP_PAD (src/crypto/mechanisms/aes-wrap.ts): RFC 3394 §4 and RFC 5649 §6 on both
 * engines, SoftHSM 2.6.1's wrapped bytes and error codes (observed: KEK 2b7e1516…, keys of n bytes of 0x07), and
 * node and noble agreeing on random keys.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { aesKeyWrap, aesKeyWrapPad } from "../../../src/crypto/mechanisms/aes-wrap.js";
import { nobleAes, nodeAes } from "../../../src/crypto/mechanisms/engines.js";
import { ENGINES, bytes, hex, ok } from "./harness.js";
import { RFC3394_VECTORS, RFC5649_VECTORS } from "./vectors.js";

describe.each(ENGINES)("key wrap on the %s engine", (_name, { aes }) => {
  const kw = aesKeyWrap(aes);
  const kwp = aesKeyWrapPad(aes);
  const rfc5649 = aesKeyWrapPad(aes, { zeroPad: false });
  const rfc3394 = aesKeyWrap(aes, { zeroPad: false });

  it.each(RFC3394_VECTORS)("RFC 3394 $name", (v) => {
    expect(hex(ok(kw.wrap(bytes(v.kek), bytes(v.key))).out)).toBe(v.wrapped);
    expect(hex(ok(kw.unwrap(bytes(v.kek), bytes(v.wrapped))).out)).toBe(v.key);
    expect(kw.wrapLength(v.key.length / 2)).toBe(v.wrapped.length / 2);
  });

  it.each(RFC5649_VECTORS)("RFC 5649 $name (zeroPad: false)", (v) => {
    expect(hex(ok(rfc5649.wrap(bytes(v.kek), bytes(v.key))).out)).toBe(v.wrapped);
    expect(hex(ok(rfc5649.unwrap(bytes(v.kek), bytes(v.wrapped))).out)).toBe(v.key);
    expect(hex(ok(kwp.unwrap(bytes(v.kek), bytes(v.wrapped))).out)).toBe(v.key); // unwrap is the same either way
    expect(rfc5649.wrapLength(v.key.length / 2)).toBe(v.wrapped.length / 2);
  });

  it("RFC 5649 §6's 20-octet key under SoftHSM's zero padding: the 24 padded octets are wrapped", () => {
    const v = RFC5649_VECTORS[0]!;
    const padded = ok(kwp.wrap(bytes(v.kek), bytes(v.key))).out;
    expect(hex(padded)).not.toBe(v.wrapped);
    expect(hex(ok(kwp.unwrap(bytes(v.kek), padded)).out)).toBe(v.key + "00000000");
    expect(hex(padded)).toBe(hex(ok(rfc5649.wrap(bytes(v.kek), bytes(v.key + "00000000"))).out));
  });

  it("strict RFC 3394 refuses a key that is not a multiple of 8 bytes", () => {
    expect(rfc3394.wrap(bytes(RFC3394_VECTORS[0]!.kek), new Uint8Array(20))).toMatchObject({ rv: "CKR_KEY_SIZE_RANGE" });
    expect(ok(rfc3394.wrap(bytes(RFC3394_VECTORS[0]!.kek), new Uint8Array(24))).out).toHaveLength(32);
  });

  const kek = bytes("2b7e151628aed2a6abf7158809cf4f3c");
  const key = (n: number) => new Uint8Array(n).fill(7);

  it("wraps as SoftHSM 2.6.1 does, zero-padding the key value to a multiple of 8 for both mechanisms", () => {
    const softhsm: [typeof kw, number, string][] = [
      [kw, 16, "2f04ab535f0f5a026bac4010ec459a812bf8d0f9ad054655"],
      [kw, 9, "f5ad3629443040f404ce57a8a08c3fd14a9a80cd5fba338b"],
      [kw, 12, "98c17597500f8907fe37ea94241905bb4a9e0df380ff6cdd"],
      [kw, 20, "f04e17e69062667ed64844dbc7f16f682974995a37558852096e378a0aa2a71c"],
      [kw, 32, "4f11efe51730a4646c205b1a2fcf2ea3924b080bb7caf3f26f9809937ce173d250b241696693ec07"],
      [kwp, 1, "dbb2c8027c80068a7563f27bd32b890c"],
      [kwp, 7, "2f83511b99eaaa694692e45ac925a9e1"],
      [kwp, 8, "14449a05a12e1dfa920cddca90b18fa8"],
      [kwp, 9, "4654f8ff5b0a87f32d425bee4bc968d3f7bfb4a40a0969a4"],
      [kwp, 16, "d7d286a9e849099d65276e33fb51b50a58500a0a37fb3e4d"],
      [kwp, 20, "081bf2ce1d1b86463648616a1400a91d5618b5bdaa56dbb337efe1115b2d34fd"],
    ];
    for (const [mech, n, wrapped] of softhsm) {
      expect(hex(ok(mech.wrap(kek, key(n))).out), `${n} bytes`).toBe(wrapped);
      expect(mech.wrapLength(n)).toBe(wrapped.length / 2);
    }
    // Unwrapping gives the padding back, as in SoftHSM.
    expect(hex(ok(kw.unwrap(kek, bytes(softhsm[3]![2]))).out)).toBe("07".repeat(20) + "00000000");
    expect(hex(ok(kwp.unwrap(kek, bytes(softhsm[6]![2]))).out)).toBe("07".repeat(7) + "00");
  });

  it("error codes as SoftHSM 2.6.1 answers them", () => {
    expect(kw.wrap(kek, key(8))).toEqual({ ok: false, rv: "CKR_KEY_SIZE_RANGE", reason: "key-len" });
    expect(kw.wrap(kek, key(1))).toMatchObject({ rv: "CKR_KEY_SIZE_RANGE" });
    expect(kwp.wrap(kek, key(0))).toMatchObject({ rv: "CKR_KEY_SIZE_RANGE" });
    for (const n of [16, 20]) expect(kw.unwrap(kek, new Uint8Array(n).fill(5))).toMatchObject({ rv: "CKR_WRAPPED_KEY_LEN_RANGE" });
    for (const n of [8, 20]) expect(kwp.unwrap(kek, new Uint8Array(n).fill(5))).toMatchObject({ rv: "CKR_WRAPPED_KEY_LEN_RANGE" });
    expect(kw.unwrap(kek, new Uint8Array(24).fill(5))).toEqual({ ok: false, rv: "CKR_GENERAL_ERROR", reason: "integrity" });
    expect(kwp.unwrap(kek, new Uint8Array(24).fill(5))).toMatchObject({ rv: "CKR_GENERAL_ERROR", reason: "integrity" });
    expect(kwp.unwrap(kek, new Uint8Array(16).fill(5))).toMatchObject({ rv: "CKR_GENERAL_ERROR", reason: "integrity" });
    // A wrapping key that is not an AES key length: after the length checks.
    const bad = new Uint8Array(20);
    expect(kw.wrap(bad, key(16))).toMatchObject({ rv: "CKR_GENERAL_ERROR", reason: "key-size" });
    expect(kwp.wrap(bad, key(16))).toMatchObject({ rv: "CKR_GENERAL_ERROR" });
    expect(kw.unwrap(bad, new Uint8Array(24))).toMatchObject({ rv: "CKR_GENERAL_ERROR" });
    expect(kw.unwrap(bad, new Uint8Array(20))).toMatchObject({ rv: "CKR_WRAPPED_KEY_LEN_RANGE" });
  });
});

describe("node and noble agree on random keys and KEKs", () => {
  it("both directions, every KEK size, key lengths 1..80", () => {
    for (const kekLen of [16, 24, 32]) {
      const kek = new Uint8Array(randomBytes(kekLen));
      for (let n = 1; n <= 80; n++) {
        const value = new Uint8Array(randomBytes(n));
        for (const [make, zeroPad] of [[aesKeyWrap, true], [aesKeyWrapPad, true], [aesKeyWrapPad, false]] as const) {
          const a = make(nodeAes, { zeroPad }).wrap(kek, value);
          const b = make(nobleAes, { zeroPad }).wrap(kek, value);
          expect(a).toEqual(b.ok ? { ok: true, out: expect.anything() } : b);
          if (!a.ok || !b.ok) continue;
          expect(hex(a.out)).toBe(hex(b.out));
          expect(hex(ok(make(nobleAes).unwrap(kek, a.out)).out)).toBe(hex(ok(make(nodeAes).unwrap(kek, b.out)).out));
          if (!zeroPad) expect(hex(ok(make(nodeAes).unwrap(kek, a.out)).out)).toBe(hex(value));
        }
      }
    }
  });
});
