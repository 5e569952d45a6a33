/**
 * Key management (PKCS#11 v2.40 §5.14): C_GenerateKey, C_WrapKey, C_UnwrapKey for secret keys, in SoftHSM 2.6.1's
 * check orders (docs/notes/softhsm-keys.md §3, §5). The attribute rules are the table's (pkcs11/attributes.ts), run
 * by functions/objects.ts as SoftHSM's internal CreateObject runs them for op=GENERATE and op=UNWRAP.
 *
 * Key bytes: C_GenerateKey draws them from the shell's random source (ctx.shell.randomBytes, the simulator's injected
 * source) and records them sealed in the ObjectCreated fact, so replay never draws again; C_UnwrapKey's come from the
 * wrapped blob and are sealed the same way. C_WrapKey changes nothing; its output is kept out of the log (the record
 * holds its length only, call-schema.ts).
 *
 * Mechanisms: generate CKM_AES_KEY_GEN and CKM_GENERIC_SECRET_KEY_GEN (SoftHSM's DES and DSA/DH parameter generation
 * are CKR_MECHANISM_INVALID here); wrap CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD (crypto/mechanisms/aes-wrap.ts, with
 * SoftHSM's zero padding) and CKM_AES_CBC (wrap only, as SoftHSM: the value must be whole blocks); unwrap the two AES
 * key wraps. CKM_RSA_PKCS passes the mechanism step as in SoftHSM and then fails the key-type check, since hsmsim has
 * no RSA keys.
 */
import type { CallArgs, Template } from "../events/calls.js";
import type { Fact } from "../events/types.js";
import type { CkrName } from "../pkcs11/constants.js";
import { FALSE, KEY_PAIR_TYPES, mechanismAllowed, rulesFor, TRUE, ulongBytes, decodeTemplateAttr } from "../pkcs11/attributes.js";
import { mechanismEntry } from "../crypto/mechanisms/index.js";
import { nodeAes } from "../crypto/mechanisms/engines.js";
import { boolOf, classOf, isSealedPlaceholder, keyCheckValue, keyTypeOf } from "../model/key-material.js";
import { resolveObjectHandle, type ObjectState } from "../model/state.js";
import { answer, CK, findSession, firstFailure, nextHandle, reject, type DecideContext, type Decision, type SessionRef } from "./context.js";
import {
  applyTemplate,
  created,
  defaults,
  equalBytes,
  extractObjectInformation,
  handleLooks,
  newObjectId,
  orphan,
  readAccess,
  storedAttrs,
  writeAccess,
  type ObjectWrite,
} from "./objects.js";

/** SoftHSM's limit on a generate or unwrap template, counted before it drops CLASS, TOKEN, PRIVATE, KEY_TYPE. */
const MAX_KEY_TEMPLATE = 28;
/** The largest generic secret SoftHSM generates (generateGeneric: 0x8000000 bytes). */
const MAX_GENERIC_LEN = 0x8000000;
const EMPTY = new Uint8Array(0);

/** The key type each generation mechanism makes. */
const GENERATES: ReadonlyMap<number, number> = new Map([
  [CK.CKM_AES_KEY_GEN, CK.CKK_AES],
  [CK.CKM_GENERIC_SECRET_KEY_GEN, CK.CKK_GENERIC_SECRET],
]);

type MechanismArg = { mechanism: number; parameter?: unknown } | null;

/** A pParameter SoftHSM counts as given: non-NULL with a length (a zero-length Buffer reaches it as no parameter). */
function hasParameter(m: MechanismArg): boolean {
  const p = m?.parameter;
  if (p === undefined || p === null) return false;
  return !(p instanceof Uint8Array) || p.length > 0;
}

function keyLookup(ctx: DecideContext, ref: SessionRef, handle: number) {
  return { found: resolveObjectHandle(ctx.state, ref.app, handle)?.object, looked: handleLooks(ctx, ref.app, handle) };
}

