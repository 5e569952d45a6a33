/**
 * CKM_AES_GCM (src/crypto/mechanisms/aes-gcm.ts): the GCM specification's test cases on both engines, single-part
 * and multi-part (the streaming encryption runs CTR + GHASH itself, so the multi-part runs check that code against
 * the vectors), truncated tags, and SoftHSM 2.6.1's per-step sizes and error codes.
 */
import { createCipheriv } from "node:crypto";
import { describe, expect, it } from "vitest";
import { aesGcm } from "../../../src/crypto/mechanisms/aes-gcm.js";
import { ENGINES, bytes, hex, ok, runCipher, splitAt } from "./harness.js";
import { GCM_VECTORS } from "./vectors.js";

const SPLITS = [[], [1], [15], [16], [17, 33], [0, 0, 5, 31, 47, 63], [16, 32, 48]];

describe.each(ENGINES)("GCM test cases on the %s engine", (_name, { aes }) => {
  const gcm = aesGcm(aes);

  describe.each(GCM_VECTORS)("$name", (v) => {
    const key = bytes(v.key);
    const params = { iv: bytes(v.iv), aad: bytes(v.aad), tagBits: 128 };
    const sealed = v.ct + v.tag;

    it("single-part", () => {
      expect(hex(ok(gcm.encrypt.once(key, params, bytes(v.pt))).out)).toBe(sealed);
      expect(hex(ok(gcm.decrypt.once(key, params, bytes(sealed))).out)).toBe(v.pt);
    });

    it("multi-part, with the state through JSON between parts", () => {
      for (const cuts of SPLITS) {
        for (const save of [false, true]) {
          expect(ok(runCipher(gcm.encrypt, key, params, splitAt(bytes(v.pt), cuts), save)).out).toBe(sealed);
          const dec = ok(runCipher(gcm.decrypt, key, params, splitAt(bytes(sealed), cuts), save));
          expect(dec.out).toBe(v.pt);
          // Nothing before final.
          expect(dec.outs.slice(0, -1).join("")).toBe("");
        }
      }
    });

    it("truncated tags are the leading bytes of the full tag, and are checked", () => {
      for (const tagBits of [8, 32, 64, 96, 104, 120]) {
        const p = { ...params, tagBits };
        const out = hex(ok(gcm.encrypt.once(key, p, bytes(v.pt))).out);
        expect(out).toBe(v.ct + v.tag.slice(0, tagBits / 4));
        expect(ok(runCipher(gcm.encrypt, key, p, splitAt(bytes(v.pt), [7]))).out).toBe(out);
        expect(hex(ok(gcm.decrypt.once(key, p, bytes(out))).out)).toBe(v.pt);
        const bad = bytes(out);
        bad[bad.length - 1]! ^= 1;
        expect(gcm.decrypt.once(key, p, bad)).toEqual({ ok: false, rv: "CKR_GENERAL_ERROR", reason: "auth-tag" });
      }
    });

    it("a changed ciphertext, AAD or IV fails the tag check", () => {
      const changedAad = { ...params, aad: bytes(v.aad + "00") };
      expect(gcm.decrypt.once(key, changedAad, bytes(sealed))).toMatchObject({ rv: "CKR_GENERAL_ERROR", reason: "auth-tag" });
      const flipped = bytes(sealed);
      flipped[0]! ^= 0x80;
      expect(runCipher(gcm.decrypt, key, params, splitAt(flipped, [3]))).toMatchObject({ reason: "auth-tag" });
    });
  });
});

