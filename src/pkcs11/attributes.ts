/**
 * The attribute table: for each object class hsmsim implements, the attributes an object of that class has, their
 * value kind, their default, and what C_CreateObject, C_SetAttributeValue and C_CopyObject may do with them. It
 * drives template validation, default filling and (later) redaction; deciders never special-case an attribute.
 *
 * The rules are SoftHSM 2.6.1's (P11Attributes / P11Objects, decoded in docs/notes/softhsm-data-objects.md and
 * docs/notes/softhsm-keys.md §0-§5): each attribute carries SoftHSM's ck flags, and functions/objects.ts runs
 * SoftHSM's per-entry rule list over them for every creating call (create, generate, unwrap), set and copy. The same
 * table says which values are key material (`secret`: sealed in events, never printed) and which never match a find.
 *
 * Values are raw bytes as the caller passes them through pkcs11js: CK_BBOOL is 1 byte, CK_ULONG 8 bytes little-endian.
 */
import { CK } from "./constants.js";

/**
 * Value kinds. `date` is 0 or 8 bytes; `mechanisms` a CK_MECHANISM_TYPE array (8-byte little-endian entries), stored
 * as a sorted set; `template` a CK_ATTRIBUTE array (24-byte structs), see templateAttr below.
 */
export type AttrKind = "bool" | "ulong" | "bytes" | "date" | "mechanisms" | "template";

/**
 * SoftHSM's per-attribute check flags (P11Attribute ck1…ck17), as a bit set: bit n is ckn. What `update` does with
 * them is in docs/notes/softhsm-keys.md §0; functions/objects.ts `applyEntry` runs that rule list.
 */
export const CK1 = 1 << 1; // must be given to C_CreateObject
export const CK2 = 1 << 2; // may not be given to C_CreateObject
export const CK3 = 1 << 3; // must be given to C_GenerateKey
export const CK4 = 1 << 4; // may not be given to C_GenerateKey
export const CK5 = 1 << 5; // must be given to C_UnwrapKey
export const CK6 = 1 << 6; // may not be given to C_UnwrapKey
export const CK7 = 1 << 7; // withheld from C_GetAttributeValue when CKA_SENSITIVE or not CKA_EXTRACTABLE
export const CK8 = 1 << 8; // C_SetAttributeValue / C_CopyObject may change it
export const CK10 = 1 << 10; // CK_TRUE only with the SO logged in
export const CK11 = 1 << 11; // may only go to CK_TRUE (its writer enforces it)
export const CK12 = 1 << 12; // may only go to CK_FALSE (its writer enforces it)
export const CK17 = 1 << 17; // C_CopyObject may change it

/**
 * Writers with more to do than storing the bytes (SoftHSM's P11Attr*::updateAttr): `class`, `keyType` and
 * `certType` must equal the object's; `value` also sets VALUE_LEN and CKA_CHECK_VALUE; `checkValue` must equal the
 * computed KCV; `sensitive` / `extractable` are one-way after creation; `copyable` is one-way always; `trusted`
 * needs the SO; `alwaysAuthenticate` true needs CKA_PRIVATE true.
 */
export type Writer =
  | "class"
  | "keyType"
  | "certType"
  | "keyValue"
  | "certValue"
  | "keyCheckValue"
  | "certCheckValue"
  | "sensitive"
  | "extractable"
  | "copyable"
  | "trusted"
  | "alwaysAuthenticate";

export interface AttrRule {
  type: number;
  kind: AttrKind;
  default: Uint8Array;
  /** SoftHSM ck flags (bit n = ckn). */
  ck: number;
  writer?: Writer;
  /**
   * Key material: the value never enters an event in clear (sealed under the simulator key, model/key-material.ts),
   * and snapshots show it sealed.
   */
  secret?: boolean;
  /** C_FindObjects never matches a template naming it (SoftHSM compares these in a form the caller cannot give). */
  neverMatches?: boolean;
}

export const TRUE = Uint8Array.of(1);
export const FALSE = Uint8Array.of(0);
const EMPTY = new Uint8Array(0);

export function ulongBytes(v: number | bigint): Uint8Array {
  const b = new Uint8Array(8);
  // The common case (a 32-bit number) byte by byte: through BigInt and a DataView it costs ~1 µs, ~20× this.
  if (typeof v === "number" && v >= 0 && v <= 0xffffffff && Number.isInteger(v)) {
    b[0] = v;
    b[1] = v >>> 8;
    b[2] = v >>> 16;
    b[3] = v >>> 24;
    return b;
  }
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
}

