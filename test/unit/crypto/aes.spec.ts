/**
 * AES ECB, CBC, CBC_PAD and CTR (src/crypto/mechanisms/aes.ts): NIST SP 800-38A F.1, F.2 and F.5 on both engines,
 * single- and multi-part; CBC_PAD against OpenSSL's and noble's own PKCS#7 padding; and the per-step output sizes
 * and error codes SoftHSM 2.6.1 gives (observed with pkcs11js against the Debian package, key 2b7e1516…).
 */
import { createCipheriv } from "node:crypto";
import { cbc as nobleCbc } from "@noble/ciphers/aes.js";
import { describe, expect, it } from "vitest";
import { aesCbc, aesCbcPad, aesCtr, aesEcb, ctrXor } from "../../../src/crypto/mechanisms/aes.js";
import { nodeAes } from "../../../src/crypto/mechanisms/engines.js";
import { ENGINES, bytes, hex, ok, runCipher, splitAt } from "./harness.js";
import {
  SP800_38A_CBC,
  SP800_38A_CBC_IV,
  SP800_38A_CTR,
  SP800_38A_CTR_COUNTER,
  SP800_38A_ECB,
  SP800_38A_KEYS,
  SP800_38A_PLAINTEXT,
} from "./vectors.js";

const SIZES = [128, 192, 256] as const;
const PT = bytes(SP800_38A_PLAINTEXT);
/** Splits that cross block boundaries in every way: 1 byte, partial, whole, and empty parts. */
const SPLITS = [[], [1], [15], [16], [17, 33], [0, 0, 5, 31, 47, 63], [16, 32, 48]];

describe.each(ENGINES)("SP 800-38A known answers on the %s engine", (_name, { aes }) => {
  const ecb = aesEcb(aes);
  const cbc = aesCbc(aes);
  const ctr = aesCtr(aes);

  describe.each(SIZES)("AES-%i", (size) => {
    const key = bytes(SP800_38A_KEYS[size]);
    const iv = { iv: bytes(SP800_38A_CBC_IV) };
    const counter = { counterBits: 128, cb: bytes(SP800_38A_CTR_COUNTER) };
    const cases = [
      ["F.1 ECB", ecb, undefined, SP800_38A_ECB[size]],
      ["F.2 CBC", cbc, iv, SP800_38A_CBC[size]],
      ["F.5 CTR", ctr, counter, SP800_38A_CTR[size]],
    ] as const;

    it.each(cases)("%s encrypts and decrypts in one part", (_m, mech, params, expected) => {
      const encrypt = mech.encrypt as typeof cbc.encrypt;
      const decrypt = mech.decrypt as typeof cbc.decrypt;
      expect(hex(ok(encrypt.once(key, params as never, PT)).out)).toBe(expected);
      expect(hex(ok(decrypt.once(key, params as never, bytes(expected))).out)).toBe(SP800_38A_PLAINTEXT);
    });

    it.each(cases)("%s gives the same bytes in many parts", (_m, mech, params, expected) => {
      for (const cuts of SPLITS) {
        const enc = runCipher(mech.encrypt as typeof cbc.encrypt, key, params as never, splitAt(PT, cuts));
        expect(ok(enc).out).toBe(expected);
        const dec = runCipher(mech.decrypt as typeof cbc.decrypt, key, params as never, splitAt(bytes(expected), cuts), true);
        expect(ok(dec).out).toBe(SP800_38A_PLAINTEXT);
      }
    });
  });
});

describe.each(ENGINES)("CKM_AES_CBC_PAD on the %s engine", (_name, { aes }) => {
  const pad = aesCbcPad(aes);
  const key = bytes(SP800_38A_KEYS[128]);
  const iv = bytes(SP800_38A_CBC_IV);

  it("a whole-block input gains a block of sixteen 0x10 bytes after the F.2.1 ciphertext", () => {
    const out = hex(ok(pad.encrypt.once(key, { iv }, PT)).out);
    expect(out.slice(0, 128)).toBe(SP800_38A_CBC[128]);
    const last = bytes(SP800_38A_CBC[128]).subarray(48);
    const extra = createCipheriv("aes-128-ecb", key, null).setAutoPadding(false).update(last.map((b) => b ^ 0x10));
    expect(out.slice(128)).toBe(hex(extra));
  });

  it.each([0, 1, 15, 16, 17, 31, 32, 33, 100])("%i bytes: the same as OpenSSL's and noble's own PKCS#7 padding", (n) => {
    const data = PT.length >= n ? PT.subarray(0, n) : new Uint8Array(n).fill(7);
    const c = createCipheriv("aes-128-cbc", key, iv);
    const openssl = hex(Buffer.concat([c.update(data), c.final()]));
    expect(hex(ok(pad.encrypt.once(key, { iv }, data)).out)).toBe(openssl);
    expect(hex(nobleCbc(key, iv).encrypt(data))).toBe(openssl);
    expect(ok(runCipher(pad.encrypt, key, { iv }, splitAt(data, [n >> 1]), true)).out).toBe(openssl);
    expect(hex(ok(pad.decrypt.once(key, { iv }, bytes(openssl))).out)).toBe(hex(data));
    expect(ok(runCipher(pad.decrypt, key, { iv }, splitAt(bytes(openssl), [n >> 1, n]), true)).out).toBe(hex(data));
  });

  it("a bad pad is CKR_GENERAL_ERROR, single- and multi-part, whatever the pad byte", () => {
    for (const last of [0x00, 0x11, 0xff, 0x02]) {
      // Decrypting to a last block that ends in `last` with a wrong byte before it (for 0x02).
      const plain = new Uint8Array(16).fill(0x01);
      plain[15] = last;
      const ct = createCipheriv("aes-128-cbc", key, iv).setAutoPadding(false).update(plain);
      expect(pad.decrypt.once(key, { iv }, ct)).toEqual({ ok: false, rv: "CKR_GENERAL_ERROR", reason: "padding" });
      expect(runCipher(pad.decrypt, key, { iv }, [ct])).toMatchObject({ rv: "CKR_GENERAL_ERROR" });
    }
  });
});