describe.each(ENGINES)("GCM as SoftHSM 2.6.1 runs it (%s engine)", (_name, { aes }) => {
  const gcm = aesGcm(aes);
  const key = bytes("2b7e151628aed2a6abf7158809cf4f3c");
  const params = (tagBits: number, iv = new Uint8Array(12).fill(2)) => ({ iv, aad: bytes("616164"), tagBits });

  it("encryption streams, final gives the tag; decryption gives everything at final", () => {
    const sizes = (r: ReturnType<typeof runCipher>) => ok(r).outs.map((h) => h.length / 2);
    const parts = [new Uint8Array(5).fill(3), new Uint8Array(20).fill(3)];
    expect(sizes(runCipher(gcm.encrypt, key, params(128), parts))).toEqual([5, 20, 16]);
    expect(sizes(runCipher(gcm.encrypt, key, params(96), parts))).toEqual([5, 20, 12]);
    const ct = ok(gcm.encrypt.once(key, params(128), new Uint8Array(25).fill(3))).out;
    expect(sizes(runCipher(gcm.decrypt, key, params(128), splitAt(ct, [5])))).toEqual([0, 0, 25]);
    expect(runCipher(gcm.decrypt, key, params(128), parts)).toMatchObject({ rv: "CKR_GENERAL_ERROR" });
  });

  it("matches SoftHSM's bytes for tags of 0, 8 and 32 bits and a 1-byte IV", () => {
    // Observed: key 2b7e…, IV 02×12, AAD "aad", plaintext 01×10.
    const pt = new Uint8Array(10).fill(1);
    expect(hex(ok(gcm.encrypt.once(key, params(0), pt)).out)).toBe("9a56ad553cf09a04a2c3");
    expect(hex(ok(gcm.encrypt.once(key, params(8), pt)).out)).toBe("9a56ad553cf09a04a2c3ed");
    expect(hex(ok(gcm.encrypt.once(key, params(32), pt)).out)).toBe("9a56ad553cf09a04a2c3ed3b4ba2");
    const iv1 = params(128, Uint8Array.of(2));
    expect(hex(ok(gcm.encrypt.once(key, iv1, pt)).out)).toBe("6a8886a0b591183c2fcb31bc72d845673a20d8e7f8c73f02d722");
    expect(ok(runCipher(gcm.encrypt, key, iv1, splitAt(pt, [3]), true)).out).toBe(
      "6a8886a0b591183c2fcb31bc72d845673a20d8e7f8c73f02d722",
    );
    expect(hex(ok(gcm.decrypt.once(key, params(32), bytes("9a56ad553cf09a04a2c3ed3b4ba2"))).out)).toBe(hex(pt));
  });

  it("parameter rules: tag bits over 128 or not whole bytes → CKR_ARGUMENTS_BAD, tag 0 never decrypts", () => {
    for (const t of [100, 136, -8]) expect(gcm.encrypt.init(key, params(t))).toMatchObject({ rv: "CKR_ARGUMENTS_BAD" });
    expect(gcm.encrypt.init(new Uint8Array(20), params(100))).toMatchObject({ rv: "CKR_ARGUMENTS_BAD" });
    expect(gcm.encrypt.init(new Uint8Array(20), params(128))).toMatchObject({ rv: "CKR_MECHANISM_INVALID" });
    const ct = ok(gcm.encrypt.once(key, params(0), new Uint8Array(10))).out;
    expect(gcm.decrypt.once(key, params(0), ct)).toMatchObject({ rv: "CKR_GENERAL_ERROR" });
    // Shorter than the tag.
    expect(gcm.decrypt.once(key, params(128), new Uint8Array(10))).toMatchObject({ rv: "CKR_GENERAL_ERROR" });
    expect(gcm.decrypt.once(key, params(32), new Uint8Array(3))).toMatchObject({ rv: "CKR_GENERAL_ERROR" });
    // hsmsim refuses the IV lengths SoftHSM mishandles.
    for (const n of [0, 129]) {
      expect(gcm.encrypt.init(key, params(128, new Uint8Array(n)))).toMatchObject({ rv: "CKR_MECHANISM_PARAM_INVALID" });
    }
    expect(ok(gcm.encrypt.init(key, params(128, new Uint8Array(128)))).state).toBeDefined();
  });

  it("the long-IV path agrees with OpenSSL for every IV length up to 128 bytes", () => {
    const pt = new Uint8Array(40).map((_, i) => i);
    for (let n = 1; n <= 128; n += n < 20 ? 1 : 27) {
      const iv = new Uint8Array(n).map((_, i) => (i * 7 + n) & 0xff);
      const c = createCipheriv("aes-128-gcm", key, iv);
      c.setAAD(bytes("616164"));
      const openssl = hex(Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]));
      expect(ok(runCipher(gcm.encrypt, key, params(128, iv), splitAt(pt, [17]), true)).out).toBe(openssl);
    }
  });
});

