/**
 * fast-check arbitraries for typed-API call sequences: two applications, small handle and slot ranges (so most
 * calls reach live sessions and objects), PINs right, wrong, empty, short and huge, data-object templates, find and
 * digest. Sequences start by setting a token up often enough to reach the deep states.
 */
import fc from "fast-check";
import type { Call, Template } from "../../src/events/calls.js";
import { CK } from "../../src/pkcs11/constants.js";
import { SO_PIN, USER_PIN, bytes } from "./sim.js";
import { dataTemplate, ulong } from "./gwt.js";

export interface Step {
  app: 0 | 1;
  call: Call;
  /** Symbolic handles: pick the k-th (mod count) live session / object of the application at run time. */
  ref?: { session?: number; object?: number };
}

/** Weighted choice: mostly values that hit live state, sometimes the bad ones. */
const pick = <T>(...choices: [number, T][]) => fc.oneof(...choices.map(([weight, v]) => ({ weight, arbitrary: fc.constant(v) })));

const handle = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 1, max: 6 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 14 }) });
const slot = pick([8, 0], [1, 1], [1, 0x80000000]);
const pin = pick<string | Uint8Array | null>([4, SO_PIN], [4, USER_PIN], [1, "wrong-pin"], [1, ""], [1, "123"], [1, "x".repeat(300)], [1, null], [1, bytes("9999")]);
const flags = pick([4, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION], [3, CK.CKF_SERIAL_SESSION], [1, 0], [1, CK.CKF_SERIAL_SESSION | 0x100]);
const userType = pick([4, CK.CKU_USER], [2, CK.CKU_SO], [1, CK.CKU_CONTEXT_SPECIFIC], [1, 3]);
const template: fc.Arbitrary<Template[]> = fc.oneof(
  fc.tuple(fc.boolean(), fc.boolean(), fc.constantFrom("a", "b")).map(([t, p, l]): Template[] => dataTemplate(t, p, l)),
  fc.constant<Template[]>([{ type: CK.CKA_LABEL, value: bytes("a") }]), // no class
  fc.constant<Template[]>([...dataTemplate(false, false), { type: CK.CKA_SIGN, value: Uint8Array.of(1) }]), // invalid attribute
  fc.constant<Template[]>([{ type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA) }, { type: CK.CKA_TOKEN, value: Uint8Array.of(1, 2) }]),
);
const findTemplate = fc.constantFrom<Template[]>(
  [],
  [{ type: CK.CKA_LABEL, value: bytes("a") }],
  [{ type: CK.CKA_TOKEN, value: Uint8Array.of(1) }],
  [{ type: CK.CKA_PRIVATE, value: Uint8Array.of(0) }],
);
const attrs = fc.constantFrom<Template[]>(
  [{ type: CK.CKA_LABEL, value: null }],
  [{ type: CK.CKA_LABEL, value: new Uint8Array(64) }, { type: CK.CKA_CLASS, value: new Uint8Array(8) }],
  [{ type: CK.CKA_VALUE, value: new Uint8Array(1) }],
  [{ type: CK.CKA_SIGN, value: null }],
);
const setAttrs = fc.constantFrom<Template[]>(
  [{ type: CK.CKA_LABEL, value: bytes("relabelled") }],
  [{ type: CK.CKA_LABEL, value: bytes("x") }, { type: CK.CKA_SIGN, value: Uint8Array.of(1) }],
  [{ type: CK.CKA_PRIVATE, value: Uint8Array.of(0) }],
);
const data = fc.uint8Array({ minLength: 0, maxLength: 40 });

const c = <F extends Call["fn"]>(fn: F, args: Extract<Call, { fn: F }>["args"]) => ({ fn, args }) as Call;

