/**
 * RSA key pairs and CKA_ALWAYS_AUTHENTICATE against the real SoftHSM 2.6.1 (Debian softhsm2 through the npm pkcs11js,
 * in this process, a fresh token directory) and the drop-in on a softhsm2-profile simulator, the same scripts through
 * both: ObjectTests::testReAuthentication step by step, then C_GenerateKeyPair's refusals and the RSA steps' edges.
 *
 * Every step's result must agree: the rv, the error class and message, and the output's shape. Outputs that are
 * random by nature (a modulus, a signature, a ciphertext) are compared by length, and checked on each side on their
 * own: every signature verifies with node's RSA under the public key's CKA_MODULUS / CKA_PUBLIC_EXPONENT read back,
 * and every decryption gives the plaintext back. Nothing is mocked.
 */
import { createPublicKey, verify } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { CK } from "../../src/pkcs11/constants.js";
import { softHsmAvailable, type SoftHsmEnv } from "../support/softhsm.js";
import { bothSides, type P, type Trace } from "../support/scripted-diff.js";

const SO = "12345678";
const USER = "1234";
const MSG = Buffer.from("Text to sign / encrypt in testReAuthentication");
const len = (b: Buffer | undefined) => ({ length: b?.length });

function prepare(p: P): { slot: Buffer; h: Buffer } {
  p.C_Initialize();
  const [slot] = p.C_GetSlotList(true);
  p.C_InitToken(slot, SO, "rsa".padEnd(32));
  let h = p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION);
  p.C_Login(h, CK.CKU_SO, SO);
  p.C_InitPIN(h, USER);
  p.C_Finalize();
  p.C_Initialize();
  const s = p.C_GetSlotList(true)[0];
  h = p.C_OpenSession(s, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION);
  return { slot: s, h };
}

const GEN = { mechanism: CK.CKM_RSA_PKCS_KEY_PAIR_GEN };
const MB = (n: number) => ({ type: CK.CKA_MODULUS_BITS, value: n });
const pubT = (bits = 1024) => [MB(bits), { type: CK.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }];
const privT = (alwaysAuth = true) => [
  { type: CK.CKA_PRIVATE, value: true },
  { type: CK.CKA_DECRYPT, value: true },
  { type: CK.CKA_SIGN, value: true },
  { type: CK.CKA_ALWAYS_AUTHENTICATE, value: alwaysAuth },
];

/** The public key as node sees it, from the attributes read back through the module. */
function publicKeyOf(p: P, h: Buffer, pub: Buffer) {
  const [n, e] = p.C_GetAttributeValue(h, pub, [{ type: CK.CKA_MODULUS }, { type: CK.CKA_PUBLIC_EXPONENT }]).map((a: { value: Buffer }) => a.value);
  return createPublicKey({ format: "jwk", key: { kty: "RSA", n: n.toString("base64url"), e: e.toString("base64url") } });
}

