/**
 * Object management (PKCS#11 v2.40 §5.7) for data objects: C_CreateObject, C_DestroyObject, C_GetAttributeValue,
 * C_SetAttributeValue, C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal. Fact sheet §16 and
 * docs/notes/softhsm-data-objects.md (check orders, the attribute rules, SoftHSM's non-atomic writes).
 *
 * Access rules (fact sheet §16). Write (create, destroy, set):
 *
 * | object \ session      | RO public         | RW public | RO user           | RW user | RW SO |
 * |-----------------------|-------------------|-----------|-------------------|---------|-------|
 * | public session object | OK                | OK        | OK                | OK      | OK    |
 * | private session obj.  | USER_NOT_LOGGED_IN| UNLI      | OK                | OK      | UNLI  |
 * | public token object   | SESSION_READ_ONLY | OK        | SESSION_READ_ONLY | OK      | OK    |
 * | private token object  | SESSION_READ_ONLY | UNLI      | SESSION_READ_ONLY | OK      | UNLI  |
 *
 * Read: private objects need a user login (the SO counts as public).
 */
import type { CallArgs, AttributeOut, Template } from "../events/calls.js";
import type { Fact, Login, ObjectSnapshot, StoredAttribute } from "../events/types.js";
import { bytesToHex } from "../crypto/encoding.js";
import {
  CK1,
  CK2,
  CK3,
  CK4,
  CK5,
  CK6,
  CK7,
  CK8,
  CK17,
  fixedSize,
  KNOWN_CLASSES,
  normaliseMechanisms,
  normaliseTemplateAttr,
  privateByDefault,
  readUlong,
  rulesFor,
  rulesOf,
  TRUE,
  FALSE,
  ulongBytes,
  type AttrRule,
} from "../pkcs11/attributes.js";
import { certCheckValue, isSealedPlaceholder, keyCheckValue, valueWithheld } from "../model/key-material.js";
import type { CkrName } from "../pkcs11/constants.js";
import type { Profile } from "../pkcs11/profiles.js";
import {
  currentHandleOf,
  heldHandle,
  liveObject,
  resolveObjectHandle,
  type AppState,
  type ObjectState,
  type OperationState,
} from "../model/state.js";
import {
  answer,
  CK,
  findSession,
  firstFailure,
  isDecision,
  knownAfterLook,
  looks,
  nextHandle,
  reject,
  startOperation,
  type DecideContext,
  type Decision,
  type SessionRef,
} from "./context.js";

export function writeAccess(login: Login, rw: boolean, token: boolean, priv: boolean): CkrName | undefined {
  if (token && !rw) return "CKR_SESSION_READ_ONLY";
  if (priv && login !== "user") return "CKR_USER_NOT_LOGGED_IN";
  return undefined;
}

export function readAccess(login: Login, priv: boolean): boolean {
  return !priv || login === "user";
}

const MAX_CREATE_ATTRIBUTES = 32;
const EMPTY = new Uint8Array(0);

/**
 * The attributes as a fact carries them: raw bytes in hex, key material sealed under the simulator key. `sealedFrom`
 * gives the sealed form of values this simulator cannot open (SEALED_VALUE placeholders copied from a source object).
 */
export function storedAttrs(
  ctx: DecideContext,
  attrs: ReadonlyMap<number, Uint8Array>,
  types?: Iterable<number>,
  sealedFrom?: ReadonlyMap<number, string>,
): StoredAttribute[] {
  const rules = rulesOf(attrs);
  const out: StoredAttribute[] = [];
  for (const type of types ?? attrs.keys()) {
    const v = attrs.get(type)!;
    if (rules?.get(type)?.secret) {
      const prior = isSealedPlaceholder(v) ? sealedFrom?.get(type) : undefined;
      out.push({ type, sealed: prior ?? ctx.shell.seal(v) });
    } else out.push({ type, value: bytesToHex(v) });
  }
  return out;
}