describe("GCM built from its parts", () => {
  const key = bytes("feffe9928665731c6d6a8f9467308308");
  const aad = bytes("feedfacedeadbeef");
  const node = aesGcm(ENGINES[0]![1].aes);
  const noble = aesGcm(ENGINES[1]![1].aes);

  it("noble's GCM wants 8-byte IVs: shorter ones take the ECB + CTR + GHASH path and agree with OpenSSL", () => {
    const pt = new Uint8Array(37).map((_, i) => i);
    for (let n = 1; n < 8; n++) {
      const params = { iv: new Uint8Array(n).fill(n), aad, tagBits: 128 };
      const expected = hex(ok(node.encrypt.once(key, params, pt)).out);
      expect(hex(ok(noble.encrypt.once(key, params, pt)).out)).toBe(expected);
      expect(ok(runCipher(noble.encrypt, key, params, splitAt(pt, [5, 20]))).out).toBe(expected);
      expect(hex(ok(noble.decrypt.once(key, { ...params, tagBits: 40 }, bytes(expected.slice(0, -22)))).out)).toBe(hex(pt));
      expect(noble.decrypt.once(key, params, bytes(expected.slice(0, -2) + "00"))).toMatchObject({ reason: "auth-tag" });
    }
  });

  it("the state is the input so far, and parseState refuses one that does not add up", () => {
    const params = { iv: new Uint8Array(12), aad, tagBits: 128 };
    let { state } = ok(node.encrypt.init(key, params));
    state = ok(node.encrypt.update(key, state, bytes("00010203"))).state;
    state = ok(node.encrypt.update(key, state, new Uint8Array(0))).state;
    state = ok(node.encrypt.update(key, state, bytes("0405"))).state;
    expect(state).toEqual({ iv: "00".repeat(12), aad: "feedfacedeadbeef", tagBits: 128, length: 6, data: ["AAECAw==", "BAU="] });
    expect(node.encrypt.parseState(JSON.parse(JSON.stringify(state)))).toEqual(state);
    for (const bad of [
      { ...state, length: 7 },
      { ...state, data: ["AAECAw", "BAU="] },
      { ...state, data: ["", "AAECAwQF"] },
      { ...state, tagBits: 100 },
      { ...state, iv: "" },
      { ...state, more: 1 },
    ]) {
      expect(node.encrypt.parseState(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });
});

// node's engine seals in 64 KiB pieces into one buffer (engines.ts nodeGcmSeal); across the piece boundaries its
// output must stay node's own one-shot GCM's, and the single-part output (a view of that buffer) must be ct || tag.
describe("one-shot GCM across the node engine's 64 KiB pieces", () => {
  const key = bytes("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  const iv = bytes("cafebabefacedbaddecaf888");
  const aad = bytes("feedfacedeadbeef");
  for (const size of [0, 1, 65535, 65536, 65537, 3 * 65536 + 5]) {
    it(`${size} bytes, on both engines, with full and truncated tags`, () => {
      const data = new Uint8Array(size).map((_, i) => (i * 31 + 7) & 0xff);
      const c = createCipheriv("aes-256-gcm", key, iv, { authTagLength: 16 });
      c.setAAD(aad);
      const want = Buffer.concat([c.update(data), c.final(), c.getAuthTag()]);
      for (const [, { aes }] of ENGINES) {
        for (const tagBits of [128, 96]) {
          const out = ok(aesGcm(aes).encrypt.once(key, { iv, aad, tagBits }, data)).out;
          expect(out.length).toBe(size + tagBits / 8);
          expect(hex(out)).toBe(hex(want.subarray(0, size + tagBits / 8)));
        }
      }
    });
  }
});