const baseCallArb: fc.Arbitrary<Call> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(c("C_Initialize", {})) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 }).map((n) => (n === 0 ? c("C_Finalize", {}) : c("C_GetInfo", {}))) },
  { weight: 1, arbitrary: fc.constant(c("C_GetSlotList", { tokenPresent: false, pSlotList: 8 })) },
  { weight: 1, arbitrary: fc.constant(c("C_GetSlotList", { tokenPresent: true, pSlotList: null })) },
  { weight: 1, arbitrary: slot.map((slotID) => c("C_GetTokenInfo", { slotID })) },
  { weight: 2, arbitrary: fc.tuple(slot, pin).map(([slotID, p]) => c("C_InitToken", { slotID, pin: p, label: "token" })) },
  { weight: 2, arbitrary: fc.tuple(handle, pin).map(([hSession, p]) => c("C_InitPIN", { hSession, pin: p })) },
  { weight: 1, arbitrary: fc.tuple(handle, pin, pin).map(([hSession, o, n]) => c("C_SetPIN", { hSession, oldPin: o, newPin: n })) },
  { weight: 8, arbitrary: fc.tuple(slot, flags).map(([slotID, f]) => c("C_OpenSession", { slotID, flags: f })) },
  { weight: 2, arbitrary: handle.map((hSession) => c("C_CloseSession", { hSession })) },
  { weight: 1, arbitrary: pick([1, 0], [1, 0x80000000]).map((slotID) => c("C_CloseAllSessions", { slotID })) },
  { weight: 2, arbitrary: handle.map((hSession) => c("C_GetSessionInfo", { hSession })) },
  { weight: 6, arbitrary: handle.map((hSession) => c("C_Login", { hSession, userType: CK.CKU_USER, pin: USER_PIN })) },
  { weight: 2, arbitrary: handle.map((hSession) => c("C_Login", { hSession, userType: CK.CKU_SO, pin: SO_PIN })) },
  { weight: 3, arbitrary: fc.tuple(handle, userType, pin).map(([hSession, u, p]) => c("C_Login", { hSession, userType: u, pin: p })) },
  { weight: 2, arbitrary: handle.map((hSession) => c("C_Logout", { hSession })) },
  { weight: 8, arbitrary: fc.tuple(handle, template).map(([hSession, t]) => c("C_CreateObject", { hSession, template: t })) },
  { weight: 2, arbitrary: fc.tuple(handle, handle).map(([hSession, hObject]) => c("C_DestroyObject", { hSession, hObject })) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(handle, handle, fc.constantFrom<Template[]>([], [{ type: CK.CKA_TOKEN, value: Uint8Array.of(1) }], [{ type: CK.CKA_PRIVATE, value: Uint8Array.of(0) }], [{ type: CK.CKA_LABEL, value: bytes("copy") }]))
      .map(([hSession, hObject, t]) => c("C_CopyObject", { hSession, hObject, template: t })),
  },
  { weight: 1, arbitrary: fc.tuple(handle, handle).map(([hSession, hObject]) => c("C_GetObjectSize", { hSession, hObject })) },
  { weight: 2, arbitrary: fc.tuple(handle, handle, attrs).map(([hSession, hObject, t]) => c("C_GetAttributeValue", { hSession, hObject, template: t })) },
  { weight: 2, arbitrary: fc.tuple(handle, handle, setAttrs).map(([hSession, hObject, t]) => c("C_SetAttributeValue", { hSession, hObject, template: t })) },
  { weight: 3, arbitrary: fc.tuple(handle, findTemplate).map(([hSession, t]) => c("C_FindObjectsInit", { hSession, template: t })) },
  { weight: 2, arbitrary: fc.tuple(handle, fc.integer({ min: 0, max: 5 })).map(([hSession, n]) => c("C_FindObjects", { hSession, maxCount: n })) },
  { weight: 1, arbitrary: handle.map((hSession) => c("C_FindObjectsFinal", { hSession })) },
  { weight: 2, arbitrary: fc.tuple(handle, fc.constantFrom(CK.CKM_SHA256, CK.CKM_SHA_1)).map(([hSession, m]) => c("C_DigestInit", { hSession, mechanism: { mechanism: m } })) },
  { weight: 2, arbitrary: fc.tuple(handle, data).map(([hSession, d]) => c("C_DigestUpdate", { hSession, data: d })) },
  { weight: 1, arbitrary: fc.tuple(handle, data, fc.constantFrom(32, 16, null)).map(([hSession, d, outLen]) => c("C_Digest", { hSession, data: d, outLen })) },
  { weight: 1, arbitrary: fc.tuple(handle, fc.constantFrom(32, 8, null)).map(([hSession, outLen]) => c("C_DigestFinal", { hSession, outLen })) },
);