/** What SoftHSM reads from a template before it builds anything: right-sized entries only, the last one wins. */
export function extractObjectInformation(template: readonly Template[]) {
  let cls: number | undefined;
  let token: boolean | undefined;
  let priv: boolean | undefined;
  let keyType: number | undefined;
  let certType: number | undefined;
  for (const a of template) {
    const v = a.value;
    if (!v) continue;
    if (a.type === CK.CKA_CLASS && v.length === 8) cls = readUlong(v);
    else if (a.type === CK.CKA_TOKEN && v.length === 1) token = v[0] !== 0;
    else if (a.type === CK.CKA_PRIVATE && v.length === 1) priv = v[0] !== 0;
    else if (a.type === CK.CKA_KEY_TYPE && v.length === 8) keyType = readUlong(v);
    else if (a.type === CK.CKA_CERTIFICATE_TYPE && v.length === 8) certType = readUlong(v);
  }
  const privDefault = priv ?? (cls === undefined ? true : privateByDefault(cls));
  return { cls, token: token ?? false, priv: privDefault, keyType, certType, tokenGiven: token !== undefined, privGiven: priv !== undefined };
}

/** The calls that write attributes, as SoftHSM's P11Attribute::update tells them apart. */
export type WriteOp = "create" | "generate" | "unwrap" | "set" | "copy";

/** One object being written: its table, class and subtype, the call, and whether the SO is logged in (CKA_TRUSTED). */
export interface ObjectWrite {
  rules: ReadonlyMap<number, AttrRule>;
  cls: number;
  subtype: number | undefined;
  op: WriteOp;
  so: boolean;
  attrs: Map<number, Uint8Array>;
  /** Set by applyTemplate: the failure left the applied entries in place even on a token object. */
  kept?: boolean;
}

const creating = (op: WriteOp) => op === "create" || op === "generate";
const isTrue = (v: Uint8Array | undefined) => v !== undefined && v[0] === 1;

/**
 * Apply one template entry under SoftHSM's P11Attribute::update rule list (docs/notes/softhsm-keys.md §0), in its
 * order; the attribute's writer then does its own checks. Returns the failing rv, or undefined.
 */
export function applyEntry(w: ObjectWrite, entry: Template): CkrName | undefined {
  const { rules, op, attrs } = w;
  const rule = rules.get(entry.type);
  if (!rule) return "CKR_ATTRIBUTE_TYPE_INVALID";
  const v = entry.value ?? EMPTY;
  const size = fixedSize(rule.kind);
  if (size !== undefined && v.length !== size) return "CKR_ATTRIBUTE_VALUE_INVALID";
  // 3. A non-modifiable object takes no change at all after creation, not even in a copy's or an unwrap's template.
  if (!creating(op) && attrs.get(CK.CKA_MODIFIABLE)?.[0] === 0) return "CKR_ATTRIBUTE_READ_ONLY";
  // 4. Nor does a trusted certificate.
  if (!creating(op) && w.cls === CK.CKO_CERTIFICATE && isTrue(attrs.get(CK.CKA_TRUSTED))) return "CKR_ATTRIBUTE_READ_ONLY";
  // 5-7. Attributes a creating call may not be given.
  if (rule.ck & CK2 && op === "create") return "CKR_ATTRIBUTE_READ_ONLY";
  if (rule.ck & CK4 && op === "generate") return "CKR_ATTRIBUTE_READ_ONLY";
  if (rule.ck & CK6 && op === "unwrap") return "CKR_ATTRIBUTE_READ_ONLY";
  // 8-11. Who may write it.
  const writes =
    op === "create" || op === "generate" || op === "unwrap" || (rule.ck & CK8 && (op === "set" || op === "copy")) || (rule.ck & CK17 && op === "copy");
  if (!writes) return "CKR_ATTRIBUTE_READ_ONLY";
  return write(w, rule, v);
}

