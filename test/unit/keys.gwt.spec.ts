/**
 * Secret keys and certificates (docs/notes/softhsm-keys.md §0-§5): C_CreateObject of CKO_SECRET_KEY / CKO_CERTIFICATE,
 * the attribute rules of the table (src/pkcs11/attributes.ts), CKA_CHECK_VALUE, sensitive reads, set / copy / find,
 * C_GenerateKey, C_WrapKey, C_UnwrapKey. Both profiles unless a row of PROFILE_DIFFERENCES says they differ.
 */
import { describe, it, expect } from "vitest";
import { given, setups, steps, loginUser, loginSO, ulong, bytes, CK, RW, PROFILES, ok, capture, type Setup, type Call } from "../support/gwt.js";
import { hexToBytes, bytesToHex } from "../../src/crypto/encoding.js";
import { keyCheckValue, keyValueOf } from "../../src/model/key-material.js";
import { Simulator } from "../../src/actors/simulator.js";
import { snapshotState } from "../../src/model/snapshot.js";
import { caller } from "../support/sim.js";

const T = Uint8Array.of(1);
const F = Uint8Array.of(0);
const UNAVAILABLE = CK.CK_UNAVAILABLE_INFORMATION;
type Attr = { type: number; value: Uint8Array | null };
const attr = (type: number, value: Uint8Array | null): Attr => ({ type, value });
const hex = hexToBytes;

/** testCreateSecretKey's key (fact sheet §18): KCV 08bd28 as AES, 5c3b7c as a generic secret. */
const KEY16 = hex("0102030405060708090a010203040506");
const secretKey = (keyType: number, value: Uint8Array, more: Attr[] = []): Attr[] => [
  attr(CK.CKA_CLASS, ulong(CK.CKO_SECRET_KEY)),
  attr(CK.CKA_KEY_TYPE, ulong(keyType)),
  attr(CK.CKA_TOKEN, F),
  attr(CK.CKA_PRIVATE, T),
  attr(CK.CKA_VALUE, value),
  ...more,
];
const aesKey = (value: Uint8Array = KEY16, more: Attr[] = []) => secretKey(CK.CKK_AES, value, more);
const userSession = steps(setups.token, loginUser);
const createKey =
  (name: string, template: Attr[], session = "rw"): Setup =>
  (c, h) =>
    void (h[name] = ok(c("C_CreateObject", { hSession: h[session]!, template })).hObject);
const read = (c: Call, hSession: number, hObject: number, type: number) =>
  c("C_GetAttributeValue", { hSession, hObject, template: [attr(type, new Uint8Array(256))] });
const readHex = (c: Call, hSession: number, hObject: number, type: number) => {
  const r = ok(read(c, hSession, hObject, type));
  return bytesToHex(r.attrs[0]!.value!);
};

describe.each(PROFILES)("secret keys, C_CreateObject (%s)", (_name, opts) => {
  it("known answer: an AES key's CKA_CHECK_VALUE is AES-ECB(key, 0^16)[0..3] = 08bd28 (testCreateSecretKey)", () => {
    const cap = capture();
    const r = given(steps(userSession, cap.setup), opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey() })).then("CKR_OK", ["ObjectCreated"]);
    expect(readHex(cap.get(), r.h.rw!, r.out.hObject, CK.CKA_CHECK_VALUE)).toBe("08bd28");
    expect(readHex(cap.get(), r.h.rw!, r.out.hObject, CK.CKA_VALUE_LEN)).toBe(bytesToHex(ulong(16)));
  });
  it("known answer: the all-zero AES-128 key's KCV is 66e94b", () => {
    const cap = capture();
    const r = given(steps(userSession, cap.setup), opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey(new Uint8Array(16)) })).then("CKR_OK");
    expect(readHex(cap.get(), r.h.rw!, r.out.hObject, CK.CKA_CHECK_VALUE)).toBe("66e94b");
  });
  it("known answer: a generic secret's KCV is SHA-1(value)[0..3] = 5c3b7c; an empty one's da39a3", () => {
    const cap = capture();
    const r = given(steps(userSession, cap.setup), opts)
      .when("C_CreateObject", (h) => ({ hSession: h.rw!, template: secretKey(CK.CKK_GENERIC_SECRET, KEY16) }))
      .then("CKR_OK");
    expect(readHex(cap.get(), r.h.rw!, r.out.hObject, CK.CKA_CHECK_VALUE)).toBe("5c3b7c");
    const e = ok(cap.get()("C_CreateObject", { hSession: r.h.rw!, template: secretKey(CK.CKK_SHA256_HMAC, new Uint8Array(0)) }));
    expect(readHex(cap.get(), r.h.rw!, e.hObject, CK.CKA_CHECK_VALUE)).toBe("da39a3");
  });
  it("an AES key of a length AES has no key for is accepted, with an empty KCV", () => {
    const cap = capture();
    const r = given(steps(userSession, cap.setup), opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey(new Uint8Array(10)) })).then("CKR_OK");
    expect(readHex(cap.get(), r.h.rw!, r.out.hObject, CK.CKA_CHECK_VALUE)).toBe("");
  });
  it("a CKA_CHECK_VALUE entry must be the computed KCV, wherever it stands in the template", () => {
    given(userSession, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [attr(CK.CKA_CHECK_VALUE, hex("08bd28")), ...aesKey()] })).then("CKR_OK");
    given(userSession, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey(KEY16, [attr(CK.CKA_CHECK_VALUE, hex("08bd"))]) })).then("CKR_ATTRIBUTE_VALUE_INVALID");
    given(userSession, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey(KEY16, [attr(CK.CKA_CHECK_VALUE, hex("5c3b7c"))]) })).then("CKR_ATTRIBUTE_VALUE_INVALID");
  });
  it("an empty CKA_CHECK_VALUE entry stores an empty KCV", () => {
    const cap = capture();
    const r = given(steps(userSession, cap.setup), opts)
      .when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey(KEY16, [attr(CK.CKA_CHECK_VALUE, new Uint8Array(0))]) }))
      .then("CKR_OK");
    expect(readHex(cap.get(), r.h.rw!, r.out.hObject, CK.CKA_CHECK_VALUE)).toBe("");
  });
  it("a secret key without CKA_VALUE is CKR_TEMPLATE_INCOMPLETE (ck1)", () =>
    given(userSession, opts)
      .when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey().filter((a) => a.type !== CK.CKA_VALUE) }))
      .then("CKR_TEMPLATE_INCOMPLETE"));
  it("two rules at once: a missing CKA_KEY_TYPE (template check) wins over the access check", () =>
    given(setups.token, opts)
      .when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey().filter((a) => a.type !== CK.CKA_KEY_TYPE) }))
      .then("CKR_TEMPLATE_INCOMPLETE", []));
  it("two rules at once: the access check wins over an unknown key type (CKK_RSA for a secret key)", () => {
    given(setups.token, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: secretKey(CK.CKK_RSA, KEY16) })).then("CKR_USER_NOT_LOGGED_IN", []);
    given(userSession, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: secretKey(CK.CKK_RSA, KEY16) })).then("CKR_ATTRIBUTE_VALUE_INVALID", []);
  });
  it("AES then GENERIC_SECRET as CKA_KEY_TYPE is CKR_TEMPLATE_INCONSISTENT (the last picks the type, each must equal it)", () =>
    given(userSession, opts)
      .when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [attr(CK.CKA_KEY_TYPE, ulong(CK.CKK_AES)), ...secretKey(CK.CKK_GENERIC_SECRET, KEY16)] }))
      .then("CKR_TEMPLATE_INCONSISTENT"));
  it.each([
    ["CKA_LOCAL", CK.CKA_LOCAL, T],
    ["CKA_ALWAYS_SENSITIVE", CK.CKA_ALWAYS_SENSITIVE, F],
    ["CKA_NEVER_EXTRACTABLE", CK.CKA_NEVER_EXTRACTABLE, F],
    ["CKA_KEY_GEN_MECHANISM", CK.CKA_KEY_GEN_MECHANISM, ulong(CK.CKM_AES_KEY_GEN)],
    ["CKA_VALUE_LEN", CK.CKA_VALUE_LEN, ulong(16)],
  ])("%s may not be given to C_CreateObject (ck2): CKR_ATTRIBUTE_READ_ONLY", (_n, type, value) =>
    void given(userSession, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey(KEY16, [attr(type, value)]) })).then("CKR_ATTRIBUTE_READ_ONLY"));
  it.each([
    ["CKA_ALWAYS_AUTHENTICATE", CK.CKA_ALWAYS_AUTHENTICATE],
    ["CKA_SIGN_RECOVER", CK.CKA_SIGN_RECOVER],
    ["CKA_SUBJECT", CK.CKA_SUBJECT],
    ["CKA_APPLICATION", CK.CKA_APPLICATION],
  ])("%s is not a secret-key attribute: CKR_ATTRIBUTE_TYPE_INVALID", (_n, type) =>
    void given(userSession, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey(KEY16, [attr(type, T)]) })).then("CKR_ATTRIBUTE_TYPE_INVALID"));
  it("defaults: PRIVATE true, SENSITIVE false, EXTRACTABLE false, ENCRYPT…UNWRAP true, DERIVE false, LOCAL false, KEY_GEN_MECHANISM ~0", () => {
    const cap = capture();
    const template = aesKey().filter((a) => a.type !== CK.CKA_PRIVATE);
    const r = given(steps(userSession, cap.setup), opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template })).then("CKR_OK");
    const c = cap.get();
    const b = (t: number) => readHex(c, r.h.rw!, r.out.hObject, t);
    expect([CK.CKA_PRIVATE, CK.CKA_SENSITIVE, CK.CKA_EXTRACTABLE, CK.CKA_ENCRYPT, CK.CKA_DECRYPT, CK.CKA_SIGN, CK.CKA_VERIFY, CK.CKA_WRAP, CK.CKA_UNWRAP, CK.CKA_DERIVE, CK.CKA_LOCAL, CK.CKA_ALWAYS_SENSITIVE, CK.CKA_NEVER_EXTRACTABLE, CK.CKA_TRUSTED, CK.CKA_WRAP_WITH_TRUSTED, CK.CKA_COPYABLE].map(b)).toEqual(
      ["01", "00", "00", "01", "01", "01", "01", "01", "01", "00", "00", "00", "00", "00", "00", "01"],
    );
    expect(b(CK.CKA_KEY_GEN_MECHANISM)).toBe("ffffffffffffffff");
  });
  it("C_CreateObject with SENSITIVE=T, EXTRACTABLE=F still leaves ALWAYS_SENSITIVE and NEVER_EXTRACTABLE false", () => {
    const cap = capture();
    const r = given(steps(userSession, cap.setup), opts)
      .when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey(KEY16, [attr(CK.CKA_SENSITIVE, T), attr(CK.CKA_EXTRACTABLE, F)]) }))
      .then("CKR_OK");
    expect(readHex(cap.get(), r.h.rw!, r.out.hObject, CK.CKA_ALWAYS_SENSITIVE)).toBe("00");
    expect(readHex(cap.get(), r.h.rw!, r.out.hObject, CK.CKA_NEVER_EXTRACTABLE)).toBe("00");
  });
  it("the key value is sealed in the fact: the record holds no key byte", () => {
    const r = given(userSession, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey() })).then("CKR_OK");
    const rec = JSON.stringify([...r.sim.store.read()].at(-1));
    expect(rec).not.toContain(bytesToHex(KEY16));
    expect(rec).toContain('"sealed"');
  });
});

