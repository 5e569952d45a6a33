/**
 * Encryption and decryption, given / when / then, both profiles: C_EncryptInit, C_Encrypt, C_EncryptUpdate,
 * C_EncryptFinal and the Decrypt ones (src/functions/encrypt.ts, crypto-op.ts). Every rule of the init check table
 * (docs/notes/softhsm-keys.md §3) with "two rules at once" tests for each neighbouring pair, the step checks and sizes
 * (SoftHSM's SymEncrypt* / SymDecrypt*), what keeps an operation and what ends it, the profile switch `cryptoErrors`,
 * known answers through the PKCS#11 calls (NIST SP 800-38A, the GCM specification's test case 4), and what the log
 * keeps (sealed inputs, hashed ciphertexts, plaintext lengths only).
 */
import { describe, expect, it } from "vitest";
import { given, steps, ok, capture, CK, SOFTHSM, PROFILES, setups, type Setup } from "../support/gwt.js";
import { keys, start, cbc, cbcPad, ecb, ctr, gcm, hmac, hex, toHex, IV, AES128 } from "../support/crypto-setup.js";
import { SP800_38A_CBC, SP800_38A_CTR, SP800_38A_CTR_COUNTER, SP800_38A_ECB, SP800_38A_PLAINTEXT, GCM_VECTORS } from "./crypto/vectors.js";

const PT = hex(SP800_38A_PLAINTEXT);
const BAD = 0xdead;
const encrypting = (mechanism: object = ecb, key = "aes") => steps(keys, start("C_EncryptInit", mechanism, key));
const decrypting = (mechanism: object = ecb, key = "aes") => steps(keys, start("C_DecryptInit", mechanism, key));
const encUpdate =
  (data: Uint8Array): Setup =>
  (c, h) =>
    void ok(c("C_EncryptUpdate", { hSession: h.rw!, data, outLen: data.length + 32 }));