/** The attribute's own writer (SoftHSM P11Attr*::updateAttr). */
function write(w: ObjectWrite, rule: AttrRule, v: Uint8Array): CkrName | undefined {
  const { attrs, op } = w;
  const later = op === "set" || op === "copy";
  switch (rule.writer) {
    case "class":
      if (readUlong(v) !== w.cls) return "CKR_TEMPLATE_INCONSISTENT";
      break;
    case "keyType":
    case "certType":
      if (readUlong(v) !== w.subtype) return "CKR_TEMPLATE_INCONSISTENT";
      break;
    case "copyable":
      if (v[0] !== 0 && attrs.get(rule.type)?.[0] === 0) return "CKR_ATTRIBUTE_READ_ONLY";
      break;
    case "sensitive":
      // Only F -> T once the key exists; even writing T again is refused.
      if (later && isTrue(attrs.get(rule.type))) return "CKR_ATTRIBUTE_READ_ONLY";
      break;
    case "extractable":
      // Only T -> F once the key exists.
      if (later && attrs.get(rule.type)?.[0] === 0) return "CKR_ATTRIBUTE_READ_ONLY";
      break;
    case "trusted":
      if (v[0] !== 0 && !w.so) return "CKR_ATTRIBUTE_READ_ONLY";
      break;
    case "alwaysAuthenticate":
      // Only a private object may need re-authentication (observed: a PRIVATE=F RSA private key → TEMPLATE_INCONSISTENT).
      if (v[0] !== 0 && !isTrue(attrs.get(CK.CKA_PRIVATE))) return "CKR_TEMPLATE_INCONSISTENT";
      break;
    case "keyValue":
      attrs.set(rule.type, v.slice());
      attrs.set(CK.CKA_VALUE_LEN, ulongBytes(v.length));
      attrs.set(CK.CKA_CHECK_VALUE, keyCheckValue(w.subtype!, v));
      return undefined;
    case "certValue":
      attrs.set(rule.type, v.slice());
      attrs.set(CK.CKA_CHECK_VALUE, certCheckValue(v));
      return undefined;
    case "keyCheckValue": {
      if (v.length === 0) break;
      if (op === "generate") return "CKR_ATTRIBUTE_VALUE_INVALID";
      // Unwrap applies the template before the value is written: the KCV is compared against an empty key's.
      const value = op === "unwrap" ? EMPTY : attrs.get(CK.CKA_VALUE);
      if (value === undefined || isSealedPlaceholder(value)) return "CKR_GENERAL_ERROR";
      if (!equalBytes(v, keyCheckValue(w.subtype!, value))) return "CKR_ATTRIBUTE_VALUE_INVALID";
      break;
    }
    case "certCheckValue":
      // SoftHSM's certificate KCV writer fails for any non-empty value (leaving the object behind, §7.2).
      if (v.length !== 0) return "CKR_GENERAL_ERROR";
      break;
  }
  if (rule.kind === "bool") attrs.set(rule.type, v[0] !== 0 ? TRUE : FALSE);
  else if (rule.kind === "date") {
    if (v.length !== 0 && v.length !== 8) return "CKR_ATTRIBUTE_VALUE_INVALID";
    attrs.set(rule.type, v.slice());
  } else if (rule.kind === "mechanisms") {
    const m = normaliseMechanisms(v);
    if (!m) return "CKR_ATTRIBUTE_VALUE_INVALID";
    attrs.set(rule.type, m);
  } else if (rule.kind === "template") {
    const t = normaliseTemplateAttr(v);
    if (!t) return "CKR_ATTRIBUTE_VALUE_INVALID";
    attrs.set(rule.type, t);
  } else attrs.set(rule.type, v.slice());
  return undefined;
}

/**
 * A value SoftHSM cannot give back (CKR_GENERAL_ERROR): on a private object it decrypts every non-empty byte string,
 * and dates are always stored in clear (docs/notes/softhsm-keys.md §7.1), as is every byte string of a half-made
 * object that became private without its create being private (ObjectState.clearStorage).
 */