/**
 * A little-endian CK_ULONG as a number: hi * 2^32 + lo is one correctly rounded addition (hi * 2^32 is exact), the
 * same number as Number() of the 64-bit BigInt, without allocating one.
 */
export function readUlong(b: Uint8Array): number {
  if (b.length < 8) return Number(new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(0, true));
  const lo = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  const hi = (b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)) >>> 0;
  return hi * 4294967296 + lo;
}

export function readBool(b: Uint8Array | undefined): boolean | undefined {
  return b === undefined ? undefined : b.length > 0 && b[0] !== 0;
}

/** CK_UNAVAILABLE_INFORMATION as a stored CK_ULONG (~0): CKA_KEY_GEN_MECHANISM of a key nobody generated. */
export const ULONG_UNAVAILABLE = ulongBytes(0xffffffffffffffffn);

const CKA_PUBLIC_KEY_INFO = 0x129;

const rule = (type: number, kind: AttrKind, def: Uint8Array, flags: number, more: Partial<AttrRule> = {}): AttrRule => ({
  type,
  kind,
  default: def,
  ck: flags,
  ...more,
});

/** Storage attributes every object has (PKCS#11 v2.40 §4.4; SoftHSM P11Object). */
const storage = (privateDefault: boolean): AttrRule[] => [
  rule(CK.CKA_CLASS, "ulong", EMPTY, CK1, { writer: "class" }),
  rule(CK.CKA_TOKEN, "bool", FALSE, CK17),
  rule(CK.CKA_PRIVATE, "bool", privateDefault ? TRUE : FALSE, CK17),
  rule(CK.CKA_MODIFIABLE, "bool", TRUE, CK17),
  rule(CK.CKA_LABEL, "bytes", EMPTY, CK8),
  // ck12: once false, never true again, not even later in the same create template.
  rule(CK.CKA_COPYABLE, "bool", TRUE, CK12, { writer: "copyable" }),
  rule(CK.CKA_DESTROYABLE, "bool", TRUE, CK17),
];

/** Data objects (§4.5). */
const data: AttrRule[] = [
  ...storage(true),
  rule(CK.CKA_APPLICATION, "bytes", EMPTY, 0),
  rule(CK.CKA_OBJECT_ID, "bytes", EMPTY, 0),
  rule(CK.CKA_VALUE, "bytes", EMPTY, 0),
];

/** SoftHSM's P11KeyObj attributes, the common part of every key. */
const keyCommon: AttrRule[] = [
  rule(CK.CKA_KEY_TYPE, "ulong", EMPTY, CK1 | CK5, { writer: "keyType" }),
  rule(CK.CKA_ID, "bytes", EMPTY, CK8),
  rule(CK.CKA_START_DATE, "date", EMPTY, CK8),
  rule(CK.CKA_END_DATE, "date", EMPTY, CK8),
  rule(CK.CKA_DERIVE, "bool", FALSE, CK8),
  rule(CK.CKA_LOCAL, "bool", FALSE, CK2 | CK4 | CK6),
  rule(CK.CKA_KEY_GEN_MECHANISM, "ulong", ULONG_UNAVAILABLE, CK2 | CK4 | CK6),
  rule(CK.CKA_ALLOWED_MECHANISMS, "mechanisms", EMPTY, 0, { neverMatches: true }),
];

/**
 * Secret keys (§4.7, §4.10): SoftHSM's 32 attributes of P11AESSecretKeyObj / P11GenericSecretKeyObj, the same for
 * CKK_AES, CKK_GENERIC_SECRET and the CKK_*_HMAC types (docs/notes/softhsm-keys.md §1 table).
 */
