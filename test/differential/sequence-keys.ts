/**
 * The key part of the random-sequence generator (issue 3, part A): secret-key and certificate creation,
 * C_GenerateKey, get / set / copy / find / size on keys, C_WrapKey / C_UnwrapKey. Kept apart from sequence.ts, which
 * calls `keyGenerators` and mixes its singles and macros in; the cryptographic operations (part B) add their own.
 *
 * Comparable bytes: imported keys come from KEY_VALUES, so their values, check values and wrapped forms are the same
 * on both implementations; generated keys are random on each, and the runner (run.ts, `randomIdents`) compares only
 * lengths for what derives from them. Unwrap blobs are computed here from KEY_VALUES under every KEK in KEY_VALUES
 * (SoftHSM's zero-pad-then-wrap), so a right KEK unwraps and a wrong one fails the integrity check alike.
 */
import { CK } from "../../src/pkcs11/constants.js";
import { nodeAes } from "../../src/crypto/mechanisms/engines.js";
import { keyCheckValue } from "../../src/model/key-material.js";
import type { Rng, SymArg, TemplateAttr } from "./sequence.js";

/** Imported key values: AES of every length, an AES value of no AES length, generic secrets of odd lengths. */
export const KEY_VALUES = [
  { keyType: CK.CKK_AES, hex: "0102030405060708090a010203040506" },
  { keyType: CK.CKK_AES, hex: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" },
  { keyType: CK.CKK_AES, hex: "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8" },
  { keyType: CK.CKK_AES, hex: "00112233445566778899" },
  { keyType: CK.CKK_GENERIC_SECRET, hex: "c37b7e6492584340bed12207808941155068f738" },
  { keyType: CK.CKK_GENERIC_SECRET, hex: "31313131313131313131" },
  { keyType: CK.CKK_SHA256_HMAC, hex: "0b".repeat(32) },
] as const;

const hexBytes = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
const zeroPad8 = (b: Uint8Array) => {
  const n = Math.ceil(b.length / 8) * 8;
  const o = new Uint8Array(n);
  o.set(b);
  return o;
};

/** SoftHSM's wrap of `key` under `kek` (zero padding first), or undefined where SoftHSM refuses to wrap. */
function softhsmWrap(pad: boolean, kek: string, key: string): string | undefined {
  const k = hexBytes(kek);
  const v = zeroPad8(hexBytes(key));
  if (![16, 24, 32].includes(k.length) || (!pad && v.length < 16)) return undefined;
  return Buffer.from(nodeAes.wrap(pad, k, v)).toString("hex");
}

/** What the generator needs from sequence.ts. */
export interface KeyGenContext {
  rng: Rng;
  emit(app: number, fn: string, ...args: SymArg[]): void;
  pickSession(a: number): SymArg;
  pickObject(): SymArg;
  /** An object reference biased to keys and certificates (identities carried by CKA_ID). */
  pickKey(): SymArg;
  /** A fresh identity value ("o<step>") for CKA_ID. */
  identity(): string;
  loggedIn(a: number): "none" | "so" | "user";
}

const { CKA_CLASS, CKA_KEY_TYPE, CKA_TOKEN, CKA_PRIVATE, CKA_VALUE, CKA_ID, CKA_LABEL } = CK;
const B = (hex: string) => ({ hex });
const ulongHex = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b.toString("hex");
};