export function unreadable(profile: Profile, o: ObjectState, rule: AttrRule | undefined, v: Uint8Array): boolean {
  if (!o.private || v.length === 0 || !rule) return false;
  return (rule.kind === "date" && profile.unreadablePrivateDates) || (rule.kind === "bytes" && o.clearStorage === true);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const REQUIRED: Partial<Record<WriteOp, number>> = { create: CK1, generate: CK3, unwrap: CK5 };

/**
 * Apply a whole template (CKA_CHECK_VALUE entries moved to the end, as SoftHSM does, so the check value is compared
 * against the final key value), then the required-attribute check of the creating call (TEMPLATE_INCOMPLETE).
 */
export function applyTemplate(w: ObjectWrite, template: readonly Template[]): CkrName | undefined {
  const ordered = [...template.filter((t) => t.type !== CK.CKA_CHECK_VALUE), ...template.filter((t) => t.type === CK.CKA_CHECK_VALUE)];
  w.kept = false;
  for (const entry of ordered) {
    const failed = applyEntry(w, entry);
    if (failed) return failed;
  }
  const flag = REQUIRED[w.op];
  if (flag) {
    for (const r of w.rules.values()) {
      if (r.ck & flag && !template.some((t) => t.type === r.type)) {
        // SoftHSM returns here without aborting the object's transaction: even a token object keeps what was applied.
        w.kept = true;
        return "CKR_TEMPLATE_INCOMPLETE";
      }
    }
  }
  return undefined;
}

/**
 * A new object's attributes before its template: the table's defaults (CKA_TOKEN false, CKA_PRIVATE the class's
 * default), then class and subtype. The template's own CKA_TOKEN / CKA_PRIVATE entries land when it is applied, so a
 * half-made object (SoftHSM's orphan) shows them only if they came before the failing entry.
 */
export function defaults(rules: ReadonlyMap<number, AttrRule>, cls: number, subtype: number | undefined) {
  const attrs = new Map<number, Uint8Array>();
  for (const r of rules.values()) attrs.set(r.type, r.default);
  attrs.set(CK.CKA_CLASS, ulongBytes(cls));
  if (cls === CK.CKO_SECRET_KEY) attrs.set(CK.CKA_KEY_TYPE, ulongBytes(subtype!));
  if (cls === CK.CKO_CERTIFICATE) attrs.set(CK.CKA_CERTIFICATE_TYPE, ulongBytes(subtype!));
  return attrs;
}

export function newObjectId(ctx: DecideContext, ref: SessionRef, token: boolean): string {
  if (token) {
    const t = ctx.state.tokens.get(ref.session.token)!;
    return `t${t.id}/${t.nextObject}`;
  }
  return `a${ctx.appId}/${ref.app.nextSessionObject}`;
}

export function created(ctx: DecideContext, ref: SessionRef, handle: number, o: Omit<ObjectSnapshot, "slotID">): Fact {
  return {
    type: "ObjectCreated",
    app: ctx.appId,
    handle,
    session: ref.session.handle,
    object: { ...o, slotID: ref.session.slotID, ...(o.token ? {} : { creator: ref.session.handle }) },
  };
}

/**
 * SoftHSM's half-made object after a creating call failed while applying its template (profile switch
 * atomicObjectWrites off): no handle is issued for it. A session object keeps what was applied; a token object's file
 * rolls back to its defaults, with CKA_TOKEN false.
 */
export function orphan(ctx: DecideContext, ref: SessionRef, w: ObjectWrite, token: boolean, priv: boolean): Fact {
  const id = newObjectId(ctx, ref, token);
  // The rolled-back file holds the class's defaults: CKA_PRIVATE true for data objects and keys, false for certificates.
  const defaultPrivate = w.rules.get(CK.CKA_PRIVATE)!.default[0] === 1;
  const rolledBack = token && !w.kept;
  const attrs = rolledBack ? defaults(w.rules, w.cls, w.subtype) : w.attrs;
  // Who may see it is what its CKA_PRIVATE says: the template's entry only if it was applied before the failure.
  const visiblePrivate = rolledBack ? defaultPrivate : attrs.get(CK.CKA_PRIVATE)?.[0] === 1;
  // SoftHSM wrote the template's byte strings encrypted only if the call's CKA_PRIVATE (read before the object
  // existed) was true; if the object ended up private without that, it cannot read them back.
  const clearStorage = visiblePrivate && !rolledBack && !priv ? ({ clearStorage: true } as const) : {};
  return created(ctx, ref, 0, { id, token, private: visiblePrivate, ...clearStorage, attrs: storedAttrs(ctx, attrs) });
}

/** The secret-key or certificate subtype a creating template names, for the table lookup. */
const subtypeOf = (info: ReturnType<typeof extractObjectInformation>) =>
  info.cls === CK.CKO_CERTIFICATE ? info.certType : info.keyType;

const isKeyClass = (c: number) => c === CK.CKO_PUBLIC_KEY || c === CK.CKO_PRIVATE_KEY || c === CK.CKO_SECRET_KEY;

/**
 * C_CreateObject — §5.7.1. Template checks come before the access check; the 32-attribute limit, the class and the
 * key or certificate type (ATTRIBUTE_VALUE_INVALID for one hsmsim does not build) after it.
 */
export function C_CreateObject(ctx: DecideContext, args: CallArgs["C_CreateObject"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv0 = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.template === null, "CKR_ARGUMENTS_BAD"],
    [args.phObject === null, "CKR_ARGUMENTS_BAD"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv0) return reject(rv0);
  const template = args.template!;
  const info = extractObjectInformation(template);
  const { session, slot } = ref!;
  const rv = firstFailure([
    [info.cls === undefined, "CKR_TEMPLATE_INCOMPLETE"],
    [() => isKeyClass(info.cls!) && info.keyType === undefined, "CKR_TEMPLATE_INCOMPLETE"],
    [() => info.cls === CK.CKO_CERTIFICATE && info.certType === undefined, "CKR_TEMPLATE_INCOMPLETE"],
  ]);
  if (rv) return reject(rv);
  const denied = writeAccess(slot.actor.login, session.rw, info.token, info.priv);
  if (denied) return reject(denied);
  if (template.length > MAX_CREATE_ATTRIBUTES) return reject("CKR_TEMPLATE_INCONSISTENT");
  const cls = info.cls!;
  if (!KNOWN_CLASSES.has(cls)) return reject("CKR_ATTRIBUTE_VALUE_INVALID");
  const subtype = subtypeOf(info);
  const rules = rulesFor(cls, subtype);
  // Public and private keys, domain parameters, DES/GOST keys and OpenPGP certificates are SoftHSM objects hsmsim
  // does not build: refused, and said so in the docs.
  if (!rules) return reject("CKR_ATTRIBUTE_VALUE_INVALID");

  const w: ObjectWrite = { rules, cls, subtype, op: "create", so: slot.actor.login === "so", attrs: defaults(rules, cls, subtype) };
  const failed = applyTemplate(w, template);
  if (failed) {
    if (ctx.state.profile.atomicObjectWrites) return reject(failed);
    return answer(failed, undefined, [orphan(ctx, ref!, w, info.token, info.priv)]);
  }
  const id = newObjectId(ctx, ref!, info.token);
  const handle = nextHandle(ctx, "object");
  return answer("CKR_OK", { hObject: handle }, [
    created(ctx, ref!, handle, { id, token: info.token, private: info.priv, attrs: storedAttrs(ctx, w.attrs) }),
  ]);
}

/**
 * The token a handle's object lives on, when the handle is still held (epochs current): SoftHSM validates such an
 * object against its file first, and that validation is a look (softhsm2 rule O1), whatever the call then answers.
 */
function tokenOfHandle(app: AppState, handle: number): string | undefined {
  const e = heldHandle(app, handle);
  return e && e.object.charCodeAt(0) === 116 /* 't' */ ? e.object.slice(1, e.object.indexOf("/")) : undefined;
}

/** The look SoftHSM's handle validation makes when a still-held handle names a token object (softhsm2 rule O1). */
export function handleLooks(ctx: DecideContext, app: AppState, handle: number): Fact[] {
  const tokenId = tokenOfHandle(app, handle);
  return tokenId ? looks(ctx, tokenId) : [];
}

export function objectStep(ctx: DecideContext, hSession: number, hObject: number, nullTemplate: boolean) {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, hSession);
  const found = ref ? resolveObjectHandle(ctx.state, ref.app, hObject) : undefined;
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [nullTemplate, "CKR_ARGUMENTS_BAD"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv) return { rv, looked: [] as Fact[] };
  const tokenId = tokenOfHandle(ref!.app, hObject);
  const looked = tokenId ? looks(ctx, tokenId) : [];
  if (!found) return { rv: "CKR_OBJECT_HANDLE_INVALID" as CkrName, looked };
  return { ref: ref!, object: found.object, looked };
}