// ---- the cryptographic operations (issue 3): secret keys made with C_CreateObject, every init, step and final ----

const le = (v: number) => ulong(v);
const secret = (keyType: number, value: Uint8Array, more: Template[] = []): Template[] => [
  { type: CK.CKA_CLASS, value: le(CK.CKO_SECRET_KEY) },
  { type: CK.CKA_KEY_TYPE, value: le(keyType) },
  { type: CK.CKA_TOKEN, value: Uint8Array.of(0) },
  { type: CK.CKA_PRIVATE, value: Uint8Array.of(0) },
  { type: CK.CKA_VALUE, value },
  ...more,
];
const keyTemplate = fc.constantFrom<Template[]>(
  secret(CK.CKK_AES, new Uint8Array(16).fill(0x11)),
  secret(CK.CKK_AES, new Uint8Array(32).fill(0x22)),
  secret(CK.CKK_GENERIC_SECRET, new Uint8Array(64).fill(0x33)),
  secret(CK.CKK_AES, new Uint8Array(16).fill(0x44), [{ type: CK.CKA_ENCRYPT, value: Uint8Array.of(0) }]),
  secret(CK.CKK_AES, new Uint8Array(10).fill(0x55)),
  secret(CK.CKK_AES, new Uint8Array(16).fill(0x66), [{ type: CK.CKA_ALLOWED_MECHANISMS, value: le(CK.CKM_AES_CBC) }]),
);
const ctrParam = (bits: number) => {
  const p = new Uint8Array(24);
  new DataView(p.buffer).setBigUint64(0, BigInt(bits), true);
  p.fill(0xfe, 8);
  return p;
};
const cipherMech = fc.constantFrom(
  { mechanism: CK.CKM_AES_ECB },
  { mechanism: CK.CKM_AES_CBC, parameter: new Uint8Array(16).fill(1) },
  { mechanism: CK.CKM_AES_CBC_PAD, parameter: new Uint8Array(16).fill(2) },
  { mechanism: CK.CKM_AES_CBC_PAD, parameter: null },
  { mechanism: CK.CKM_AES_CTR, parameter: ctrParam(128) },
  { mechanism: CK.CKM_AES_CTR, parameter: ctrParam(8) },
  { mechanism: CK.CKM_AES_GCM, parameter: { type: "gcm" as const, iv: new Uint8Array(12).fill(3), aad: null, ivBits: 96, tagBits: 128, size: 48 } },
  { mechanism: CK.CKM_AES_GCM, parameter: { type: "gcm" as const, iv: new Uint8Array(12).fill(3), aad: new Uint8Array(5), ivBits: 96, tagBits: 64, size: 48 } },
  { mechanism: CK.CKM_RSA_PKCS },
);
const macMech = fc.constantFrom(
  { mechanism: CK.CKM_SHA256_HMAC },
  { mechanism: CK.CKM_SHA512_HMAC },
  { mechanism: CK.CKM_MD5_HMAC },
  { mechanism: CK.CKM_SHA256_HMAC_GENERAL, parameter: ulong(16) },
  { mechanism: CK.CKM_AES_ECB },
  { mechanism: CK.CKM_SHA256_RSA_PKCS },
  { mechanism: CK.CKM_RSA_PKCS },
);
const cryptoData = fc.oneof(fc.uint8Array({ minLength: 0, maxLength: 70 }), fc.constant(new Uint8Array(32)));
const outLen = fc.constantFrom<number | null>(null, 0, 15, 16, 32, 64, 200);