const secretKey = (aes: boolean): AttrRule[] => [
  ...storage(true),
  ...keyCommon,
  // P11SecretKeyObj
  rule(CK.CKA_SENSITIVE, "bool", FALSE, CK8 | CK11, { writer: "sensitive" }),
  rule(CK.CKA_ENCRYPT, "bool", TRUE, CK8),
  rule(CK.CKA_DECRYPT, "bool", TRUE, CK8),
  rule(CK.CKA_SIGN, "bool", TRUE, CK8),
  rule(CK.CKA_VERIFY, "bool", TRUE, CK8),
  rule(CK.CKA_WRAP, "bool", TRUE, CK8),
  rule(CK.CKA_UNWRAP, "bool", TRUE, CK8),
  rule(CK.CKA_EXTRACTABLE, "bool", FALSE, CK8 | CK12, { writer: "extractable" }),
  rule(CK.CKA_ALWAYS_SENSITIVE, "bool", FALSE, CK2 | CK4 | CK6),
  rule(CK.CKA_NEVER_EXTRACTABLE, "bool", FALSE, CK2 | CK4 | CK6),
  rule(CK.CKA_CHECK_VALUE, "bytes", EMPTY, CK8, { writer: "keyCheckValue" }),
  rule(CK.CKA_WRAP_WITH_TRUSTED, "bool", FALSE, CK11),
  rule(CK.CKA_TRUSTED, "bool", FALSE, CK10, { writer: "trusted" }),
  rule(CK.CKA_WRAP_TEMPLATE, "template", EMPTY, 0, { neverMatches: true }),
  rule(CK.CKA_UNWRAP_TEMPLATE, "template", EMPTY, 0, { neverMatches: true }),
  // P11AESSecretKeyObj / P11GenericSecretKeyObj
  rule(CK.CKA_VALUE, "bytes", EMPTY, CK1 | CK4 | CK6 | CK7, { writer: "keyValue", secret: true }),
  rule(CK.CKA_VALUE_LEN, "ulong", ulongBytes(0), CK2 | CK3 | (aes ? CK6 : 0)),
];

/** X.509 certificates (§4.6): SoftHSM's 24 attributes of P11X509CertificateObj; nothing is parsed from the value. */
const x509: AttrRule[] = [
  ...storage(false),
  // P11CertificateObj
  rule(CK.CKA_CERTIFICATE_TYPE, "ulong", EMPTY, CK1, { writer: "certType" }),
  rule(CK.CKA_TRUSTED, "bool", FALSE, CK10, { writer: "trusted" }),
  rule(CK.CKA_CERTIFICATE_CATEGORY, "ulong", ulongBytes(0), 0),
  rule(CK.CKA_CHECK_VALUE, "bytes", EMPTY, 0, { writer: "certCheckValue" }),
  rule(CK.CKA_START_DATE, "date", EMPTY, 0),
  rule(CK.CKA_END_DATE, "date", EMPTY, 0),
  rule(CKA_PUBLIC_KEY_INFO, "bytes", EMPTY, 0),
  // P11X509CertificateObj
  rule(CK.CKA_SUBJECT, "bytes", EMPTY, CK1),
  rule(CK.CKA_ID, "bytes", EMPTY, CK8),
  rule(CK.CKA_ISSUER, "bytes", EMPTY, CK8),
  rule(CK.CKA_SERIAL_NUMBER, "bytes", EMPTY, CK8),
  rule(CK.CKA_VALUE, "bytes", EMPTY, CK1, { writer: "certValue" }),
  rule(CK.CKA_URL, "bytes", EMPTY, 0),
  rule(CK.CKA_HASH_OF_SUBJECT_PUBLIC_KEY, "bytes", EMPTY, 0),
  rule(CK.CKA_HASH_OF_ISSUER_PUBLIC_KEY, "bytes", EMPTY, 0),
  rule(CK.CKA_JAVA_MIDP_SECURITY_DOMAIN, "ulong", ulongBytes(0), 0),
  rule(CK.CKA_NAME_HASH_ALGORITHM, "ulong", ulongBytes(CK.CKM_SHA_1), 0),
];

/**
 * RSA public keys (§4.8, §6.1.2): SoftHSM 2.6.1's P11PublicKeyObj + P11RSAPublicKeyObj, as C_GenerateKeyPair makes
 * them (the set read back from the Debian library: 25 attributes, CKA_WRAP_TEMPLATE included).
 */
const rsaPublicKey: AttrRule[] = [
  ...storage(false),
  ...keyCommon,
  rule(CK.CKA_SUBJECT, "bytes", EMPTY, CK8),
  rule(CK.CKA_ENCRYPT, "bool", TRUE, CK8),
  rule(CK.CKA_VERIFY, "bool", TRUE, CK8),
  rule(CK.CKA_VERIFY_RECOVER, "bool", TRUE, CK8),
  rule(CK.CKA_WRAP, "bool", TRUE, CK8),
  rule(CK.CKA_TRUSTED, "bool", FALSE, CK10, { writer: "trusted" }),
  rule(CK.CKA_WRAP_TEMPLATE, "template", EMPTY, 0, { neverMatches: true }),
  rule(CK.CKA_MODULUS, "bytes", EMPTY, CK1 | CK4),
  rule(CK.CKA_MODULUS_BITS, "ulong", EMPTY, CK2 | CK3),
  rule(CK.CKA_PUBLIC_EXPONENT, "bytes", EMPTY, CK1),
];