const boolAttr = (o: ObjectState, type: number) => o.attrs.get(type)?.[0] === 1;

/** C_DestroyObject — §5.7.3. Session, handle, access, then CKA_DESTROYABLE (CKA_MODIFIABLE is not consulted). */
export function C_DestroyObject(ctx: DecideContext, args: CallArgs["C_DestroyObject"]): Decision {
  const s = objectStep(ctx, args.hSession, args.hObject, false);
  if ("rv" in s) return answer(s.rv!, undefined, s.looked);
  const { ref, object, looked } = s;
  const denied = writeAccess(ref.slot.actor.login, ref.session.rw, object.token, object.private);
  if (denied) return answer(denied, undefined, looked);
  if (!boolAttr(object, CK.CKA_DESTROYABLE)) return answer("CKR_ACTION_PROHIBITED", undefined, looked);
  return answer("CKR_OK", undefined, [...looked, { type: "ObjectDestroyed", app: ctx.appId, object: object.id }]);
}

/**
 * C_CopyObject — §5.7.2. Read access to the source, then CKA_COPYABLE (before any template check), then the target's
 * CKA_TOKEN / CKA_PRIVATE (a private object may not become public), then write access for the target, then each
 * template entry under the copy rules. The copy keeps every source attribute; a failed copy leaves nothing behind
 * (SoftHSM destroys it), in both profiles. No 32-attribute limit applies (docs/notes/softhsm-data-objects.md §4).
 */
