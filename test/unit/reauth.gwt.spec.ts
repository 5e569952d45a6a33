/**
 * RSA key pairs and CKA_ALWAYS_AUTHENTICATE re-authentication, given / when / then over the dispatcher, both profiles:
 * SoftHSM 2.6.1's ObjectTests::testReAuthentication step by step (fact sheet §18, §15 CKU_CONTEXT_SPECIFIC), with
 * the facts each step records, the signatures checked with node's RSA against the modulus and exponent read back,
 * and the decrypted plaintext compared. Then C_GenerateKeyPair's check order and attribute set, and the RSA steps'
 * rules (functions/rsa.ts, keys.ts).
 */
import { createPublicKey, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { given, steps, ok, CK, PROFILES, USER_PIN, bytes, ulong, setups, loginUser, type Setup, type Call, type Handles } from "../support/gwt.js";
import { caller, snapshot, testSimulator, TEST_KEY } from "../support/sim.js";
import { Simulator } from "../../src/actors/simulator.js";

const T = Uint8Array.of(1);
const F = Uint8Array.of(0);
const GEN = { mechanism: CK.CKM_RSA_PKCS_KEY_PAIR_GEN };
const pubTemplate = (bits = 1024) => [
  { type: CK.CKA_MODULUS_BITS, value: ulong(bits) },
  { type: CK.CKA_PUBLIC_EXPONENT, value: Uint8Array.of(1, 0, 1) },
];
/** testReAuthentication's private template: PRIVATE, DECRYPT, SIGN, ALWAYS_AUTHENTICATE all true. */
const privTemplate = (alwaysAuth = true) => [
  { type: CK.CKA_PRIVATE, value: T },
  { type: CK.CKA_DECRYPT, value: T },
  { type: CK.CKA_SIGN, value: T },
  { type: CK.CKA_ALWAYS_AUTHENTICATE, value: alwaysAuth ? T : F },
];
const userRW = steps(setups.token, loginUser);
const pair =
  (alwaysAuth = true, bits = 1024): Setup =>
  (c, h) => {
    const out = ok(c("C_GenerateKeyPair", { hSession: h.rw!, mechanism: GEN, publicTemplate: pubTemplate(bits), privateTemplate: privTemplate(alwaysAuth) }));
    h.pub = out.hPublicKey;
    h.priv = out.hPrivateKey;
  };

function attr(c: Call, h: number, hObject: number, type: number): Uint8Array | string {
  const r = c("C_GetAttributeValue", { hSession: h, hObject, template: [{ type, value: new Uint8Array(4096) }] });
  if (r.rv !== "CKR_OK") return r.rv;
  return r.out.attrs[0]!.value!;
}

function publicKeyOf(c: Call, h: Handles) {
  const n = attr(c, h.rw!, h.pub!, CK.CKA_MODULUS) as Uint8Array;
  const e = attr(c, h.rw!, h.pub!, CK.CKA_PUBLIC_EXPONENT) as Uint8Array;
  return createPublicKey({ format: "jwk", key: { kty: "RSA", n: Buffer.from(n).toString("base64url"), e: Buffer.from(e).toString("base64url") } });
}

/** A step: the call, the rv SoftHSM gives, the facts hsmsim records for it. */
type Step = [label: string, fn: string, args: (h: Handles) => object, rv: string, facts: string[]];

const MSG = bytes("Text to sign / encrypt in testReAuthentication");
const sign = (h: Handles) => ({ hSession: h.rw!, data: MSG, outLen: 256 });
const signUpdate = (h: Handles) => ({ hSession: h.rw!, data: MSG });
const signFinal = (h: Handles) => ({ hSession: h.rw!, outLen: 256 });
const signInit = (h: Handles) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256_RSA_PKCS }, hKey: h.priv! });
const cs = (pin: string) => (h: Handles) => ({ hSession: h.rw!, userType: CK.CKU_CONTEXT_SPECIFIC, pin });