/**
 * The rebuilt template SoftHSM hands its internal CreateObject for generate and unwrap: CLASS, TOKEN, PRIVATE and
 * KEY_TYPE first (from the right-sized entries, with their defaults), then the caller's other entries in order.
 */
function rebuilt(template: readonly Template[], cls: number, keyType: number, token: boolean, priv: boolean, dropCheckValue: boolean): Template[] {
  const dropped = new Set([CK.CKA_CLASS, CK.CKA_TOKEN, CK.CKA_PRIVATE, CK.CKA_KEY_TYPE, ...(dropCheckValue ? [CK.CKA_CHECK_VALUE] : [])]);
  return [
    { type: CK.CKA_CLASS, value: ulongBytes(cls) },
    { type: CK.CKA_TOKEN, value: token ? TRUE : FALSE },
    { type: CK.CKA_PRIVATE, value: priv ? TRUE : FALSE },
    { type: CK.CKA_KEY_TYPE, value: ulongBytes(keyType) },
    ...template.filter((t) => !dropped.has(t.type)),
  ];
}

/** A new key's ObjectCreated, or SoftHSM's orphan when the internal create failed (profile switch atomicObjectWrites). */
function finishKey(
  ctx: DecideContext,
  ref: SessionRef,
  w: ObjectWrite,
  template: readonly Template[],
  token: boolean,
  priv: boolean,
  post: (attrs: Map<number, Uint8Array>) => void,
  looked: Fact[] = [],
): Decision {
  const failed = applyTemplate(w, template);
  if (failed) {
    if (ctx.state.profile.atomicObjectWrites) return answer(failed, undefined, looked);
    return answer(failed, undefined, [...looked, orphan(ctx, ref, w, token, priv)]);
  }
  post(w.attrs);
  const id = newObjectId(ctx, ref, token);
  const handle = nextHandle(ctx, "object");
  return answer("CKR_OK", { hKey: handle }, [...looked, created(ctx, ref, handle, { id, token, private: priv, attrs: storedAttrs(ctx, w.attrs) })]);
}

/** C_GenerateKey — §5.14.1, SoftHSM's order (docs/notes/softhsm-keys.md §3). No OPERATION_ACTIVE check. */
export function C_GenerateKey(ctx: DecideContext, args: CallArgs["C_GenerateKey"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv0 = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.mechanism === null, "CKR_ARGUMENTS_BAD"],
    [args.template === null, "CKR_ARGUMENTS_BAD"],
    [args.phKey === null, "CKR_ARGUMENTS_BAD"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv0) return reject(rv0);
  const mechanism = args.mechanism!.mechanism;
  const keyType = GENERATES.get(mechanism);
  if (keyType === undefined) return reject("CKR_MECHANISM_INVALID");
  const template = args.template!;
  const info = extractObjectInformation(template);
  if (info.cls !== undefined && info.cls !== CK.CKO_SECRET_KEY && info.cls !== CK.CKO_DOMAIN_PARAMETERS) return reject("CKR_ATTRIBUTE_VALUE_INVALID");
  if (info.cls === CK.CKO_DOMAIN_PARAMETERS || (info.keyType !== undefined && info.keyType !== keyType)) return reject("CKR_TEMPLATE_INCONSISTENT");
  const priv = info.privGiven ? info.priv : true;
  const denied = writeAccess(ref!.slot.actor.login, ref!.session.rw, info.token, priv);
  if (denied) return reject(denied);
  let valueLen: number | undefined;
  let emptyCheckValue = false;
  for (const t of template) {
    const v = t.value ?? EMPTY;
    if (t.type === CK.CKA_VALUE_LEN) {
      if (v.length !== 8) return reject("CKR_ATTRIBUTE_VALUE_INVALID");
      valueLen = Number(new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true));
    } else if (t.type === CK.CKA_CHECK_VALUE) {
      if (v.length > 0) return reject("CKR_ATTRIBUTE_VALUE_INVALID");
      emptyCheckValue = true;
    }
  }
  if (!valueLen) return reject("CKR_TEMPLATE_INCOMPLETE");
  const lengthOk = keyType === CK.CKK_AES ? valueLen === 16 || valueLen === 24 || valueLen === 32 : valueLen <= MAX_GENERIC_LEN;
  if (!lengthOk) return reject("CKR_ATTRIBUTE_VALUE_INVALID");
  if (template.length > MAX_KEY_TEMPLATE) return reject("CKR_TEMPLATE_INCONSISTENT");

  const rules = rulesFor(CK.CKO_SECRET_KEY, keyType)!;
  const so = ref!.slot.actor.login === "so";
  const w: ObjectWrite = { rules, cls: CK.CKO_SECRET_KEY, subtype: keyType, op: "generate", so, attrs: defaults(rules, CK.CKO_SECRET_KEY, keyType) };
  return finishKey(ctx, ref!, w, rebuilt(template, CK.CKO_SECRET_KEY, keyType, info.token, priv, true), info.token, priv, (attrs) => {
    // The key bytes: drawn by the shell, recorded sealed in the fact.
    const value = ctx.shell.randomBytes(valueLen!);
    attrs.set(CK.CKA_VALUE, value);
    attrs.set(CK.CKA_CHECK_VALUE, emptyCheckValue ? EMPTY : keyCheckValue(keyType, value));
    attrs.set(CK.CKA_LOCAL, TRUE);
    attrs.set(CK.CKA_KEY_GEN_MECHANISM, ulongBytes(mechanism));
    attrs.set(CK.CKA_ALWAYS_SENSITIVE, boolAttr(attrs, CK.CKA_SENSITIVE) ? TRUE : FALSE);
    attrs.set(CK.CKA_NEVER_EXTRACTABLE, boolAttr(attrs, CK.CKA_EXTRACTABLE) ? FALSE : TRUE);
  });
}

