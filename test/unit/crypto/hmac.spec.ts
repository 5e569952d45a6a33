/**
 * HMAC (src/crypto/mechanisms/hmac.ts): RFC 4231 test cases 1–7 (HMAC-SHA-224/256/384/512, case 5 truncated through
 * the _GENERAL variants) and RFC 2202 (HMAC-SHA-1, HMAC-MD5) on both engines, single- and multi-part; the key-size,
 * MAC-length and verify rules SoftHSM 2.6.1 follows.
 */
import { describe, expect, it } from "vitest";
import type { HashName } from "../../../src/crypto/mechanisms/engines.js";
import { hmacMechanism } from "../../../src/crypto/mechanisms/hmac.js";
import { ENGINES, bytes, hex, ok, runMac, splitAt } from "./harness.js";
import { RFC2202_VECTORS, RFC4231_VECTORS, type MacVector } from "./vectors.js";

const cases = [...RFC4231_VECTORS.map((v) => ["RFC 4231", v] as const), ...RFC2202_VECTORS.map((v) => ["RFC 2202", v] as const)]
  .flatMap(([rfc, v]: readonly [string, MacVector]) =>
    (Object.entries(v.mac) as [HashName, string][]).map(([hash, expected]) => ({ label: `${rfc} ${hash} ${v.name}`, v, hash, expected })),
  );

describe.each(ENGINES)("known answers on the %s engine", (_name, { hash: engine }) => {
  it.each(cases)("$label", ({ v, hash, expected }) => {
    const key = bytes(v.key);
    const data = bytes(v.data);
    // The RFC keys are often shorter than SoftHSM's minimum: these runs lift it.
    const general = hmacMechanism(engine, hash, { general: true, minKeyLength: 0 });
    const params = { macLength: expected.length / 2 };
    expect(hex(ok(general.once(key, params, data)).out)).toBe(expected);
    for (const cuts of [[], [1], [7, 8, 9], [0, 64, 65, 128, 129]]) {
      expect(runMac(general, key, params, splitAt(data, cuts), true)).toBe(expected);
    }
    expect(ok(general.verifyOnce(key, params, data, bytes(expected)))).toEqual({ ok: true });
    if (!v.truncate) {
      const plain = hmacMechanism(engine, hash, { general: false, minKeyLength: 0 });
      expect(hex(ok(plain.once(key, undefined, data)).out)).toBe(expected);
      expect(runMac(plain, key, undefined, splitAt(data, [5]), true)).toBe(expected);
    }
  });
});