/**
 * RSA private keys (§4.9, §6.1.2): SoftHSM 2.6.1's P11PrivateKeyObj + P11RSAPrivateKeyObj (33 attributes read back
 * from the Debian library). The private components are key material (`secret`: sealed in events) and ck7 (withheld
 * as CKR_ATTRIBUTE_SENSITIVE while CKA_SENSITIVE or not CKA_EXTRACTABLE).
 */
const rsaPrivateKey: AttrRule[] = [
  ...storage(true),
  ...keyCommon,
  rule(CK.CKA_SUBJECT, "bytes", EMPTY, CK8),
  rule(CK.CKA_SENSITIVE, "bool", FALSE, CK8 | CK11, { writer: "sensitive" }),
  rule(CK.CKA_DECRYPT, "bool", TRUE, CK8),
  rule(CK.CKA_SIGN, "bool", TRUE, CK8),
  rule(CK.CKA_SIGN_RECOVER, "bool", TRUE, CK8),
  rule(CK.CKA_UNWRAP, "bool", TRUE, CK8),
  rule(CK.CKA_EXTRACTABLE, "bool", FALSE, CK8 | CK12, { writer: "extractable" }),
  rule(CK.CKA_ALWAYS_SENSITIVE, "bool", FALSE, CK2 | CK4 | CK6),
  rule(CK.CKA_NEVER_EXTRACTABLE, "bool", FALSE, CK2 | CK4 | CK6),
  rule(CK.CKA_WRAP_WITH_TRUSTED, "bool", FALSE, CK11),
  rule(CK.CKA_UNWRAP_TEMPLATE, "template", EMPTY, 0, { neverMatches: true }),
  rule(CK.CKA_ALWAYS_AUTHENTICATE, "bool", FALSE, 0, { writer: "alwaysAuthenticate" }),
  rule(CK.CKA_MODULUS, "bytes", EMPTY, CK1 | CK4 | CK6),
  rule(CK.CKA_PUBLIC_EXPONENT, "bytes", EMPTY, CK4 | CK6),
  rule(CK.CKA_PRIVATE_EXPONENT, "bytes", EMPTY, CK1 | CK4 | CK6 | CK7, { secret: true }),
  rule(CK.CKA_PRIME_1, "bytes", EMPTY, CK4 | CK6 | CK7, { secret: true }),
  rule(CK.CKA_PRIME_2, "bytes", EMPTY, CK4 | CK6 | CK7, { secret: true }),
  rule(CK.CKA_EXPONENT_1, "bytes", EMPTY, CK4 | CK6 | CK7, { secret: true }),
  rule(CK.CKA_EXPONENT_2, "bytes", EMPTY, CK4 | CK6 | CK7, { secret: true }),
  rule(CK.CKA_COEFFICIENT, "bytes", EMPTY, CK4 | CK6 | CK7, { secret: true }),
];

const byType = (rules: AttrRule[]): ReadonlyMap<number, AttrRule> => new Map(rules.map((r) => [r.type, r]));

/** Secret-key types hsmsim builds. SoftHSM also builds DES, DES2, DES3 and GOST28147 keys; hsmsim refuses those. */
export const SECRET_KEY_TYPES: ReadonlyMap<number, ReadonlyMap<number, AttrRule>> = (() => {
  const aes = byType(secretKey(true));
  const generic = byType(secretKey(false));
  const hmac = [CK.CKK_MD5_HMAC, CK.CKK_SHA_1_HMAC, CK.CKK_SHA224_HMAC, CK.CKK_SHA256_HMAC, CK.CKK_SHA384_HMAC, CK.CKK_SHA512_HMAC];
  return new Map([[CK.CKK_AES, aes], [CK.CKK_GENERIC_SECRET, generic], ...hmac.map((k) => [k, generic] as const)]);
})();

/** Certificate types hsmsim builds (SoftHSM also builds CKC_OPENPGP; hsmsim refuses it). */
export const CERTIFICATE_TYPES: ReadonlyMap<number, ReadonlyMap<number, AttrRule>> = new Map([[CK.CKC_X_509, byType(x509)]]);

export const OBJECT_CLASSES: ReadonlyMap<number, ReadonlyMap<number, AttrRule>> = new Map([[CK.CKO_DATA, byType(data)]]);

