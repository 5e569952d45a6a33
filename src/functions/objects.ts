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
  fixedSize,
  KNOWN_CLASSES,
  OBJECT_CLASSES,
  privateByDefault,
  readUlong,
  TRUE,
  FALSE,
  type AttrRule,
} from "../pkcs11/attributes.js";
import type { CkrName } from "../pkcs11/constants.js";
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
  knownAfterLook,
  looks,
  nextHandle,
  reject,
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

const stored = (attrs: Map<number, Uint8Array>): StoredAttribute[] =>
  [...attrs].map(([type, v]) => ({ type, value: bytesToHex(v) }));

/** What SoftHSM reads from a template before it builds anything: right-sized entries only, the last one wins. */
function extractObjectInformation(template: readonly Template[]) {
  let cls: number | undefined;
  let token: boolean | undefined;
  let priv: boolean | undefined;
  let keyType = false;
  let certType = false;
  for (const a of template) {
    const v = a.value;
    if (!v) continue;
    if (a.type === CK.CKA_CLASS && v.length === 8) cls = readUlong(v);
    else if (a.type === CK.CKA_TOKEN && v.length === 1) token = v[0] !== 0;
    else if (a.type === CK.CKA_PRIVATE && v.length === 1) priv = v[0] !== 0;
    else if (a.type === CK.CKA_KEY_TYPE && v.length === 8) keyType = true;
    else if (a.type === CK.CKA_CERTIFICATE_TYPE && v.length === 8) certType = true;
  }
  return { cls, token: token ?? false, priv: priv ?? (cls === undefined ? true : privateByDefault(cls)), keyType, certType };
}

/**
 * Apply one template entry to an attribute map under SoftHSM's P11Attribute::update rules, in their order.
 * `op` is what the entry is for: create (every attribute the class has may be written) or set.
 */
function applyEntry(
  rules: ReadonlyMap<number, AttrRule>,
  cls: number,
  attrs: Map<number, Uint8Array>,
  entry: Template,
  op: "create" | "set" | "copy",
): CkrName | undefined {
  const rule = rules.get(entry.type);
  if (!rule) return "CKR_ATTRIBUTE_TYPE_INVALID";
  const v = entry.value ?? new Uint8Array(0);
  const size = fixedSize(rule.kind);
  if (size !== undefined && v.length !== size) return "CKR_ATTRIBUTE_VALUE_INVALID";
  // A non-modifiable object takes no change at all after creation, not even in a copy's template (rule 3).
  if (op !== "create" && attrs.get(CK.CKA_MODIFIABLE)?.[0] === 0) return "CKR_ATTRIBUTE_READ_ONLY";
  if (op === "set" && rule.onSet !== "ok") return "CKR_ATTRIBUTE_READ_ONLY";
  if (op === "copy" && rule.onCopy !== "ok") return "CKR_ATTRIBUTE_READ_ONLY";
  if (rule.type === CK.CKA_CLASS && readUlong(v) !== cls) return "CKR_TEMPLATE_INCONSISTENT";
  if (rule.kind === "bool") {
    const value = v[0] !== 0;
    if (rule.onlyToFalse && value && attrs.get(rule.type)?.[0] === 0) return "CKR_ATTRIBUTE_READ_ONLY";
    attrs.set(rule.type, value ? TRUE : FALSE);
  } else attrs.set(rule.type, v.slice());
  return undefined;
}

function defaults(rules: ReadonlyMap<number, AttrRule>, cls: number, token: boolean, priv: boolean) {
  const attrs = new Map<number, Uint8Array>();
  for (const r of rules.values()) attrs.set(r.type, r.default);
  attrs.set(CK.CKA_CLASS, new Uint8Array(new BigUint64Array([BigInt(cls)]).buffer));
  attrs.set(CK.CKA_TOKEN, token ? TRUE : FALSE);
  attrs.set(CK.CKA_PRIVATE, priv ? TRUE : FALSE);
  return attrs;
}