describe.each(ENGINES)("HMAC rules (%s engine)", (_name, { hash: engine }) => {
  const sha256 = hmacMechanism(engine, "sha256", { general: false });
  const general = hmacMechanism(engine, "sha256", { general: true });
  const key = new Uint8Array(32).fill(7);
  const abc = bytes("616263");

  it("matches SoftHSM 2.6.1's CKM_SHA256_HMAC and CKM_SHA_1_HMAC output (keys of 0x07 bytes)", () => {
    const softhsm = "127da4ced6a839b8f6118bc244684d2663e70cb5ff0adeefca89d7e74d5a0525";
    expect(hex(ok(sha256.once(key, undefined, abc)).out)).toBe(softhsm);
    const sha1 = hmacMechanism(engine, "sha1", { general: false });
    expect(hex(ok(sha1.once(new Uint8Array(20).fill(7), undefined, abc)).out)).toBe("0eaa82231ec3d62dfba055a4d6246c55950703fc");
    // A parameter given to the plain mechanism is ignored, as SoftHSM does.
    expect(hex(ok(sha256.once(key, { macLength: 5 }, abc)).out)).toBe(softhsm);
  });

  it("a key shorter than the output is CKR_KEY_SIZE_RANGE (SoftHSM's minimum), a long one is hashed", () => {
    for (const [hash, size] of [["md5", 16], ["sha1", 20], ["sha224", 28], ["sha256", 32], ["sha384", 48], ["sha512", 64]] as const) {
      const m = hmacMechanism(engine, hash, { general: false });
      expect(m.init(new Uint8Array(size - 1), undefined)).toEqual({ ok: false, rv: "CKR_KEY_SIZE_RANGE", reason: "key-size" });
      expect(m.once(new Uint8Array(size - 1), undefined, abc)).toMatchObject({ rv: "CKR_KEY_SIZE_RANGE" });
      expect(m.init(new Uint8Array(size), undefined)).toMatchObject({ ok: true });
      expect(m.init(new Uint8Array(1000), undefined)).toMatchObject({ ok: true });
    }
    expect(hex(ok(sha256.once(new Uint8Array(5000).fill(7), undefined, abc)).out)).toBe(
      "cfb5f7a3b5fa1fedce97489bd5ef1434a30b5a24038fd848eddef6d41eb8019e", // SoftHSM 2.6.1, 5000-byte key
    );
  });

  it("_GENERAL takes a MAC length of 1 to the hash size (parameter checked before the key)", () => {
    for (const macLength of [0, 33, 1.5, -1]) {
      expect(general.init(new Uint8Array(1), { macLength })).toMatchObject({ rv: "CKR_MECHANISM_PARAM_INVALID" });
    }
    expect(general.init(key, undefined)).toMatchObject({ rv: "CKR_MECHANISM_PARAM_INVALID" });
    const full = hex(ok(sha256.once(key, undefined, abc)).out);
    for (const macLength of [1, 16, 32]) {
      expect(hex(ok(general.once(key, { macLength }, abc)).out)).toBe(full.slice(0, macLength * 2));
      expect(general.macLength({ macLength })).toBe(macLength);
    }
    expect(sha256.macLength(undefined)).toBe(32);
  });

  it("verify: wrong length → CKR_SIGNATURE_LEN_RANGE, wrong MAC → CKR_SIGNATURE_INVALID", () => {
    const mac = ok(sha256.once(key, undefined, abc)).out;
    const state = sha256.update(ok(sha256.init(key, undefined)).state, abc);
    expect(sha256.verifyFinal(key, state, mac)).toEqual({ ok: true });
    expect(sha256.verifyFinal(key, state, mac.subarray(0, 16))).toEqual({ ok: false, rv: "CKR_SIGNATURE_LEN_RANGE", reason: "signature-len" });
    expect(sha256.verifyOnce(key, undefined, abc, new Uint8Array(33))).toMatchObject({ rv: "CKR_SIGNATURE_LEN_RANGE" });
    const wrong = mac.slice();
    wrong[31]! ^= 1;
    expect(sha256.verifyFinal(key, state, wrong)).toEqual({ ok: false, rv: "CKR_SIGNATURE_INVALID", reason: "signature" });
    const g16 = ok(general.once(key, { macLength: 16 }, abc)).out;
    expect(general.verifyOnce(key, { macLength: 16 }, abc, g16)).toEqual({ ok: true });
    expect(general.verifyOnce(key, { macLength: 16 }, abc, mac)).toMatchObject({ rv: "CKR_SIGNATURE_LEN_RANGE" });
  });

  it("the state holds no key: finishing it under another key gives another MAC", () => {
    const s = sha256.update(ok(sha256.init(key, undefined)).state, abc);
    expect(JSON.stringify(s)).not.toContain("07070707");
    expect(Object.keys(s).sort()).toEqual(["inner", "macLength"]);
    expect(hex(sha256.final(new Uint8Array(32).fill(8), s))).not.toBe(hex(sha256.final(key, s)));
    expect(sha256.parseState(JSON.parse(JSON.stringify(s)))).toEqual(s);
    expect(sha256.parseState({ ...s, macLength: 16 })).toBeUndefined(); // only _GENERAL truncates
    expect(general.parseState({ ...s, macLength: 16 })).toEqual({ ...s, macLength: 16 });
  });
});
