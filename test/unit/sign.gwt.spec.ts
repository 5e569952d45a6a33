/**
 * Signing and verifying with HMACs, given / when / then, both profiles: C_SignInit, C_Sign, C_SignUpdate,
 * C_SignFinal and the Verify ones (src/functions/sign.ts, crypto-op.ts), C_DigestKey (digest.ts), and
 * re-authentication (C_Login with CKU_CONTEXT_SPECIFIC) as SoftHSM 2.6.1 has it for secret keys: never pending.
 * RFC 4231 known answers through the calls; the _GENERAL variants (default profile only).
 */
import { createHash, createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { given, steps, ok, capture, CK, SOFTHSM, PROFILES, USER_PIN, bytes, type Setup } from "../support/gwt.js";
import { keys, start, hmac, general, ecb, hex, toHex, withKey, GEN64 } from "../support/crypto-setup.js";
import { RFC4231_VECTORS } from "./crypto/vectors.js";

const MSG = bytes("a message to authenticate");
const MAC = new Uint8Array(createHmac("sha256", Buffer.from(GEN64, "hex")).update(MSG).digest());
const signing = (mechanism: object = hmac(), key = "gen") => steps(keys, start("C_SignInit", mechanism, key));
const verifying = (mechanism: object = hmac(), key = "gen") => steps(keys, start("C_VerifyInit", mechanism, key));
const signUpdate =
  (data: Uint8Array, fn: "C_SignUpdate" | "C_VerifyUpdate" = "C_SignUpdate"): Setup =>
  (c, h) =>
    void ok(c(fn, { hSession: h.rw!, data }));

describe("C_SignInit / C_VerifyInit", () => {
  it("two rules at once: not initialised wins over a NULL mechanism", () =>
    given().when("C_SignInit", { hSession: 1, mechanism: null, hKey: 1 }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a NULL mechanism wins over an invalid session", () =>
    given(keys).when("C_VerifyInit", { hSession: 99, mechanism: null, hKey: 1 }).then("CKR_ARGUMENTS_BAD", []));
  it.each(PROFILES)("%s: two rules at once: an active operation wins over a bad key handle", (_, opts) =>
    void given(signing(), opts).when("C_VerifyInit", (h) => ({ hSession: h.rw!, mechanism: hmac(), hKey: 0xdead })).then("CKR_OPERATION_ACTIVE", []));
  it.each(PROFILES)("%s: two rules at once: a bad handle (OBJECT_HANDLE_INVALID) wins over a bad mechanism", (_, opts) =>
    void given(keys, opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: 0x12345 }, hKey: 0xdead })).then("CKR_OBJECT_HANDLE_INVALID", []));
  it.each(PROFILES)("%s: two rules at once: CKA_SIGN=false wins over the allowed list and the key type", (_, opts) => {
    given(keys, opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: hmac(), hKey: h.noUse! })).then("CKR_KEY_FUNCTION_NOT_PERMITTED", []);
    given(keys, opts).when("C_VerifyInit", (h) => ({ hSession: h.rw!, mechanism: hmac(), hKey: h.noUse! })).then("CKR_KEY_FUNCTION_NOT_PERMITTED", []);
  });
  it.each(PROFILES)("%s: key types: GENERIC_SECRET or the matching CKK_*_HMAC; AES → KEY_TYPE_INCONSISTENT", (_, opts) => {
    given(keys, opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: hmac(), hKey: h.aes256! })).then("CKR_KEY_TYPE_INCONSISTENT", []);
    given(keys, opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: hmac(CK.CKM_SHA512_HMAC), hKey: h.hmac256! })).then("CKR_KEY_TYPE_INCONSISTENT", []);
    given(keys, opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: hmac(), hKey: h.hmac256! })).then("CKR_OK", ["CryptoStarted"]);
  });
  it.each(PROFILES)("%s: two rules at once: the key type wins over the key size", (_, opts) => {
    const short = withKey("short", CK.CKK_SHA224_HMAC, new Uint8Array(16));
    given(steps(keys, short), opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: hmac(), hKey: h.short! })).then("CKR_KEY_TYPE_INCONSISTENT", []);
  });
  it.each(PROFILES)("%s: a key shorter than the hash → KEY_SIZE_RANGE; no upper limit", (_, opts) => {
    const short = withKey("short", CK.CKK_GENERIC_SECRET, new Uint8Array(31));
    const long = withKey("long", CK.CKK_GENERIC_SECRET, new Uint8Array(1024));
    given(steps(keys, short), opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: hmac(), hKey: h.short! })).then("CKR_KEY_SIZE_RANGE", []);
    given(steps(keys, long), opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: hmac(CK.CKM_SHA512_HMAC), hKey: h.long! })).then("CKR_OK", ["CryptoStarted"]);
  });
  it.each(PROFILES)("%s: a parameter given to a plain HMAC is ignored", (_, opts) =>
    void given(keys, opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256_HMAC, parameter: bytes("junk") }, hKey: h.gen! })).then("CKR_OK", ["CryptoStarted"]));
  it.each(PROFILES)("%s: not a MAC (a digest, a cipher, unknown) → MECHANISM_INVALID", (_, opts) => {
    for (const mechanism of [{ mechanism: CK.CKM_SHA256 }, ecb, { mechanism: 0x12345 }]) {
      given(keys, opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism, hKey: h.gen! })).then("CKR_MECHANISM_INVALID", []);
    }
  });
  it("_GENERAL: softhsm2 has none (MECHANISM_INVALID); the default profile signs with the MAC length given", () => {
    given(keys, SOFTHSM).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: general(CK.CKM_SHA256_HMAC_GENERAL, 16), hKey: h.gen! })).then("CKR_MECHANISM_INVALID", []);
    const { out } = given(signing(general(CK.CKM_SHA256_HMAC_GENERAL, 16))).when("C_Sign", (h) => ({ hSession: h.rw!, data: MSG, outLen: 64 })).then("CKR_OK", ["OperationEnded"]);
    expect(toHex((out as { data: Uint8Array }).data)).toBe(toHex(MAC.subarray(0, 16)));
    for (const bad of [0, 33]) {
      given(keys).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: general(CK.CKM_SHA256_HMAC_GENERAL, bad), hKey: h.gen! })).then("CKR_MECHANISM_PARAM_INVALID", []);
    }
  });
});