export const cryptoCallArb: fc.Arbitrary<Call> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(handle, keyTemplate).map(([hSession, t]) => c("C_CreateObject", { hSession, template: t })) },
  ...(["C_EncryptInit", "C_DecryptInit"] as const).map((fn) => ({
    weight: 3,
    arbitrary: fc.tuple(handle, cipherMech, handle).map(([hSession, mechanism, hKey]) => c(fn, { hSession, mechanism, hKey })),
  })),
  ...(["C_SignInit", "C_VerifyInit"] as const).map((fn) => ({
    weight: 3,
    arbitrary: fc.tuple(handle, macMech, handle).map(([hSession, mechanism, hKey]) => c(fn, { hSession, mechanism, hKey })),
  })),
  ...(["C_Encrypt", "C_EncryptUpdate", "C_Decrypt", "C_DecryptUpdate", "C_Sign"] as const).map((fn) => ({
    weight: 2,
    arbitrary: fc.tuple(handle, cryptoData, outLen).map(([hSession, data, o]) => c(fn, { hSession, data, outLen: o })),
  })),
  ...(["C_EncryptFinal", "C_DecryptFinal", "C_SignFinal"] as const).map((fn) => ({
    weight: 2,
    arbitrary: fc.tuple(handle, outLen).map(([hSession, o]) => c(fn, { hSession, outLen: o })),
  })),
  ...(["C_SignUpdate", "C_VerifyUpdate"] as const).map((fn) => ({
    weight: 2,
    arbitrary: fc.tuple(handle, cryptoData).map(([hSession, data]) => c(fn, { hSession, data })),
  })),
  { weight: 1, arbitrary: fc.tuple(handle, cryptoData, cryptoData).map(([hSession, data, signature]) => c("C_Verify", { hSession, data, signature })) },
  { weight: 1, arbitrary: fc.tuple(handle, cryptoData).map(([hSession, signature]) => c("C_VerifyFinal", { hSession, signature })) },
  { weight: 1, arbitrary: fc.tuple(handle, handle).map(([hSession, hKey]) => c("C_DigestKey", { hSession, hKey })) },
  { weight: 1, arbitrary: handle.map((hSession) => c("C_GetOperationState", { hSession })) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(handle, fc.oneof(fc.constant(null), fc.uint8Array({ maxLength: 60 })), fc.constantFrom(0, 1, 2), fc.constantFrom(0, 1, 2))
      .map(([hSession, state, e, a]) => c("C_SetOperationState", { hSession, state, hEncryptionKey: e, hAuthenticationKey: a })),
  },
);

// ---- key management (issue 3, part A): generate, wrap, unwrap, certificates, key attributes, copies ----

const T1 = Uint8Array.of(1);
const F1 = Uint8Array.of(0);
const genTemplate = fc
  .tuple(fc.constantFrom(16, 24, 32, 17, 0), fc.boolean(), fc.boolean(), fc.boolean(), fc.constantFrom<Template[]>([], [{ type: CK.CKA_LOCAL, value: T1 }], [{ type: CK.CKA_CHECK_VALUE, value: new Uint8Array(0) }]))
  .map(([len, token, extractable, sensitive, more]): Template[] => [
    { type: CK.CKA_VALUE_LEN, value: le(len) },
    { type: CK.CKA_TOKEN, value: token ? T1 : F1 },
    { type: CK.CKA_PRIVATE, value: F1 },
    { type: CK.CKA_EXTRACTABLE, value: extractable ? T1 : F1 },
    { type: CK.CKA_SENSITIVE, value: sensitive ? T1 : F1 },
    ...more,
  ]);