const boolAttr = (attrs: Map<number, Uint8Array>, type: number) => attrs.get(type)?.[0] === 1;

/** What a wrap or unwrap mechanism needs of its key: CKO_SECRET_KEY of CKK_AES (SoftHSM's symmetric wraps). */
const AES_WRAPS = new Set([CK.CKM_AES_KEY_WRAP, CK.CKM_AES_KEY_WRAP_PAD, CK.CKM_AES_CBC]);
const isAesKey = (o: ObjectState) => classOf(o) === CK.CKO_SECRET_KEY && keyTypeOf(o) === CK.CKK_AES;

/** Step 4 of C_WrapKey: the mechanism and its parameter. */
function wrapMechanismCheck(m: MechanismArg): CkrName | undefined {
  switch (m!.mechanism) {
    case CK.CKM_AES_KEY_WRAP:
    case CK.CKM_AES_KEY_WRAP_PAD:
    case CK.CKM_RSA_PKCS:
      return hasParameter(m) ? "CKR_ARGUMENTS_BAD" : undefined;
    case CK.CKM_AES_CBC: {
      const p = m!.parameter;
      return p instanceof Uint8Array && p.length === 16 ? undefined : "CKR_ARGUMENTS_BAD";
    }
    default:
      return "CKR_MECHANISM_INVALID";
  }
}

/** The wrapping key's CKA_WRAP_TEMPLATE against the key to wrap (§5.3): every entry present with the same bytes. */
function wrapTemplateMatches(wrapping: ObjectState, key: ObjectState): boolean {
  const t = wrapping.attrs.get(CK.CKA_WRAP_TEMPLATE);
  if (!t || t.length === 0) return true;
  const rules = rulesFor(classOf(key)!, keyTypeOf(key));
  for (const e of decodeTemplateAttr(t)) {
    const v = key.attrs.get(e.type);
    if (v === undefined) return false;
    // SoftHSM compares a private key's byte-string attributes in their encrypted form: never equal.
    if (key.private && rules?.get(e.type)?.kind !== "bool" && rules?.get(e.type)?.kind !== "ulong") return false;
    if (!equalBytes(v, new Uint8Array(e.length))) return false;
  }
  return true;
}