describe("C_EncryptInit / C_DecryptInit: the check order", () => {
  it("two rules at once: not initialised wins over a NULL mechanism", () =>
    given().when("C_EncryptInit", { hSession: 1, mechanism: null, hKey: 1 }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a NULL mechanism wins over an invalid session", () =>
    given(keys).when("C_EncryptInit", { hSession: 99, mechanism: null, hKey: 1 }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: an invalid session wins over a bad key", () =>
    given(keys).when("C_DecryptInit", { hSession: 99, mechanism: ecb, hKey: BAD }).then("CKR_SESSION_HANDLE_INVALID", []));
  it.each(PROFILES)("%s: two rules at once: an active operation wins over a bad key handle", (_, opts) => {
    given(encrypting(), opts).when("C_DecryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: BAD })).then("CKR_OPERATION_ACTIVE", []);
    given(encrypting(), opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: hmac(), hKey: BAD })).then("CKR_OPERATION_ACTIVE", []);
  });
  it("an active digest or find blocks an encryption", () => {
    const digesting: Setup = (c, h) => void ok(c("C_DigestInit", { hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256 } }));
    given(steps(keys, digesting)).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: h.aes! })).then("CKR_OPERATION_ACTIVE", []);
    const finding: Setup = (c, h) => void ok(c("C_FindObjectsInit", { hSession: h.rw!, template: [] }));
    given(steps(keys, finding)).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: h.aes! })).then("CKR_OPERATION_ACTIVE", []);
  });
  it.each(PROFILES)("%s: a bad key handle is CKR_OBJECT_HANDLE_INVALID, never KEY_HANDLE_INVALID", (_, opts) => {
    given(keys, opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: BAD })).then("CKR_OBJECT_HANDLE_INVALID", []);
    given(keys, opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: 0 })).then("CKR_OBJECT_HANDLE_INVALID", []);
  });
  it("a private key's handle dies at logout: CKR_OBJECT_HANDLE_INVALID", () => {
    const logout: Setup = (c, h) => void ok(c("C_Logout", { hSession: h.rw! }));
    given(steps(keys, logout)).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: h.aes! })).then("CKR_OBJECT_HANDLE_INVALID", []);
  });
  it.each(PROFILES)("%s: two rules at once: CKA_ENCRYPT=false wins over a mechanism of the wrong key type", (_, opts) => {
    given(keys, opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: h.noUse! })).then("CKR_KEY_FUNCTION_NOT_PERMITTED", []);
    given(keys, opts).when("C_DecryptInit", (h) => ({ hSession: h.rw!, mechanism: cbc(null), hKey: h.noUse! })).then("CKR_KEY_FUNCTION_NOT_PERMITTED", []);
  });
  it.each(PROFILES)("%s: a data object used as a key is KEY_FUNCTION_NOT_PERMITTED (no CKA_ENCRYPT)", (_, opts) => {
    const data: Setup = (c, h) =>
      void (h.data = ok(c("C_CreateObject", { hSession: h.rw!, template: [{ type: CK.CKA_CLASS, value: new Uint8Array(8) }, { type: CK.CKA_TOKEN, value: Uint8Array.of(0) }] })).hObject);
    given(steps(keys, data), opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: h.data! })).then("CKR_KEY_FUNCTION_NOT_PERMITTED", []);
  });
  it.each(PROFILES)("%s: two rules at once: CKA_ALLOWED_MECHANISMS wins over the key type", (_, opts) => {
    given(keys, opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: h.onlyCbc! })).then("CKR_MECHANISM_INVALID", []);
    given(keys, opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: hmac(), hKey: h.onlyCbc! })).then("CKR_MECHANISM_INVALID", []);
    given(keys, opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: cbc(), hKey: h.onlyCbc! })).then("CKR_OK", ["CryptoStarted"]);
  });
  it.each(PROFILES)("%s: two rules at once: the key type wins over bad parameters", (_, opts) => {
    given(keys, opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: cbc(null), hKey: h.gen! })).then("CKR_KEY_TYPE_INCONSISTENT", []);
    given(keys, opts).when("C_DecryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: h.hmac256! })).then("CKR_KEY_TYPE_INCONSISTENT", []);
  });
  it.each(PROFILES)("%s: parameters: NULL or empty IV, CTR block size → ARGUMENTS_BAD; counter bits → MECHANISM_PARAM_INVALID", (_, opts) => {
    for (const mechanism of [cbc(null), cbcPad(new Uint8Array(0)), { mechanism: CK.CKM_AES_CTR, parameter: new Uint8Array(23) }, gcm(IV, null, 129), gcm(IV, null, 100)]) {
      given(keys, opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism, hKey: h.aes! })).then("CKR_ARGUMENTS_BAD", []);
    }
    for (const bits of [0, 129]) {
      given(keys, opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: ctr(bits, IV), hKey: h.aes! })).then("CKR_MECHANISM_PARAM_INVALID", []);
    }
  });
  it("two rules at once: parameters win over the key size", () =>
    given(keys).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: cbc(null), hKey: h.aes10! })).then("CKR_ARGUMENTS_BAD", []));
  it("softhsm2: an IV of 15 bytes and a 10-byte AES key are CKR_MECHANISM_INVALID", () => {
    given(keys, SOFTHSM).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: cbc(new Uint8Array(15)), hKey: h.aes! })).then("CKR_MECHANISM_INVALID", []);
    given(keys, SOFTHSM).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: h.aes10! })).then("CKR_MECHANISM_INVALID", []);
  });
  it("default: the spec's codes: CKR_MECHANISM_PARAM_INVALID for the IV, CKR_KEY_SIZE_RANGE for the key", () => {
    given(keys).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: cbc(new Uint8Array(15)), hKey: h.aes! })).then("CKR_MECHANISM_PARAM_INVALID", []);
    given(keys).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: h.aes10! })).then("CKR_KEY_SIZE_RANGE", []);
  });
  it("the profile switch alone decides those codes", () =>
    given(keys, { switches: { cryptoErrors: "softhsm" } }).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: ecb, hKey: h.aes10! })).then("CKR_MECHANISM_INVALID", []));
  it.each(PROFILES)("%s: SoftHSM's Asym path: RSA_PKCS with an AES key → KEY_TYPE_INCONSISTENT; unknown → MECHANISM_INVALID", (_, opts) => {
    given(keys, opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_RSA_PKCS }, hKey: h.aes! })).then("CKR_KEY_TYPE_INCONSISTENT", []);
    given(keys, opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: 0x12345 }, hKey: h.aes! })).then("CKR_MECHANISM_INVALID", []);
    // Two rules at once: the usage check runs before the mechanism is looked at.
    given(keys, opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: 0x12345 }, hKey: h.noUse! })).then("CKR_KEY_FUNCTION_NOT_PERMITTED", []);
  });
  it("C_EncryptInit's Asym path skips the allowed list, C_DecryptInit's does not", () => {
    given(keys, SOFTHSM).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_RSA_PKCS }, hKey: h.onlyCbc! })).then("CKR_KEY_TYPE_INCONSISTENT", []);
    given(keys, SOFTHSM).when("C_DecryptInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_RSA_PKCS }, hKey: h.onlyCbc! })).then("CKR_MECHANISM_INVALID", []);
  });
  it("DES3_CBC with an AES key: softhsm2 lists it (KEY_TYPE_INCONSISTENT), the default profile does not (MECHANISM_INVALID)", () => {
    const des = { mechanism: CK.CKM_DES3_CBC, parameter: new Uint8Array(8) };
    given(keys, SOFTHSM).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: des, hKey: h.aes! })).then("CKR_KEY_TYPE_INCONSISTENT", []);
    given(keys).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: des, hKey: h.aes! })).then("CKR_MECHANISM_INVALID", []);
  });
  it("a refused init starts nothing", () => {
    const refused: Setup = (c, h) => void c("C_EncryptInit", { hSession: h.rw!, mechanism: cbc(null), hKey: h.aes! });
    given(steps(keys, refused)).when("C_EncryptUpdate", (h) => ({ hSession: h.rw!, data: PT, outLen: 64 })).then("CKR_OPERATION_NOT_INITIALIZED", []);
  });
  it("records the key and the parameters sealed: the fact holds neither in clear", () => {
    const { sim } = given(keys).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: cbc(), hKey: h.aes! })).then("CKR_OK", ["CryptoStarted"]);
    const record = JSON.stringify([...sim.store.read()].at(-1));
    expect(record).not.toContain(AES128);
    expect(record).toContain('"object"');
  });
});