const genMech = fc.constantFrom({ mechanism: CK.CKM_AES_KEY_GEN }, { mechanism: CK.CKM_GENERIC_SECRET_KEY_GEN }, { mechanism: CK.CKM_SHA256 });
const wrapMech = fc.constantFrom(
  { mechanism: CK.CKM_AES_KEY_WRAP },
  { mechanism: CK.CKM_AES_KEY_WRAP_PAD },
  { mechanism: CK.CKM_AES_CBC, parameter: new Uint8Array(16) },
  { mechanism: CK.CKM_AES_ECB },
);
const importTemplate = fc.constantFrom<Template[]>(
  secret(CK.CKK_AES, new Uint8Array(16).fill(0x71), [{ type: CK.CKA_EXTRACTABLE, value: T1 }]),
  secret(CK.CKK_GENERIC_SECRET, new Uint8Array(20).fill(0x72), [{ type: CK.CKA_EXTRACTABLE, value: T1 }, { type: CK.CKA_SENSITIVE, value: T1 }]),
  secret(CK.CKK_AES, new Uint8Array(32).fill(0x73), [{ type: CK.CKA_WRAP_WITH_TRUSTED, value: T1 }, { type: CK.CKA_EXTRACTABLE, value: T1 }]),
  secret(CK.CKK_AES, new Uint8Array(16).fill(0x74), [{ type: CK.CKA_CHECK_VALUE, value: Uint8Array.of(1, 2, 3) }]),
  [
    { type: CK.CKA_CLASS, value: le(CK.CKO_CERTIFICATE) },
    { type: CK.CKA_CERTIFICATE_TYPE, value: le(CK.CKC_X_509) },
    { type: CK.CKA_SUBJECT, value: bytes("subject") },
    { type: CK.CKA_VALUE, value: bytes("Test2") },
  ],
);
const unwrapTemplate = fc.constantFrom<Template[]>(
  [{ type: CK.CKA_CLASS, value: le(CK.CKO_SECRET_KEY) }, { type: CK.CKA_KEY_TYPE, value: le(CK.CKK_AES) }, { type: CK.CKA_PRIVATE, value: F1 }, { type: CK.CKA_EXTRACTABLE, value: T1 }],
  [{ type: CK.CKA_CLASS, value: le(CK.CKO_SECRET_KEY) }, { type: CK.CKA_KEY_TYPE, value: le(CK.CKK_GENERIC_SECRET) }, { type: CK.CKA_PRIVATE, value: F1 }, { type: CK.CKA_VALUE_LEN, value: le(16) }],
  [{ type: CK.CKA_CLASS, value: le(CK.CKO_DATA) }],
);
const keyAttrs = fc.constantFrom<Template[]>(
  [{ type: CK.CKA_VALUE, value: new Uint8Array(64) }, { type: CK.CKA_CHECK_VALUE, value: new Uint8Array(3) }],
  [{ type: CK.CKA_SENSITIVE, value: null }, { type: CK.CKA_NEVER_EXTRACTABLE, value: null }, { type: CK.CKA_ALLOWED_MECHANISMS, value: null }],
);
const keySetAttrs = fc.constantFrom<Template[]>(
  [{ type: CK.CKA_SENSITIVE, value: T1 }],
  [{ type: CK.CKA_EXTRACTABLE, value: F1 }],
  [{ type: CK.CKA_CHECK_VALUE, value: new Uint8Array(0) }],
  [{ type: CK.CKA_ISSUER, value: bytes("issuer") }],
);

/** RSA key pairs (issue 3, re-authentication): small moduli only (generation costs ~10 ms at 512 bits), and refusals. */
const pairPublic = fc
  .tuple(fc.constantFrom(512, 512, 0, 511, 16385), fc.constantFrom(Uint8Array.of(1, 0, 1), Uint8Array.of(3), Uint8Array.of(2)), fc.boolean())
  .map(([bits, e, token]): Template[] => [
    ...(bits ? [{ type: CK.CKA_MODULUS_BITS, value: le(bits) }] : []),
    { type: CK.CKA_PUBLIC_EXPONENT, value: e },
    { type: CK.CKA_TOKEN, value: token ? T1 : F1 },
  ]);
const pairPrivate = fc.constantFrom<Template[]>(
  [{ type: CK.CKA_ALWAYS_AUTHENTICATE, value: T1 }],
  [{ type: CK.CKA_ALWAYS_AUTHENTICATE, value: F1 }, { type: CK.CKA_EXTRACTABLE, value: T1 }],
  [{ type: CK.CKA_PRIVATE, value: F1 }, { type: CK.CKA_ALWAYS_AUTHENTICATE, value: T1 }],
  [{ type: CK.CKA_PRIVATE_EXPONENT, value: new Uint8Array(4) }],
  [],
);
const pairMech = fc.constantFrom({ mechanism: CK.CKM_RSA_PKCS_KEY_PAIR_GEN }, { mechanism: CK.CKM_AES_KEY_GEN });