const AES_GEN = { mechanism: CK.CKM_AES_KEY_GEN };
const GENERIC_GEN = { mechanism: CK.CKM_GENERIC_SECRET_KEY_GEN };
const KW = { mechanism: CK.CKM_AES_KEY_WRAP };
const KWP = { mechanism: CK.CKM_AES_KEY_WRAP_PAD };
const valueLen = (n: number) => attr(CK.CKA_VALUE_LEN, ulong(n));
const PUB = [attr(CK.CKA_TOKEN, F), attr(CK.CKA_PRIVATE, F)];

describe.each(PROFILES)("C_GenerateKey (%s)", (_name, opts) => {
  it("two rules at once: a NULL mechanism wins over an invalid session", () =>
    given(userSession, opts).when("C_GenerateKey", { hSession: 999, mechanism: null, template: [] }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: an invalid session wins over a bad mechanism", () =>
    given(userSession, opts).when("C_GenerateKey", { hSession: 999, mechanism: { mechanism: CK.CKM_SHA256 }, template: [] }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("a mechanism that generates no secret key is CKR_MECHANISM_INVALID", () =>
    given(userSession, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_AES_ECB }, template: [valueLen(16)] })).then("CKR_MECHANISM_INVALID", []));
  it("two rules at once: CLASS=DATA (VALUE_INVALID) wins over the access check", () =>
    given(setups.token, opts)
      .when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [attr(CK.CKA_CLASS, ulong(CK.CKO_DATA)), valueLen(16)] }))
      .then("CKR_ATTRIBUTE_VALUE_INVALID", []));
  it("two rules at once: a key type not matching the mechanism (TEMPLATE_INCONSISTENT) wins over the access check", () =>
    given(setups.token, opts)
      .when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [attr(CK.CKA_KEY_TYPE, ulong(CK.CKK_GENERIC_SECRET)), valueLen(16)] }))
      .then("CKR_TEMPLATE_INCONSISTENT", []));
  it("two rules at once: the access check (PRIVATE defaults to true) wins over a missing VALUE_LEN", () =>
    given(setups.token, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [] })).then("CKR_USER_NOT_LOGGED_IN", []));
  it("a public session key needs no login", () =>
    given(setups.token, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [...PUB, valueLen(16)] })).then("CKR_OK", ["ObjectCreated"]));
  it("no VALUE_LEN, or 0, is CKR_TEMPLATE_INCOMPLETE; a 4-byte VALUE_LEN CKR_ATTRIBUTE_VALUE_INVALID", () => {
    given(userSession, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [] })).then("CKR_TEMPLATE_INCOMPLETE", []);
    given(userSession, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [valueLen(0)] })).then("CKR_TEMPLATE_INCOMPLETE", []);
    given(userSession, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [attr(CK.CKA_VALUE_LEN, new Uint8Array(4))] })).then("CKR_ATTRIBUTE_VALUE_INVALID", []);
  });
  it("two rules at once: a non-empty CHECK_VALUE (VALUE_INVALID) wins over a missing VALUE_LEN", () =>
    given(userSession, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [attr(CK.CKA_CHECK_VALUE, hex("08bd28"))] })).then("CKR_ATTRIBUTE_VALUE_INVALID", []));
  it.each([1, 8, 15, 17, 33, 64])("an AES VALUE_LEN of %i is CKR_ATTRIBUTE_VALUE_INVALID", (n) =>
    void given(userSession, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [valueLen(n)] })).then("CKR_ATTRIBUTE_VALUE_INVALID", []));
  it("generic secrets: 1 byte is fine, 0x8000001 is CKR_ATTRIBUTE_VALUE_INVALID; the last VALUE_LEN counts", () => {
    given(userSession, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: GENERIC_GEN, template: [valueLen(1)] })).then("CKR_OK");
    given(userSession, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: GENERIC_GEN, template: [valueLen(0x8000001)] })).then("CKR_ATTRIBUTE_VALUE_INVALID", []);
    given(userSession, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [valueLen(8), valueLen(16)] })).then("CKR_OK");
    given(userSession, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [valueLen(16), valueLen(8)] })).then("CKR_ATTRIBUTE_VALUE_INVALID", []);
  });
  it("28 entries are fine, 29 are CKR_TEMPLATE_INCONSISTENT (counted before CLASS/TOKEN/PRIVATE/KEY_TYPE are dropped)", () => {
    const labels = (n: number) => Array.from({ length: n }, () => attr(CK.CKA_LABEL, bytes("x")));
    given(userSession, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [valueLen(16), ...labels(27)] })).then("CKR_OK");
    given(userSession, opts)
      .when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [attr(CK.CKA_CLASS, ulong(CK.CKO_SECRET_KEY)), valueLen(16), ...labels(27)] }))
      .then("CKR_TEMPLATE_INCONSISTENT", []);
  });
  it.each([
    ["CKA_VALUE", CK.CKA_VALUE, KEY16],
    ["CKA_LOCAL", CK.CKA_LOCAL, T],
    ["CKA_KEY_GEN_MECHANISM", CK.CKA_KEY_GEN_MECHANISM, ulong(CK.CKM_AES_KEY_GEN)],
    ["CKA_ALWAYS_SENSITIVE", CK.CKA_ALWAYS_SENSITIVE, T],
    ["CKA_NEVER_EXTRACTABLE", CK.CKA_NEVER_EXTRACTABLE, T],
  ])("%s in a generate template is CKR_ATTRIBUTE_READ_ONLY (ck4)", (_n, type, value) => {
    const r = given(userSession, opts).when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [...PUB, valueLen(16), attr(type, value)] }));
    // softhsm2 leaves SoftHSM's half-made key behind (switch atomicObjectWrites).
    if (opts === PROFILES[0][1]) r.then("CKR_ATTRIBUTE_READ_ONLY", []);
    else r.then("CKR_ATTRIBUTE_READ_ONLY", ["ObjectCreated"]);
  });
  it("the generated key: LOCAL, KEY_GEN_MECHANISM, ALWAYS_SENSITIVE = SENSITIVE, NEVER_EXTRACTABLE = !EXTRACTABLE, KCV of the value", () => {
    const cap = capture();
    const r = given(steps(userSession, cap.setup), opts)
      .when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [valueLen(32), attr(CK.CKA_SENSITIVE, T), attr(CK.CKA_EXTRACTABLE, T)] }))
      .then("CKR_OK", ["ObjectCreated"]);
    const c = cap.get();
    const b = (t: number) => readHex(c, r.h.rw!, r.out.hKey, t);
    expect([b(CK.CKA_LOCAL), b(CK.CKA_ALWAYS_SENSITIVE), b(CK.CKA_NEVER_EXTRACTABLE), b(CK.CKA_VALUE_LEN), b(CK.CKA_KEY_GEN_MECHANISM)]).toEqual([
      "01",
      "01",
      "00",
      bytesToHex(ulong(32)),
      bytesToHex(ulong(CK.CKM_AES_KEY_GEN)),
    ]);
    expect(read(c, r.h.rw!, r.out.hKey, CK.CKA_VALUE).rv).toBe("CKR_ATTRIBUTE_SENSITIVE");
    // The check value is the KCV of the key bytes, which the model holds (sealed in the log).
    const o = [...r.sim.state.apps.values()][0]!.sessionObjects.values().next().value!;
    const value = o.attrs.get(CK.CKA_VALUE)!;
    expect(value).toHaveLength(32);
    expect(b(CK.CKA_CHECK_VALUE)).toBe(bytesToHex(keyCheckValue(CK.CKK_AES, value)));
    expect(JSON.stringify([...r.sim.store.read()])).not.toContain(bytesToHex(value));
  });
  it("an empty CHECK_VALUE in the template leaves the generated key's KCV empty", () => {
    const cap = capture();
    const r = given(steps(userSession, cap.setup), opts)
      .when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: GENERIC_GEN, template: [valueLen(7), attr(CK.CKA_CHECK_VALUE, new Uint8Array(0))] }))
      .then("CKR_OK");
    expect(readHex(cap.get(), r.h.rw!, r.out.hKey, CK.CKA_CHECK_VALUE)).toBe("");
  });
  it("C_GenerateKey does not check for an active operation", () =>
    given(steps(userSession, (c, h) => void ok(c("C_DigestInit", { hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256 } }))), opts)
      .when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [valueLen(16)] }))
      .then("CKR_OK"));
});