function newObjectId(ctx: DecideContext, ref: SessionRef, token: boolean): string {
  if (token) {
    const t = ctx.state.tokens.get(ref.session.token)!;
    return `t${t.id}/${t.nextObject}`;
  }
  return `a${ctx.appId}/${ref.app.nextSessionObject}`;
}

function created(ctx: DecideContext, ref: SessionRef, handle: number, o: Omit<ObjectSnapshot, "slotID">): Fact {
  return {
    type: "ObjectCreated",
    app: ctx.appId,
    handle,
    session: ref.session.handle,
    object: { ...o, slotID: ref.session.slotID, ...(o.token ? {} : { creator: ref.session.handle }) },
  };
}

/** C_CreateObject — §5.7.1. Template checks come before the access check; the 32-attribute limit after it. */
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
  const isKey = (c: number) => c === CK.CKO_PUBLIC_KEY || c === CK.CKO_PRIVATE_KEY || c === CK.CKO_SECRET_KEY;
  const { session, slot } = ref!;
  const rv = firstFailure([
    [info.cls === undefined, "CKR_TEMPLATE_INCOMPLETE"],
    [() => isKey(info.cls!) && !info.keyType, "CKR_TEMPLATE_INCOMPLETE"],
    [() => info.cls === CK.CKO_CERTIFICATE && !info.certType, "CKR_TEMPLATE_INCOMPLETE"],
  ]);
  if (rv) return reject(rv);
  const denied = writeAccess(slot.actor.login, session.rw, info.token, info.priv);
  if (denied) return reject(denied);
  if (template.length > MAX_CREATE_ATTRIBUTES) return reject("CKR_TEMPLATE_INCONSISTENT");
  const cls = info.cls!;
  if (!KNOWN_CLASSES.has(cls)) return reject("CKR_ATTRIBUTE_VALUE_INVALID");
  const rules = OBJECT_CLASSES.get(cls);
  // Certificates and keys are SoftHSM classes hsmsim does not build yet (issue 3): refused, and said so in the docs.
  if (!rules) return reject("CKR_ATTRIBUTE_VALUE_INVALID");

  const id = newObjectId(ctx, ref!, info.token);
  const attrs = defaults(rules, cls, info.token, info.priv);
  for (const entry of template) {
    const failed = applyEntry(rules, cls, attrs, entry, "create");
    if (failed) {
      if (ctx.state.profile.atomicObjectWrites) return reject(failed);
      // SoftHSM leaves the object it made before applying the template (no handle is issued for it). A session
      // object keeps what was applied; a token object's file rolls back to its defaults, with CKA_TOKEN false.
      const orphan = info.token ? defaults(rules, cls, false, true) : attrs;
      return answer(failed, undefined, [
        created(ctx, ref!, 0, { id, token: info.token, private: info.token || info.priv, attrs: stored(orphan) }),
      ]);
    }
  }
  const handle = nextHandle(ctx, "object");
  return answer("CKR_OK", { hObject: handle }, [
    created(ctx, ref!, handle, { id, token: info.token, private: info.priv, attrs: stored(attrs) }),
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

function objectStep(ctx: DecideContext, hSession: number, hObject: number, nullTemplate: boolean) {
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
  const cls = readUlong(source.attrs.get(CK.CKA_CLASS)!);
  const rules = OBJECT_CLASSES.get(cls)!;
  const attrs = new Map(source.attrs);
  for (const entry of template) {
    const failed = applyEntry(rules, cls, attrs, entry, "copy");
    if (failed) return refuse(failed);
  }
  const id = newObjectId(ctx, ref, token);
  const handle = nextHandle(ctx, "object");
  return answer("CKR_OK", { hObject: handle }, [
    ...looked,
    created(ctx, ref, handle, { id, token, private: priv, attrs: stored(attrs) }),
  ]);
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
  let typeInvalid = false;
  let tooSmall = false;
  const attrs: AttributeOut[] = args.template!.map((t) => {
    const v = object.attrs.get(t.type);
    if (v === undefined) {
      typeInvalid = true;
      return { type: t.type, value: null, length: UNAVAILABLE };
    }
    if (t.value === null) return { type: t.type, value: null, length: v.length };
    if (t.value.length < v.length) {
      tooSmall = true;
      return { type: t.type, value: null, length: UNAVAILABLE };
    }
    return { type: t.type, value: v.slice(), length: v.length };
  });
  const rv: CkrName = typeInvalid ? "CKR_ATTRIBUTE_TYPE_INVALID" : tooSmall ? "CKR_BUFFER_TOO_SMALL" : "CKR_OK";
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
  const rules = OBJECT_CLASSES.get(readUlong(object.attrs.get(CK.CKA_CLASS)!))!;
  const cls = readUlong(object.attrs.get(CK.CKA_CLASS)!);
  const changed = new Map<number, Uint8Array>(object.attrs);
  const touched = new Map<number, Uint8Array>();
  for (const entry of args.template!) {
    const failed = applyEntry(rules, cls, changed, entry, "set");
    if (failed) {
      // SoftHSM keeps what it applied to a session object before the failure; a token object's file rolls back.
      const keep = !ctx.state.profile.atomicObjectWrites && !object.token && touched.size > 0;
      return answer(failed, undefined, keep ? [...looked, { type: "AttributesChanged", object: object.id, attrs: stored(touched) }] : looked);
    }
    touched.set(entry.type, changed.get(entry.type)!);
  }
  if (touched.size === 0) return answer("CKR_OK", undefined, looked);
  return answer("CKR_OK", undefined, [...looked, { type: "AttributesChanged", object: object.id, attrs: stored(touched) }]);
}

/** Template matching as SoftHSM's find does it: exact bytes; a bool matches only a 1-byte entry, 0x01 meaning true. */
function matches(o: ObjectState, template: readonly Template[], rules: ReadonlyMap<number, AttrRule> | undefined) {
  for (const t of template) {
    const v = o.attrs.get(t.type);
    if (v === undefined) return false;
    const want = t.value ?? new Uint8Array(0);
    const kind = rules?.get(t.type)?.kind;
    if (kind === "bool") {
      if (want.length !== 1 || (want[0] === 1) !== (v[0] === 1)) return false;
      continue;
    }
    if (want.length !== v.length) return false;
    for (let i = 0; i < v.length; i++) if (want[i] !== v[i]) return false;
  }
  return true;
}

/**
 * C_FindObjectsInit — §5.7.7. A snapshot of the token's objects and this application's session objects on the slot,
 * private ones only for a user session; objects met for the first time get handles now. Results come back in
 * ascending handle order (SoftHSM keeps them in a std::set).
 */
export function C_FindObjectsInit(ctx: DecideContext, args: CallArgs["C_FindObjectsInit"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.template === null, "CKR_ARGUMENTS_BAD"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv) return reject(rv);
  const { app, session, slot } = ref!;
  const started = slot.actor.operation(session.handle, { type: "Start", kind: "find" });
  if (started !== "CKR_OK") return reject(started);
  const template = args.template!;
  const seePrivate = slot.actor.login === "user";
  const facts: Fact[] = [];
  const handles: number[] = [];
  let fresh = 0;
  const consider = (o: ObjectState) => {
    if (o.private && !seePrivate) return;
    if (!matches(o, template, OBJECT_CLASSES.get(readUlong(o.attrs.get(CK.CKA_CLASS)!)))) return;
    let h = currentHandleOf(ctx.state, app, o.id);
    if (h === undefined) {
      h = nextHandle(ctx, "object", fresh++);
      facts.push({ type: "ObjectHandleIssued", app: ctx.appId, handle: h, object: o.id, slotID: session.slotID });
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