describe.each(PROFILES)("%s: ObjectTests::testReAuthentication, step by step", (profile, opts) => {
  const softhsm = profile === "softhsm2";
  const SCRIPT: Step[] = [
    ["Login(CS) with no operation", "C_Login", cs(USER_PIN), "CKR_OPERATION_NOT_INITIALIZED", []],
    ["SignInit(SHA256_RSA_PKCS)", "C_SignInit", signInit, "CKR_OK", ["CryptoStarted"]],
    ["Login(CS) with a 3-byte PIN", "C_Login", cs(USER_PIN.slice(0, 3)), "CKR_PIN_INCORRECT", softhsm ? ["TokenLooked", "PinRejected"] : ["PinRejected"]],
    ["Login(CS)", "C_Login", cs(USER_PIN), "CKR_OK", softhsm ? ["TokenLooked", "Reauthenticated"] : ["Reauthenticated"]],
    ["Sign", "C_Sign", sign, "CKR_OK", ["OperationEnded"]],
    ["SignInit", "C_SignInit", signInit, "CKR_OK", ["CryptoStarted"]],
    ["Sign without re-auth", "C_Sign", sign, "CKR_USER_NOT_LOGGED_IN", ["OperationEnded"]],
    ["Sign after that", "C_Sign", sign, "CKR_OPERATION_NOT_INITIALIZED", []],
    ["SignInit", "C_SignInit", signInit, "CKR_OK", ["CryptoStarted"]],
    ["Login(CS)", "C_Login", cs(USER_PIN), "CKR_OK", softhsm ? ["TokenLooked", "Reauthenticated"] : ["Reauthenticated"]],
    ["SignUpdate", "C_SignUpdate", signUpdate, "CKR_OK", ["CryptoUpdated"]],
    ["SignFinal", "C_SignFinal", signFinal, "CKR_OK", ["OperationEnded"]],
    ["SignInit", "C_SignInit", signInit, "CKR_OK", ["CryptoStarted"]],
    ["SignUpdate without re-auth", "C_SignUpdate", signUpdate, "CKR_USER_NOT_LOGGED_IN", ["OperationEnded"]],
    ["SignUpdate after that", "C_SignUpdate", signUpdate, "CKR_OPERATION_NOT_INITIALIZED", []],
    ["SignInit", "C_SignInit", signInit, "CKR_OK", ["CryptoStarted"]],
    ["Login(CS)", "C_Login", cs(USER_PIN), "CKR_OK", softhsm ? ["TokenLooked", "Reauthenticated"] : ["Reauthenticated"]],
    ["SignFinal (no update)", "C_SignFinal", signFinal, "CKR_OK", ["OperationEnded"]],
    ["SignInit", "C_SignInit", signInit, "CKR_OK", ["CryptoStarted"]],
    ["SignFinal without re-auth", "C_SignFinal", signFinal, "CKR_USER_NOT_LOGGED_IN", ["OperationEnded"]],
    ["SignFinal after that", "C_SignFinal", signFinal, "CKR_OPERATION_NOT_INITIALIZED", []],
    ["EncryptInit(RSA_PKCS, public)", "C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_RSA_PKCS }, hKey: h.pub! }), "CKR_OK", ["CryptoStarted"]],
    ["Encrypt", "C_Encrypt", (h) => ({ hSession: h.rw!, data: MSG, outLen: 256 }), "CKR_OK", ["OperationEnded"]],
    ["DecryptInit(private)", "C_DecryptInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_RSA_PKCS }, hKey: h.priv! }), "CKR_OK", ["CryptoStarted"]],
    ["Login(CS)", "C_Login", cs(USER_PIN), "CKR_OK", softhsm ? ["TokenLooked", "Reauthenticated"] : ["Reauthenticated"]],
    ["Decrypt", "C_Decrypt", (h) => ({ hSession: h.rw!, data: h.ct as unknown, outLen: 256 }), "CKR_OK", ["OperationEnded"]],
    ["DecryptInit", "C_DecryptInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_RSA_PKCS }, hKey: h.priv! }), "CKR_OK", ["CryptoStarted"]],
    ["Decrypt without re-auth", "C_Decrypt", (h) => ({ hSession: h.rw!, data: h.ct as unknown, outLen: 256 }), "CKR_USER_NOT_LOGGED_IN", ["OperationEnded"]],
    ["Decrypt after that", "C_Decrypt", (h) => ({ hSession: h.rw!, data: h.ct as unknown, outLen: 256 }), "CKR_OPERATION_NOT_INITIALIZED", []],
  ];

  it("every step answers SoftHSM's rv and records its facts; signatures verify, the plaintext comes back", () => {
    const sim = testSimulator(opts);
    const c = caller(sim.application());
    const h: Handles = {};
    userRW(c, h, { app2: c });
    const gen = c("C_GenerateKeyPair", { hSession: h.rw!, mechanism: GEN, publicTemplate: pubTemplate(), privateTemplate: privTemplate() });
    expect(gen.rv).toBe("CKR_OK");
    h.pub = gen.out.hPublicKey;
    h.priv = gen.out.hPrivateKey;
    const key = publicKeyOf(c, h);
    const signatures: Uint8Array[] = [];
    for (const [label, fn, args, rv, facts] of SCRIPT) {
      const before = sim.lastSeq;
      const r = c(fn as never, args(h) as never);
      expect(r.rv, `${profile}: ${label}`).toBe(rv);
      const recorded = [...sim.store.read(before + 1)];
      expect(recorded[0]!.facts.map((f) => f.type), `${profile}: ${label} facts`).toEqual(facts);
      if (r.rv === "CKR_OK" && (fn === "C_Sign" || fn === "C_SignFinal")) signatures.push((r.out as { data: Uint8Array }).data);
      if (r.rv === "CKR_OK" && fn === "C_Encrypt") (h as Record<string, unknown>).ct = (r.out as { data: Uint8Array }).data;
      if (r.rv === "CKR_OK" && fn === "C_Decrypt") expect(Buffer.from((r.out as { data: Uint8Array }).data).equals(Buffer.from(MSG))).toBe(true);
    }
    // Sign, SignUpdate+SignFinal (MSG), SignFinal alone (empty data).
    expect(signatures).toHaveLength(3);
    expect(verify("sha256", MSG, key, signatures[0]!)).toBe(true);
    expect(verify("sha256", MSG, key, signatures[1]!)).toBe(true);
    expect(verify("sha256", new Uint8Array(0), key, signatures[2]!)).toBe(true);
    expect(verify("sha256", bytes("another text"), key, signatures[0]!)).toBe(false);
    assertReplays(sim, opts);
  });

  it("a wrong context PIN keeps the operation pending; a second Login(CS) after the right one is OPERATION_NOT_INITIALIZED", () => {
    const sim = testSimulator(opts);
    const c = caller(sim.application());
    const h: Handles = {};
    steps(userRW, pair())(c, h, { app2: c });
    ok(c("C_SignInit", signInit(h)));
    for (let i = 0; i < 3; i++) expect(c("C_Login", cs("wrong!")(h)).rv).toBe("CKR_PIN_INCORRECT");
    expect(c("C_Login", cs(USER_PIN)(h)).rv).toBe("CKR_OK");
    expect(c("C_Login", cs(USER_PIN)(h)).rv).toBe("CKR_OPERATION_NOT_INITIALIZED");
    expect(c("C_Sign", sign(h)).rv).toBe("CKR_OK");
  });

  it("without CKA_ALWAYS_AUTHENTICATE nothing is pending: Sign works, Login(CS) is OPERATION_NOT_INITIALIZED", () => {
    given(steps(userRW, pair(false), (c, h) => void ok(c("C_SignInit", signInit(h)))), opts)
      .when("C_Login", cs(USER_PIN))
      .then("CKR_OPERATION_NOT_INITIALIZED", []);
    given(steps(userRW, pair(false), (c, h) => void ok(c("C_SignInit", signInit(h)))), opts).when("C_Sign", sign).then("CKR_OK", ["OperationEnded"]);
  });

  it("re-auth is per session: another session's Login(CS) is OPERATION_NOT_INITIALIZED and does not arm this one", () => {
    const sim = testSimulator(opts);
    const c = caller(sim.application());
    const h: Handles = {};
    steps(userRW, pair())(c, h, { app2: c });
    const other = ok(c("C_OpenSession", { slotID: sim.read.apps.get(1)?.slots[0]?.slotID ?? 0, flags: CK.CKF_SERIAL_SESSION })).hSession;
    ok(c("C_SignInit", signInit(h)));
    expect(c("C_Login", { hSession: other, userType: CK.CKU_CONTEXT_SPECIFIC, pin: USER_PIN }).rv).toBe("CKR_OPERATION_NOT_INITIALIZED");
    expect(c("C_Sign", sign(h)).rv).toBe("CKR_USER_NOT_LOGGED_IN");
  });

  it("closing the session or finalising drops the pending state with the operation", () => {
    const sim = testSimulator(opts);
    const c = caller(sim.application());
    const h: Handles = {};
    steps(userRW, pair())(c, h, { app2: c });
    ok(c("C_DecryptInit", { hSession: h.rw!, mechanism: { mechanism: CK.CKM_RSA_PKCS }, hKey: h.priv! }));
    expect(c("C_Decrypt", { hSession: h.rw!, data: new Uint8Array(128), outLen: 256 }).rv).toBe("CKR_USER_NOT_LOGGED_IN");
    expect(c("C_Login", cs(USER_PIN)(h)).rv).toBe("CKR_OPERATION_NOT_INITIALIZED");
  });
});

/** Replaying the log rebuilds the same state: objects, the session charts (the re-auth state included). */
function assertReplays(sim: Simulator, opts: object) {
  const rebuilt = Simulator.replay(sim.store.read(), { ...opts, simulatorKey: TEST_KEY });
  expect(snapshot(rebuilt)).toEqual(snapshot(sim));
}

describe.each(PROFILES)("%s: C_GenerateKeyPair (CKM_RSA_PKCS_KEY_PAIR_GEN), SoftHSM's order", (profile, opts) => {
  const softhsm = profile === "softhsm2";
  const gen = (pub: object[], priv: object[] = []) => (h: Handles) => ({ hSession: h.rw!, mechanism: GEN, publicTemplate: pub, privateTemplate: priv }) as never;
  const MB = (n: number) => ({ type: CK.CKA_MODULUS_BITS, value: ulong(n) });
  it("two rules at once: NULL templates are ARGUMENTS_BAD before the session", () =>
    void given(setups.token, opts).when("C_GenerateKeyPair", { hSession: 99, mechanism: GEN, publicTemplate: null, privateTemplate: [] }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: the session before the mechanism", () =>
    void given(setups.token, opts).when("C_GenerateKeyPair", { hSession: 99, mechanism: { mechanism: CK.CKM_AES_KEY_GEN }, publicTemplate: [], privateTemplate: [] }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("another mechanism → MECHANISM_INVALID", () =>
    void given(userRW, opts).when("C_GenerateKeyPair", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_AES_KEY_GEN }, publicTemplate: [MB(512)], privateTemplate: [] })).then("CKR_MECHANISM_INVALID", []));
  it("two rules at once: a wrong class wins over the login (ATTRIBUTE_VALUE_INVALID / TEMPLATE_INCONSISTENT)", () => {
    given(setups.token, opts).when("C_GenerateKeyPair", gen([MB(512), { type: CK.CKA_CLASS, value: ulong(CK.CKO_PRIVATE_KEY) }])).then("CKR_ATTRIBUTE_VALUE_INVALID", []);
    given(setups.token, opts).when("C_GenerateKeyPair", gen([MB(512), { type: CK.CKA_KEY_TYPE, value: ulong(CK.CKK_AES) }])).then("CKR_TEMPLATE_INCONSISTENT", []);
    given(setups.token, opts).when("C_GenerateKeyPair", gen([MB(512)], [{ type: CK.CKA_CLASS, value: ulong(CK.CKO_PUBLIC_KEY) }])).then("CKR_ATTRIBUTE_VALUE_INVALID", []);
  });
  it("the private key defaults to CKA_PRIVATE: a public session → USER_NOT_LOGGED_IN; PRIVATE=F → OK", () => {
    given(setups.token, opts).when("C_GenerateKeyPair", gen([MB(512)])).then("CKR_USER_NOT_LOGGED_IN", []);
    given(setups.token, opts).when("C_GenerateKeyPair", gen([MB(512)], [{ type: CK.CKA_PRIVATE, value: F }])).then("CKR_OK", ["ObjectCreated", "ObjectCreated"]);
  });
  it("two rules at once: the login wins over a missing CKA_MODULUS_BITS", () =>
    void given(setups.token, opts).when("C_GenerateKeyPair", gen([])).then("CKR_USER_NOT_LOGGED_IN", []));
  it("CKA_MODULUS_BITS: missing → TEMPLATE_INCOMPLETE, not 8 bytes → ATTRIBUTE_VALUE_INVALID, out of 512..16384 → GENERAL_ERROR", () => {
    given(userRW, opts).when("C_GenerateKeyPair", gen([])).then("CKR_TEMPLATE_INCOMPLETE", []);
    given(userRW, opts).when("C_GenerateKeyPair", gen([{ type: CK.CKA_MODULUS_BITS, value: new Uint8Array(4) }])).then("CKR_ATTRIBUTE_VALUE_INVALID", []);
    given(userRW, opts).when("C_GenerateKeyPair", gen([MB(511)])).then("CKR_GENERAL_ERROR", []);
  });
  it("the public exponent: even, 1 or empty → GENERAL_ERROR; 3 → OK", () => {
    for (const e of [[2], [1], [], [0]]) {
      given(userRW, opts).when("C_GenerateKeyPair", gen([MB(512), { type: CK.CKA_PUBLIC_EXPONENT, value: Uint8Array.from(e) }])).then("CKR_GENERAL_ERROR", []);
    }
    given(userRW, opts).when("C_GenerateKeyPair", gen([MB(512), { type: CK.CKA_PUBLIC_EXPONENT, value: Uint8Array.of(3) }])).then("CKR_OK", ["ObjectCreated", "ObjectCreated"]);
  });
  it("template entries the internal create refuses: READ_ONLY / TYPE_INVALID / VALUE_INVALID (softhsm2 leaves an orphan)", () => {
    const orphanPub = softhsm ? ["ObjectCreated"] : [];
    const orphanPriv = softhsm ? ["ObjectCreated", "ObjectDestroyed", "ObjectCreated"] : [];
    given(userRW, opts).when("C_GenerateKeyPair", gen([MB(512), { type: CK.CKA_MODULUS, value: new Uint8Array(64) }])).then("CKR_ATTRIBUTE_READ_ONLY", orphanPub);
    given(userRW, opts).when("C_GenerateKeyPair", gen([MB(512), { type: CK.CKA_VALUE, value: new Uint8Array(4) }])).then("CKR_ATTRIBUTE_TYPE_INVALID", orphanPub);
    given(userRW, opts).when("C_GenerateKeyPair", gen([MB(512)], [{ type: CK.CKA_PRIVATE_EXPONENT, value: new Uint8Array(4) }])).then("CKR_ATTRIBUTE_READ_ONLY", orphanPriv);
    given(userRW, opts).when("C_GenerateKeyPair", gen([MB(512)], [MB(512)])).then("CKR_ATTRIBUTE_TYPE_INVALID", orphanPriv);
    given(userRW, opts).when("C_GenerateKeyPair", gen([MB(512)], [{ type: CK.CKA_SIGN, value: new Uint8Array(2) }])).then("CKR_ATTRIBUTE_VALUE_INVALID", orphanPriv);
  });
  it("CKA_ALWAYS_AUTHENTICATE=T needs CKA_PRIVATE=T: a public private key → TEMPLATE_INCONSISTENT (softhsm2: traces)", () => {
    const traces = softhsm ? ["ObjectCreated", "ObjectDestroyed", "ObjectCreated"] : [];
    given(userRW, opts)
      .when("C_GenerateKeyPair", gen([MB(512)], [{ type: CK.CKA_PRIVATE, value: F }, { type: CK.CKA_ALWAYS_AUTHENTICATE, value: T }]))
      .then("CKR_TEMPLATE_INCONSISTENT", traces);
    given(userRW, opts).when("C_GenerateKeyPair", gen([MB(512)], [{ type: CK.CKA_ALWAYS_AUTHENTICATE, value: T }])).then("CKR_OK", ["ObjectCreated", "ObjectCreated"]);
  });
  it("the attribute set as SoftHSM reads it back; private components are CKR_ATTRIBUTE_SENSITIVE", () => {
    const sim = testSimulator(opts);
    const c = caller(sim.application());
    const h: Handles = {};
    steps(userRW, pair())(c, h, { app2: c });
    const hex = (v: Uint8Array | string) => (typeof v === "string" ? v : Buffer.from(v).toString("hex"));
    const get = (o: number, t: number) => hex(attr(c, h.rw!, o, t));
    expect(get(h.pub!, CK.CKA_CLASS)).toBe("0200000000000000");
    expect(get(h.pub!, CK.CKA_KEY_TYPE)).toBe("0000000000000000");
    expect(get(h.pub!, CK.CKA_MODULUS_BITS)).toBe("0004000000000000");
    expect(get(h.pub!, CK.CKA_PUBLIC_EXPONENT)).toBe("010001");
    expect(get(h.pub!, CK.CKA_MODULUS)).toHaveLength(256);
    expect(get(h.pub!, CK.CKA_PRIVATE)).toBe("00");
    expect(get(h.pub!, CK.CKA_LOCAL)).toBe("01");
    expect(get(h.pub!, CK.CKA_KEY_GEN_MECHANISM)).toBe("0000000000000000");
    expect(get(h.pub!, CK.CKA_VERIFY_RECOVER)).toBe("01");
    expect(get(h.pub!, CK.CKA_SENSITIVE)).toBe("CKR_ATTRIBUTE_TYPE_INVALID");
    expect(get(h.priv!, CK.CKA_CLASS)).toBe("0300000000000000");
    expect(get(h.priv!, CK.CKA_MODULUS)).toBe(get(h.pub!, CK.CKA_MODULUS));
    expect(get(h.priv!, CK.CKA_ALWAYS_AUTHENTICATE)).toBe("01");
    expect(get(h.priv!, CK.CKA_SENSITIVE)).toBe("00");
    expect(get(h.priv!, CK.CKA_EXTRACTABLE)).toBe("00");
    expect(get(h.priv!, CK.CKA_NEVER_EXTRACTABLE)).toBe("01");
    expect(get(h.priv!, CK.CKA_ALWAYS_SENSITIVE)).toBe("00");
    expect(get(h.priv!, CK.CKA_SIGN_RECOVER)).toBe("01");
    for (const t of [CK.CKA_PRIVATE_EXPONENT, CK.CKA_PRIME_1, CK.CKA_PRIME_2, CK.CKA_EXPONENT_1, CK.CKA_EXPONENT_2, CK.CKA_COEFFICIENT]) {
      expect(get(h.priv!, t)).toBe("CKR_ATTRIBUTE_SENSITIVE");
    }
    expect(get(h.priv!, CK.CKA_MODULUS_BITS)).toBe("CKR_ATTRIBUTE_TYPE_INVALID");
  });
  it("C_CreateObject of an RSA key stays refused (only C_GenerateKeyPair makes them)", () =>
    void given(userRW, opts)
      .when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [{ type: CK.CKA_CLASS, value: ulong(CK.CKO_PUBLIC_KEY) }, { type: CK.CKA_KEY_TYPE, value: ulong(CK.CKK_RSA) }] }) as never)
      .then(createRefusal(opts), []));
});