describe("C_Encrypt", () => {
  it("two rules at once: not initialised wins over NULL data", () =>
    given().when("C_Encrypt", { hSession: 1, data: null, outLen: 16 }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: NULL data wins over an invalid session (and keeps the operation)", () => {
    given(encrypting()).when("C_Encrypt", { hSession: 99, data: null, outLen: 16 }).then("CKR_ARGUMENTS_BAD", []);
    const later = capture();
    const { h } = given(steps(encrypting(), later.setup)).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: null, outLen: 16 })).then("CKR_ARGUMENTS_BAD", []);
    expect(later.get()("C_Encrypt", { hSession: h.rw!, data: PT, outLen: 64 }).rv).toBe("CKR_OK");
  });
  it("two rules at once: a NULL length pointer wins over no operation", () =>
    given(keys).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: PT, outLen: 64, pulLen: null })).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: an invalid session wins over no operation", () =>
    given(keys).when("C_Encrypt", { hSession: 99, data: PT, outLen: 64 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it.each(PROFILES)("%s: no encryption running (none, or a decryption) → OPERATION_NOT_INITIALIZED, which ends nothing", (_, opts) => {
    given(keys, opts).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: PT, outLen: 64 })).then("CKR_OPERATION_NOT_INITIALIZED", []);
    given(decrypting(), opts).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: PT, outLen: 64 })).then("CKR_OPERATION_NOT_INITIALIZED", []);
  });
  it.each(PROFILES)("%s: a size query answers the size and keeps the operation; too small a buffer too", (_, opts) => {
    const q = given(encrypting(cbcPad()), opts).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: PT.subarray(0, 20), outLen: null })).then("CKR_OK", []);
    expect(q.out).toEqual({ data: null, length: 32 });
    const small = given(encrypting(cbcPad()), opts).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: PT, outLen: 79 })).then("CKR_BUFFER_TOO_SMALL", []);
    expect(small.out).toEqual({ data: null, length: 80 });
  });
  it("the operation survives the size answers, then ends with the output", () => {
    const later = capture();
    const { h } = given(steps(encrypting(cbcPad()), later.setup)).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: PT, outLen: 10 })).then("CKR_BUFFER_TOO_SMALL", []);
    const c = later.get();
    expect(c("C_Encrypt", { hSession: h.rw!, data: PT, outLen: null }).rv).toBe("CKR_OK");
    expect(c("C_Encrypt", { hSession: h.rw!, data: PT, outLen: 80 }).rv).toBe("CKR_OK");
    expect(c("C_Encrypt", { hSession: h.rw!, data: PT, outLen: 80 }).rv).toBe("CKR_OPERATION_NOT_INITIALIZED");
  });
  it.each(PROFILES)("%s: ECB and CBC need whole blocks: CKR_DATA_LEN_RANGE, which ends the operation", (_, opts) => {
    given(encrypting(), opts).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: PT.subarray(0, 17), outLen: 64 })).then("CKR_DATA_LEN_RANGE", ["OperationEnded"]);
    given(encrypting(cbc()), opts).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: PT.subarray(0, 1), outLen: null })).then("CKR_DATA_LEN_RANGE", ["OperationEnded"]);
  });
  it.each(PROFILES)("%s: known answers: SP 800-38A F.1.1, F.2.1, F.5.1 and GCM test case 4", (_, opts) => {
    const enc = (mechanism: object) =>
      toHex((given(encrypting(mechanism), opts).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: PT, outLen: 80 })).then("CKR_OK", ["OperationEnded"]).out as { data: Uint8Array }).data);
    expect(enc(ecb)).toBe(SP800_38A_ECB[128]);
    expect(enc(cbc())).toBe(SP800_38A_CBC[128]);
    expect(enc(ctr(128, hex(SP800_38A_CTR_COUNTER)))).toBe(SP800_38A_CTR[128]);
    const v = GCM_VECTORS.find((x) => x.name === "test case 4")!;
    const gk: Setup = (c, h) => void (h.gk = ok(c("C_CreateObject", { hSession: h.rw!, template: [{ type: CK.CKA_CLASS, value: hexLe(CK.CKO_SECRET_KEY) }, { type: CK.CKA_KEY_TYPE, value: hexLe(CK.CKK_AES) }, { type: CK.CKA_TOKEN, value: Uint8Array.of(0) }, { type: CK.CKA_VALUE, value: hex(v.key) }] })).hObject);
    const { out } = given(steps(keys, gk, start("C_EncryptInit", gcm(hex(v.iv), hex(v.aad)), "gk")), opts)
      .when("C_Encrypt", (h) => ({ hSession: h.rw!, data: hex(v.pt), outLen: 100 }))
      .then("CKR_OK");
    expect(toHex((out as { data: Uint8Array }).data)).toBe(v.ct + v.tag);
  });
  it("default: C_Encrypt after an update is refused and ends the operation; softhsm2 runs on", () => {
    given(steps(encrypting(cbcPad()), encUpdate(PT.subarray(0, 5)))).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: PT.subarray(0, 16), outLen: 64 })).then("CKR_OPERATION_NOT_INITIALIZED", ["OperationEnded"]);
    const { out } = given(steps(encrypting(cbcPad()), encUpdate(PT.subarray(0, 5))), SOFTHSM).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: PT.subarray(0, 16), outLen: 64 })).then("CKR_OK", ["OperationEnded"]);
    expect((out as { length: number }).length).toBe(32);
  });
});