export function C_CopyObject(ctx: DecideContext, args: CallArgs["C_CopyObject"]): Decision {
  const s = objectStep(ctx, args.hSession, args.hObject, args.template === null || args.phNewObject === null);
  if ("rv" in s) return answer(s.rv!, undefined, s.looked);
  const { ref, object: source, looked } = s;
  const refuse = (rv: CkrName) => answer(rv, undefined, looked);
  const login = ref.slot.actor.login;
  if (!readAccess(login, source.private)) return refuse("CKR_USER_NOT_LOGGED_IN");
  if (!boolAttr(source, CK.CKA_COPYABLE)) return refuse("CKR_ACTION_PROHIBITED");
  const template = args.template!;
  const target = extractObjectInformation(template);
  const token = template.some((t) => t.type === CK.CKA_TOKEN && t.value?.length === 1) ? target.token : source.token;
  const priv = template.some((t) => t.type === CK.CKA_PRIVATE && t.value?.length === 1) ? target.priv : source.private;
  if (source.private && !priv) return refuse("CKR_TEMPLATE_INCONSISTENT");
  const denied = writeAccess(login, ref.session.rw, token, priv);
  if (denied) return refuse(denied);
  const w = writeOf(source, "copy", login);
  const failed = applyTemplate(w, template);
  if (failed) return refuse(failed);
  const id = newObjectId(ctx, ref, token);
  const handle = nextHandle(ctx, "object");
  return answer("CKR_OK", { hObject: handle }, [
    ...looked,
    created(ctx, ref, handle, { id, token, private: priv, attrs: storedAttrs(ctx, w.attrs, undefined, source.sealed) }),
  ]);
}

/** An existing object's write context, for set and copy: a copy of its attributes to change. */
function writeOf(o: ObjectState, op: "set" | "copy", login: Login): ObjectWrite {
  const attrs = new Map(o.attrs);
  const cls = readUlong(attrs.get(CK.CKA_CLASS)!);
  const sub = attrs.get(cls === CK.CKO_CERTIFICATE ? CK.CKA_CERTIFICATE_TYPE : CK.CKA_KEY_TYPE);
  return { rules: rulesOf(attrs)!, cls, subtype: sub ? readUlong(sub) : undefined, op, so: login === "so", attrs };
}

/** C_GetObjectSize — §5.7.4. No access check at all; SoftHSM does not know the size (§16). */
export function C_GetObjectSize(ctx: DecideContext, args: CallArgs["C_GetObjectSize"]): Decision {
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.pulSize === null, "CKR_ARGUMENTS_BAD"],
  ]);
  if (rv) return reject(rv);
  const s = objectStep(ctx, args.hSession, args.hObject, false);
  if ("rv" in s) return answer(s.rv!, undefined, s.looked);
  return answer("CKR_OK", { size: UNAVAILABLE }, s.looked);
}

/** CK_UNAVAILABLE_INFORMATION, the ulValueLen of an entry that cannot be returned. */
const UNAVAILABLE = CK.CK_UNAVAILABLE_INFORMATION;

/**
 * C_GetAttributeValue — §5.7.5. Every entry is processed; a bad entry gets CK_UNAVAILABLE_INFORMATION and the rv is
 * chosen by priority (SENSITIVE > TYPE_INVALID > BUFFER_TOO_SMALL). A private object seen from a public or SO
 * session answers CKR_GENERAL_ERROR, as SoftHSM does (§16).
 */