/** RFC 3394 §4 vectors: KEK, key data, wrapped. */
const RFC3394 = [
  ["4.1 128-bit KEK, 128-bit key", "000102030405060708090a0b0c0d0e0f", "00112233445566778899aabbccddeeff", "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5"],
  ["4.2 192-bit KEK, 128-bit key", "000102030405060708090a0b0c0d0e0f1011121314151617", "00112233445566778899aabbccddeeff", "96778b25ae6ca435f92b5b97c050aed2468ab8a17ad84e5d"],
  ["4.3 256-bit KEK, 128-bit key", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "00112233445566778899aabbccddeeff", "64e8c3f9ce0f5ba263e9777905818a2a93c8191e7d6e8ae7"],
  [
    "4.6 256-bit KEK, 256-bit key",
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    "00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f",
    "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21",
  ],
] as const;

const extractable = [attr(CK.CKA_EXTRACTABLE, T)];
const kekAnd = (kek: string, key: string, keyType = CK.CKK_AES, keyMore: Attr[] = extractable): Setup =>
  steps(userSession, createKey("kek", aesKey(hex(kek))), createKey("key", secretKey(keyType, hex(key), keyMore)));

describe.each(PROFILES)("C_WrapKey / C_UnwrapKey (%s)", (_name, opts) => {
  it.each(RFC3394)("known answer RFC 3394 %s through C_WrapKey and back through C_UnwrapKey", (_n, kek, key, wrapped) => {
    const cap = capture();
    const r = given(steps(kekAnd(kek, key), cap.setup), opts)
      .when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: h.key!, outLen: 64 }))
      .then("CKR_OK", []);
    expect(bytesToHex(r.out.wrapped!)).toBe(wrapped);
    const c = cap.get();
    const u = ok(c("C_UnwrapKey", { hSession: r.h.rw!, mechanism: KW, hUnwrappingKey: r.h.kek!, wrappedKey: hex(wrapped), template: aesKey(undefined, extractable).filter((a) => a.type !== CK.CKA_VALUE) }));
    expect(readHex(c, r.h.rw!, u.hKey, CK.CKA_VALUE)).toBe(key);
    // An unwrapped key: VALUE_LEN 0, empty KCV, not LOCAL (§5.2).
    expect(readHex(c, r.h.rw!, u.hKey, CK.CKA_VALUE_LEN)).toBe(bytesToHex(ulong(0)));
    expect(readHex(c, r.h.rw!, u.hKey, CK.CKA_CHECK_VALUE)).toBe("");
    expect(JSON.stringify([...r.sim.store.read()])).not.toContain(key);
  });
  it("known answer RFC 5649 §6 (20-byte key) through C_UnwrapKey with CKM_AES_KEY_WRAP_PAD", () => {
    const cap = capture();
    const r = given(steps(userSession, createKey("kek", aesKey(hex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"))), cap.setup), opts)
      .when("C_UnwrapKey", (h) => ({
        hSession: h.rw!,
        mechanism: KWP,
        hUnwrappingKey: h.kek!,
        wrappedKey: hex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"),
        template: [attr(CK.CKA_CLASS, ulong(CK.CKO_SECRET_KEY)), attr(CK.CKA_KEY_TYPE, ulong(CK.CKK_GENERIC_SECRET)), attr(CK.CKA_EXTRACTABLE, T)],
      }))
      .then("CKR_OK", ["ObjectCreated"]);
    expect(readHex(cap.get(), r.h.rw!, r.out.hKey, CK.CKA_VALUE)).toBe("c37b7e6492584340bed12207808941155068f738");
  });
  it("SoftHSM's KWP zero-pads first: the RFC 5649 20-byte key wraps to cf1e4853…88e367, not the RFC's 138bdeaa…", () => {
    const r = given(kekAnd("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", "c37b7e6492584340bed12207808941155068f738", CK.CKK_GENERIC_SECRET), opts)
      .when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KWP, hWrappingKey: h.kek!, hKey: h.key!, outLen: 64 }))
      .then("CKR_OK");
    const w = bytesToHex(r.out.wrapped!);
    expect(w.startsWith("cf1e4853")).toBe(true);
    expect(w.endsWith("88e367")).toBe(true);
  });
  it("output buffer: a size query answers the length; a short buffer CKR_BUFFER_TOO_SMALL with the length", () => {
    const [, kek, key] = RFC3394[0];
    given(kekAnd(kek, key), opts).when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: h.key!, outLen: null })).then("CKR_OK");
    const r = given(kekAnd(kek, key), opts).when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: h.key!, outLen: 23 })).then("CKR_BUFFER_TOO_SMALL");
    expect(r.out).toEqual({ wrapped: null, length: 24 });
  });
  it("a key created without EXTRACTABLE=true is CKR_KEY_UNEXTRACTABLE, even when not sensitive", () =>
    given(kekAnd(RFC3394[0][1], RFC3394[0][2], CK.CKK_AES, []), opts)
      .when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: h.key!, outLen: 64 }))
      .then("CKR_KEY_UNEXTRACTABLE"));
  it("two rules at once: the wrapping key's type (generic secret) wins over CKA_WRAP=false", () =>
    given(steps(userSession, createKey("kek", secretKey(CK.CKK_GENERIC_SECRET, KEY16, [attr(CK.CKA_WRAP, F)])), createKey("key", aesKey(KEY16, extractable))), opts)
      .when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: h.key!, outLen: 64 }))
      .then("CKR_WRAPPING_KEY_TYPE_INCONSISTENT"));
  it("two rules at once: CKA_WRAP=false wins over an invalid key handle", () =>
    given(steps(userSession, createKey("kek", aesKey(KEY16, [attr(CK.CKA_WRAP, F)]))), opts)
      .when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: 999, outLen: 64 }))
      .then("CKR_KEY_FUNCTION_NOT_PERMITTED"));
  it("an invalid wrapping key handle is CKR_WRAPPING_KEY_HANDLE_INVALID; an invalid key handle CKR_KEY_HANDLE_INVALID", () => {
    given(userSession, opts).when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: 999, hKey: 998, outLen: 64 })).then("CKR_WRAPPING_KEY_HANDLE_INVALID");
    given(steps(userSession, createKey("kek", aesKey())), opts)
      .when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: 998, outLen: 64 }))
      .then("CKR_KEY_HANDLE_INVALID");
  });
  it("ALLOWED_MECHANISMS without the wrap mechanism is CKR_MECHANISM_INVALID", () =>
    given(steps(userSession, createKey("kek", aesKey(KEY16, [attr(CK.CKA_ALLOWED_MECHANISMS, ulong(CK.CKM_AES_CBC))])), createKey("key", aesKey(KEY16, extractable))), opts)
      .when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: h.key!, outLen: 64 }))
      .then("CKR_MECHANISM_INVALID"));
  it("WRAP_WITH_TRUSTED needs a trusted wrapping key: CKR_KEY_NOT_WRAPPABLE", () =>
    given(kekAnd(RFC3394[0][1], RFC3394[0][2], CK.CKK_AES, [...extractable, attr(CK.CKA_WRAP_WITH_TRUSTED, T)]), opts)
      .when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: h.key!, outLen: 64 }))
      .then("CKR_KEY_NOT_WRAPPABLE"));
  it("a KEY_WRAP of a key shorter than 9 bytes is CKR_KEY_SIZE_RANGE; KWP takes it", () => {
    given(kekAnd(RFC3394[0][1], "0102030405", CK.CKK_GENERIC_SECRET), opts)
      .when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: h.key!, outLen: 64 }))
      .then("CKR_KEY_SIZE_RANGE");
    given(kekAnd(RFC3394[0][1], "0102030405", CK.CKK_GENERIC_SECRET), opts)
      .when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KWP, hWrappingKey: h.kek!, hKey: h.key!, outLen: 64 }))
      .then("CKR_OK");
  });
  it("a parameter with KEY_WRAP is CKR_ARGUMENTS_BAD; AES_ECB is CKR_MECHANISM_INVALID", () => {
    given(userSession, opts).when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_AES_KEY_WRAP, parameter: new Uint8Array(8) }, hWrappingKey: 1, hKey: 2, outLen: 64 })).then("CKR_ARGUMENTS_BAD");
    given(userSession, opts).when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_AES_ECB }, hWrappingKey: 1, hKey: 2, outLen: 64 })).then("CKR_MECHANISM_INVALID");
  });
  it("C_UnwrapKey: a blob of the wrong length is CKR_WRAPPED_KEY_LEN_RANGE before the key handle is looked at", () =>
    given(userSession, opts)
      .when("C_UnwrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hUnwrappingKey: 999, wrappedKey: new Uint8Array(20), template: [] }))
      .then("CKR_WRAPPED_KEY_LEN_RANGE", []));
  it("C_UnwrapKey: a tampered blob is CKR_GENERAL_ERROR", () =>
    given(steps(userSession, createKey("kek", aesKey())), opts)
      .when("C_UnwrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hUnwrappingKey: h.kek!, wrappedKey: new Uint8Array(24), template: aesKey().slice(0, 2) }))
      .then("CKR_GENERAL_ERROR", []));
  it("C_UnwrapKey: a template without CKA_KEY_TYPE is CKR_TEMPLATE_INCOMPLETE; CLASS=DATA CKR_ATTRIBUTE_VALUE_INVALID", () => {
    given(steps(userSession, createKey("kek", aesKey())), opts)
      .when("C_UnwrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hUnwrappingKey: h.kek!, wrappedKey: new Uint8Array(24), template: aesKey().slice(0, 1) }))
      .then("CKR_TEMPLATE_INCOMPLETE", []);
    given(steps(userSession, createKey("kek", aesKey())), opts)
      .when("C_UnwrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hUnwrappingKey: h.kek!, wrappedKey: new Uint8Array(24), template: [attr(CK.CKA_CLASS, ulong(CK.CKO_DATA)), attr(CK.CKA_KEY_TYPE, ulong(CK.CKK_AES))] }))
      .then("CKR_ATTRIBUTE_VALUE_INVALID", []);
  });
});

const get = (c: Call, hSession: number, hObject: number, template: Attr[]) => c("C_GetAttributeValue", { hSession, hObject, template });
const set = (c: Call, hSession: number, hObject: number, template: Attr[]) => c("C_SetAttributeValue", { hSession, hObject, template }).rv;
const findAll = (c: Call, hSession: number, template: Attr[]) => {
  const init = c("C_FindObjectsInit", { hSession, template });
  if (init.rv !== "CKR_OK") return init.rv;
  const { handles } = ok(c("C_FindObjects", { hSession, maxCount: 50 }));
  ok(c("C_FindObjectsFinal", { hSession }));
  return handles;
};
/** A user session with one key made from `template` in h.key, and the caller kept for more calls. */
const withKey = (template: Attr[], opts: object) => {
  const cap = capture();
  const r = given(steps(userSession, createKey("key", template), cap.setup), opts).when("C_GetObjectSize", (h) => ({ hSession: h.rw!, hObject: h.key! })).then("CKR_OK");
  // pkcs11js reads SoftHSM's CK_UNAVAILABLE_INFORMATION; the typed API gives it as is.
  expect(r.out.size).toBe(UNAVAILABLE);
  return { c: cap.get(), h: r.h, sim: r.sim };
};

describe.each(PROFILES)("key attributes after creation (%s)", (_name, opts) => {
  it("CKA_SENSITIVE only goes from false to true; once true, writing either value is CKR_ATTRIBUTE_READ_ONLY", () => {
    const { c, h } = withKey(aesKey(), opts);
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_SENSITIVE, F)])).toBe("CKR_OK");
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_SENSITIVE, T)])).toBe("CKR_OK");
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_SENSITIVE, T)])).toBe("CKR_ATTRIBUTE_READ_ONLY");
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_SENSITIVE, F)])).toBe("CKR_ATTRIBUTE_READ_ONLY");
    // ALWAYS_SENSITIVE never follows.
    expect(readHex(c, h.rw!, h.key!, CK.CKA_ALWAYS_SENSITIVE)).toBe("00");
  });
  it("two rules at once: a 2-byte CKA_SENSITIVE on a sensitive key is CKR_ATTRIBUTE_VALUE_INVALID (the size check first)", () => {
    const { c, h } = withKey(aesKey(KEY16, [attr(CK.CKA_SENSITIVE, T)]), opts);
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_SENSITIVE, Uint8Array.of(1, 1))])).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
  });
  it("CKA_EXTRACTABLE only goes from true to false", () => {
    const { c, h } = withKey(aesKey(KEY16, [attr(CK.CKA_EXTRACTABLE, T)]), opts);
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_EXTRACTABLE, T)])).toBe("CKR_OK");
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_EXTRACTABLE, F)])).toBe("CKR_OK");
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_EXTRACTABLE, F)])).toBe("CKR_ATTRIBUTE_READ_ONLY");
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_EXTRACTABLE, T)])).toBe("CKR_ATTRIBUTE_READ_ONLY");
  });
  it("settable: LABEL, ID, dates, DERIVE, ENCRYPT…UNWRAP, CHECK_VALUE; read-only: WRAP_WITH_TRUSTED, TRUSTED, ALLOWED_MECHANISMS, VALUE, KEY_TYPE", () => {
    const { c, h } = withKey(aesKey(KEY16, [attr(CK.CKA_PRIVATE, F)]), opts);
    for (const t of [CK.CKA_DERIVE, CK.CKA_ENCRYPT, CK.CKA_DECRYPT, CK.CKA_SIGN, CK.CKA_VERIFY, CK.CKA_WRAP, CK.CKA_UNWRAP]) expect(set(c, h.rw!, h.key!, [attr(t, F)])).toBe("CKR_OK");
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_ID, bytes("id")), attr(CK.CKA_LABEL, bytes("l")), attr(CK.CKA_START_DATE, bytes("20261126"))])).toBe("CKR_OK");
    for (const [t, v] of [
      [CK.CKA_WRAP_WITH_TRUSTED, F],
      [CK.CKA_WRAP_WITH_TRUSTED, T],
      [CK.CKA_TRUSTED, F],
      [CK.CKA_ALLOWED_MECHANISMS, ulong(CK.CKM_AES_CBC)],
      [CK.CKA_VALUE, KEY16],
      [CK.CKA_KEY_TYPE, ulong(CK.CKK_AES)],
      [CK.CKA_VALUE_LEN, ulong(16)],
    ] as const) {
      expect(set(c, h.rw!, h.key!, [attr(t, v)]), `0x${t.toString(16)}`).toBe("CKR_ATTRIBUTE_READ_ONLY");
    }
  });
  it("CKA_CHECK_VALUE: empty clears it, the right 3 bytes restore it, anything else is CKR_ATTRIBUTE_VALUE_INVALID", () => {
    const { c, h } = withKey(aesKey(), opts);
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_CHECK_VALUE, new Uint8Array(0))])).toBe("CKR_OK");
    expect(readHex(c, h.rw!, h.key!, CK.CKA_CHECK_VALUE)).toBe("");
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_CHECK_VALUE, hex("08bd28"))])).toBe("CKR_OK");
    expect(readHex(c, h.rw!, h.key!, CK.CKA_CHECK_VALUE)).toBe("08bd28");
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_CHECK_VALUE, hex("08bd29"))])).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
  });
  it("C_GetAttributeValue: a sensitive key's value is withheld (length ~0) while the other entries are filled", () => {
    const { c, h } = withKey(aesKey(KEY16, [attr(CK.CKA_SENSITIVE, T), attr(CK.CKA_EXTRACTABLE, T), attr(CK.CKA_LABEL, bytes("lab"))]), opts);
    const r = get(c, h.rw!, h.key!, [attr(CK.CKA_LABEL, new Uint8Array(64)), attr(CK.CKA_VALUE, new Uint8Array(64)), attr(CK.CKA_CHECK_VALUE, new Uint8Array(64))]);
    expect(r.rv).toBe("CKR_ATTRIBUTE_SENSITIVE");
    expect(r.out.attrs.map((a) => a.length)).toEqual([3, UNAVAILABLE, 3]);
    expect(bytesToHex(r.out.attrs[2]!.value!)).toBe("08bd28");
    // Before the size query, too.
    expect(get(c, h.rw!, h.key!, [attr(CK.CKA_VALUE, null)]).rv).toBe("CKR_ATTRIBUTE_SENSITIVE");
  });
  it("two rules at once: CKR_ATTRIBUTE_SENSITIVE outranks TYPE_INVALID and BUFFER_TOO_SMALL", () => {
    const { c, h } = withKey(aesKey(KEY16, [attr(CK.CKA_LABEL, bytes("lab"))]), opts);
    const r = get(c, h.rw!, h.key!, [attr(CK.CKA_VALUE, new Uint8Array(64)), attr(CK.CKA_SIGN_RECOVER, new Uint8Array(1)), attr(CK.CKA_LABEL, new Uint8Array(1))]);
    expect(r.rv).toBe("CKR_ATTRIBUTE_SENSITIVE");
    expect(r.out.attrs.map((a) => a.length)).toEqual([UNAVAILABLE, UNAVAILABLE, UNAVAILABLE]);
  });
  it("an extractable, non-sensitive key's value reads back", () => {
    const { c, h } = withKey(aesKey(KEY16, [attr(CK.CKA_EXTRACTABLE, T)]), opts);
    expect(readHex(c, h.rw!, h.key!, CK.CKA_VALUE)).toBe(bytesToHex(KEY16));
  });
  it("CKA_ALLOWED_MECHANISMS reads back sorted, without duplicates; an empty or ragged value is CKR_ATTRIBUTE_VALUE_INVALID", () => {
    const mechs = (...m: number[]) => Uint8Array.from(m.flatMap((x) => [...ulong(x)]));
    const { c, h } = withKey(aesKey(KEY16, [attr(CK.CKA_ALLOWED_MECHANISMS, mechs(CK.CKM_AES_CBC, CK.CKM_AES_ECB, CK.CKM_AES_CBC, 0x12345))]), opts);
    expect(readHex(c, h.rw!, h.key!, CK.CKA_ALLOWED_MECHANISMS)).toBe(bytesToHex(mechs(0x1081, 0x1082, 0x12345)));
    expect(c("C_CreateObject", { hSession: h.rw!, template: aesKey(KEY16, [attr(CK.CKA_ALLOWED_MECHANISMS, new Uint8Array(0))]) }).rv).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
    expect(c("C_CreateObject", { hSession: h.rw!, template: aesKey(KEY16, [attr(CK.CKA_ALLOWED_MECHANISMS, new Uint8Array(12))]) }).rv).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
  });
  it("C_FindObjects finds a sensitive, unextractable key by its value; ALLOWED_MECHANISMS never matches; KEY_GEN_MECHANISM ~0 does", () => {
    const mech = ulong(CK.CKM_AES_CBC);
    const { c, h } = withKey(aesKey(KEY16, [attr(CK.CKA_SENSITIVE, T), attr(CK.CKA_ALLOWED_MECHANISMS, mech)]), opts);
    expect(findAll(c, h.rw!, [attr(CK.CKA_VALUE, KEY16)])).toEqual([h.key]);
    expect(findAll(c, h.rw!, [attr(CK.CKA_VALUE, new Uint8Array(16))])).toEqual([]);
    expect(findAll(c, h.rw!, [attr(CK.CKA_ALLOWED_MECHANISMS, mech)])).toEqual([]);
    expect(findAll(c, h.rw!, [attr(CK.CKA_KEY_GEN_MECHANISM, hex("ffffffffffffffff"))])).toEqual([h.key]);
    expect(findAll(c, h.rw!, [attr(CK.CKA_CHECK_VALUE, hex("08bd28"))])).toEqual([h.key]);
  });
  it("an 8-byte date on a private key: softhsm2 CKR_GENERAL_ERROR to reads and finds, default readable (switch unreadablePrivateDates); on a public key it reads", () => {
    const { c, h } = withKey(aesKey(KEY16, [attr(CK.CKA_START_DATE, bytes("20261126"))]), opts);
    const softhsm = opts === PROFILES[1][1];
    expect(get(c, h.rw!, h.key!, [attr(CK.CKA_START_DATE, new Uint8Array(8))]).rv).toBe(softhsm ? "CKR_GENERAL_ERROR" : "CKR_OK");
    expect(findAll(c, h.rw!, [attr(CK.CKA_START_DATE, bytes("20261126"))])).toEqual(softhsm ? "CKR_GENERAL_ERROR" : [h.key]);
    const pub = ok(c("C_CreateObject", { hSession: h.rw!, template: aesKey(KEY16, [attr(CK.CKA_PRIVATE, F), attr(CK.CKA_END_DATE, bytes("20271126"))]) })).hObject;
    expect(readHex(c, h.rw!, pub, CK.CKA_END_DATE)).toBe(bytesToHex(bytes("20271126")));
    expect(c("C_CreateObject", { hSession: h.rw!, template: aesKey(KEY16, [attr(CK.CKA_END_DATE, bytes("2027"))]) }).rv).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
  });
  it("C_CopyObject keeps the key (value, LOCAL, KEY_GEN_MECHANISM of a generated key); SENSITIVE may go on, EXTRACTABLE not back", () => {
    const cap = capture();
    const r = given(steps(userSession, cap.setup), opts)
      .when("C_GenerateKey", (h) => ({ hSession: h.rw!, mechanism: AES_GEN, template: [valueLen(16), attr(CK.CKA_EXTRACTABLE, F)] }))
      .then("CKR_OK");
    const c = cap.get();
    const rw = r.h.rw!;
    const copy = ok(c("C_CopyObject", { hSession: rw, hObject: r.out.hKey, template: [attr(CK.CKA_SENSITIVE, T)] })).hObject;
    expect([readHex(c, rw, copy, CK.CKA_LOCAL), readHex(c, rw, copy, CK.CKA_KEY_GEN_MECHANISM)]).toEqual(["01", bytesToHex(ulong(CK.CKM_AES_KEY_GEN))]);
    expect(readHex(c, rw, copy, CK.CKA_CHECK_VALUE)).toBe(readHex(c, rw, r.out.hKey, CK.CKA_CHECK_VALUE));
    expect(c("C_CopyObject", { hSession: rw, hObject: r.out.hKey, template: [attr(CK.CKA_EXTRACTABLE, T)] }).rv).toBe("CKR_ATTRIBUTE_READ_ONLY");
    expect(c("C_CopyObject", { hSession: rw, hObject: r.out.hKey, template: [attr(CK.CKA_KEY_TYPE, ulong(CK.CKK_AES))] }).rv).toBe("CKR_ATTRIBUTE_READ_ONLY");
  });
  it("CKA_TRUSTED=true needs the SO: the user gets CKR_ATTRIBUTE_READ_ONLY, the SO makes a public trusted key", () => {
    given(userSession, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey(KEY16, [attr(CK.CKA_PRIVATE, F), attr(CK.CKA_TRUSTED, T)]) })).then("CKR_ATTRIBUTE_READ_ONLY");
    given(steps(setups.token, loginSO), opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey(KEY16, [attr(CK.CKA_PRIVATE, F), attr(CK.CKA_TRUSTED, T)]) })).then("CKR_OK");
  });
  it("a trusted wrapping key wraps a WRAP_WITH_TRUSTED key", () => {
    const cap = capture();
    const mk = (name: string, t: Attr[]) => createKey(name, t);
    const r = given(
      steps(setups.token, loginSO, mk("kek", aesKey(hex(RFC3394[0][1]), [attr(CK.CKA_PRIVATE, F), attr(CK.CKA_TRUSTED, T)])), mk("key", aesKey(hex(RFC3394[0][2]), [attr(CK.CKA_PRIVATE, F), attr(CK.CKA_EXTRACTABLE, T), attr(CK.CKA_WRAP_WITH_TRUSTED, T)])), cap.setup),
      opts,
    )
      .when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: h.key!, outLen: 64 }))
      .then("CKR_OK");
    expect(bytesToHex(r.out.wrapped!)).toBe(RFC3394[0][3]);
  });
});