/** Sizes of update outputs then the final output, or the rv where a step fails: SoftHSM 2.6.1, observed. */
describe.each(ENGINES)("per-step output as SoftHSM 2.6.1 gives it (%s engine)", (_name, { aes }) => {
  const key = bytes("2b7e151628aed2a6abf7158809cf4f3c");
  const iv = { iv: new Uint8Array(16).fill(1) };
  const ctrParams = { counterBits: 128, cb: new Uint8Array(16).fill(1) };
  const sizes = (run: ReturnType<typeof runCipher>) => (run.ok ? run.outs.map((h) => h.length / 2) : run.rv);
  const parts = (...n: number[]) => n.map((k) => new Uint8Array(k).fill(3));
  const stepsUntilFailure = <P, S>(s: { init: Function; update: Function; final: Function }, params: P, p: Uint8Array[]) => {
    const seen: (number | string)[] = [];
    let st = (s.init(key, params) as { state: S }).state;
    for (const part of p) {
      const r = s.update(key, st, part);
      if (!r.ok) return [...seen, r.rv];
      seen.push(r.out.length);
      st = r.state;
    }
    const f = s.final(key, st);
    return [...seen, f.ok ? f.out.length : f.rv];
  };

  const ecb = aesEcb(aes);
  const cbc = aesCbc(aes);
  const pad = aesCbcPad(aes);
  const ctr = aesCtr(aes);

  it("ECB and CBC: every whole block at once, the remainder refused at final", () => {
    expect(sizes(runCipher(ecb.encrypt, key, undefined, parts(20, 12)))).toEqual([16, 16, 0]);
    expect(stepsUntilFailure(ecb.encrypt, undefined, parts(20))).toEqual([16, "CKR_DATA_LEN_RANGE"]);
    expect(stepsUntilFailure(ecb.encrypt, undefined, parts(5))).toEqual([0, "CKR_DATA_LEN_RANGE"]);
    expect(sizes(runCipher(cbc.encrypt, key, iv, parts(20, 12)))).toEqual([16, 16, 0]);
    expect(stepsUntilFailure(cbc.decrypt, iv, parts(20))).toEqual([16, "CKR_ENCRYPTED_DATA_LEN_RANGE"]);
  });

  it("CBC_PAD: encryption pads at final; decryption holds the last block back while the input is aligned", () => {
    expect(sizes(runCipher(pad.encrypt, key, iv, parts(20, 12)))).toEqual([16, 16, 16]);
    expect(sizes(runCipher(pad.encrypt, key, iv, parts(16)))).toEqual([16, 16]);
    // Garbage ciphertext, as in the SoftHSM run: the pad check fails at final.
    expect(stepsUntilFailure(pad.decrypt, iv, parts(20, 12))).toEqual([16, 0, "CKR_GENERAL_ERROR"]);
    expect(stepsUntilFailure(pad.decrypt, iv, parts(32))).toEqual([16, "CKR_GENERAL_ERROR"]);
    expect(stepsUntilFailure(pad.decrypt, iv, parts(16, 16))).toEqual([0, 16, "CKR_GENERAL_ERROR"]);
    expect(stepsUntilFailure(pad.decrypt, iv, parts(20))).toEqual([16, "CKR_ENCRYPTED_DATA_LEN_RANGE"]);
    // A valid 16-byte ciphertext of 5 bytes: 0 at update, 5 at final.
    const ct = ok(pad.encrypt.once(key, iv, new Uint8Array(5))).out;
    expect(sizes(runCipher(pad.decrypt, key, iv, [ct]))).toEqual([0, 5]);
  });

  it("CTR: as many bytes as given, nothing at final", () => {
    expect(sizes(runCipher(ctr.encrypt, key, ctrParams, parts(5, 20)))).toEqual([5, 20, 0]);
    expect(sizes(runCipher(ctr.decrypt, key, ctrParams, parts(5, 20)))).toEqual([5, 20, 0]);
  });

  it("single-part length errors", () => {
    expect(ecb.encrypt.once(key, undefined, new Uint8Array(20))).toMatchObject({ rv: "CKR_DATA_LEN_RANGE" });
    expect(ecb.decrypt.once(key, undefined, new Uint8Array(20))).toMatchObject({ rv: "CKR_ENCRYPTED_DATA_LEN_RANGE" });
    expect(pad.decrypt.once(key, iv, new Uint8Array(20).fill(9))).toMatchObject({ rv: "CKR_ENCRYPTED_DATA_LEN_RANGE" });
    expect(pad.decrypt.once(key, iv, new Uint8Array(32).fill(9))).toMatchObject({ rv: "CKR_GENERAL_ERROR" });
    expect(pad.decrypt.once(key, iv, new Uint8Array(0))).toMatchObject({ rv: "CKR_ENCRYPTED_DATA_LEN_RANGE" });
  });

  it("parameter and key checks, parameters first", () => {
    expect(cbc.encrypt.init(key, { iv: new Uint8Array(15) })).toMatchObject({ rv: "CKR_MECHANISM_INVALID", reason: "param" });
    expect(cbc.encrypt.init(key, { iv: null })).toMatchObject({ rv: "CKR_ARGUMENTS_BAD" });
    expect(pad.decrypt.init(new Uint8Array(20), { iv: null })).toMatchObject({ rv: "CKR_ARGUMENTS_BAD" });
    expect(ecb.encrypt.init(new Uint8Array(20), undefined)).toMatchObject({ rv: "CKR_MECHANISM_INVALID", reason: "key-size" });
    expect(ecb.encrypt.init(key, new Uint8Array(16))).toMatchObject({ ok: true }); // SoftHSM ignores ECB's parameter
    for (const counterBits of [0, 129, 1.5]) {
      expect(ctr.encrypt.init(new Uint8Array(20), { counterBits, cb: new Uint8Array(16) })).toMatchObject({
        rv: "CKR_MECHANISM_PARAM_INVALID",
      });
    }
    expect(ctr.encrypt.init(key, { counterBits: 128, cb: new Uint8Array(15) })).toMatchObject({ rv: "CKR_ARGUMENTS_BAD" });
  });

  it("CTR refuses input that would wrap the counter bits, as SoftHSM does", () => {
    const cb = bytes("000000000000000000000000000000fe");
    // SoftHSM 2.6.1, ulCounterBits 1, counter …fe, 32 zero bytes (two blocks: …fe and …ff).
    const softhsm = "7cc390e1f451bcc6af05560dc904649ca18c80e3b93a86d370cfef49ce429bd5";
    expect(hex(ok(ctr.encrypt.once(key, { counterBits: 1, cb }, new Uint8Array(32))).out)).toBe(softhsm);
    expect(hex(ok(ctr.encrypt.once(key, { counterBits: 1, cb }, new Uint8Array(17))).out)).toBe(softhsm.slice(0, 34));
    expect(hex(ok(ctr.encrypt.once(key, { counterBits: 2, cb }, new Uint8Array(32))).out)).toBe(softhsm);
    expect(ctr.encrypt.once(key, { counterBits: 2, cb }, new Uint8Array(48))).toMatchObject({ rv: "CKR_DATA_LEN_RANGE" });
    expect(stepsUntilFailure(ctr.encrypt, { counterBits: 2, cb }, parts(16, 17))).toEqual([16, "CKR_DATA_LEN_RANGE"]);
    expect(stepsUntilFailure(ctr.decrypt, { counterBits: 1, cb }, parts(16, 16, 1))).toEqual([
      16,
      16,
      "CKR_ENCRYPTED_DATA_LEN_RANGE",
    ]);
    const max = bytes("ff".repeat(16));
    expect(ctr.encrypt.once(key, { counterBits: 128, cb: max }, new Uint8Array(32))).toMatchObject({ rv: "CKR_DATA_LEN_RANGE" });
    expect(ok(ctr.encrypt.once(key, { counterBits: 128, cb: max }, new Uint8Array(16))).out).toHaveLength(16);
  });
});

describe("ctrXor", () => {
  it("wraps the low counter bits and keeps the high ones (GCM's inc32), splitting the engine run at the wrap", () => {
    const key = bytes("000102030405060708090a0b0c0d0e0f");
    const start = bytes("0102030405060708090a0b0cfffffffe");
    const blocks = ["0102030405060708090a0b0cfffffffe", "0102030405060708090a0b0cffffffff", "0102030405060708090a0b0c00000000", "0102030405060708090a0b0c00000001"];
    const keystream = hex(nodeAes.ecb(true, key, bytes(blocks.join(""))));
    for (const [, { aes }] of ENGINES) {
      const r = ctrXor(aes, key, start, 0, 32, new Uint8Array(60));
      expect(hex(r.out)).toBe(keystream.slice(0, 120));
      expect(hex(r.counter)).toBe(blocks[3]);
      expect(r.offset).toBe(12);
      // Starting inside a block.
      const mid = ctrXor(aes, key, start, 5, 32, new Uint8Array(30));
      expect(hex(mid.out)).toBe(keystream.slice(10, 70));
    }
  });
});
