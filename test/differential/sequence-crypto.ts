/**
 * The cryptographic-operation part of the random-sequence generator (issue 3, part B): C_EncryptInit / C_Encrypt /
 * C_EncryptUpdate / C_EncryptFinal and the Decrypt ones (AES ECB, CBC, CBC_PAD, CTR, GCM), C_SignInit / C_Sign /
 * C_SignUpdate / C_SignFinal and the Verify ones (the HMACs), C_DigestKey, C_GetOperationState, and
 * C_Login(CKU_CONTEXT_SPECIFIC) during an operation. Kept apart from sequence.ts, which mixes `cryptoGenerators`'s
 * singles and macro in as it does sequence-keys.ts's.
 *
 * Comparable bytes: keys come from sequence-keys.ts's KEY_VALUES (imported with C_CreateObject, so the same on both
 * implementations) and IVs, counters and data from the seeded generator, so ciphertexts and MACs are compared byte
 * for byte; decryption inputs and MACs to verify are computed here with node:crypto from the same values (and
 * sometimes tampered with), so both the success and the failure paths are reached.
 *
 * Left out on purpose, because hsmsim does not model them (listed in the closing note): sign / verify inits with
 * SoftHSM's asymmetric mechanisms on secret keys (SoftHSM starts an operation that later fails), DES and CMAC.
 */
import { createCipheriv, createHmac } from "node:crypto";
import { CK } from "../../src/pkcs11/constants.js";
import { KEY_VALUES, type KeyGenContext } from "./sequence-keys.js";
import type { SymArg, TemplateAttr } from "./sequence.js";

type KeyValue = (typeof KEY_VALUES)[number];

const ulongHex = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b.toString("hex");
};

/** A mechanism with its parameter, as pkcs11js takes it (GCM as a CK_PARAMS_GCM object), and how to compute it. */
interface Mech {
  name: string;
  arg: SymArg;
  aes?: { mode: "ecb" | "cbc" | "cbc-pad" | "ctr" | "gcm"; iv: string; aad?: string; tagBits?: number };
  hmac?: "md5" | "sha1" | "sha256" | "sha512";
}

const lit = (v: unknown): SymArg => ({ k: "lit", v: v as string });