function createRefusal(opts: object): string {
  const sim = testSimulator(opts);
  const c = caller(sim.application());
  const h: Handles = {};
  userRW(c, h, { app2: c });
  return c("C_CreateObject", { hSession: h.rw!, template: [{ type: CK.CKA_CLASS, value: ulong(CK.CKO_PUBLIC_KEY) }, { type: CK.CKA_KEY_TYPE, value: ulong(CK.CKK_RSA) }] }).rv;
}

describe.each(PROFILES)("%s: RSA steps (SoftHSM's Asym paths)", (_, opts) => {
  const init = (fn: string, mechanism: number, key: "pub" | "priv"): Setup => (c, h) => void ok(c(fn as never, { hSession: h.rw!, mechanism: { mechanism }, hKey: h[key]! } as never));
  const base = steps(userRW, pair(false));
  it("key classes: sign / decrypt with the public key, encrypt with the private → KEY_FUNCTION_NOT_PERMITTED", () => {
    given(base, opts).when("C_SignInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256_RSA_PKCS }, hKey: h.pub! })).then("CKR_KEY_FUNCTION_NOT_PERMITTED", []);
    given(base, opts).when("C_DecryptInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_RSA_PKCS }, hKey: h.pub! })).then("CKR_KEY_FUNCTION_NOT_PERMITTED", []);
    given(base, opts).when("C_EncryptInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_RSA_PKCS }, hKey: h.priv! })).then("CKR_KEY_FUNCTION_NOT_PERMITTED", []);
    given(base, opts).when("C_DecryptInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256_RSA_PKCS }, hKey: h.priv! })).then("CKR_MECHANISM_INVALID", []);
  });
  it("CKM_RSA_PKCS signing is single-part: SignUpdate → OPERATION_NOT_INITIALIZED ending it, SignFinal keeping it; data > k−11 → GENERAL_ERROR", () => {
    given(steps(base, init("C_SignInit", CK.CKM_RSA_PKCS, "priv")), opts).when("C_SignUpdate", (h) => signUpdate(h) as never).then("CKR_OPERATION_NOT_INITIALIZED", ["OperationEnded"]);
    given(steps(base, init("C_SignInit", CK.CKM_RSA_PKCS, "priv")), opts).when("C_SignFinal", (h) => signFinal(h) as never).then("CKR_OPERATION_NOT_INITIALIZED", []);
    given(steps(base, init("C_SignInit", CK.CKM_RSA_PKCS, "priv")), opts).when("C_Sign", (h) => ({ hSession: h.rw!, data: new Uint8Array(118), outLen: 128 })).then("CKR_GENERAL_ERROR", ["OperationEnded"]);
    given(steps(base, init("C_SignInit", CK.CKM_RSA_PKCS, "priv")), opts).when("C_Sign", (h) => ({ hSession: h.rw!, data: new Uint8Array(117), outLen: 128 })).then("CKR_OK", ["OperationEnded"]);
  });
  it("C_Sign after an update → OPERATION_NOT_INITIALIZED; a short buffer → BUFFER_TOO_SMALL keeping it", () => {
    given(steps(base, init("C_SignInit", CK.CKM_SHA256_RSA_PKCS, "priv"), (c, h) => void ok(c("C_SignUpdate", signUpdate(h)))), opts).when("C_Sign", sign).then("CKR_OPERATION_NOT_INITIALIZED", ["OperationEnded"]);
    const r = given(steps(base, init("C_SignInit", CK.CKM_SHA256_RSA_PKCS, "priv")), opts).when("C_Sign", (h) => ({ hSession: h.rw!, data: MSG, outLen: 10 })).then("CKR_BUFFER_TOO_SMALL", []);
    expect((r.out as { length: number }).length).toBe(128);
  });
  it("encryption: multi-part → FUNCTION_NOT_SUPPORTED keeping it; data > k−11 → GENERAL_ERROR; decryption of garbage → GENERAL_ERROR", () => {
    given(steps(base, init("C_EncryptInit", CK.CKM_RSA_PKCS, "pub")), opts).when("C_EncryptUpdate", (h) => ({ hSession: h.rw!, data: MSG, outLen: 128 })).then("CKR_FUNCTION_NOT_SUPPORTED", []);
    given(steps(base, init("C_EncryptInit", CK.CKM_RSA_PKCS, "pub")), opts).when("C_Encrypt", (h) => ({ hSession: h.rw!, data: new Uint8Array(118), outLen: 128 })).then("CKR_GENERAL_ERROR", ["OperationEnded"]);
    given(steps(base, init("C_DecryptInit", CK.CKM_RSA_PKCS, "priv")), opts).when("C_DecryptFinal", (h) => ({ hSession: h.rw!, outLen: 128 })).then("CKR_FUNCTION_NOT_SUPPORTED", []);
    given(steps(base, init("C_DecryptInit", CK.CKM_RSA_PKCS, "priv")), opts).when("C_Decrypt", (h) => ({ hSession: h.rw!, data: new Uint8Array(128).fill(1), outLen: 128 })).then("CKR_GENERAL_ERROR", ["OperationEnded"]);
    given(steps(base, init("C_DecryptInit", CK.CKM_RSA_PKCS, "priv")), opts).when("C_Decrypt", (h) => ({ hSession: h.rw!, data: new Uint8Array(128).fill(1), outLen: 3 })).then("CKR_BUFFER_TOO_SMALL", []);
  });
});