describe("C_EncryptUpdate / C_EncryptFinal", () => {
  it.each(PROFILES)("%s: updates return whole blocks; the size is (pending + input) rounded down", (_, opts) => {
    const { out } = given(steps(encrypting(cbc()), encUpdate(PT.subarray(0, 5))), opts).when("C_EncryptUpdate", (h) => ({ hSession: h.rw!, data: PT.subarray(5, 40), outLen: null })).then("CKR_OK", []);
    expect(out).toEqual({ data: null, length: 32 });
    given(steps(encrypting(cbc()), encUpdate(PT.subarray(0, 5))), opts).when("C_EncryptUpdate", (h) => ({ hSession: h.rw!, data: PT.subarray(5, 40), outLen: 31 })).then("CKR_BUFFER_TOO_SMALL", []);
    const r = given(steps(encrypting(cbc()), encUpdate(PT.subarray(0, 5))), opts).when("C_EncryptUpdate", (h) => ({ hSession: h.rw!, data: PT.subarray(5, 40), outLen: 32 })).then("CKR_OK", ["CryptoUpdated"]);
    expect(toHex((r.out as { data: Uint8Array }).data)).toBe(SP800_38A_CBC[128].slice(0, 64));
  });
  it.each(PROFILES)("%s: multi-part CBC = SP 800-38A F.2.1", (_, opts) => {
    const { out } = given(steps(encrypting(cbc()), encUpdate(PT.subarray(0, 7)), encUpdate(PT.subarray(7, 33)), encUpdate(PT.subarray(33))), opts)
      .when("C_EncryptFinal", (h) => ({ hSession: h.rw!, outLen: 16 }))
      .then("CKR_OK", ["OperationEnded"]);
    expect(out).toEqual({ data: new Uint8Array(0), length: 0 });
  });
  it.each(PROFILES)("%s: C_EncryptFinal with a partial block (ECB, CBC) → DATA_LEN_RANGE, ending it; CBC_PAD pads", (_, opts) => {
    given(steps(encrypting(), encUpdate(PT.subarray(0, 17))), opts).when("C_EncryptFinal", (h) => ({ hSession: h.rw!, outLen: 64 })).then("CKR_DATA_LEN_RANGE", ["OperationEnded"]);
    const { out } = given(steps(encrypting(cbcPad()), encUpdate(PT.subarray(0, 17))), opts).when("C_EncryptFinal", (h) => ({ hSession: h.rw!, outLen: null })).then("CKR_OK", []);
    expect(out).toEqual({ data: null, length: 16 });
  });
  it("two rules at once: a NULL length pointer (after the session) ends whatever runs, before OPERATION_NOT_INITIALIZED", () => {
    const digesting: Setup = (c, h) => void ok(c("C_DigestInit", { hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256 } }));
    given(steps(keys, digesting)).when("C_EncryptFinal", (h) => ({ hSession: h.rw!, outLen: 16, pulLen: null })).then("CKR_ARGUMENTS_BAD", ["OperationEnded"]);
    given(keys).when("C_EncryptFinal", (h) => ({ hSession: h.rw!, outLen: 16, pulLen: null })).then("CKR_ARGUMENTS_BAD", []);
    given(keys).when("C_EncryptFinal", { hSession: 99, outLen: 16, pulLen: null }).then("CKR_SESSION_HANDLE_INVALID", []);
  });
  it("the update's data reaches the log sealed; the ciphertext as a length and a hash", () => {
    const secret = new TextEncoder().encode("a secret plaintext of forty bytes, yes.");
    const { sim } = given(encrypting(cbcPad())).when("C_EncryptUpdate", (h) => ({ hSession: h.rw!, data: secret, outLen: 64 })).then("CKR_OK", ["CryptoUpdated"]);
    const r = [...sim.store.read()].at(-1)!;
    expect(JSON.stringify(r)).not.toContain(Buffer.from(secret).toString("hex"));
    expect(r.args.data).toEqual({ len: secret.length });
    expect(r.out).toEqual({ length: 32, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });
});

describe("C_Decrypt / C_DecryptUpdate / C_DecryptFinal", () => {
  const ct = hex(SP800_38A_CBC[128]);
  it.each(PROFILES)("%s: decrypts SP 800-38A F.2.2; the record keeps the plaintext's length only", (_, opts) => {
    const { out, sim } = given(decrypting(cbc()), opts).when("C_Decrypt", (h) => ({ hSession: h.rw!, data: ct, outLen: 64 })).then("CKR_OK", ["OperationEnded"]);
    expect(toHex((out as { data: Uint8Array }).data)).toBe(SP800_38A_PLAINTEXT);
    expect([...sim.store.read()].at(-1)!.out).toEqual({ length: 64 });
  });
  it.each(PROFILES)("%s: a length off the block → ENCRYPTED_DATA_LEN_RANGE, ending it; the size answered is the input's", (_, opts) => {
    given(decrypting(cbcPad()), opts).when("C_Decrypt", (h) => ({ hSession: h.rw!, data: ct.subarray(0, 20), outLen: 64 })).then("CKR_ENCRYPTED_DATA_LEN_RANGE", ["OperationEnded"]);
    const { out } = given(decrypting(cbcPad()), opts).when("C_Decrypt", (h) => ({ hSession: h.rw!, data: ct, outLen: null })).then("CKR_OK", []);
    expect(out).toEqual({ data: null, length: 64 });
  });
  it("a bad pad: default CKR_ENCRYPTED_DATA_INVALID, softhsm2 CKR_GENERAL_ERROR; either ends it", () => {
    given(decrypting(cbcPad())).when("C_Decrypt", (h) => ({ hSession: h.rw!, data: ct, outLen: 64 })).then("CKR_ENCRYPTED_DATA_INVALID", ["OperationEnded"]);
    given(decrypting(cbcPad()), SOFTHSM).when("C_Decrypt", (h) => ({ hSession: h.rw!, data: ct, outLen: 64 })).then("CKR_GENERAL_ERROR", ["OperationEnded"]);
  });
  it.each(PROFILES)("%s: CBC_PAD DecryptUpdate holds the last block back; its size is (pending + input − 1) rounded down", (_, opts) => {
    const { out } = given(decrypting(cbcPad()), opts).when("C_DecryptUpdate", (h) => ({ hSession: h.rw!, data: ct.subarray(0, 32), outLen: null })).then("CKR_OK", []);
    expect(out).toEqual({ data: null, length: 16 });
  });
  it("CBC_PAD C_DecryptFinal with nothing fed: default ENCRYPTED_DATA_LEN_RANGE (ends it); softhsm2 a size no buffer meets", () => {
    given(decrypting(cbcPad())).when("C_DecryptFinal", (h) => ({ hSession: h.rw!, outLen: 64 })).then("CKR_ENCRYPTED_DATA_LEN_RANGE", ["OperationEnded"]);
    given(decrypting(cbcPad()), SOFTHSM).when("C_DecryptFinal", (h) => ({ hSession: h.rw!, outLen: 1 << 30 })).then("CKR_BUFFER_TOO_SMALL", []);
  });
  it("GCM decryption: updates return nothing and need room for everything so far; a bad tag ends it", () => {
    const v = GCM_VECTORS[2]!;
    const gk: Setup = (c, h) => void (h.gk = ok(c("C_CreateObject", { hSession: h.rw!, template: [{ type: CK.CKA_CLASS, value: hexLe(CK.CKO_SECRET_KEY) }, { type: CK.CKA_KEY_TYPE, value: hexLe(CK.CKK_AES) }, { type: CK.CKA_TOKEN, value: Uint8Array.of(0) }, { type: CK.CKA_VALUE, value: hex(v.key) }] })).hObject);
    const mech = gcm(hex(v.iv), null);
    const full = hex(v.ct + v.tag);
    const feed: Setup = (c, h) => void ok(c("C_DecryptUpdate", { hSession: h.rw!, data: full.subarray(0, 30), outLen: 30 }));
    const { out } = given(steps(keys, gk, start("C_DecryptInit", mech, "gk"), feed)).when("C_DecryptUpdate", (h) => ({ hSession: h.rw!, data: full.subarray(30), outLen: null })).then("CKR_OK", []);
    expect(out).toEqual({ data: null, length: full.length });
    const r = given(steps(keys, gk, start("C_DecryptInit", mech, "gk"), feed)).when("C_DecryptUpdate", (h) => ({ hSession: h.rw!, data: full.subarray(30), outLen: 200 })).then("CKR_OK", ["CryptoUpdated"]);
    expect(r.out).toEqual({ data: new Uint8Array(0), length: 0 });
    const bad = Uint8Array.from(full);
    bad[bad.length - 1]! ^= 1;
    given(steps(keys, gk, start("C_DecryptInit", mech, "gk"))).when("C_Decrypt", (h) => ({ hSession: h.rw!, data: bad, outLen: 200 })).then("CKR_ENCRYPTED_DATA_INVALID", ["OperationEnded"]);
    given(steps(keys, gk, start("C_DecryptInit", mech, "gk")), SOFTHSM).when("C_Decrypt", (h) => ({ hSession: h.rw!, data: bad, outLen: 200 })).then("CKR_GENERAL_ERROR", ["OperationEnded"]);
  });
  it("the operation keeps its key: destroying the key object does not stop it", () => {
    const destroy: Setup = (c, h) => void ok(c("C_DestroyObject", { hSession: h.rw!, hObject: h.aes! }));
    const { out } = given(steps(decrypting(cbc()), destroy)).when("C_Decrypt", (h) => ({ hSession: h.rw!, data: ct, outLen: 64 })).then("CKR_OK");
    expect(toHex((out as { data: Uint8Array }).data)).toBe(SP800_38A_PLAINTEXT);
  });
});

function hexLe(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
}

describe("replay without the simulator key", () => {
  it("rebuilds the operation without its key or state; its steps answer CKR_GENERAL_ERROR, never throw", async () => {
    const { Simulator } = await import("../../src/actors/simulator.js");
    const { sim, h } = given(steps(encrypting(cbcPad()), encUpdate(PT.subarray(0, 20)))).when("C_EncryptUpdate", (h) => ({ hSession: h.rw!, data: PT.subarray(20, 40), outLen: 64 })).then("CKR_OK");
    const other = Simulator.replay([...sim.store.read()], { simulatorKey: new Uint8Array(32).fill(0x99) });
    const app = other.application();
    app.appId = 1;
    const op = other.state.apps.get(1)!.sessions.get(h.rw!)!.op as { kind: string; state: unknown };
    expect(op.kind).toBe("encrypt");
    expect(op.state).toBeNull();
    expect(app.call({ fn: "C_EncryptUpdate", args: { hSession: h.rw!, data: PT, outLen: 64 } }).rv).toBe(CK.CKR_GENERAL_ERROR);
    expect(app.call({ fn: "C_EncryptFinal", args: { hSession: h.rw!, outLen: 64 } }).rv).toBe(CK.CKR_GENERAL_ERROR);
    // With the right key the same log rebuilds the state, and the operation finishes.
    const same = Simulator.replay([...sim.store.read()], { simulatorKey: new Uint8Array(32).fill(7) });
    const app2 = same.application();
    app2.appId = 1;
    expect(app2.call({ fn: "C_EncryptFinal", args: { hSession: h.rw!, outLen: 64 } }).rv).toBe(CK.CKR_OK);
  });
});