const SCRIPTS: Record<string, (p: P, t: Trace) => void> = {
  "ObjectTests::testReAuthentication": (p, t) => {
    const { h } = prepare(p);
    t("Login USER", () => p.C_Login(h, CK.CKU_USER, USER));
    const kp = t("GenerateKeyPair", () => p.C_GenerateKeyPair(h, GEN, pubT(), privT()), () => "keys");
    const key = publicKeyOf(p, h, kp.publicKey);
    const sigOk = (sig: Buffer | undefined, data: Buffer) => ({ length: sig?.length, verified: sig ? verify("sha256", data, key, sig) : null });
    const cs = (pin: string) => () => p.C_Login(h, CK.CKU_CONTEXT_SPECIFIC, pin);
    const signInit = () => p.C_SignInit(h, { mechanism: CK.CKM_SHA256_RSA_PKCS }, kp.privateKey);
    const sign = () => p.C_Sign(h, MSG, Buffer.alloc(256));
    t("Login(CS) with no operation", cs(USER));
    t("SignInit", signInit);
    t("Login(CS) 3-byte PIN", cs(USER.slice(0, 3)));
    t("Login(CS)", cs(USER));
    t("Sign", sign, (s) => sigOk(s, MSG));
    t("SignInit", signInit);
    t("Sign without re-auth", sign, len);
    t("Sign after that", sign, len);
    t("SignInit", signInit);
    t("Login(CS)", cs(USER));
    t("SignUpdate", () => p.C_SignUpdate(h, MSG));
    t("SignFinal", () => p.C_SignFinal(h, Buffer.alloc(256)), (s) => sigOk(s, MSG));
    t("SignInit", signInit);
    t("SignUpdate without re-auth", () => p.C_SignUpdate(h, MSG));
    t("SignUpdate after that", () => p.C_SignUpdate(h, MSG));
    t("SignInit", signInit);
    t("Login(CS)", cs(USER));
    t("SignFinal alone", () => p.C_SignFinal(h, Buffer.alloc(256)), (s) => sigOk(s, Buffer.alloc(0)));
    t("SignInit", signInit);
    t("SignFinal without re-auth", () => p.C_SignFinal(h, Buffer.alloc(256)), len);
    t("SignFinal after that", () => p.C_SignFinal(h, Buffer.alloc(256)), len);
    t("EncryptInit(RSA_PKCS, public)", () => p.C_EncryptInit(h, { mechanism: CK.CKM_RSA_PKCS }, kp.publicKey));
    const ct = t("Encrypt", () => p.C_Encrypt(h, MSG, Buffer.alloc(256)), len);
    const decryptInit = () => p.C_DecryptInit(h, { mechanism: CK.CKM_RSA_PKCS }, kp.privateKey);
    t("DecryptInit", decryptInit);
    t("Login(CS)", cs(USER));
    t("Decrypt", () => p.C_Decrypt(h, ct, Buffer.alloc(256)), (d: Buffer) => ({ plaintextMatches: d.equals(MSG) }));
    t("DecryptInit", decryptInit);
    t("Decrypt without re-auth", () => p.C_Decrypt(h, ct, Buffer.alloc(256)), len);
    t("Decrypt after that", () => p.C_Decrypt(h, ct, Buffer.alloc(256)), len);
    // Beyond the unit test: a wrong PIN keeps the operation; the pending state is the session's only.
    t("DecryptInit", decryptInit);
    t("Login(CS) wrong", cs("wrong-pin"));
    t("Login(CS) wrong again", cs("wrong-pin"));
    const other = p.C_OpenSession(p.C_GetSlotList(true)[0], CK.CKF_SERIAL_SESSION);
    t("Login(CS) from another session", () => p.C_Login(other, CK.CKU_CONTEXT_SPECIFIC, USER));
    t("Login(CS)", cs(USER));
    t("Login(CS) twice", cs(USER));
    t("Decrypt", () => p.C_Decrypt(h, ct, Buffer.alloc(256)), (d: Buffer) => ({ plaintextMatches: d.equals(MSG) }));
    t("SignInit", signInit);
    t("Logout", () => p.C_Logout(h));
    t("Sign after logout", sign, len);
  },
  "C_GenerateKeyPair refusals and attributes": (p, t) => {
    const { h } = prepare(p);
    const gen = (name: string, pub: object[], priv: object[] = [], mech: object = GEN) => t(name, () => p.C_GenerateKeyPair(h, mech, pub, priv), () => "keys");
    gen("public session, default private", [MB(512)]);
    gen("public session, PRIVATE=F", [MB(512)], [{ type: CK.CKA_PRIVATE, value: false }]);
    t("Login USER", () => p.C_Login(h, CK.CKU_USER, USER));
    gen("no CKA_MODULUS_BITS", [{ type: CK.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) }]);
    gen("MODULUS_BITS 4 bytes", [{ type: CK.CKA_MODULUS_BITS, value: Buffer.alloc(4) }]);
    gen("511 bits", [MB(511)]);
    gen("513 bits", [MB(513)]);
    for (const e of [[3], [2], [1], [], [0], [0, 1, 0, 1]]) gen(`exponent ${Buffer.from(e).toString("hex")}`, [MB(512), { type: CK.CKA_PUBLIC_EXPONENT, value: Buffer.from(e) }]);
    gen("public CLASS private", [MB(512), { type: CK.CKA_CLASS, value: CK.CKO_PRIVATE_KEY }]);
    gen("public KEY_TYPE AES", [MB(512), { type: CK.CKA_KEY_TYPE, value: CK.CKK_AES }]);
    gen("private CLASS public", [MB(512)], [{ type: CK.CKA_CLASS, value: CK.CKO_PUBLIC_KEY }]);
    gen("AES_KEY_GEN", [MB(512)], [], { mechanism: CK.CKM_AES_KEY_GEN });
    gen("public MODULUS", [MB(512), { type: CK.CKA_MODULUS, value: Buffer.alloc(64, 1) }]);
    gen("public VALUE", [MB(512), { type: CK.CKA_VALUE, value: Buffer.alloc(4, 1) }]);
    gen("private PRIVATE_EXPONENT", [MB(512)], [{ type: CK.CKA_PRIVATE_EXPONENT, value: Buffer.alloc(4, 1) }]);
    gen("private ALWAYS_SENSITIVE", [MB(512)], [{ type: CK.CKA_ALWAYS_SENSITIVE, value: false }]);
    gen("private MODULUS_BITS", [MB(512)], [MB(512)]);
    gen("private SIGN 2 bytes", [MB(512)], [{ type: CK.CKA_SIGN, value: Buffer.alloc(2) }]);
    gen("token pair, labels", [MB(512), { type: CK.CKA_TOKEN, value: true }, { type: CK.CKA_LABEL, value: "pub" }], [{ type: CK.CKA_TOKEN, value: true }, { type: CK.CKA_LABEL, value: "priv" }, { type: CK.CKA_SENSITIVE, value: true }]);
    // The handles themselves: the failed calls above spent SoftHSM's handles as it does (orphans, a destroyed public key).
    const kp = t("pair", () => p.C_GenerateKeyPair(h, GEN, pubT(1024), [{ type: CK.CKA_EXTRACTABLE, value: true }, { type: CK.CKA_ID, value: Buffer.from("id") }]));
    t("objects", () => {
      p.C_FindObjectsInit(h, []);
      const r = p.C_FindObjects(h, 100);
      p.C_FindObjectsFinal(h);
      return r.length;
    });
    const TYPES = [
      "CKA_CLASS", "CKA_TOKEN", "CKA_PRIVATE", "CKA_LABEL", "CKA_KEY_TYPE", "CKA_ID", "CKA_DERIVE", "CKA_LOCAL", "CKA_KEY_GEN_MECHANISM",
      "CKA_MODIFIABLE", "CKA_COPYABLE", "CKA_DESTROYABLE", "CKA_ALLOWED_MECHANISMS", "CKA_SUBJECT", "CKA_ENCRYPT", "CKA_VERIFY",
      "CKA_VERIFY_RECOVER", "CKA_WRAP", "CKA_TRUSTED", "CKA_WRAP_TEMPLATE", "CKA_MODULUS_BITS", "CKA_PUBLIC_EXPONENT", "CKA_SENSITIVE",
      "CKA_DECRYPT", "CKA_SIGN", "CKA_SIGN_RECOVER", "CKA_UNWRAP", "CKA_EXTRACTABLE", "CKA_ALWAYS_SENSITIVE", "CKA_NEVER_EXTRACTABLE",
      "CKA_WRAP_WITH_TRUSTED", "CKA_UNWRAP_TEMPLATE", "CKA_ALWAYS_AUTHENTICATE", "CKA_PRIVATE_EXPONENT", "CKA_PRIME_1", "CKA_PRIME_2",
      "CKA_EXPONENT_1", "CKA_EXPONENT_2", "CKA_COEFFICIENT", "CKA_VALUE", "CKA_VALUE_LEN", "CKA_CHECK_VALUE",
    ] as const;
    for (const [which, handle] of [["public", kp?.publicKey], ["private", kp?.privateKey]] as const) {
      // The private components are random: compared by length (the pair is extractable, so both sides answer them).
      const random = new Set(["CKA_PRIVATE_EXPONENT", "CKA_PRIME_1", "CKA_PRIME_2", "CKA_EXPONENT_1", "CKA_EXPONENT_2", "CKA_COEFFICIENT"]);
      for (const name of TYPES) t(`${which} ${name}`, () => p.C_GetAttributeValue(h, handle, [{ type: CK[name] }])[0].value, (v: Buffer) => (random.has(name) ? v.length : v));
      t(`${which} CKA_MODULUS length`, () => p.C_GetAttributeValue(h, handle, [{ type: CK.CKA_MODULUS }])[0].value.length);
    }
    t("set private ALWAYS_AUTHENTICATE", () => p.C_SetAttributeValue(h, kp.privateKey, [{ type: CK.CKA_ALWAYS_AUTHENTICATE, value: true }]));
    t("private ALWAYS_AUTHENTICATE", () => p.C_GetAttributeValue(h, kp.privateKey, [{ type: CK.CKA_ALWAYS_AUTHENTICATE }])[0].value);
    t("set public MODULUS", () => p.C_SetAttributeValue(h, kp.publicKey, [{ type: CK.CKA_MODULUS, value: Buffer.alloc(4) }]));
    t("set private SENSITIVE", () => p.C_SetAttributeValue(h, kp.privateKey, [{ type: CK.CKA_SENSITIVE, value: true }]));
    t("private PRIME_1 now", () => p.C_GetAttributeValue(h, kp.privateKey, [{ type: CK.CKA_PRIME_1 }])[0].value.length);
    t("find private keys", () => {
      p.C_FindObjectsInit(h, [{ type: CK.CKA_CLASS, value: CK.CKO_PRIVATE_KEY }, { type: CK.CKA_ID, value: Buffer.from("id") }]);
      const r = p.C_FindObjects(h, 100);
      p.C_FindObjectsFinal(h);
      return r.length;
    });
    t("copy private", () => p.C_CopyObject(h, kp.privateKey, [{ type: CK.CKA_LABEL, value: "copy" }]), () => "copied");
    t("destroy public", () => p.C_DestroyObject(h, kp.publicKey));
  },
  "RSA steps": (p, t) => {
    const { h } = prepare(p);
    t("Login USER", () => p.C_Login(h, CK.CKU_USER, USER));
    const kp = t("pair", () => p.C_GenerateKeyPair(h, GEN, pubT(1024), privT(false)), () => "keys");
    const key = publicKeyOf(p, h, kp.publicKey);
    const init = (fn: string, mechanism: number, k: Buffer) => () => p[fn]!(h, { mechanism }, k);
    t("SignInit public", init("C_SignInit", CK.CKM_SHA256_RSA_PKCS, kp.publicKey));
    t("EncryptInit private", init("C_EncryptInit", CK.CKM_RSA_PKCS, kp.privateKey));
    t("DecryptInit public", init("C_DecryptInit", CK.CKM_RSA_PKCS, kp.publicKey));
    t("DecryptInit SHA256_RSA_PKCS", init("C_DecryptInit", CK.CKM_SHA256_RSA_PKCS, kp.privateKey));
    t("VerifyInit private", init("C_VerifyInit", CK.CKM_SHA256_RSA_PKCS, kp.privateKey));
    t("Login(CS) without ALWAYS_AUTHENTICATE, no op", () => p.C_Login(h, CK.CKU_CONTEXT_SPECIFIC, USER));
    t("SignInit RSA_PKCS", init("C_SignInit", CK.CKM_RSA_PKCS, kp.privateKey));
    t("Login(CS) without ALWAYS_AUTHENTICATE", () => p.C_Login(h, CK.CKU_CONTEXT_SPECIFIC, USER));
    t("SignUpdate RSA_PKCS", () => p.C_SignUpdate(h, MSG));
    t("Sign after", () => p.C_Sign(h, MSG, Buffer.alloc(128)), len);
    t("SignInit RSA_PKCS", init("C_SignInit", CK.CKM_RSA_PKCS, kp.privateKey));
    t("SignFinal RSA_PKCS", () => p.C_SignFinal(h, Buffer.alloc(128)), len);
    t("SignInit RSA_PKCS", init("C_SignInit", CK.CKM_RSA_PKCS, kp.privateKey));
    t("Sign 118 bytes", () => p.C_Sign(h, Buffer.alloc(118), Buffer.alloc(128)), len);
    t("SignInit RSA_PKCS", init("C_SignInit", CK.CKM_RSA_PKCS, kp.privateKey));
    const raw = t("Sign 117 bytes", () => p.C_Sign(h, Buffer.alloc(117, 7), Buffer.alloc(128)), len);
    for (const [name, mech, hash] of [["SHA1", CK.CKM_SHA1_RSA_PKCS, "sha1"], ["SHA224", CK.CKM_SHA224_RSA_PKCS, "sha224"], ["SHA384", CK.CKM_SHA384_RSA_PKCS, "sha384"], ["SHA512", CK.CKM_SHA512_RSA_PKCS, "sha512"]] as const) {
      t(`SignInit ${name}`, init("C_SignInit", mech, kp.privateKey));
      t(`Sign ${name}`, () => p.C_Sign(h, MSG, Buffer.alloc(128)), (s: Buffer) => ({ verified: verify(hash, MSG, key, s) }));
    }
    t("SignInit SHA256", init("C_SignInit", CK.CKM_SHA256_RSA_PKCS, kp.privateKey));
    t("SignUpdate", () => p.C_SignUpdate(h, MSG));
    t("Sign after update", () => p.C_Sign(h, MSG, Buffer.alloc(128)), len);
    t("SignInit SHA256", init("C_SignInit", CK.CKM_SHA256_RSA_PKCS, kp.privateKey));
    t("Sign small buffer", () => p.C_Sign(h, MSG, Buffer.alloc(10)), len);
    const sig = t("Sign", () => p.C_Sign(h, MSG, Buffer.alloc(200)), len);
    t("VerifyInit SHA256", init("C_VerifyInit", CK.CKM_SHA256_RSA_PKCS, kp.publicKey));
    t("Verify", () => p.C_Verify(h, MSG, sig));
    t("VerifyInit SHA256", init("C_VerifyInit", CK.CKM_SHA256_RSA_PKCS, kp.publicKey));
    t("Verify other data", () => p.C_Verify(h, Buffer.from("other"), sig));
    t("VerifyInit SHA256", init("C_VerifyInit", CK.CKM_SHA256_RSA_PKCS, kp.publicKey));
    t("Verify short signature", () => p.C_Verify(h, MSG, sig.subarray(1)));
    t("VerifyInit SHA256", init("C_VerifyInit", CK.CKM_SHA256_RSA_PKCS, kp.publicKey));
    t("VerifyUpdate", () => p.C_VerifyUpdate(h, MSG));
    t("VerifyFinal", () => p.C_VerifyFinal(h, sig));
    t("VerifyInit RSA_PKCS", init("C_VerifyInit", CK.CKM_RSA_PKCS, kp.publicKey));
    t("Verify RSA_PKCS", () => p.C_Verify(h, Buffer.alloc(117, 7), raw));
    t("VerifyInit RSA_PKCS", init("C_VerifyInit", CK.CKM_RSA_PKCS, kp.publicKey));
    t("VerifyFinal RSA_PKCS", () => p.C_VerifyFinal(h, raw));
    t("VerifyInit RSA_PKCS again", init("C_VerifyInit", CK.CKM_RSA_PKCS, kp.publicKey));
    t("VerifyUpdate RSA_PKCS", () => p.C_VerifyUpdate(h, MSG));
    t("VerifyInit RSA_PKCS", init("C_VerifyInit", CK.CKM_RSA_PKCS, kp.publicKey));
    t("Verify RSA_PKCS wrong data", () => p.C_Verify(h, Buffer.alloc(117, 8), raw));
    t("EncryptInit", init("C_EncryptInit", CK.CKM_RSA_PKCS, kp.publicKey));
    t("EncryptUpdate", () => p.C_EncryptUpdate(h, MSG, Buffer.alloc(128)), len);
    t("EncryptFinal", () => p.C_EncryptFinal(h, Buffer.alloc(128)), len);
    t("Encrypt 118 bytes", () => p.C_Encrypt(h, Buffer.alloc(118), Buffer.alloc(128)), len);
    t("Encrypt after", () => p.C_Encrypt(h, MSG, Buffer.alloc(128)), len);
    t("EncryptInit", init("C_EncryptInit", CK.CKM_RSA_PKCS, kp.publicKey));
    t("Encrypt small buffer", () => p.C_Encrypt(h, MSG, Buffer.alloc(10)), len);
    const ct = t("Encrypt", () => p.C_Encrypt(h, MSG, Buffer.alloc(128)), len);
    t("DecryptInit", init("C_DecryptInit", CK.CKM_RSA_PKCS, kp.privateKey));
    t("DecryptUpdate", () => p.C_DecryptUpdate(h, ct, Buffer.alloc(128)), len);
    t("Decrypt 3-byte buffer", () => p.C_Decrypt(h, ct, Buffer.alloc(3)), len);
    t("Decrypt short input", () => p.C_Decrypt(h, ct.subarray(0, 100), Buffer.alloc(128)), len);
    t("Decrypt after", () => p.C_Decrypt(h, ct, Buffer.alloc(128)), len);
    t("DecryptInit", init("C_DecryptInit", CK.CKM_RSA_PKCS, kp.privateKey));
    t("Decrypt garbage", () => p.C_Decrypt(h, Buffer.alloc(128, 1), Buffer.alloc(128)), len);
    t("DecryptInit", init("C_DecryptInit", CK.CKM_RSA_PKCS, kp.privateKey));
    t("Decrypt", () => p.C_Decrypt(h, ct, Buffer.alloc(128)), (d: Buffer) => ({ plaintextMatches: d.equals(MSG) }));
    t("GetOperationState", () => p.C_GetOperationState(h), len);
    // ALWAYS_AUTHENTICATE=T needs CKA_PRIVATE=T (TEMPLATE_INCONSISTENT, leaving SoftHSM's traces), so the SO, who
    // cannot use private objects, never re-authenticates.
    t("pair PRIVATE=F, ALWAYS_AUTHENTICATE=T", () => p.C_GenerateKeyPair(h, GEN, pubT(512), [{ type: CK.CKA_PRIVATE, value: false }, { type: CK.CKA_ALWAYS_AUTHENTICATE, value: true }]));
    t("pair ALWAYS_AUTHENTICATE=T, then PRIVATE=F", () => p.C_GenerateKeyPair(h, GEN, pubT(512), [{ type: CK.CKA_ALWAYS_AUTHENTICATE, value: true }, { type: CK.CKA_PRIVATE, value: false }]));
    t("objects", () => {
      p.C_FindObjectsInit(h, []);
      const r = p.C_FindObjects(h, 100);
      p.C_FindObjectsFinal(h);
      return r.length;
    });
    t("Logout", () => p.C_Logout(h));
    t("Login SO", () => p.C_Login(h, CK.CKU_SO, SO));
    t("SignInit as SO (private key)", init("C_SignInit", CK.CKM_SHA256_RSA_PKCS, kp.privateKey));
    t("Login(CS) as SO", () => p.C_Login(h, CK.CKU_CONTEXT_SPECIFIC, SO));
    t("Logout", () => p.C_Logout(h));
    t("Login(CS) nobody logged in", () => p.C_Login(h, CK.CKU_CONTEXT_SPECIFIC, USER));
  },
};

describe.skipIf(!softHsmAvailable())("RSA and re-authentication: hsmsim (softhsm2) vs SoftHSM 2.6.1", () => {
  const envs: SoftHsmEnv[] = [];
  afterAll(() => envs.forEach((e) => e.remove()));

  it.each(Object.keys(SCRIPTS))("%s", (name) => {
    const { real, ours } = bothSides(SCRIPTS[name]!, envs);
    if (process.env.SHOW) console.log(real.join("\n"));
    // The script really ran: most steps answered, signatures verified, plaintexts came back.
    expect(real.filter((l) => l.includes(" OK ")).length).toBeGreaterThan(10);
    expect(real.some((l) => l.includes('"verified":false') || l.includes('"plaintextMatches":false'))).toBe(false);
    expect(ours).toEqual(real);
  });
});