export const keyCallArb: fc.Arbitrary<Call> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc
      .tuple(handle, pairMech, pairPublic, pairPrivate)
      .map(([hSession, mechanism, publicTemplate, privateTemplate]) => c("C_GenerateKeyPair", { hSession, mechanism, publicTemplate, privateTemplate })),
  },
  { weight: 2, arbitrary: handle.map((hSession) => c("C_Login", { hSession, userType: CK.CKU_CONTEXT_SPECIFIC, pin: USER_PIN })) },
  { weight: 3, arbitrary: fc.tuple(handle, importTemplate).map(([hSession, t]) => c("C_CreateObject", { hSession, template: t })) },
  { weight: 3, arbitrary: fc.tuple(handle, genMech, genTemplate).map(([hSession, mechanism, t]) => c("C_GenerateKey", { hSession, mechanism, template: t })) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(handle, wrapMech, handle, handle, fc.constantFrom<number | null>(null, 8, 64))
      .map(([hSession, mechanism, hWrappingKey, hKey, o]) => c("C_WrapKey", { hSession, mechanism, hWrappingKey, hKey, outLen: o })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(handle, wrapMech, handle, fc.oneof(fc.uint8Array({ minLength: 16, maxLength: 48 }), fc.constant(null)), unwrapTemplate)
      .map(([hSession, mechanism, hUnwrappingKey, wrappedKey, t]) => c("C_UnwrapKey", { hSession, mechanism, hUnwrappingKey, wrappedKey, template: t })),
  },
  { weight: 2, arbitrary: fc.tuple(handle, handle, keyAttrs).map(([hSession, hObject, t]) => c("C_GetAttributeValue", { hSession, hObject, template: t })) },
  { weight: 2, arbitrary: fc.tuple(handle, handle, keySetAttrs).map(([hSession, hObject, t]) => c("C_SetAttributeValue", { hSession, hObject, template: t })) },
  { weight: 1, arbitrary: fc.tuple(handle, handle, keySetAttrs).map(([hSession, hObject, t]) => c("C_CopyObject", { hSession, hObject, template: t })) },
  { weight: 1, arbitrary: fc.tuple(handle, handle).map(([hSession, hObject]) => c("C_GetObjectSize", { hSession, hObject })) },
);

export const callArb: fc.Arbitrary<Call> = fc.oneof(
  { weight: 5, arbitrary: baseCallArb },
  { weight: 2, arbitrary: cryptoCallArb },
  { weight: 2, arbitrary: keyCallArb },
);