/** C_WrapKey — §5.14.3, SoftHSM's order (docs/notes/softhsm-keys.md §3). Changes nothing; no OPERATION_ACTIVE check. */
export function C_WrapKey(ctx: DecideContext, args: CallArgs["C_WrapKey"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv0 = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.mechanism === null, "CKR_ARGUMENTS_BAD"],
    [args.pulWrappedKeyLen === null, "CKR_ARGUMENTS_BAD"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv0) return reject(rv0);
  const m = args.mechanism!;
  const bad = wrapMechanismCheck(m);
  if (bad) return reject(bad);
  const login = ref!.slot.actor.login;
  const kek = keyLookup(ctx, ref!, args.hWrappingKey);
  const looked = kek.looked;
  const fail = (rv: CkrName) => answer(rv, undefined, looked);
  if (!kek.found) return fail("CKR_WRAPPING_KEY_HANDLE_INVALID");
  const wrapping = kek.found;
  if (!readAccess(login, wrapping.private)) return fail("CKR_USER_NOT_LOGGED_IN");
  if (!AES_WRAPS.has(m.mechanism) || !isAesKey(wrapping)) return fail("CKR_WRAPPING_KEY_TYPE_INCONSISTENT");
  if (boolOf(wrapping, CK.CKA_WRAP) !== true) return fail("CKR_KEY_FUNCTION_NOT_PERMITTED");
  if (!mechanismAllowed(wrapping.attrs.get(CK.CKA_ALLOWED_MECHANISMS), m.mechanism)) return fail("CKR_MECHANISM_INVALID");
  const target = keyLookup(ctx, ref!, args.hKey);
  looked.push(...target.looked);
  if (!target.found) return fail("CKR_KEY_HANDLE_INVALID");
  const key = target.found;
  if (!readAccess(login, key.private)) return fail("CKR_USER_NOT_LOGGED_IN");
  if (boolOf(key, CK.CKA_EXTRACTABLE) !== true) return fail("CKR_KEY_UNEXTRACTABLE");
  if (boolOf(key, CK.CKA_WRAP_WITH_TRUSTED) === true && boolOf(wrapping, CK.CKA_TRUSTED) !== true) return fail("CKR_KEY_NOT_WRAPPABLE");
  const cls = classOf(key);
  if (cls !== CK.CKO_SECRET_KEY && cls !== CK.CKO_PRIVATE_KEY) return fail("CKR_KEY_NOT_WRAPPABLE");
  if (!wrapTemplateMatches(wrapping, key)) return fail("CKR_KEY_NOT_WRAPPABLE");
  const value = key.attrs.get(CK.CKA_VALUE);
  const kekValue = wrapping.attrs.get(CK.CKA_VALUE);
  // A value this simulator cannot open (a log replayed without its key) cannot be wrapped.
  if (isSealedPlaceholder(value) || isSealedPlaceholder(kekValue)) return fail("CKR_GENERAL_ERROR");
  if (!value || value.length === 0) return fail("CKR_KEY_NOT_WRAPPABLE");
  const wrapped = wrapBytes(m.mechanism, kekValue ?? EMPTY, value, m.parameter as Uint8Array | undefined);
  if (typeof wrapped === "string") return fail(wrapped);
  const length = wrapped.length;
  if (args.outLen === null) return answer("CKR_OK", { wrapped: null, length }, looked);
  if (args.outLen < length) return answer("CKR_BUFFER_TOO_SMALL", { wrapped: null, length }, looked);
  return answer("CKR_OK", { wrapped, length }, looked);
}