export function cryptoGenerators(c: KeyGenContext) {
  const { rng, emit } = c;
  const bytes = (hex: string): SymArg => ({ k: "bytes", hex });
  const out = (len: number): SymArg => ({ k: "alloc", len });

  function cipherMech(): Mech {
    const iv = rng.hex(16);
    return rng.weighted<Mech>([
      [10, { name: "ecb", arg: { k: "mechanism", mechanism: CK.CKM_AES_ECB }, aes: { mode: "ecb", iv: "" } }],
      [10, { name: "cbc", arg: { k: "mechanism", mechanism: CK.CKM_AES_CBC, parameter: iv }, aes: { mode: "cbc", iv } }],
      [14, { name: "cbc-pad", arg: { k: "mechanism", mechanism: CK.CKM_AES_CBC_PAD, parameter: iv }, aes: { mode: "cbc-pad", iv } }],
      [8, { name: "ctr", arg: { k: "mechanism", mechanism: CK.CKM_AES_CTR, parameter: ulongHex(128) + iv }, aes: { mode: "ctr", iv } }],
      [3, { name: "ctr8", arg: { k: "mechanism", mechanism: CK.CKM_AES_CTR, parameter: ulongHex(8) + "00".repeat(15) + "fd" } }],
      ...[128, 96, 0].map((tagBits): [number, Mech] => {
        const gIv = rng.hex(12);
        const aad = rng.chance(0.5) ? rng.hex(rng.range(1, 20)) : "";
        const param = { type: CK.CK_PARAMS_GCM, iv: { $buf: gIv }, ivBits: 96, tagBits, ...(aad ? { aad: { $buf: aad } } : {}) };
        return [tagBits === 128 ? 8 : 3, { name: `gcm${tagBits}`, arg: lit({ mechanism: CK.CKM_AES_GCM, parameter: param }), aes: { mode: "gcm", iv: gIv, aad, tagBits } }];
      }),
      // Parameter mistakes and other paths.
      [2, { name: "cbc no iv", arg: { k: "mechanism", mechanism: CK.CKM_AES_CBC } }],
      [2, { name: "cbc iv 15", arg: { k: "mechanism", mechanism: CK.CKM_AES_CBC_PAD, parameter: rng.hex(15) } }],
      [1, { name: "ctr bits 0", arg: { k: "mechanism", mechanism: CK.CKM_AES_CTR, parameter: ulongHex(0) + iv } }],
      [1, { name: "ctr short", arg: { k: "mechanism", mechanism: CK.CKM_AES_CTR, parameter: iv } }],
      [1, { name: "gcm tag 100", arg: lit({ mechanism: CK.CKM_AES_GCM, parameter: { type: CK.CK_PARAMS_GCM, iv: { $buf: rng.hex(12) }, ivBits: 96, tagBits: 100 } }) }],
      [1, { name: "rsa", arg: { k: "mechanism", mechanism: CK.CKM_RSA_PKCS } }],
      [1, { name: "unknown", arg: { k: "mechanism", mechanism: 0x12345 } }],
      [1, { name: "hmac as cipher", arg: { k: "mechanism", mechanism: CK.CKM_SHA256_HMAC } }],
    ]);
  }

  function macMech(): Mech {
    return rng.weighted<Mech>([
      [10, { name: "sha256", arg: { k: "mechanism", mechanism: CK.CKM_SHA256_HMAC }, hmac: "sha256" }],
      [4, { name: "sha1", arg: { k: "mechanism", mechanism: CK.CKM_SHA_1_HMAC }, hmac: "sha1" }],
      [4, { name: "sha512", arg: { k: "mechanism", mechanism: CK.CKM_SHA512_HMAC }, hmac: "sha512" }],
      [3, { name: "md5", arg: { k: "mechanism", mechanism: CK.CKM_MD5_HMAC }, hmac: "md5" }],
      [2, { name: "general", arg: { k: "mechanism", mechanism: CK.CKM_SHA256_HMAC_GENERAL, parameter: ulongHex(16) } }],
      [1, { name: "digest as mac", arg: { k: "mechanism", mechanism: CK.CKM_SHA256 } }],
      [1, { name: "cipher as mac", arg: { k: "mechanism", mechanism: CK.CKM_AES_ECB } }],
    ]);
  }

  /**
   * Data lengths: block multiples mostly, odd ones sometimes, none rarely. No data is an empty Buffer, which pkcs11js
   * passes as a NULL pointer: CKR_ARGUMENTS_BAD, and the operation goes on.
   */
  const dataLen = () => rng.weighted<number>([[30, 16], [20, 32], [10, 48], [15, rng.range(1, 15)], [15, rng.range(17, 70)], [3, 0]]);
  const data = (n = dataLen()): SymArg => bytes(rng.hex(n));
  /** Output buffers: roomy, exact-ish, too small, or NULL (a size query). */
  const outBuf = (need: number) => out(rng.weighted<number>([[60, need + 32], [12, need], [10, Math.max(1, need - 1)], [8, 0], [5, 1]]));

  /** What node computes for an AES mechanism and key, or undefined when it cannot (not an AES key length, etc.). */
  function aesOut(m: Mech, key: KeyValue | undefined, encrypt: boolean, input: Buffer): Buffer | undefined {
    const a = m.aes;
    if (!a || !key || key.keyType !== CK.CKK_AES) return undefined;
    const k = Buffer.from(key.hex, "hex");
    if (![16, 24, 32].includes(k.length)) return undefined;
    const bits = k.length * 8;
    try {
      if (a.mode === "gcm") {
        const g = createCipheriv(`aes-${bits}-gcm` as "aes-128-gcm", k, Buffer.from(a.iv, "hex"));
        if (a.aad) g.setAAD(Buffer.from(a.aad, "hex"));
        const ct = Buffer.concat([g.update(input), g.final()]);
        return encrypt ? Buffer.concat([ct, g.getAuthTag().subarray(0, (a.tagBits ?? 128) / 8)]) : undefined;
      }
      const name = a.mode === "ecb" ? `aes-${bits}-ecb` : a.mode === "ctr" ? `aes-${bits}-ctr` : `aes-${bits}-cbc`;
      const x = createCipheriv(name, k, a.mode === "ecb" ? null : Buffer.from(a.iv, "hex"));
      x.setAutoPadding(a.mode === "cbc-pad");
      return Buffer.concat([x.update(input), x.final()]);
    } catch {
      return undefined;
    }
  }

  const session = (a: number) => c.pickSession(a);

  /** An init on the last created key (when `key` is known) or any key. */
  function init(a: number, fn: "C_EncryptInit" | "C_DecryptInit" | "C_SignInit" | "C_VerifyInit", m: Mech, keyRef?: SymArg): void {
    emit(a, fn, session(a), m.arg, keyRef ?? c.pickKey());
  }

  /** A random step of any operation kind (the "wrong step" paths included). */
  function step(a: number): void {
    const s = session(a);
    const n = dataLen();
    const fn = rng.pick([
      "C_Encrypt", "C_EncryptUpdate", "C_EncryptFinal", "C_Decrypt", "C_DecryptUpdate", "C_DecryptFinal",
      "C_Sign", "C_SignUpdate", "C_SignFinal", "C_Verify", "C_VerifyUpdate", "C_VerifyFinal",
    ] as const);
    if (fn === "C_Encrypt" || fn === "C_EncryptUpdate" || fn === "C_Decrypt" || fn === "C_DecryptUpdate" || fn === "C_Sign") emit(a, fn, s, data(n), outBuf(n + 16));
    else if (fn === "C_SignUpdate" || fn === "C_VerifyUpdate") emit(a, fn, s, data(n));
    else if (fn === "C_Verify") emit(a, fn, s, data(n), bytes(rng.hex(rng.pick([32, 20, 31]))));
    else if (fn === "C_VerifyFinal") emit(a, fn, s, bytes(rng.hex(rng.pick([32, 20, 64]))));
    else emit(a, fn, s, outBuf(16));
  }

  /**
   * A working run: import a key, start an operation on it, and drive it through updates and a final (or a single
   * part), with size queries, small buffers, computed ciphertexts and MACs, and the occasional wrong step.
   */
  function cryptoRun(a: number): void {
    const key = rng.pick(KEY_VALUES);
    const attrs: TemplateAttr[] = [
      { type: CK.CKA_CLASS, value: CK.CKO_SECRET_KEY },
      { type: CK.CKA_KEY_TYPE, value: key.keyType },
      { type: CK.CKA_TOKEN, value: rng.chance(0.2) },
      { type: CK.CKA_PRIVATE, value: c.loggedIn(a) === "user" && rng.chance(0.5) },
      { type: CK.CKA_VALUE, value: { hex: key.hex } },
      ...(rng.chance(0.08) ? [{ type: CK.CKA_ENCRYPT, value: false }, { type: CK.CKA_SIGN, value: false }] : []),
      ...(rng.chance(0.06) ? [{ type: CK.CKA_ALLOWED_MECHANISMS, value: { hex: ulongHex(CK.CKM_AES_CBC_PAD) + ulongHex(CK.CKM_SHA256_HMAC) } }] : []),
      ...(rng.chance(0.2) ? [{ type: CK.CKA_SENSITIVE, value: true }] : []),
      { type: CK.CKA_ID, value: c.identity() },
    ];
    emit(a, "C_CreateObject", session(a), { k: "template", attrs });
    const last: SymArg = { k: "object", ref: { lastCreated: true } };
    const s = session(a);
    const kind = rng.weighted<"encrypt" | "decrypt" | "sign" | "verify" | "digestKey">([[35, "encrypt"], [25, "decrypt"], [20, "sign"], [12, "verify"], [8, "digestKey"]]);
    if (kind === "digestKey") {
      emit(a, "C_DigestInit", s, { k: "mechanism", mechanism: rng.pick([CK.CKM_SHA256, CK.CKM_MD5, CK.CKM_SHA_1]) });
      emit(a, "C_DigestKey", s, rng.chance(0.85) ? last : c.pickKey());
      if (rng.chance(0.3)) emit(a, "C_GetOperationState", s);
      emit(a, "C_DigestFinal", s, outBuf(32));
      return;
    }
    if (kind === "sign" || kind === "verify") {
      const m = macMech();
      init(a, kind === "sign" ? "C_SignInit" : "C_VerifyInit", m, rng.chance(0.9) ? last : undefined);
      const msg = Buffer.from(rng.hex(dataLen()), "hex");
      const mac = m.hmac ? createHmac(m.hmac, Buffer.from(key.hex, "hex")).update(msg).digest() : Buffer.from(rng.hex(32), "hex");
      if (rng.chance(0.15)) mac[0]! ^= 1;
      if (rng.chance(0.1)) emit(a, "C_Login", s, { k: "lit", v: CK.CKU_CONTEXT_SPECIFIC }, { k: "lit", v: "1234" });
      if (rng.chance(0.1)) emit(a, "C_GetOperationState", s);
      const multi = rng.chance(0.5);
      if (multi) {
        const cut = rng.range(0, msg.length);
        const fn = kind === "sign" ? "C_SignUpdate" : "C_VerifyUpdate";
        emit(a, fn, s, msg.subarray(0, cut).length ? bytes(msg.subarray(0, cut).toString("hex")) : data(0));
        emit(a, fn, s, msg.subarray(cut).length ? bytes(msg.subarray(cut).toString("hex")) : data(0));
      }
      const msgArg = msg.length ? bytes(msg.toString("hex")) : data(0);
      if (kind === "sign") {
        if (rng.chance(0.2)) emit(a, multi ? "C_SignFinal" : "C_Sign", ...(multi ? [s, out(rng.pick([0, 8]))] : [s, msgArg, out(rng.pick([0, 8]))]));
        if (multi) emit(a, "C_SignFinal", s, outBuf(64));
        else emit(a, "C_Sign", s, msgArg, outBuf(64));
      } else if (multi) emit(a, "C_VerifyFinal", s, bytes(mac.toString("hex")));
      else emit(a, "C_Verify", s, msgArg, bytes(mac.toString("hex")));
      if (rng.chance(0.2)) step(a);
      return;
    }
    const m = cipherMech();
    const encrypt = kind === "encrypt";
    init(a, encrypt ? "C_EncryptInit" : "C_DecryptInit", m, rng.chance(0.9) ? last : undefined);
    const plain = Buffer.from(rng.hex(m.aes?.mode === "ecb" || m.aes?.mode === "cbc" ? 16 * rng.range(0, 4) : dataLen()), "hex");
    let input: Buffer = plain;
    if (!encrypt) {
      const ct = rng.chance(0.8) ? aesOut(m, key, true, plain) : undefined;
      input = ct ?? Buffer.from(rng.hex(rng.pick([16, 32, 48, 20])), "hex");
      if (ct && rng.chance(0.15)) input[input.length - 1]! ^= 1;
    }
    if (rng.chance(0.1)) emit(a, "C_GetOperationState", s);
    const F = encrypt ? "Encrypt" : "Decrypt";
    const arg = (b: Buffer) => (b.length ? bytes(b.toString("hex")) : data(0));
    if (rng.chance(0.45)) {
      // Single-part, sometimes after a size query or a small buffer.
      if (rng.chance(0.25)) emit(a, `C_${F}`, s, arg(input), out(rng.pick([0, 1, Math.max(1, input.length - 1)])));
      emit(a, `C_${F}`, s, arg(input), outBuf(input.length + 16));
    } else {
      const cuts = [rng.range(0, input.length), rng.range(0, input.length)].sort((x, y) => x - y);
      let at = 0;
      for (const cut of [...cuts, input.length]) {
        emit(a, `C_${F}Update`, s, arg(input.subarray(at, cut)), outBuf(cut - at + (encrypt ? 16 : input.length)));
        at = cut;
        if (rng.chance(0.05)) step(a);
      }
      if (rng.chance(0.2)) emit(a, `C_${F}Final`, s, out(rng.pick([0, 1])));
      emit(a, `C_${F}Final`, s, outBuf(input.length + 16));
    }
  }

  const single: Record<string, (a: number) => void> = {
    "crypto:encryptInit": (a) => init(a, "C_EncryptInit", cipherMech()),
    "crypto:decryptInit": (a) => init(a, "C_DecryptInit", cipherMech()),
    "crypto:signInit": (a) => init(a, "C_SignInit", macMech()),
    "crypto:verifyInit": (a) => init(a, "C_VerifyInit", macMech()),
    "crypto:step": step,
    "crypto:digestKey": (a) => emit(a, "C_DigestKey", session(a), c.pickKey()),
    "crypto:operationState": (a) => emit(a, "C_GetOperationState", session(a)),
  };
  const weights: Array<[number, string]> = [
    [3, "crypto:encryptInit"],
    [2, "crypto:decryptInit"],
    [2, "crypto:signInit"],
    [1, "crypto:verifyInit"],
    [6, "crypto:step"],
    [1, "crypto:digestKey"],
    [1, "crypto:operationState"],
  ];
  return { single, weights, macros: { cryptoRun } };
}
