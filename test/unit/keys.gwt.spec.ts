/**
 * Secret keys and certificates (docs/notes/softhsm-keys.md §0-§5): C_CreateObject of CKO_SECRET_KEY / CKO_CERTIFICATE,
 * the attribute rules of the table (src/pkcs11/attributes.ts), CKA_CHECK_VALUE, sensitive reads, set / copy / find,
 * C_GenerateKey, C_WrapKey, C_UnwrapKey. Both profiles unless a row of PROFILE_DIFFERENCES says they differ.
 */
import { describe, it, expect } from "vitest";
import { given, setups, steps, loginUser, loginSO, ulong, bytes, CK, RW, PROFILES, ok, capture, type Setup, type Call } from "../support/gwt.js";
import { hexToBytes, bytesToHex } from "../../src/crypto/encoding.js";

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
    given(userSession, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey(KEY16, [attr(type, value)]) })).then("CKR_ATTRIBUTE_READ_ONLY"));
  it.each([
    ["CKA_ALWAYS_AUTHENTICATE", CK.CKA_ALWAYS_AUTHENTICATE],
    ["CKA_SIGN_RECOVER", CK.CKA_SIGN_RECOVER],
    ["CKA_SUBJECT", CK.CKA_SUBJECT],
    ["CKA_APPLICATION", CK.CKA_APPLICATION],
  ])("%s is not a secret-key attribute: CKR_ATTRIBUTE_TYPE_INVALID", (_n, type) =>
    given(userSession, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: aesKey(KEY16, [attr(type, T)]) })).then("CKR_ATTRIBUTE_TYPE_INVALID"));
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