/**
 * The attribute table of an object of this class and subtype (CKA_KEY_TYPE or CKA_CERTIFICATE_TYPE), or undefined
 * when hsmsim does not build such objects.
 */
export function rulesFor(cls: number, subtype: number | undefined): ReadonlyMap<number, AttrRule> | undefined {
  if (cls === CK.CKO_SECRET_KEY) return subtype === undefined ? undefined : SECRET_KEY_TYPES.get(subtype);
  if (cls === CK.CKO_CERTIFICATE) return subtype === undefined ? undefined : CERTIFICATE_TYPES.get(subtype);
  return OBJECT_CLASSES.get(cls);
}

/**
 * Key-pair classes hsmsim builds, CKK_RSA only, and only through C_GenerateKeyPair: C_CreateObject of a public or
 * private key stays refused as before (rulesFor does not know them), so these tables serve generation and the calls
 * on existing objects (get, set, copy, find).
 */
export const KEY_PAIR_TYPES: ReadonlyMap<number, ReadonlyMap<number, AttrRule>> = new Map([
  [CK.CKO_PUBLIC_KEY, byType(rsaPublicKey)],
  [CK.CKO_PRIVATE_KEY, byType(rsaPrivateKey)],
]);

/** The table of an existing object (its CKA_CLASS and key or certificate type are always stored). */
export function rulesOf(attrs: ReadonlyMap<number, Uint8Array>): ReadonlyMap<number, AttrRule> | undefined {
  const cls = attrs.get(CK.CKA_CLASS);
  if (!cls || cls.length !== 8) return undefined;
  const c = readUlong(cls);
  const sub = attrs.get(c === CK.CKO_CERTIFICATE ? CK.CKA_CERTIFICATE_TYPE : CK.CKA_KEY_TYPE);
  const subtype = sub && sub.length === 8 ? readUlong(sub) : undefined;
  if (c === CK.CKO_PUBLIC_KEY || c === CK.CKO_PRIVATE_KEY) return subtype === CK.CKK_RSA ? KEY_PAIR_TYPES.get(c) : undefined;
  return rulesFor(c, subtype);
}

/** Whether this attribute of an object with these attributes is key material (sealed in events). */
export function isSecretAttribute(attrs: ReadonlyMap<number, Uint8Array>, type: number): boolean {
  return rulesOf(attrs)?.get(type)?.secret === true;
}

/** CKA_PRIVATE's default per class, as SoftHSM uses it for the access check before the object exists (§16). */
export function privateByDefault(cls: number): boolean {
  return cls !== CK.CKO_CERTIFICATE && cls !== CK.CKO_PUBLIC_KEY;
}

/** Fixed sizes: a CK_BBOOL is 1 byte, a CK_ULONG 8 (amd64). Other kinds take any length (dates: their writer). */
export function fixedSize(kind: AttrKind): number | undefined {
  return kind === "bool" ? 1 : kind === "ulong" ? 8 : undefined;
}

/** sizeof(CK_ATTRIBUTE) on amd64: type, pValue, ulValueLen. */
export const CK_ATTRIBUTE_SIZE = 24;

/** Bool and ulong types SoftHSM knows when it reads a CK_ATTRIBUTE array (P11AttrWrapTemplate, §5.3). */
const TEMPLATE_BOOLS = new Set([
  CK.CKA_TOKEN, CK.CKA_PRIVATE, CK.CKA_MODIFIABLE, CK.CKA_COPYABLE, CK.CKA_TRUSTED, CK.CKA_ENCRYPT, CK.CKA_DECRYPT,
  CK.CKA_WRAP, CK.CKA_UNWRAP, CK.CKA_SIGN, CK.CKA_SIGN_RECOVER, CK.CKA_VERIFY, CK.CKA_VERIFY_RECOVER, CK.CKA_DERIVE,
  CK.CKA_LOCAL, CK.CKA_ALWAYS_SENSITIVE, CK.CKA_SENSITIVE, CK.CKA_NEVER_EXTRACTABLE, CK.CKA_EXTRACTABLE,
  CK.CKA_WRAP_WITH_TRUSTED, CK.CKA_SECONDARY_AUTH, CK.CKA_ALWAYS_AUTHENTICATE,
]);
const TEMPLATE_ULONGS = new Set([
  CK.CKA_CLASS, CK.CKA_KEY_TYPE, CK.CKA_CERTIFICATE_TYPE, CK.CKA_CERTIFICATE_CATEGORY, CK.CKA_JAVA_MIDP_SECURITY_DOMAIN,
  CK.CKA_NAME_HASH_ALGORITHM, CK.CKA_KEY_GEN_MECHANISM, CK.CKA_MODULUS_BITS, CK.CKA_PRIME_BITS, CK.CKA_SUB_PRIME_BITS,
  CK.CKA_VALUE_BITS, CK.CKA_VALUE_LEN, CK.CKA_AUTH_PIN_FLAGS,
]);