/** A CK_ATTRIBUTE array as pkcs11js passes it raw: type, NULL pValue, ulValueLen. */
const rawTemplate = (...entries: [type: number, len: number][]) => {
  const b = new Uint8Array(entries.length * 24);
  const dv = new DataView(b.buffer);
  entries.forEach(([t, l], i) => {
    dv.setBigUint64(i * 24, BigInt(t), true);
    dv.setBigUint64(i * 24 + 16, BigInt(l), true);
  });
  return b;
};

describe.each(PROFILES)("CKA_WRAP_TEMPLATE / CKA_UNWRAP_TEMPLATE (%s)", (_name, opts) => {
  it("stored sorted by type, the first of duplicates kept; read back as types and lengths; a ragged value or a bool of length 0 is VALUE_INVALID", () => {
    const { c, h } = withKey(aesKey(KEY16, [attr(CK.CKA_WRAP_TEMPLATE, rawTemplate([CK.CKA_LABEL, 0], [CK.CKA_ID, 0], [CK.CKA_LABEL, 5]))]), opts);
    expect(get(c, h.rw!, h.key!, [attr(CK.CKA_WRAP_TEMPLATE, null)]).out.attrs[0]!.length).toBe(48);
    expect(readHex(c, h.rw!, h.key!, CK.CKA_WRAP_TEMPLATE)).toBe(bytesToHex(rawTemplate([CK.CKA_LABEL, 0], [CK.CKA_ID, 0])));
    expect(c("C_CreateObject", { hSession: h.rw!, template: aesKey(KEY16, [attr(CK.CKA_WRAP_TEMPLATE, new Uint8Array(25))]) }).rv).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
    expect(c("C_CreateObject", { hSession: h.rw!, template: aesKey(KEY16, [attr(CK.CKA_UNWRAP_TEMPLATE, rawTemplate([CK.CKA_SENSITIVE, 0]))]) }).rv).toBe("CKR_ATTRIBUTE_VALUE_INVALID");
    expect(set(c, h.rw!, h.key!, [attr(CK.CKA_WRAP_TEMPLATE, new Uint8Array(0))])).toBe("CKR_ATTRIBUTE_READ_ONLY");
  });
  it("C_WrapKey: the key must have every template attribute with the same bytes; a private key's byte strings never match", () => {
    const kek = aesKey(hex(RFC3394[0][1]), [attr(CK.CKA_WRAP_TEMPLATE, rawTemplate([CK.CKA_LABEL, 0]))]);
    const pubKey = aesKey(hex(RFC3394[0][2]), [attr(CK.CKA_PRIVATE, F), attr(CK.CKA_EXTRACTABLE, T)]);
    const wrap = (key: Attr[]) =>
      given(steps(userSession, createKey("kek", kek), createKey("key", key)), opts).when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: h.key!, outLen: 64 }));
    wrap(pubKey).then("CKR_OK");
    wrap([...pubKey, attr(CK.CKA_LABEL, bytes("x"))]).then("CKR_KEY_NOT_WRAPPABLE");
    wrap(aesKey(hex(RFC3394[0][2]), [attr(CK.CKA_EXTRACTABLE, T)])).then("CKR_KEY_NOT_WRAPPABLE");
  });
  it("C_UnwrapKey: the unwrap template is checked (each attribute exactly once, same bytes), never applied", () => {
    const kek = aesKey(hex(RFC3394[0][1]), [attr(CK.CKA_UNWRAP_TEMPLATE, rawTemplate([CK.CKA_LABEL, 0]))]);
    const base = [attr(CK.CKA_CLASS, ulong(CK.CKO_SECRET_KEY)), attr(CK.CKA_KEY_TYPE, ulong(CK.CKK_AES))];
    const unwrap = (t: Attr[]) =>
      given(steps(userSession, createKey("kek", kek)), opts).when("C_UnwrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hUnwrappingKey: h.kek!, wrappedKey: hex(RFC3394[0][3]), template: t }));
    unwrap([...base, attr(CK.CKA_LABEL, new Uint8Array(0))]).then("CKR_OK");
    unwrap(base).then("CKR_TEMPLATE_INCONSISTENT", []);
    unwrap([...base, attr(CK.CKA_LABEL, bytes("x"))]).then("CKR_TEMPLATE_INCONSISTENT", []);
    unwrap([...base, attr(CK.CKA_LABEL, new Uint8Array(0)), attr(CK.CKA_LABEL, new Uint8Array(0))]).then("CKR_TEMPLATE_INCONSISTENT", []);
  });
  it("C_UnwrapKey: MODIFIABLE=false in the template makes every later entry read-only (rule 3 holds for unwrap)", () => {
    const r = given(steps(userSession, createKey("kek", aesKey(hex(RFC3394[0][1])))), opts).when("C_UnwrapKey", (h) => ({
      hSession: h.rw!,
      mechanism: KW,
      hUnwrappingKey: h.kek!,
      wrappedKey: hex(RFC3394[0][3]),
      template: [attr(CK.CKA_CLASS, ulong(CK.CKO_SECRET_KEY)), attr(CK.CKA_KEY_TYPE, ulong(CK.CKK_AES)), attr(CK.CKA_MODIFIABLE, F), attr(CK.CKA_LABEL, bytes("l"))],
    }));
    r.then("CKR_ATTRIBUTE_READ_ONLY");
  });
  it("C_UnwrapKey: a CHECK_VALUE entry is compared against an empty key's (AES: any non-empty value fails; generic: da39a3 passes)", () => {
    const unwrap = (keyType: number, cv: string) =>
      given(steps(userSession, createKey("kek", aesKey(hex(RFC3394[0][1])))), opts).when("C_UnwrapKey", (h) => ({
        hSession: h.rw!,
        mechanism: KW,
        hUnwrappingKey: h.kek!,
        wrappedKey: hex(RFC3394[0][3]),
        template: [attr(CK.CKA_CLASS, ulong(CK.CKO_SECRET_KEY)), attr(CK.CKA_KEY_TYPE, ulong(keyType)), attr(CK.CKA_CHECK_VALUE, hex(cv))],
      }));
    unwrap(CK.CKK_AES, "1fa68b").then("CKR_ATTRIBUTE_VALUE_INVALID");
    unwrap(CK.CKK_GENERIC_SECRET, "da39a3").then("CKR_OK");
    unwrap(CK.CKK_AES, "").then("CKR_OK");
  });
});

