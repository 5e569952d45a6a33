/**
 * The registry (src/crypto/mechanisms/index.ts) and the random sources (random.ts): which mechanisms exist, what
 * C_GetMechanismInfo reports for them (SoftHSM 2.6.1's values, observed through pkcs11js), which may be saved, and
 * seeded randomness that repeats.
 */
import { describe, expect, it } from "vitest";
import { MECHANISMS, createMechanisms, mechanismEntry } from "../../../src/crypto/mechanisms/index.js";
import { NOBLE_ENGINES } from "../../../src/crypto/mechanisms/engines.js";
import { seededRandom, systemRandom } from "../../../src/crypto/mechanisms/random.js";
import { CK } from "../../../src/pkcs11/constants.js";
import { hex } from "./harness.js";

describe("the mechanism registry", () => {
  const ENC_DEC = CK.CKF_ENCRYPT | CK.CKF_DECRYPT;
  const SIGN_VERIFY = CK.CKF_SIGN | CK.CKF_VERIFY;
  /** name → [family, minKeySize, maxKeySize, flags, saveable, in SoftHSM] */
  const expected = {
    CKM_AES_ECB: ["cipher", 16, 32, ENC_DEC, true, true],
    CKM_AES_CBC: ["cipher", 16, 32, ENC_DEC | CK.CKF_WRAP, true, true],
    CKM_AES_CBC_PAD: ["cipher", 16, 32, ENC_DEC, true, true],
    CKM_AES_CTR: ["cipher", 16, 32, ENC_DEC, true, true],
    CKM_AES_GCM: ["cipher", 16, 32, ENC_DEC, false, true],
    CKM_AES_KEY_WRAP: ["wrap", 16, 0x80000000, CK.CKF_WRAP | CK.CKF_UNWRAP, false, true],
    CKM_AES_KEY_WRAP_PAD: ["wrap", 1, 0x80000000, CK.CKF_WRAP | CK.CKF_UNWRAP, false, true],
    CKM_MD5: ["digest", 0, 0, CK.CKF_DIGEST, true, true],
    CKM_SHA_1: ["digest", 0, 0, CK.CKF_DIGEST, true, true],
    CKM_SHA224: ["digest", 0, 0, CK.CKF_DIGEST, true, true],
    CKM_SHA256: ["digest", 0, 0, CK.CKF_DIGEST, true, true],
    CKM_SHA384: ["digest", 0, 0, CK.CKF_DIGEST, true, true],
    CKM_SHA512: ["digest", 0, 0, CK.CKF_DIGEST, true, true],
    CKM_MD5_HMAC: ["mac", 16, 512, SIGN_VERIFY, true, true],
    CKM_SHA_1_HMAC: ["mac", 20, 512, SIGN_VERIFY, true, true],
    CKM_SHA224_HMAC: ["mac", 28, 512, SIGN_VERIFY, true, true],
    CKM_SHA256_HMAC: ["mac", 32, 512, SIGN_VERIFY, true, true],
    CKM_SHA384_HMAC: ["mac", 48, 512, SIGN_VERIFY, true, true],
    CKM_SHA512_HMAC: ["mac", 64, 512, SIGN_VERIFY, true, true],
    CKM_MD5_HMAC_GENERAL: ["mac", 16, 512, SIGN_VERIFY, true, false],
    CKM_SHA_1_HMAC_GENERAL: ["mac", 20, 512, SIGN_VERIFY, true, false],
    CKM_SHA224_HMAC_GENERAL: ["mac", 28, 512, SIGN_VERIFY, true, false],
    CKM_SHA256_HMAC_GENERAL: ["mac", 32, 512, SIGN_VERIFY, true, false],
    CKM_SHA384_HMAC_GENERAL: ["mac", 48, 512, SIGN_VERIFY, true, false],
    CKM_SHA512_HMAC_GENERAL: ["mac", 64, 512, SIGN_VERIFY, true, false],
  } as const;

  it("holds exactly these mechanisms, keyed by their CKM_* value", () => {
    expect([...MECHANISMS.values()].map((e) => e.name).sort()).toEqual(Object.keys(expected).sort());
    for (const [value, entry] of MECHANISMS) expect(value).toBe(CK[entry.name]);
  });

  it.each(Object.entries(expected))("%s", (name, [family, min, max, flags, saveable, softhsm]) => {
    const e = mechanismEntry(CK[name as keyof typeof expected])!;
    expect({ family: e.family, ...e.info, saveable: e.saveable, softhsm: e.softhsm }).toEqual({
      family,
      minKeySize: min,
      maxKeySize: max,
      flags,
      saveable,
      softhsm,
    });
  });

  it("parameter kinds tell the caller what to decode", () => {
    const kinds = Object.fromEntries([...MECHANISMS.values()].map((e) => [e.name, e.param]));
    expect(kinds).toMatchObject({
      CKM_AES_ECB: "none",
      CKM_AES_CBC: "iv",
      CKM_AES_CBC_PAD: "iv",
      CKM_AES_CTR: "ctr",
      CKM_AES_GCM: "gcm",
      CKM_SHA256_HMAC: "none",
      CKM_SHA256_HMAC_GENERAL: "mac-length",
      CKM_AES_KEY_WRAP: "none",
    });
  });

  it("answers undefined for a mechanism it does not implement", () => {
    expect(mechanismEntry(CK.CKM_RSA_PKCS)).toBeUndefined();
    expect(mechanismEntry(CK.CKM_AES_CMAC)).toBeUndefined();
  });

  it("builds the same registry on noble", () => {
    const noble = createMechanisms(NOBLE_ENGINES);
    expect([...noble.keys()]).toEqual([...MECHANISMS.keys()]);
  });
});

describe("random sources", () => {
  it("a seeded source repeats, and C_SeedRandom changes what follows deterministically", () => {
    const a = seededRandom(new TextEncoder().encode("seed"));
    const b = seededRandom(new TextEncoder().encode("seed"));
    expect(hex(a.bytes(40))).toBe(hex(b.bytes(40)));
    a.seed(Uint8Array.of(1));
    b.seed(Uint8Array.of(1));
    expect(hex(a.bytes(16))).toBe(hex(b.bytes(16)));
    b.seed(Uint8Array.of(2));
    expect(hex(a.bytes(16))).not.toBe(hex(b.bytes(16)));
    expect(hex(seededRandom(Uint8Array.of(1)).bytes(16))).not.toBe(hex(seededRandom(Uint8Array.of(2)).bytes(16)));
  });

  it("serves requests past the DRBG's 64 KiB limit, and zero bytes", () => {
    const r = seededRandom(new Uint8Array(0));
    expect(r.bytes(200_000)).toHaveLength(200_000);
    expect(r.bytes(0)).toHaveLength(0);
    expect(systemRandom.bytes(33)).toHaveLength(33);
    expect(hex(systemRandom.bytes(16))).not.toBe(hex(systemRandom.bytes(16)));
    systemRandom.seed(Uint8Array.of(1, 2, 3));
  });

  it("labels misuse", () => {
    expect(() => systemRandom.bytes(-1)).toThrow(RangeError);
    expect(() => seededRandom(new Uint8Array(1)).bytes(1.5)).toThrow(RangeError);
    expect(() => seededRandom("seed" as unknown as Uint8Array)).toThrow(TypeError);
  });
});