function wrapBytes(mechanism: number, kek: Uint8Array, value: Uint8Array, iv: Uint8Array | undefined): Uint8Array | CkrName {
  if (mechanism === CK.CKM_AES_CBC) {
    // SoftHSM zero-pads the value to a multiple of 8 (as for the key wraps), then runs CBC without padding: a KEK of
    // no AES length fails the cipher's init (MECHANISM_INVALID), a value that is not whole blocks its final.
    if (![16, 24, 32].includes(kek.length)) return "CKR_MECHANISM_INVALID";
    const padded = new Uint8Array(Math.ceil(value.length / 8) * 8);
    padded.set(value);
    if (padded.length % 16 !== 0) return "CKR_GENERAL_ERROR";
    return nodeAes.cbc(true, kek, iv!, padded);
  }
  const entry = mechanismEntry(mechanism);
  if (entry?.family !== "wrap") return "CKR_MECHANISM_INVALID";
  const r = entry.wrap.wrap(kek, value);
  return r.ok ? r.out : r.rv;
}

/** Step 4 of C_UnwrapKey: the mechanism, the blob's length, the parameter. */
function unwrapMechanismCheck(m: MechanismArg, wrappedLen: number): CkrName | undefined {
  switch (m!.mechanism) {
    case CK.CKM_AES_KEY_WRAP:
      if (wrappedLen < 24 || wrappedLen % 8 !== 0) return "CKR_WRAPPED_KEY_LEN_RANGE";
      return hasParameter(m) ? "CKR_ARGUMENTS_BAD" : undefined;
    case CK.CKM_AES_KEY_WRAP_PAD:
      if (wrappedLen < 16 || wrappedLen % 8 !== 0) return "CKR_WRAPPED_KEY_LEN_RANGE";
      return hasParameter(m) ? "CKR_ARGUMENTS_BAD" : undefined;
    case CK.CKM_RSA_PKCS:
      return hasParameter(m) ? "CKR_ARGUMENTS_BAD" : undefined;
    default:
      return "CKR_MECHANISM_INVALID";
  }
}

/**
 * The unwrapping key's CKA_UNWRAP_TEMPLATE against the rebuilt unwrap template (§5.3): checked, never applied; each of
 * its attributes must occur exactly once with identical bytes.
 */
function unwrapTemplateMatches(unwrapping: ObjectState, template: readonly Template[]): boolean {
  const t = unwrapping.attrs.get(CK.CKA_UNWRAP_TEMPLATE);
  if (!t || t.length === 0) return true;
  for (const e of decodeTemplateAttr(t)) {
    const same = template.filter((x) => x.type === e.type);
    if (same.length !== 1 || !equalBytes(same[0]!.value ?? EMPTY, new Uint8Array(e.length))) return false;
  }
  return true;
}