describe("SoftHSM's half-made keys (profile switch atomicObjectWrites)", () => {
  const failing = (h: Record<string, number>) => ({
    hSession: h.rw!,
    mechanism: AES_GEN,
    template: [valueLen(16), attr(CK.CKA_PRIVATE, F), attr(CK.CKA_LABEL, bytes("orph-gen")), attr(CK.CKA_SIGN_RECOVER, T)],
  });
  it("softhsm2: a failed C_GenerateKey leaves a findable key with an empty value and check value", () => {
    const cap = capture();
    const r = given(steps(userSession, cap.setup), PROFILES[1][1]).when("C_GenerateKey", failing).then("CKR_ATTRIBUTE_TYPE_INVALID", ["ObjectCreated"]);
    const found = findAll(cap.get(), r.h.rw!, [attr(CK.CKA_LABEL, bytes("orph-gen"))]) as number[];
    expect(found).toHaveLength(1);
    expect(readHex(cap.get(), r.h.rw!, found[0]!, CK.CKA_CHECK_VALUE)).toBe("");
    expect(readHex(cap.get(), r.h.rw!, found[0]!, CK.CKA_VALUE_LEN)).toBe(bytesToHex(ulong(16)));
  });
  it("default: the same call changes nothing", () => given(userSession, PROFILES[0][1]).when("C_GenerateKey", failing).then("CKR_ATTRIBUTE_TYPE_INVALID", []));
  it("softhsm2: the half-made key is private until the template's CKA_PRIVATE=false entry has been applied", () => {
    const pub = [attr(CK.CKA_CLASS, ulong(CK.CKO_SECRET_KEY)), attr(CK.CKA_KEY_TYPE, ulong(CK.CKK_AES)), attr(CK.CKA_PRIVATE, F), attr(CK.CKA_VALUE, KEY16)];
    const orphanSeen = (template: Attr[]) => {
      const cap = capture();
      const r = given(steps(setups.token, cap.setup), PROFILES[1][1]).when("C_CreateObject", (h) => ({ hSession: h.rw!, template })).then("CKR_ATTRIBUTE_READ_ONLY", ["ObjectCreated"]);
      return (findAll(cap.get(), r.h.rw!, [attr(CK.CKA_LABEL, bytes("orph"))]) as number[]).length;
    };
    // Observed on SoftHSM 2.6.1 from a public session: 1 and 0.
    expect(orphanSeen([...pub, attr(CK.CKA_LABEL, bytes("orph")), attr(CK.CKA_LOCAL, T)])).toBe(1);
    expect(orphanSeen([attr(CK.CKA_LABEL, bytes("orph")), attr(CK.CKA_LOCAL, T), ...pub])).toBe(0);
  });
});