/** A prefix that usually sets up an initialised token with a user PIN, so random steps reach deep states. */
const prologue: Step[] = [
  { app: 0, call: c("C_Initialize", {}) },
  { app: 1, call: c("C_Initialize", {}) },
  { app: 0, call: c("C_InitToken", { slotID: 0, pin: SO_PIN, label: "token" }) },
  { app: 0, call: c("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION }) },
  { app: 0, call: c("C_Login", { hSession: 1, userType: CK.CKU_SO, pin: SO_PIN }) },
  { app: 0, call: c("C_InitPIN", { hSession: 1, pin: USER_PIN }) },
  { app: 0, call: c("C_Logout", { hSession: 1 }) },
];

/**
 * The prologue, then an RSA signature awaiting re-authentication (the user logged in, a 512-bit key pair whose private
 * key has CKA_ALWAYS_AUTHENTICATE, C_SignInit on it): random steps then meet the re-auth state.
 */
const reauthPrologue: Step[] = [
  ...prologue,
  { app: 0, call: c("C_Login", { hSession: 1, userType: CK.CKU_USER, pin: USER_PIN }) },
  {
    app: 0,
    call: c("C_GenerateKeyPair", {
      hSession: 1,
      mechanism: { mechanism: CK.CKM_RSA_PKCS_KEY_PAIR_GEN },
      publicTemplate: [{ type: CK.CKA_MODULUS_BITS, value: le(512) }],
      privateTemplate: [{ type: CK.CKA_ALWAYS_AUTHENTICATE, value: T1 }],
    }),
  },
  { app: 0, call: c("C_SignInit", { hSession: 1, mechanism: { mechanism: CK.CKM_SHA256_RSA_PKCS }, hKey: 0 }), ref: { session: 0, object: 0 } },
];

const refArb = fc.option(fc.record({ session: fc.nat(7), object: fc.nat(7) }), { freq: 6 }).map((r) => r ?? undefined);

export const stepsArb = (max = 60): fc.Arbitrary<Step[]> =>
  fc
    .tuple(
      pick<"plain" | "reauth" | false>([3, "plain"], [1, "reauth"], [1, false]),
      fc.array(fc.record({ app: pick<0 | 1>([3, 0], [1, 1]), call: callArb, ref: refArb }), {
        minLength: Math.min(10, max),
        maxLength: max,
      }),
    )
    .map(([start, steps]) => (start === "plain" ? [...prologue, ...steps] : start === "reauth" ? [...reauthPrologue, ...steps] : steps));

/** Live handles an application has been given, per kind, most recent last (handles may since have died). */
export class Seen {
  sessions: number[] = [];
  objects: number[] = [];
}

/** Resolve a step's symbolic handles against what its application has seen. */
export function resolve(step: Step, seen: Seen): Call {
  if (!step.ref) return step.call;
  const args = { ...(step.call.args as Record<string, unknown>) };
  const { session, object } = step.ref;
  if ("hSession" in args && session !== undefined && seen.sessions.length) {
    args.hSession = seen.sessions[seen.sessions.length - 1 - (session % seen.sessions.length)];
  }
  if ("hObject" in args && object !== undefined && seen.objects.length) {
    args.hObject = seen.objects[seen.objects.length - 1 - (object % seen.objects.length)];
  }
  if ("hKey" in args && object !== undefined && seen.objects.length) {
    args.hKey = seen.objects[seen.objects.length - 1 - (object % seen.objects.length)];
  }
  // The wrapping key: the most recent object but one (the key to wrap is usually the latest).
  for (const k of ["hWrappingKey", "hUnwrappingKey"] as const) {
    if (k in args && object !== undefined && seen.objects.length) {
      args[k] = seen.objects[seen.objects.length - 1 - ((object + 1) % seen.objects.length)];
    }
  }
  return { fn: step.call.fn, args } as Call;
}

/** Note the handles an answer hands out. */
export function observe(call: Call, out: unknown, rv: number, seen: Seen): void {
  if (rv !== 0 || !out) return;
  if (call.fn === "C_OpenSession") seen.sessions.push((out as { hSession: number }).hSession);
  if (call.fn === "C_CreateObject" || call.fn === "C_CopyObject") seen.objects.push((out as { hObject: number }).hObject);
  if (call.fn === "C_GenerateKey" || call.fn === "C_UnwrapKey") seen.objects.push((out as { hKey: number }).hKey);
  if (call.fn === "C_GenerateKeyPair") seen.objects.push((out as { hPublicKey: number }).hPublicKey, (out as { hPrivateKey: number }).hPrivateKey);
  if (call.fn === "C_FindObjects") seen.objects.push(...(out as { handles: number[] }).handles);
  if (call.fn === "C_Finalize") {
    seen.sessions.length = 0;
    seen.objects.length = 0;
  }
}

/** Run steps on two applications of a simulator; returns each call as resolved and its answer. */
export function runSteps(apps: { call(c: Call): { rv: number; out?: unknown } }[], steps: Step[], seen = [new Seen(), new Seen()]) {
  return steps.map((s) => {
    const call = resolve(s, seen[s.app]!);
    const r = apps[s.app]!.call(call as never);
    observe(call, r.out, r.rv, seen[s.app]!);
    return { app: s.app, call, rv: r.rv, out: r.out };
  });
}