/** C_UnwrapKey — §5.14.4, SoftHSM's order (docs/notes/softhsm-keys.md §3, §5.2-5.4). */
export function C_UnwrapKey(ctx: DecideContext, args: CallArgs["C_UnwrapKey"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv0 = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.mechanism === null, "CKR_ARGUMENTS_BAD"],
    [args.wrappedKey === null, "CKR_ARGUMENTS_BAD"],
    [args.template === null, "CKR_ARGUMENTS_BAD"],
    [args.phKey === null, "CKR_ARGUMENTS_BAD"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv0) return reject(rv0);
  const m = args.mechanism!;
  const blob = args.wrappedKey!;
  const bad = unwrapMechanismCheck(m, blob.length);
  if (bad) return reject(bad);
  const login = ref!.slot.actor.login;
  const kek = keyLookup(ctx, ref!, args.hUnwrappingKey);
  const looked = kek.looked;
  const fail = (rv: CkrName) => answer(rv, undefined, looked);
  if (!kek.found) return fail("CKR_UNWRAPPING_KEY_HANDLE_INVALID");
  const unwrapping = kek.found;
  if (!readAccess(login, unwrapping.private)) return fail("CKR_USER_NOT_LOGGED_IN");
  if (m.mechanism === CK.CKM_RSA_PKCS || !isAesKey(unwrapping)) return fail("CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT");
  if (boolOf(unwrapping, CK.CKA_UNWRAP) !== true) return fail("CKR_KEY_FUNCTION_NOT_PERMITTED");
  if (!mechanismAllowed(unwrapping.attrs.get(CK.CKA_ALLOWED_MECHANISMS), m.mechanism)) return fail("CKR_MECHANISM_INVALID");
  const template = args.template!;
  const info = extractObjectInformation(template);
  if (info.cls === undefined) return fail("CKR_TEMPLATE_INCOMPLETE");
  // hsmsim builds no private keys: an unwrapped CKO_PRIVATE_KEY is refused like any class SoftHSM refuses.
  if (info.cls !== CK.CKO_SECRET_KEY) return fail("CKR_ATTRIBUTE_VALUE_INVALID");
  if (info.keyType === undefined) return fail("CKR_TEMPLATE_INCOMPLETE");
  const priv = info.privGiven ? info.priv : true;
  const denied = writeAccess(login, ref!.session.rw, info.token, priv);
  if (denied) return fail(denied);
  if (template.length > MAX_KEY_TEMPLATE) return fail("CKR_TEMPLATE_INCONSISTENT");
  const full = rebuilt(template, info.cls, info.keyType, info.token, priv, false);
  if (!unwrapTemplateMatches(unwrapping, full)) return fail("CKR_TEMPLATE_INCONSISTENT");
  const kekValue = unwrapping.attrs.get(CK.CKA_VALUE);
  if (kekValue === undefined || isSealedPlaceholder(kekValue)) return fail("CKR_GENERAL_ERROR");
  const entry = mechanismEntry(m.mechanism);
  if (entry?.family !== "wrap") return fail("CKR_MECHANISM_INVALID");
  const opened = entry.wrap.unwrap(kekValue, blob);
  if (!opened.ok) return fail(opened.rv);
  const rules = rulesFor(CK.CKO_SECRET_KEY, info.keyType);
  if (!rules) return fail("CKR_ATTRIBUTE_VALUE_INVALID");
  const w: ObjectWrite = { rules, cls: CK.CKO_SECRET_KEY, subtype: info.keyType, op: "unwrap", so: login === "so", attrs: defaults(rules, CK.CKO_SECRET_KEY, info.keyType) };
  const keyValue = opened.out;
  return finishKey(
    ctx,
    ref!,
    w,
    full,
    info.token,
    priv,
    (attrs) => {
      // The value is written raw: no VALUE_LEN, no check value (§5.2).
      attrs.set(CK.CKA_VALUE, keyValue);
      attrs.set(CK.CKA_LOCAL, FALSE);
      attrs.set(CK.CKA_ALWAYS_SENSITIVE, FALSE);
      attrs.set(CK.CKA_NEVER_EXTRACTABLE, FALSE);
    },
    looked,
  );
}

// ---- C_GenerateKeyPair ---------------------------------------------------------------------------------------------

/**
 * C_GenerateKeyPair — §5.14.2, for CKM_RSA_PKCS_KEY_PAIR_GEN, in SoftHSM 2.6.1's order (C_GenerateKeyPair, then
 * generateRSA in src/lib/SoftHSM.cpp; the rvs below were observed on the Debian library):
 *
 * | #  | check                                                                          | rv                          |
 * |----|--------------------------------------------------------------------------------|-----------------------------|
 * | 1  | not initialised                                                                | CRYPTOKI_NOT_INITIALIZED    |
 * | 2  | pMechanism, a template pointer, phPublicKey or phPrivateKey NULL                | ARGUMENTS_BAD               |
 * | 3  | session                                                                        | SESSION_HANDLE_INVALID      |
 * | 4  | mechanism not RSA_PKCS_KEY_PAIR_GEN (SoftHSM's DSA/DH/EC/GOST/EdDSA ones: not built here) | MECHANISM_INVALID |
 * | 5  | public template's CLASS not CKO_PUBLIC_KEY / its KEY_TYPE not CKK_RSA           | ATTRIBUTE_VALUE_INVALID / TEMPLATE_INCONSISTENT |
 * | 6  | private template's CLASS not CKO_PRIVATE_KEY / its KEY_TYPE not CKK_RSA         | ATTRIBUTE_VALUE_INVALID / TEMPLATE_INCONSISTENT |
 * | 7  | haveWrite for the public key (PRIVATE defaults false), then for the private key (PRIVATE defaults true) | SESSION_READ_ONLY / USER_NOT_LOGGED_IN |
 * | 8  | public template: CKA_MODULUS_BITS not 8 bytes                                  | ATTRIBUTE_VALUE_INVALID     |
 * | 9  | CKA_MODULUS_BITS missing or 0                                                  | TEMPLATE_INCOMPLETE         |
 * | 10 | the generator refuses (bits outside 512..16384, exponent even or < 3)           | GENERAL_ERROR               |
 * | 11 | either template longer than 28 entries                                         | TEMPLATE_INCONSISTENT       |
 * | 12 | the public key's internal create (op=GENERATE) fails on an entry               | its rv                      |
 * | 13 | the private key's internal create fails on an entry                            | its rv                      |
 *
 * Steps 12–13 in softhsm2 (atomicObjectWrites off) leave SoftHSM's traces: the failing object is an orphan (no
 * handle), and a public key made before a failing private one is destroyed again, its handle spent. The key pair is
 * drawn by the shell (node:crypto's generator, crypto/rsa.ts) and recorded in the two ObjectCreated facts, the private
 * components sealed, so replay never draws again. No OPERATION_ACTIVE check, as for C_GenerateKey.
 */