describe.each(PROFILES)("a log replayed without the simulator key (%s)", (_name, opts) => {
  it("rebuilds the keys sealed: same snapshot, the value unreadable (CKR_GENERAL_ERROR), no wrap, the rest readable", () => {
    const cap = capture();
    const r = given(
      steps(userSession, createKey("key", aesKey(KEY16, [attr(CK.CKA_EXTRACTABLE, T)])), createKey("kek", aesKey(hex(RFC3394[0][1]))), cap.setup),
      opts,
    )
      .when("C_WrapKey", (h) => ({ hSession: h.rw!, mechanism: KW, hWrappingKey: h.kek!, hKey: h.key!, outLen: 64 }))
      .then("CKR_OK");
    const other = new Uint8Array(32).fill(9);
    const replayed = Simulator.replay(r.sim.store.read(), { ...opts, simulatorKey: other, clock: () => 1_800_000_000_000 });
    // The snapshot shows key material as its sealed form: identical, with or without the key.
    expect(snapshotState(replayed.state, replayed.read)).toEqual(r.snapshot());
    expect(JSON.stringify(r.snapshot())).not.toContain(bytesToHex(KEY16));
    const app = replayed.application();
    app.appId = [...r.sim.state.apps.keys()][0]!;
    const c = caller(app);
    expect(get(c, r.h.rw!, r.h.key!, [attr(CK.CKA_VALUE, new Uint8Array(16))]).rv).toBe("CKR_GENERAL_ERROR");
    expect(readHex(c, r.h.rw!, r.h.key!, CK.CKA_CHECK_VALUE)).toBe("08bd28");
    expect(c("C_WrapKey", { hSession: r.h.rw!, mechanism: KW, hWrappingKey: r.h.kek!, hKey: r.h.key!, outLen: 64 }).rv).toBe("CKR_GENERAL_ERROR");
    expect(keyValueOf([...replayed.state.apps.values()][0]!.sessionObjects.values().next().value!)).toBeUndefined();
    expect(findAll(c, r.h.rw!, [attr(CK.CKA_VALUE, KEY16)])).toEqual([]);
  });
});