describe("C_Sign / C_SignUpdate / C_SignFinal", () => {
  it("two rules at once: NULL data wins over an invalid session", () =>
    given(signing()).when("C_Sign", { hSession: 99, data: null, outLen: 32 }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: an invalid session wins over no operation", () =>
    given(keys).when("C_SignFinal", { hSession: 99, outLen: 32 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it.each(PROFILES)("%s: known answers: RFC 4231 (keys at least the hash size), single- and multi-part", (_, opts) => {
    const mechs = { sha224: CK.CKM_SHA224_HMAC, sha256: CK.CKM_SHA256_HMAC, sha384: CK.CKM_SHA384_HMAC, sha512: CK.CKM_SHA512_HMAC } as const;
    let checked = 0;
    for (const v of RFC4231_VECTORS) {
      for (const [name, mechanism] of Object.entries(mechs)) {
        const want = v.mac[name as keyof typeof mechs];
        const size = { sha224: 28, sha256: 32, sha384: 48, sha512: 64 }[name as keyof typeof mechs];
        if (!want || v.key.length / 2 < size) continue;
        const k = withKey("k", CK.CKK_GENERIC_SECRET, hex(v.key));
        const one = given(steps(keys, k, start("C_SignInit", { mechanism }, "k")), opts).when("C_Sign", (h) => ({ hSession: h.rw!, data: hex(v.data), outLen: 64 })).then("CKR_OK");
        const data = hex(v.data);
        const multi = given(steps(keys, k, start("C_SignInit", { mechanism }, "k"), signUpdate(data.subarray(0, 5)), signUpdate(data.subarray(5))), opts)
          .when("C_SignFinal", (h) => ({ hSession: h.rw!, outLen: 64 }))
          .then("CKR_OK", ["OperationEnded"]);
        for (const r of [one, multi]) {
          const mac = (r.out as { data: Uint8Array }).data;
          expect(toHex(v.truncate ? mac.subarray(0, v.truncate) : mac), `${v.name} ${name}`).toBe(want);
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(8);
  });
  it.each(PROFILES)("%s: size query and CKR_BUFFER_TOO_SMALL keep the operation", (_, opts) => {
    const later = capture();
    const { h, out } = given(steps(signing(), later.setup), opts).when("C_Sign", (h) => ({ hSession: h.rw!, data: MSG, outLen: 31 })).then("CKR_BUFFER_TOO_SMALL", []);
    expect(out).toEqual({ data: null, length: 32 });
    const c = later.get();
    expect(c("C_Sign", { hSession: h.rw!, data: MSG, outLen: null }).out).toEqual({ data: null, length: 32 });
    expect(toHex(c("C_Sign", { hSession: h.rw!, data: MSG, outLen: 32 }).out.data)).toBe(toHex(MAC));
    expect(c("C_Sign", { hSession: h.rw!, data: MSG, outLen: 32 }).rv).toBe("CKR_OPERATION_NOT_INITIALIZED");
  });
  it.each(PROFILES)("%s: C_Sign after C_SignUpdate → OPERATION_NOT_INITIALIZED, ending it (SoftHSM's allowSinglePart)", (_, opts) =>
    void given(steps(signing(), signUpdate(MSG)), opts).when("C_Sign", (h) => ({ hSession: h.rw!, data: MSG, outLen: 32 })).then("CKR_OPERATION_NOT_INITIALIZED", ["OperationEnded"]));
  it.each(PROFILES)("%s: C_SignFinal with no update signs the empty message", (_, opts) => {
    const { out } = given(signing(), opts).when("C_SignFinal", (h) => ({ hSession: h.rw!, outLen: 32 })).then("CKR_OK", ["OperationEnded"]);
    expect(toHex((out as { data: Uint8Array }).data)).toBe(createHmac("sha256", Buffer.from(GEN64, "hex")).digest("hex"));
  });
  it("the update's data reaches the log sealed; the MAC as a length and a hash", () => {
    const { sim } = given(signing()).when("C_SignUpdate", (h) => ({ hSession: h.rw!, data: MSG })).then("CKR_OK", ["CryptoUpdated"]);
    const text = JSON.stringify([...sim.store.read()]);
    expect(text).not.toContain(Buffer.from(MSG).toString("hex"));
    expect(text).not.toContain(GEN64);
    const r = given(signing()).when("C_Sign", (h) => ({ hSession: h.rw!, data: MSG, outLen: 32 })).then("CKR_OK");
    expect([...r.sim.store.read()].at(-1)!.out).toEqual({ length: 32, sha256: createHash("sha256").update(MAC).digest("hex") });
  });
});

describe("C_Verify / C_VerifyUpdate / C_VerifyFinal", () => {
  it("two rules at once: a NULL signature wins over an invalid session", () =>
    given(verifying()).when("C_Verify", { hSession: 99, data: MSG, signature: null }).then("CKR_ARGUMENTS_BAD", []));
  it.each(PROFILES)("%s: a right MAC → OK; wrong → SIGNATURE_INVALID; wrong length → SIGNATURE_LEN_RANGE; all end it", (_, opts) => {
    given(verifying(), opts).when("C_Verify", (h) => ({ hSession: h.rw!, data: MSG, signature: MAC })).then("CKR_OK", ["OperationEnded"]);
    const bad = Uint8Array.from(MAC);
    bad[0]! ^= 1;
    given(verifying(), opts).when("C_Verify", (h) => ({ hSession: h.rw!, data: MSG, signature: bad })).then("CKR_SIGNATURE_INVALID", ["OperationEnded"]);
    given(verifying(), opts).when("C_Verify", (h) => ({ hSession: h.rw!, data: MSG, signature: MAC.subarray(0, 31) })).then("CKR_SIGNATURE_LEN_RANGE", ["OperationEnded"]);
  });
  it.each(PROFILES)("%s: two rules at once: a wrong length wins over a wrong MAC (multi-part)", (_, opts) =>
    void given(steps(verifying(), signUpdate(MSG, "C_VerifyUpdate")), opts).when("C_VerifyFinal", (h) => ({ hSession: h.rw!, signature: new Uint8Array(33) })).then("CKR_SIGNATURE_LEN_RANGE", ["OperationEnded"]));
  it.each(PROFILES)("%s: multi-part verify", (_, opts) =>
    void given(steps(verifying(), signUpdate(MSG.subarray(0, 3), "C_VerifyUpdate"), signUpdate(MSG.subarray(3), "C_VerifyUpdate")), opts)
      .when("C_VerifyFinal", (h) => ({ hSession: h.rw!, signature: MAC }))
      .then("CKR_OK", ["OperationEnded"]));
  it.each(PROFILES)("%s: C_Verify after an update → OPERATION_NOT_INITIALIZED; a sign step during a verify too", (_, opts) => {
    given(steps(verifying(), signUpdate(MSG, "C_VerifyUpdate")), opts).when("C_Verify", (h) => ({ hSession: h.rw!, data: MSG, signature: MAC })).then("CKR_OPERATION_NOT_INITIALIZED", ["OperationEnded"]);
    given(verifying(), opts).when("C_SignUpdate", (h) => ({ hSession: h.rw!, data: MSG })).then("CKR_OPERATION_NOT_INITIALIZED", []);
  });
});

describe("re-authentication (CKU_CONTEXT_SPECIFIC) with secret keys", () => {
  it.each(PROFILES)("%s: an HMAC never waits for it: C_Login(CONTEXT_SPECIFIC) → OPERATION_NOT_INITIALIZED, the MAC goes on", (_, opts) => {
    const later = capture();
    const { h } = given(steps(signing(), later.setup), opts).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_CONTEXT_SPECIFIC, pin: USER_PIN })).then("CKR_OPERATION_NOT_INITIALIZED", []);
    expect(toHex(later.get()("C_Sign", { hSession: h.rw!, data: MSG, outLen: 32 }).out.data)).toBe(toHex(MAC));
  });
  it.each(PROFILES)("%s: secret keys have no CKA_ALWAYS_AUTHENTICATE (CKR_ATTRIBUTE_TYPE_INVALID)", (_, opts) =>
    void given(keys, opts)
      .when("C_GetAttributeValue", (h) => ({ hSession: h.rw!, hObject: h.gen!, template: [{ type: CK.CKA_ALWAYS_AUTHENTICATE, value: null }] }))
      .then("CKR_ATTRIBUTE_TYPE_INVALID", []));
});

describe("C_DigestKey", () => {
  const digesting = (m: number = CK.CKM_SHA256): Setup => (c, h) => void ok(c("C_DigestInit", { hSession: h.rw!, mechanism: { mechanism: m } }));
  it("two rules at once: an invalid session wins over no digest", () => given(keys).when("C_DigestKey", { hSession: 99, hKey: 1 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it.each(PROFILES)("%s: two rules at once: no digest running wins over a bad handle", (_, opts) =>
    void given(keys, opts).when("C_DigestKey", (h) => ({ hSession: h.rw!, hKey: 0xdead })).then("CKR_OPERATION_NOT_INITIALIZED", []));
  it.each(PROFILES)("%s: a bad handle is CKR_KEY_HANDLE_INVALID here", (_, opts) =>
    void given(steps(keys, digesting()), opts).when("C_DigestKey", (h) => ({ hSession: h.rw!, hKey: 0xdead })).then("CKR_KEY_HANDLE_INVALID", []));
  it.each(PROFILES)("%s: SHA-256 digests an unextractable key's value (the digest equals SHA-256(key))", (_, opts) => {
    const later = capture();
    const { h } = given(steps(keys, digesting(), later.setup), opts).when("C_DigestKey", (h) => ({ hSession: h.rw!, hKey: h.gen! })).then("CKR_OK", ["DigestUpdated"]);
    expect(toHex(later.get()("C_DigestFinal", { hSession: h.rw!, outLen: 32 }).out.digest)).toBe(createHash("sha256").update(Buffer.from(GEN64, "hex")).digest("hex"));
  });
  it.each(PROFILES)("%s: MD5 refuses an unextractable key: CKR_KEY_INDIGESTIBLE", (_, opts) =>
    void given(steps(keys, digesting(CK.CKM_MD5)), opts).when("C_DigestKey", (h) => ({ hSession: h.rw!, hKey: h.gen! })).then("CKR_KEY_INDIGESTIBLE", []));
  it("the key's value reaches the log sealed", () => {
    const { sim } = given(steps(keys, digesting())).when("C_DigestKey", (h) => ({ hSession: h.rw!, hKey: h.gen! })).then("CKR_OK");
    expect(JSON.stringify([...sim.store.read()])).not.toContain(GEN64);
  });
});