export function C_GetAttributeValue(ctx: DecideContext, args: CallArgs["C_GetAttributeValue"]): Decision {
  const s = objectStep(ctx, args.hSession, args.hObject, args.template === null);
  if ("rv" in s) return answer(s.rv!, undefined, s.looked);
  const { ref, object, looked } = s;
  if (!readAccess(ref.slot.actor.login, object.private)) return answer("CKR_GENERAL_ERROR", undefined, looked);
  const rules = rulesOf(object.attrs);
  let typeInvalid = false;
  let tooSmall = false;
  let sensitive = false;
  let general = false;
  const attrs: AttributeOut[] = args.template!.map((t) => {
    const v = object.attrs.get(t.type);
    const rule = rules?.get(t.type);
    if (v === undefined) {
      typeInvalid = true;
      return { type: t.type, value: null, length: UNAVAILABLE };
    }
    // ck7: a sensitive or unextractable key's value is withheld, before the size query (§2).
    if (rule && rule.ck & CK7 && valueWithheld(object)) {
      sensitive = true;
      return { type: t.type, value: null, length: UNAVAILABLE };
    }
    // Key material this simulator cannot open (a log replayed without its key), or SoftHSM's unreadable private dates.
    if (isSealedPlaceholder(v) || unreadable(ctx.state.profile, object, rule, v)) {
      general = true;
      return { type: t.type, value: null, length: UNAVAILABLE };
    }
    if (t.value === null) return { type: t.type, value: null, length: v.length };
    if (t.value.length < v.length) {
      tooSmall = true;
      return { type: t.type, value: null, length: UNAVAILABLE };
    }
    return { type: t.type, value: v.slice(), length: v.length };
  });
  const rv: CkrName = general
    ? "CKR_GENERAL_ERROR"
    : sensitive
      ? "CKR_ATTRIBUTE_SENSITIVE"
      : typeInvalid
        ? "CKR_ATTRIBUTE_TYPE_INVALID"
        : tooSmall
          ? "CKR_BUFFER_TOO_SMALL"
          : "CKR_OK";
  return answer(rv, { attrs }, looked);
}

/** C_SetAttributeValue — §5.7.6. Access, then CKA_MODIFIABLE (ACTION_PROHIBITED), then each entry in order. */
export function C_SetAttributeValue(ctx: DecideContext, args: CallArgs["C_SetAttributeValue"]): Decision {
  const s = objectStep(ctx, args.hSession, args.hObject, args.template === null);
  if ("rv" in s) return answer(s.rv!, undefined, s.looked);
  const { ref, object, looked } = s;
  const denied = writeAccess(ref.slot.actor.login, ref.session.rw, object.token, object.private);
  if (denied) return answer(denied, undefined, looked);
  if (!boolAttr(object, CK.CKA_MODIFIABLE)) return answer("CKR_ACTION_PROHIBITED", undefined, looked);
  const w = writeOf(object, "set", ref.slot.actor.login);
  const touched = new Set<number>();
  const changedFact = (): Fact => ({ type: "AttributesChanged", object: object.id, attrs: storedAttrs(ctx, w.attrs, touched, object.sealed) });
  const template = args.template!;
  const ordered = [...template.filter((t) => t.type !== CK.CKA_CHECK_VALUE), ...template.filter((t) => t.type === CK.CKA_CHECK_VALUE)];
  for (const entry of ordered) {
    const failed = applyEntry(w, entry);
    if (failed) {
      // SoftHSM keeps what it applied to a session object before the failure; a token object's file rolls back.
      const keep = !ctx.state.profile.atomicObjectWrites && !object.token && touched.size > 0;
      return answer(failed, undefined, keep ? [...looked, changedFact()] : looked);
    }
    touched.add(entry.type);
  }
  if (touched.size === 0) return answer("CKR_OK", undefined, looked);
  return answer("CKR_OK", undefined, [...looked, changedFact()]);
}

/**
 * Template matching as SoftHSM's find does it: exact bytes, whatever CKA_SENSITIVE says (a sensitive key is found by
 * its value); a bool matches only a 1-byte entry, 0x01 meaning true; ALLOWED_MECHANISMS and the wrap templates never
 * match. "error": a private object's 8-byte date, which SoftHSM cannot read back (§7.1).
 */