export function keyGenerators(c: KeyGenContext) {
  const { rng, emit } = c;
  const tmpl = (attrs: TemplateAttr[]): SymArg => ({ k: "template", attrs });
  const mech = (mechanism: number): SymArg => ({ k: "mechanism", mechanism });
  const maybeBool = (type: number, pTrue: number, pGiven = 0.5): TemplateAttr[] => (rng.chance(pGiven) ? [{ type, value: rng.chance(pTrue) }] : []);
  const tokenPriv = (a: number): TemplateAttr[] => {
    const out: TemplateAttr[] = [];
    const tok = rng.weighted<boolean | undefined>([[40, true], [45, false], [15, undefined]]);
    if (tok !== undefined) out.push({ type: CKA_TOKEN, value: tok });
    // Private keys need a user login; bias towards what works in the state the generator guesses.
    const priv = rng.weighted<boolean | undefined>([[c.loggedIn(a) === "user" ? 40 : 10, true], [45, false], [15, undefined]]);
    if (priv !== undefined) out.push({ type: CKA_PRIVATE, value: priv });
    return out;
  };
  /** Rare template mistakes, each a rule of the table. */
  const oddity = (): TemplateAttr[] =>
    rng.weighted<TemplateAttr[]>([
      [80, []],
      [3, [{ type: CK.CKA_LOCAL, value: true }]],
      [3, [{ type: CK.CKA_SIGN_RECOVER, value: true }]],
      [3, [{ type: CK.CKA_VALUE_LEN, value: 16 }]],
      [3, [{ type: CK.CKA_SENSITIVE, value: B("0101") }]],
      [3, [{ type: CK.CKA_START_DATE, value: B("3230323631313236") }]],
      [3, [{ type: CK.CKA_ALLOWED_MECHANISMS, value: B(ulongHex(CK.CKM_AES_KEY_WRAP) + ulongHex(CK.CKM_AES_CBC) + ulongHex(CK.CKM_AES_KEY_WRAP)) }]],
      [2, [{ type: CK.CKA_ALLOWED_MECHANISMS, value: B(ulongHex(CK.CKM_AES_ECB)) }]],
      [2, [{ type: CK.CKA_TRUSTED, value: true }]],
      [2, [{ type: CK.CKA_WRAP_WITH_TRUSTED, value: true }]],
      [2, [{ type: CK.CKA_MODIFIABLE, value: false }]],
      [2, [{ type: CK.CKA_COPYABLE, value: false }]],
    ]);
  const keyAttrs = (): TemplateAttr[] => [
    ...maybeBool(CK.CKA_SENSITIVE, 0.4, 0.4),
    ...maybeBool(CK.CKA_EXTRACTABLE, 0.85, 0.7),
    ...maybeBool(CK.CKA_WRAP, 0.85, 0.2),
    ...maybeBool(CK.CKA_UNWRAP, 0.85, 0.2),
    ...(rng.chance(0.5) ? [{ type: CKA_LABEL, value: rng.pick(["red", "blue", "key"]) }] : []),
  ];

  const createSecretKey = (a: number, forced?: (typeof KEY_VALUES)[number]): (typeof KEY_VALUES)[number] => {
    const k = forced ?? rng.pick(KEY_VALUES);
    const attrs: TemplateAttr[] = [];
    if (!rng.chance(0.03)) attrs.push({ type: CKA_CLASS, value: CK.CKO_SECRET_KEY });
    if (!rng.chance(0.03)) attrs.push({ type: CKA_KEY_TYPE, value: rng.chance(0.03) ? CK.CKK_RSA : k.keyType });
    // A missing CKA_VALUE (TEMPLATE_INCOMPLETE) only for session keys: SoftHSM leaves such a token object half-written,
    // its creator seeing the applied entries and other processes the file's defaults, which hsmsim does not model
    // (docs/notes/softhsm-keys.md §3; listed as a known gap).
    const noValue = rng.chance(0.03);
    attrs.push(...tokenPriv(a).filter((t) => !noValue || t.type !== CKA_TOKEN));
    if (!noValue) attrs.push({ type: CKA_VALUE, value: B(k.hex) });
    attrs.push(...keyAttrs(), ...oddity());
    const kcv = Buffer.from(keyCheckValue(k.keyType, hexBytes(k.hex))).toString("hex");
    const cv = rng.weighted<string | undefined>([[85, undefined], [6, kcv], [4, ""], [5, "abcdef"]]);
    if (cv !== undefined) attrs.push({ type: CK.CKA_CHECK_VALUE, value: B(cv) });
    attrs.push({ type: CKA_ID, value: c.identity() });
    if (rng.chance(0.3)) attrs.reverse();
    emit(a, "C_CreateObject", c.pickSession(a), tmpl(attrs));
    return k;
  };

  const createCertificate = (a: number): void => {
    const incomplete = rng.chance(0.08);
    const attrs: TemplateAttr[] = [
      { type: CKA_CLASS, value: CK.CKO_CERTIFICATE },
      { type: CK.CKA_CERTIFICATE_TYPE, value: rng.chance(0.95) ? CK.CKC_X_509 : CK.CKC_X_509_ATTR_CERT },
      // (an incomplete template only for session objects: see createSecretKey)
      ...tokenPriv(a).filter((t) => (t.type !== CKA_PRIVATE || rng.chance(0.3)) && (!incomplete || t.type !== CKA_TOKEN)),
    ];
    const drop = incomplete ? rng.pick([CK.CKA_SUBJECT, CKA_VALUE]) : undefined;
    if (drop !== CK.CKA_SUBJECT) attrs.push({ type: CK.CKA_SUBJECT, value: B(rng.hex(rng.range(0, 12))) });
    if (drop !== CKA_VALUE) attrs.push({ type: CKA_VALUE, value: rng.pick([B("3082ffff"), "Test2", B(rng.hex(20))]) });
    if (rng.chance(0.4)) attrs.push({ type: CKA_LABEL, value: rng.pick(["red", "cert"]) });
    if (rng.chance(0.2)) attrs.push({ type: CK.CKA_ISSUER, value: B(rng.hex(6)) });
    if (rng.chance(0.2)) attrs.push({ type: CK.CKA_SERIAL_NUMBER, value: B(rng.hex(4)) });
    if (rng.chance(0.1)) attrs.push({ type: CK.CKA_TRUSTED, value: true });
    if (rng.chance(0.06)) attrs.push({ type: CK.CKA_CHECK_VALUE, value: B(rng.pick(["", "2b84f6"])) });
    if (rng.chance(0.05)) attrs.push({ type: CK.CKA_SENSITIVE, value: true });
    attrs.push({ type: CKA_ID, value: c.identity() });
    emit(a, "C_CreateObject", c.pickSession(a), tmpl(attrs));
  };

  const generateKey = (a: number): void => {
    const m = rng.weighted<number>([[60, CK.CKM_AES_KEY_GEN], [32, CK.CKM_GENERIC_SECRET_KEY_GEN], [4, CK.CKM_AES_ECB], [4, CK.CKM_SHA256]]);
    const attrs: TemplateAttr[] = [];
    if (rng.chance(0.15)) attrs.push({ type: CKA_CLASS, value: rng.chance(0.8) ? CK.CKO_SECRET_KEY : CK.CKO_DATA });
    if (rng.chance(0.2)) attrs.push({ type: CKA_KEY_TYPE, value: rng.chance(0.8) ? (m === CK.CKM_AES_KEY_GEN ? CK.CKK_AES : CK.CKK_GENERIC_SECRET) : CK.CKK_DES });
    attrs.push(...tokenPriv(a));
    const len = rng.weighted<number | undefined>([[30, 16], [15, 32], [10, 24], [12, 20], [6, 7], [5, 17], [5, 0], [7, undefined]]);
    if (len !== undefined) attrs.push({ type: CK.CKA_VALUE_LEN, value: len });
    if (rng.chance(0.05)) attrs.push({ type: CK.CKA_CHECK_VALUE, value: B(rng.pick(["", "08bd28"])) });
    attrs.push(...keyAttrs(), ...oddity());
    if (rng.chance(0.03)) attrs.push({ type: CKA_VALUE, value: B(rng.hex(16)) });
    attrs.push({ type: CKA_ID, value: c.identity() });
    emit(a, "C_GenerateKey", c.pickSession(a), mech(m), tmpl(attrs));
  };

  const wrapMech = (): SymArg =>
    rng.weighted<SymArg>([
      [50, mech(CK.CKM_AES_KEY_WRAP)],
      [35, mech(CK.CKM_AES_KEY_WRAP_PAD)],
      [8, { k: "mechanism", mechanism: CK.CKM_AES_CBC, parameter: "00".repeat(16) } as SymArg],
      [4, mech(CK.CKM_AES_ECB)],
      [3, { k: "mechanism", mechanism: CK.CKM_AES_KEY_WRAP, parameter: "0011" } as SymArg],
    ]);
  const wrapKey = (a: number, kekRef?: SymArg): void => {
    const out = rng.weighted<number>([[70, 64], [15, 0], [10, 16], [5, 128]]);
    emit(a, "C_WrapKey", c.pickSession(a), wrapMech(), kekRef ?? c.pickKey(), c.pickKey(), { k: "alloc", len: out });
  };
  const unwrapKey = (a: number, kekRef?: SymArg, kekValue?: (typeof KEY_VALUES)[number]): void => {
    const pad = rng.chance(0.45);
    const kek = kekValue ?? rng.pick(KEY_VALUES.filter((k) => k.keyType === CK.CKK_AES));
    const key = rng.pick(KEY_VALUES);
    const blob =
      rng.weighted<string | undefined>([
        [85, softhsmWrap(pad, kek.hex, key.hex)],
        [8, rng.hex(24)],
        [7, rng.hex(rng.pick([8, 20]))],
      ]) ?? rng.hex(32);
    const attrs: TemplateAttr[] = [];
    if (!rng.chance(0.04)) attrs.push({ type: CKA_CLASS, value: rng.chance(0.95) ? CK.CKO_SECRET_KEY : CK.CKO_DATA });
    if (!rng.chance(0.04)) attrs.push({ type: CKA_KEY_TYPE, value: key.keyType });
    attrs.push(...tokenPriv(a), ...keyAttrs(), ...oddity());
    if (rng.chance(0.05)) attrs.push({ type: CK.CKA_CHECK_VALUE, value: B(rng.pick(["", "da39a3", "08bd28"])) });
    attrs.push({ type: CKA_ID, value: c.identity() });
    emit(a, "C_UnwrapKey", c.pickSession(a), { k: "mechanism", mechanism: pad ? CK.CKM_AES_KEY_WRAP_PAD : CK.CKM_AES_KEY_WRAP }, kekRef ?? c.pickKey(), { k: "bytes", hex: blob }, tmpl(attrs));
  };

  const getKeyAttributes = (a: number): void => {
    const t = rng.weighted<TemplateAttr[]>([
      [15, [{ type: CKA_VALUE }]],
      [12, [{ type: CK.CKA_CHECK_VALUE }]],
      [8, [{ type: CK.CKA_VALUE_LEN }, { type: CKA_KEY_TYPE }]],
      [12, [{ type: CK.CKA_SENSITIVE }, { type: CK.CKA_EXTRACTABLE }, { type: CK.CKA_ALWAYS_SENSITIVE }, { type: CK.CKA_NEVER_EXTRACTABLE }, { type: CK.CKA_LOCAL }]],
      [6, [{ type: CK.CKA_KEY_GEN_MECHANISM }]],
      [6, [{ type: CK.CKA_ALLOWED_MECHANISMS }]],
      [8, [{ type: CKA_LABEL }, { type: CKA_VALUE }, { type: CK.CKA_CHECK_VALUE }]],
      [6, [{ type: CK.CKA_TRUSTED }, { type: CK.CKA_WRAP_WITH_TRUSTED }, { type: CK.CKA_WRAP }, { type: CK.CKA_UNWRAP }]],
      [5, [{ type: CK.CKA_SUBJECT }, { type: CK.CKA_CERTIFICATE_TYPE }, { type: CK.CKA_NAME_HASH_ALGORITHM }]],
      [4, [{ type: CK.CKA_ISSUER }, { type: CK.CKA_SERIAL_NUMBER }, { type: CK.CKA_CERTIFICATE_CATEGORY }]],
      [4, [{ type: CK.CKA_WRAP_TEMPLATE }]],
      // pkcs11js converts dates: an empty one is a TypeError, an 8-byte one is reformatted (and private ones unreadable).
      [4, [{ type: CK.CKA_START_DATE }]],
      [3, [{ type: CKA_LABEL }, { type: CK.CKA_END_DATE }]],
    ]);
    emit(a, "C_GetAttributeValue", c.pickSession(a), c.pickKey(), tmpl(t));
  };
  const setKeyAttributes = (a: number): void => {
    const t = rng.weighted<TemplateAttr[]>([
      [15, [{ type: CK.CKA_SENSITIVE, value: rng.chance(0.6) }]],
      [15, [{ type: CK.CKA_EXTRACTABLE, value: rng.chance(0.4) }]],
      [8, [{ type: CK.CKA_CHECK_VALUE, value: B(rng.pick(["", "08bd28", "5c3b7c", "000000"])) }]],
      [8, [{ type: CK.CKA_ENCRYPT, value: false }, { type: CK.CKA_WRAP, value: rng.chance(0.5) }]],
      [5, [{ type: CK.CKA_WRAP_WITH_TRUSTED, value: rng.chance(0.5) }]],
      [5, [{ type: CK.CKA_TRUSTED, value: false }]],
      [5, [{ type: CKA_VALUE, value: B(rng.hex(16)) }]],
      [5, [{ type: CK.CKA_ISSUER, value: B(rng.hex(4)) }]],
      [5, [{ type: CK.CKA_START_DATE, value: B("3230323631313236") }]],
      [2, [{ type: CK.CKA_END_DATE, value: B(rng.pick(["32303236", "6162636465666768", "32303236313132363030"])) }]],
      [5, [{ type: CK.CKA_ALLOWED_MECHANISMS, value: B(ulongHex(CK.CKM_AES_CBC)) }]],
      [8, [{ type: CKA_LABEL, value: "green" }, { type: CK.CKA_SENSITIVE, value: true }]],
    ]);
    emit(a, "C_SetAttributeValue", c.pickSession(a), c.pickKey(), tmpl(t));
  };
  const copyObject = (a: number): void => {
    const t: TemplateAttr[] = [{ type: CKA_ID, value: c.identity() }];
    t.push(
      ...rng.weighted<TemplateAttr[]>([
        [30, []],
        [15, [{ type: CKA_LABEL, value: "copy" }]],
        [15, [{ type: CKA_TOKEN, value: rng.chance(0.5) }]],
        [10, [{ type: CKA_PRIVATE, value: rng.chance(0.5) }]],
        [10, [{ type: CK.CKA_SENSITIVE, value: true }]],
        [10, [{ type: CK.CKA_EXTRACTABLE, value: rng.chance(0.5) }]],
        [5, [{ type: CK.CKA_KEY_TYPE, value: CK.CKK_AES }]],
        [5, [{ type: CK.CKA_CHECK_VALUE, value: B("") }]],
      ]),
    );
    emit(a, "C_CopyObject", c.pickSession(a), c.pickKey(), tmpl(t));
  };
  const findKeys = (a: number): void => {
    const k = rng.pick(KEY_VALUES);
    const t = rng.weighted<TemplateAttr[]>([
      [20, [{ type: CKA_CLASS, value: CK.CKO_SECRET_KEY }]],
      [10, [{ type: CKA_KEY_TYPE, value: CK.CKK_AES }]],
      [15, [{ type: CKA_VALUE, value: B(k.hex) }]],
      [10, [{ type: CK.CKA_CHECK_VALUE, value: B(Buffer.from(keyCheckValue(k.keyType, hexBytes(k.hex))).toString("hex")) }]],
      [8, [{ type: CK.CKA_SENSITIVE, value: true }]],
      [6, [{ type: CK.CKA_ALLOWED_MECHANISMS, value: B(ulongHex(CK.CKM_AES_KEY_WRAP)) }]],
      [8, [{ type: CKA_CLASS, value: CK.CKO_CERTIFICATE }]],
      [6, [{ type: CK.CKA_KEY_GEN_MECHANISM, value: CK.CKM_AES_KEY_GEN }]],
    ]);
    const s = c.pickSession(a);
    emit(a, "C_FindObjectsInit", s, tmpl(t));
    emit(a, "C_FindObjects", s, { k: "lit", v: 10 });
    emit(a, "C_FindObjectsFinal", s);
  };
  const objectSize = (a: number): void => emit(a, "C_GetObjectSize", c.pickSession(a), c.pickKey());

  const single: Record<string, (a: number) => void> = {
    "key:create": (a) => void createSecretKey(a),
    "key:certificate": createCertificate,
    "key:generate": generateKey,
    "key:wrap": (a) => wrapKey(a),
    "key:unwrap": (a) => unwrapKey(a),
    "key:get": getKeyAttributes,
    "key:set": setKeyAttributes,
    "key:copy": copyObject,
    "key:size": objectSize,
  };
  const weights: Array<[number, string]> = [
    [6, "key:create"],
    [2, "key:certificate"],
    [4, "key:generate"],
    [4, "key:wrap"],
    [3, "key:unwrap"],
    [5, "key:get"],
    [3, "key:set"],
    [2, "key:copy"],
    [1, "key:size"],
  ];
  /** A snippet that reaches a working wrap: two imported keys, then wraps, unwraps and reads. */
  const keys = (a: number): void => {
    createSecretKey(a);
    if (rng.chance(0.5)) generateKey(a);
    // A wrapping key last, so that `lastCreated` names it (an AES value most of the time).
    const aes = KEY_VALUES.filter((k) => k.keyType === CK.CKK_AES);
    const kek = createSecretKey(a, rng.chance(0.85) ? rng.pick(aes) : undefined);
    const last: SymArg = { k: "object", ref: { lastCreated: true } };
    const n = rng.range(1, 4);
    for (let i = 0; i < n; i++) {
      const op = rng.weighted<string>([[30, "wrap"], [25, "unwrap"], [15, "get"], [10, "copy"], [10, "set"], [10, "size"]]);
      if (op === "wrap") wrapKey(a, rng.chance(0.8) ? last : undefined);
      else if (op === "unwrap") unwrapKey(a, rng.chance(0.8) ? last : undefined, rng.chance(0.85) ? kek : undefined);
      else if (op === "get") getKeyAttributes(a);
      else if (op === "copy") copyObject(a);
      else if (op === "set") setKeyAttributes(a);
      else objectSize(a);
    }
    if (rng.chance(0.3)) findKeys(a);
  };
  return { single, weights, macros: { keys, findKeys } };
}
