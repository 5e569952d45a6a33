/**
 * The attribute table: for each object class hsmsim implements, the attributes an object of that class has, their
 * value kind, their default, and what C_CreateObject, C_SetAttributeValue and C_CopyObject may do with them. It
 * drives template validation, default filling and (later) redaction; deciders never special-case an attribute.
 *
 * The rules are SoftHSM 2.6.1's (P11Attributes / P11Objects, decoded in docs/notes/softhsm-data-objects.md):
 * - `onSet`: C_SetAttributeValue may change it (`ok`) or answers CKR_ATTRIBUTE_READ_ONLY;
 * - `onCopy`: C_CopyObject's template may change it;
 * - `required`: C_CreateObject without it answers CKR_TEMPLATE_INCOMPLETE.
 *
 * Values are raw bytes as the caller passes them through pkcs11js: CK_BBOOL is 1 byte, CK_ULONG 8 bytes little-endian.
 */
import { CK } from "./constants.js";

export type AttrKind = "bool" | "ulong" | "bytes";

export interface AttrRule {
  type: number;
  kind: AttrKind;
  default: Uint8Array;
  required?: boolean;
  onSet: "ok" | "readonly";
  onCopy: "ok" | "readonly";
  /** CKA_COPYABLE-style attributes that may only go from CK_TRUE to CK_FALSE. */
  onlyToFalse?: boolean;
}

export const TRUE = Uint8Array.of(1);
export const FALSE = Uint8Array.of(0);
const EMPTY = new Uint8Array(0);

export function ulongBytes(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
}

export function readUlong(b: Uint8Array): number {
  return Number(new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(0, true));
}

export function readBool(b: Uint8Array | undefined): boolean | undefined {
  return b === undefined ? undefined : b.length > 0 && b[0] !== 0;
}

/** Storage attributes every object has (PKCS#11 v2.40 §4.4). */
const storage = (privateDefault: boolean): AttrRule[] => [
  { type: CK.CKA_CLASS, kind: "ulong", default: EMPTY, required: true, onSet: "readonly", onCopy: "readonly" },
  { type: CK.CKA_TOKEN, kind: "bool", default: FALSE, onSet: "readonly", onCopy: "ok" },
  { type: CK.CKA_PRIVATE, kind: "bool", default: privateDefault ? TRUE : FALSE, onSet: "readonly", onCopy: "ok" },
  { type: CK.CKA_MODIFIABLE, kind: "bool", default: TRUE, onSet: "readonly", onCopy: "ok" },
  { type: CK.CKA_LABEL, kind: "bytes", default: EMPTY, onSet: "ok", onCopy: "ok" },
  // SoftHSM's ck12: once false, never true again, not even later in the same create template.
  { type: CK.CKA_COPYABLE, kind: "bool", default: TRUE, onSet: "readonly", onCopy: "readonly", onlyToFalse: true },
  { type: CK.CKA_DESTROYABLE, kind: "bool", default: TRUE, onSet: "readonly", onCopy: "ok" },
];

/** Data objects (§4.5). */
const data: AttrRule[] = [
  ...storage(true),
  { type: CK.CKA_APPLICATION, kind: "bytes", default: EMPTY, onSet: "readonly", onCopy: "readonly" },
  { type: CK.CKA_OBJECT_ID, kind: "bytes", default: EMPTY, onSet: "readonly", onCopy: "readonly" },
  { type: CK.CKA_VALUE, kind: "bytes", default: EMPTY, onSet: "readonly", onCopy: "readonly" },
];

export const OBJECT_CLASSES: ReadonlyMap<number, ReadonlyMap<number, AttrRule>> = new Map([
  [CK.CKO_DATA, new Map(data.map((r) => [r.type, r]))],
]);

/** CKA_PRIVATE's default per class, as SoftHSM uses it for the access check before the object exists (§16). */
export function privateByDefault(cls: number): boolean {
  return cls !== CK.CKO_CERTIFICATE && cls !== CK.CKO_PUBLIC_KEY;
}

/** Fixed sizes: a CK_BBOOL is 1 byte, a CK_ULONG 8 (amd64). Other kinds take any length. */
export function fixedSize(kind: AttrKind): number | undefined {
  return kind === "bool" ? 1 : kind === "ulong" ? 8 : undefined;
}

/** The classes SoftHSM 2.6.1 can build an object of; any other CKA_CLASS is CKR_ATTRIBUTE_VALUE_INVALID. */
export const KNOWN_CLASSES: ReadonlySet<number> = new Set([
  CK.CKO_DATA,
  CK.CKO_CERTIFICATE,
  CK.CKO_PUBLIC_KEY,
  CK.CKO_PRIVATE_KEY,
  CK.CKO_SECRET_KEY,
  CK.CKO_DOMAIN_PARAMETERS,
]);