describe("C_FindObjectsInit over a value SoftHSM cannot read back (softhsm2)", () => {
  it("fails with CKR_GENERAL_ERROR, leaving the operation active: C_FindObjects fails too, C_FindObjectsFinal ends it", () => {
    const { c, h } = withKey(aesKey(KEY16, [attr(CK.CKA_START_DATE, bytes("20261126"))]), PROFILES[1][1]);
    expect(c("C_FindObjectsInit", { hSession: h.rw!, template: [attr(CK.CKA_START_DATE, bytes("20261126"))] }).rv).toBe("CKR_GENERAL_ERROR");
    expect(c("C_FindObjectsInit", { hSession: h.rw!, template: [] }).rv).toBe("CKR_OPERATION_ACTIVE");
    expect(c("C_FindObjects", { hSession: h.rw!, maxCount: 5 }).rv).toBe("CKR_GENERAL_ERROR");
    expect(c("C_FindObjectsFinal", { hSession: h.rw! }).rv).toBe("CKR_OK");
    expect(findAll(c, h.rw!, [])).toEqual([h.key]);
  });
});

describe("a handle a find issued for another session's half-made object (softhsm2)", () => {
  it("dies when the finding session closes; the next find issues a new one", () => {
    const cap = capture();
    const openB: Setup = (c, h) => void (h.b = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession);
    // Created through h.rw, failing at CKA_SIGN_RECOVER after its CKA_PRIVATE=false and CKA_LABEL entries.
    const r = given(steps(setups.token, openB, cap.setup), PROFILES[1][1])
      .when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [...aesKey(KEY16, [attr(CK.CKA_PRIVATE, F), attr(CK.CKA_LABEL, bytes("orph"))]), attr(CK.CKA_SIGN_RECOVER, T)] }))
      .then("CKR_ATTRIBUTE_TYPE_INVALID", ["ObjectCreated"]);
    const c = cap.get();
    const label = [attr(CK.CKA_LABEL, bytes("orph"))];
    const [first] = findAll(c, r.h.b!, label) as number[];
    expect(findAll(c, r.h.rw!, label)).toEqual([first]);
    ok(c("C_CloseSession", { hSession: r.h.b! }));
    expect(c("C_GetAttributeValue", { hSession: r.h.rw!, hObject: first!, template: [attr(CK.CKA_LABEL, null)] }).rv).toBe("CKR_OBJECT_HANDLE_INVALID");
    const [again] = findAll(c, r.h.rw!, label) as number[];
    expect(again).toBeGreaterThan(first!);
  });
});