/**
 * A CKA_WRAP_TEMPLATE / CKA_UNWRAP_TEMPLATE value as the caller passes it through pkcs11js: a raw array of 24-byte
 * CK_ATTRIBUTE structs. hsmsim cannot follow a pValue pointer, so it takes each entry's type and ulValueLen and
 * treats the value as ulValueLen zero bytes; in practice (pkcs11js has no nested-template conversion) entries have a
 * NULL pValue and length 0. SoftHSM's rules (§5.3): a length not a multiple of 24, a known bool not 1 byte, a known
 * ulong not 8 bytes, or a nested template → CKR_ATTRIBUTE_VALUE_INVALID; duplicates keep the first entry; stored
 * sorted by type. Returns the normalised form (sorted structs) or undefined for VALUE_INVALID.
 */
export function normaliseTemplateAttr(v: Uint8Array): Uint8Array | undefined {
  if (v.length % CK_ATTRIBUTE_SIZE !== 0) return undefined;
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const entries = new Map<number, number>();
  for (let i = 0; i < v.length; i += CK_ATTRIBUTE_SIZE) {
    const type = Number(dv.getBigUint64(i, true));
    const len = Number(dv.getBigUint64(i + 16, true));
    if (TEMPLATE_BOOLS.has(type) && len !== 1) return undefined;
    if (TEMPLATE_ULONGS.has(type) && len !== 8) return undefined;
    if (type === CK.CKA_WRAP_TEMPLATE || type === CK.CKA_UNWRAP_TEMPLATE) return undefined;
    if (!entries.has(type)) entries.set(type, len);
  }
  return encodeTemplateAttr([...entries].sort(([a], [b]) => a - b).map(([type, length]) => ({ type, length })));
}

/** The stored entries of a template attribute: type and length (the values are zero bytes, see above). */
export function decodeTemplateAttr(v: Uint8Array): { type: number; length: number }[] {
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const out: { type: number; length: number }[] = [];
  for (let i = 0; i + CK_ATTRIBUTE_SIZE <= v.length; i += CK_ATTRIBUTE_SIZE) {
    out.push({ type: Number(dv.getBigUint64(i, true)), length: Number(dv.getBigUint64(i + 16, true)) });
  }
  return out;
}

export function encodeTemplateAttr(entries: readonly { type: number; length: number }[]): Uint8Array {
  const b = new Uint8Array(entries.length * CK_ATTRIBUTE_SIZE);
  const dv = new DataView(b.buffer);
  entries.forEach((e, i) => {
    dv.setBigUint64(i * CK_ATTRIBUTE_SIZE, BigInt(e.type), true);
    dv.setBigUint64(i * CK_ATTRIBUTE_SIZE + 16, BigInt(e.length), true);
  });
  return b;
}

/** A CK_MECHANISM_TYPE array stored as SoftHSM's std::set: sorted ascending, duplicates removed. */
export function normaliseMechanisms(v: Uint8Array): Uint8Array | undefined {
  if (v.length === 0 || v.length % 8 !== 0) return undefined;
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const set = new Set<bigint>();
  for (let i = 0; i < v.length; i += 8) set.add(dv.getBigUint64(i, true));
  const sorted = [...set].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out = new Uint8Array(sorted.length * 8);
  const ov = new DataView(out.buffer);
  sorted.forEach((m, i) => ov.setBigUint64(i * 8, m, true));
  return out;
}

/** Whether a stored ALLOWED_MECHANISMS value lets a key be used with this mechanism (empty = all). */
export function mechanismAllowed(allowed: Uint8Array | undefined, mechanism: number): boolean {
  if (!allowed || allowed.length === 0) return true;
  const dv = new DataView(allowed.buffer, allowed.byteOffset, allowed.byteLength);
  for (let i = 0; i + 8 <= allowed.length; i += 8) if (Number(dv.getBigUint64(i, true)) === mechanism) return true;
  return false;
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