export function C_GenerateKeyPair(ctx: DecideContext, args: CallArgs["C_GenerateKeyPair"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv0 = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.mechanism === null || args.publicTemplate === null || args.privateTemplate === null, "CKR_ARGUMENTS_BAD"],
    [args.phPublicKey === null || args.phPrivateKey === null, "CKR_ARGUMENTS_BAD"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv0) return reject(rv0);
  if (args.mechanism!.mechanism !== CK.CKM_RSA_PKCS_KEY_PAIR_GEN) return reject("CKR_MECHANISM_INVALID");
  const pubT = args.publicTemplate!;
  const privT = args.privateTemplate!;
  const pub = extractObjectInformation(pubT);
  const priv = extractObjectInformation(privT);
  const pubPrivate = pub.privGiven ? pub.priv : false;
  const privPrivate = priv.privGiven ? priv.priv : true;
  const classes = firstFailure([
    [pub.cls !== undefined && pub.cls !== CK.CKO_PUBLIC_KEY, "CKR_ATTRIBUTE_VALUE_INVALID"],
    [pub.keyType !== undefined && pub.keyType !== CK.CKK_RSA, "CKR_TEMPLATE_INCONSISTENT"],
    [priv.cls !== undefined && priv.cls !== CK.CKO_PRIVATE_KEY, "CKR_ATTRIBUTE_VALUE_INVALID"],
    [priv.keyType !== undefined && priv.keyType !== CK.CKK_RSA, "CKR_TEMPLATE_INCONSISTENT"],
  ]);
  if (classes) return reject(classes);
  const login = ref!.slot.actor.login;
  const denied = writeAccess(login, ref!.session.rw, pub.token, pubPrivate) ?? writeAccess(login, ref!.session.rw, priv.token, privPrivate);
  if (denied) return reject(denied);
  let bits = 0;
  let exponent: Uint8Array = Uint8Array.of(1, 0, 1);
  for (const t of pubT) {
    const v = t.value ?? EMPTY;
    if (t.type === CK.CKA_MODULUS_BITS) {
      if (v.length !== 8) return reject("CKR_ATTRIBUTE_VALUE_INVALID");
      const big = new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true);
      bits = big > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(big);
    } else if (t.type === CK.CKA_PUBLIC_EXPONENT) exponent = v;
  }
  if (bits === 0) return reject("CKR_TEMPLATE_INCOMPLETE");
  const pair = ctx.shell.generateRsa(bits, exponent);
  if (!pair) return reject("CKR_GENERAL_ERROR");
  if (pubT.length > MAX_KEY_TEMPLATE || privT.length > MAX_KEY_TEMPLATE) return reject("CKR_TEMPLATE_INCONSISTENT");

  const so = login === "so";
  const write = (cls: number): ObjectWrite => {
    const rules = rulesOfKeyPair(cls);
    const attrs = defaults(rules, cls, undefined);
    attrs.set(CK.CKA_KEY_TYPE, ulongBytes(CK.CKK_RSA));
    return { rules, cls, subtype: CK.CKK_RSA, op: "generate", so, attrs };
  };
  const atomic = ctx.state.profile.atomicObjectWrites;
  // Object ids: two new objects in one decision take consecutive numbers of their counters.
  const tokenNext = ctx.state.tokens.get(ref!.session.token)!.nextObject;
  const ids = { t: tokenNext, a: ref!.app.nextSessionObject };
  const takeId = (token: boolean) => (token ? `t${ref!.session.token}/${ids.t++}` : `a${ctx.appId}/${ids.a++}`);
  const withId = (f: Fact, id: string): Fact => (f.type === "ObjectCreated" ? { ...f, object: { ...f.object, id } } : f);

  const wPub = write(CK.CKO_PUBLIC_KEY);
  const pubFailed = applyTemplate(wPub, rebuilt(pubT, CK.CKO_PUBLIC_KEY, CK.CKK_RSA, pub.token, pubPrivate, false));
  if (pubFailed) {
    return atomic ? reject(pubFailed) : answer(pubFailed, undefined, [withId(orphan(ctx, ref!, wPub, pub.token, pubPrivate), takeId(pub.token))]);
  }
  const common = (attrs: Map<number, Uint8Array>) => {
    attrs.set(CK.CKA_LOCAL, TRUE);
    attrs.set(CK.CKA_KEY_GEN_MECHANISM, ulongBytes(CK.CKM_RSA_PKCS_KEY_PAIR_GEN));
    attrs.set(CK.CKA_MODULUS, pair.n);
    attrs.set(CK.CKA_PUBLIC_EXPONENT, pair.e);
  };
  common(wPub.attrs);
  const hPub = nextHandle(ctx, "object");
  const pubId = takeId(pub.token);
  const pubFact = created(ctx, ref!, hPub, { id: pubId, token: pub.token, private: pubPrivate, attrs: storedAttrs(ctx, wPub.attrs) });

  const wPriv = write(CK.CKO_PRIVATE_KEY);
  const privFailed = applyTemplate(wPriv, rebuilt(privT, CK.CKO_PRIVATE_KEY, CK.CKK_RSA, priv.token, privPrivate, false));
  if (privFailed) {
    if (atomic) return reject(privFailed);
    const gone: Fact = { type: "ObjectDestroyed", app: ctx.appId, object: pubId };
    return answer(privFailed, undefined, [pubFact, gone, withId(orphan(ctx, ref!, wPriv, priv.token, privPrivate), takeId(priv.token))]);
  }
  const a = wPriv.attrs;
  common(a);
  a.set(CK.CKA_ALWAYS_SENSITIVE, boolAttr(a, CK.CKA_SENSITIVE) ? TRUE : FALSE);
  a.set(CK.CKA_NEVER_EXTRACTABLE, boolAttr(a, CK.CKA_EXTRACTABLE) ? FALSE : TRUE);
  a.set(CK.CKA_PRIVATE_EXPONENT, pair.d);
  a.set(CK.CKA_PRIME_1, pair.p);
  a.set(CK.CKA_PRIME_2, pair.q);
  a.set(CK.CKA_EXPONENT_1, pair.dp);
  a.set(CK.CKA_EXPONENT_2, pair.dq);
  a.set(CK.CKA_COEFFICIENT, pair.qi);
  const hPriv = nextHandle(ctx, "object", 1);
  const privFact = created(ctx, ref!, hPriv, { id: takeId(priv.token), token: priv.token, private: privPrivate, attrs: storedAttrs(ctx, a) });
  return answer("CKR_OK", { hPublicKey: hPub, hPrivateKey: hPriv }, [pubFact, privFact]);
}

function rulesOfKeyPair(cls: number) {
  return KEY_PAIR_TYPES.get(cls)!;
}