describe("the pkcs11js drop-in's date conversion (as pkcs11js 2.1.7 does it)", () => {
  it("a date shorter than 8 bytes is a TypeError; an empty date cannot be read; an 8-byte date reads back through atoi", async () => {
    const { PKCS11 } = await import("../../src/pkcs11/pkcs11js.js");
    const p = new PKCS11();
    p.load(new Simulator({ profile: "softhsm2" }));
    p.C_Initialize();
    const [slot] = p.C_GetSlotList(true);
    p.C_InitToken(slot!, "12345678", "dates".padEnd(32));
    const [s1] = p.C_GetSlotList(true);
    const h = p.C_OpenSession(s1!, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION);
    const key = (date: Buffer | string | null) =>
      p.C_CreateObject(h, [
        { type: CK.CKA_CLASS, value: CK.CKO_SECRET_KEY },
        { type: CK.CKA_KEY_TYPE, value: CK.CKK_AES },
        { type: CK.CKA_PRIVATE, value: false },
        { type: CK.CKA_VALUE, value: Buffer.from(KEY16) },
        { type: CK.CKA_START_DATE, value: date },
      ]);
    expect(() => key(Buffer.from("2026"))).toThrow(new TypeError("Attribute with type 0x00000110 is not convertible to CK_DATE. The length of the data should be at least 8 bytes."));
    const empty = key(null);
    expect(() => p.C_GetAttributeValue(h, empty, [{ type: CK.CKA_START_DATE }])).toThrow("Attribute 0x00000110 has wrong length. Should be 8, but is 0");
    const dated = key(Buffer.from("abcd1126"));
    expect((p.C_GetAttributeValue(h, dated, [{ type: CK.CKA_START_DATE }])[0]!.value as Buffer).toString()).toBe("00001126");
    p.C_Finalize();
  });
});