function matches(profile: Profile, o: ObjectState, template: readonly Template[], rules: ReadonlyMap<number, AttrRule> | undefined): boolean | "error" {
  for (const t of template) {
    const v = o.attrs.get(t.type);
    if (v === undefined) return false;
    const rule = rules?.get(t.type);
    if (rule?.neverMatches || isSealedPlaceholder(v)) return false;
    if (unreadable(profile, o, rule, v)) return "error";
    const want = t.value ?? new Uint8Array(0);
    if (rule?.kind === "bool") {
      if (want.length !== 1 || (want[0] === 1) !== (v[0] === 1)) return false;
      continue;
    }
    if (!equalBytes(want, v)) return false;
  }
  return true;
}

/**
 * C_FindObjectsInit — §5.7.7. A snapshot of the token's objects and this application's session objects on the slot,
 * private ones only for a user session; objects met for the first time get handles now. Results come back in
 * ascending handle order (SoftHSM keeps them in a std::set).
 */
export function C_FindObjectsInit(ctx: DecideContext, args: CallArgs["C_FindObjectsInit"]): Decision {
  const ref = startOperation(ctx, args.hSession, args.template === null, "find");
  if (isDecision(ref)) return ref;
  const { app, session, slot } = ref;
  const template = args.template!;
  const seePrivate = slot.actor.login === "user";
  const facts: Fact[] = [];
  const handles: number[] = [];
  let fresh = 0;
  let unreadableSeen = false;
  const consider = (o: ObjectState) => {
    if (o.private && !seePrivate) return;
    const m = matches(ctx.state.profile, o, template, rulesOf(o.attrs));
    if (m === "error") unreadableSeen = true;
    if (m !== true) return;
    let h = currentHandleOf(ctx.state, app, o.id);
    if (h === undefined) {
      h = nextHandle(ctx, "object", fresh++);
      const via = o.token ? {} : { via: session.handle };
      facts.push({ type: "ObjectHandleIssued", app: ctx.appId, handle: h, object: o.id, slotID: session.slotID, ...via });
    }
    handles.push(h);
  };
  const token = ctx.state.tokens.get(session.token)!;
  // A look first: the application finds the token objects it knows of (softhsm2 may have missed some, rule O2).
  facts.push(...looks(ctx, token.id));
  for (const id of knownAfterLook(ctx, token)) {
    const o = token.objects.get(id);
    if (o) consider(o);
  }
  for (const o of app.sessionObjects.values()) {
    if (o.slotID === session.slotID && liveObject(ctx.state, app, o.id)) consider(o);
  }
  // SoftHSM has made the session's find operation before it fails: it stays active, with nothing found.
  if (unreadableSeen) return answer("CKR_GENERAL_ERROR", undefined, [...facts.filter((f) => f.type !== "ObjectHandleIssued"), { type: "FindStarted", app: ctx.appId, session: session.handle, handles: [], broken: true }]);
  handles.sort((a, b) => a - b);
  facts.push({ type: "FindStarted", app: ctx.appId, session: session.handle, handles });
  return answer("CKR_OK", undefined, facts);
}

/** C_FindObjects — §5.7.8. Pages through the snapshot; handles may be stale by now (a snapshot, §20.19). */
export function C_FindObjects(ctx: DecideContext, args: CallArgs["C_FindObjects"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.phObject === null, "CKR_ARGUMENTS_BAD"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv) return reject(rv);
  const step = ref!.slot.actor.operation(args.hSession, { type: "Step", kind: "find" });
  if (step !== "CKR_OK") return reject(step);
  const op = ref!.session.op as Extract<OperationState, { kind: "find" }>;
  if (op.broken) return reject("CKR_GENERAL_ERROR");
  const handles = op.handles.slice(op.pos, op.pos + Math.max(0, args.maxCount));
  const facts: Fact[] = handles.length ? [{ type: "FindAdvanced", app: ctx.appId, session: args.hSession, count: handles.length }] : [];
  return answer("CKR_OK", { handles }, facts);
}

/** C_FindObjectsFinal — §5.7.9. A second Final answers CKR_OPERATION_NOT_INITIALIZED. */
export function C_FindObjectsFinal(ctx: DecideContext, args: CallArgs["C_FindObjectsFinal"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv) return reject(rv);
  const step = ref!.slot.actor.operation(args.hSession, { type: "Step", kind: "find" });
  if (step !== "CKR_OK") return reject(step);
  return answer("CKR_OK", undefined, [{ type: "OperationEnded", app: ctx.appId, session: args.hSession }]);
}
