/**
 * No key, plaintext or saved operation state in the log (issue 3, non-negotiable 3): distinctive keys and plaintexts
 * go through every cryptographic path (C_CreateObject of secret keys, every init, single- and multi-part encryption
 * and decryption in every AES mode, HMAC sign and verify, C_DigestKey, C_GetOperationState / C_SetOperationState,
 * the pkcs11js drop-in, both profiles); then the raw bytes the store holds are scanned for each secret as UTF-8, hex
 * (both cases) and base64 (both alphabets): the keys, the plaintexts, the decrypted outputs, the saved-state blobs and
 * their decrypted contents (the operation's chaining values and pending bytes).
 */
import { describe, expect, it } from "vitest";
import { MemoryEventStore } from "../../src/events/memory-store.js";
import { Simulator } from "../../src/actors/simulator.js";
import { PKCS11 } from "../../src/pkcs11/pkcs11js.js";
import { CK } from "../../src/pkcs11/constants.js";
import type { ProfileName } from "../../src/pkcs11/profiles.js";
import { openOperation, operationStateKey } from "../../src/crypto/operation-blob.js";
import { deriveKeys } from "../../src/crypto/keys.js";

const AES_KEY = Buffer.from("5ec7e7a35ec7e7a3c0ffee00c0ffee01", "hex");
const AES256_KEY = Buffer.from("a11ce5b0b5ec7e7a35ec7e7a3c0ffee00c0ffee01d15ea5eba5eba11f00dfeed", "hex");
const HMAC_KEY = Buffer.from("H-M-A-C key: the quick brown fox jumps over the lazy dog, 64 by.");
const PLAINTEXT = "Attack at dawn; the password is swordfish-31337!";
const PLAINTEXT2 = "a second confidential message, nobody may read it";
const SIM_KEY = new Uint8Array(32).fill(0x42);

function encodings(secret: Uint8Array): string[] {
  const b = Buffer.from(secret);
  const e = [b.toString("hex"), b.toString("hex").toUpperCase(), b.toString("base64"), b.toString("base64url")];
  const text = b.toString("utf8");
  if (/^[\x20-\x7e]+$/.test(text)) e.push(text);
  return e;
}

function expectNoSecrets(raw: string, secrets: Uint8Array[]) {
  for (const s of secrets) {
    for (const e of encodings(s)) expect(raw.includes(e), `log contains a secret (${s.length} bytes) as ${e.slice(0, 24)}…`).toBe(false);
  }
}

const secretKey = (keyType: number, value: Buffer) => [
  { type: CK.CKA_CLASS, value: CK.CKO_SECRET_KEY },
  { type: CK.CKA_KEY_TYPE, value: keyType },
  { type: CK.CKA_TOKEN, value: true },
  { type: CK.CKA_SENSITIVE, value: true },
  { type: CK.CKA_VALUE, value },
];

describe.each<ProfileName>(["default", "softhsm2"])("no key, plaintext or saved state reaches the log (profile %s)", (profile) => {
  it("through the pkcs11js drop-in", () => {
    const store = new MemoryEventStore();
    const sim = new Simulator({ profile, store, simulatorKey: SIM_KEY });
    const p = new PKCS11();
    p.load(sim);
    p.C_Initialize();
    const [slot] = p.C_GetSlotList(true);
    p.C_InitToken(slot!, "so-pin-1234", "crypto-secrets".padEnd(32));
    const [s1] = p.C_GetSlotList(true);
    const h = p.C_OpenSession(s1!, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION);
    const h2 = p.C_OpenSession(s1!, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION);
    p.C_Login(h, CK.CKU_SO, "so-pin-1234");
    p.C_InitPIN(h, "user-pin-1234");
    p.C_Logout(h);
    p.C_Login(h, CK.CKU_USER, "user-pin-1234");
    const aes = p.C_CreateObject(h, secretKey(CK.CKK_AES, AES_KEY));
    const aes256 = p.C_CreateObject(h, secretKey(CK.CKK_AES, AES256_KEY));
    const mac = p.C_CreateObject(h, secretKey(CK.CKK_GENERIC_SECRET, HMAC_KEY));
    const pt = Buffer.from(PLAINTEXT);
    const pt2 = Buffer.from(PLAINTEXT2);
    const iv = Buffer.alloc(16, 0x0f);
    const outputs: Buffer[] = [];
    const ctrParam = Buffer.concat([Buffer.from("8000000000000000", "hex"), iv]);
    const mechs = [
      { mechanism: CK.CKM_AES_ECB },
      { mechanism: CK.CKM_AES_CBC, parameter: iv },
      { mechanism: CK.CKM_AES_CBC_PAD, parameter: iv },
      { mechanism: CK.CKM_AES_CTR, parameter: ctrParam },
      { mechanism: CK.CKM_AES_GCM, parameter: { type: CK.CK_PARAMS_GCM, iv: iv.subarray(0, 12), ivBits: 96, aad: Buffer.from(PLAINTEXT2), tagBits: 128 } },
    ];
    for (const key of [aes, aes256]) {
      for (const m of mechs) {
        const data = m.mechanism === CK.CKM_AES_ECB || m.mechanism === CK.CKM_AES_CBC ? Buffer.concat([pt, pt]).subarray(0, 96) : pt;
        p.C_EncryptInit(h, m, key);
        const ct = Buffer.from(p.C_Encrypt(h, data, Buffer.alloc(200)));
        p.C_EncryptInit(h, m, key);
        p.C_EncryptUpdate(h, data.subarray(0, 33), Buffer.alloc(200));
        p.C_EncryptUpdate(h, data.subarray(33), Buffer.alloc(200));
        p.C_EncryptFinal(h, Buffer.alloc(200));
        p.C_DecryptInit(h, m, key);
        outputs.push(Buffer.from(p.C_Decrypt(h, ct, Buffer.alloc(200))));
        p.C_DecryptInit(h, m, key);
        const a = Buffer.from(p.C_DecryptUpdate(h, ct.subarray(0, 40), Buffer.alloc(200)));
        const b = Buffer.from(p.C_DecryptUpdate(h, ct.subarray(40), Buffer.alloc(200)));
        outputs.push(Buffer.concat([a, b, Buffer.from(p.C_DecryptFinal(h, Buffer.alloc(200)))]));
      }
    }
    expect(outputs.every((o, i) => o.toString().startsWith(PLAINTEXT.slice(0, 20)) || i < 0)).toBe(true);
    p.C_SignInit(h, { mechanism: CK.CKM_SHA256_HMAC }, mac);
    const tag = p.C_Sign(h, pt, Buffer.alloc(32));
    p.C_SignInit(h, { mechanism: CK.CKM_SHA512_HMAC }, mac);
    p.C_SignUpdate(h, pt);
    p.C_SignUpdate(h, pt2);
    p.C_SignFinal(h, Buffer.alloc(64));
    p.C_VerifyInit(h, { mechanism: CK.CKM_SHA256_HMAC }, mac);
    p.C_VerifyUpdate(h, pt);
    expect(p.C_VerifyFinal(h, tag)).toBe(true);
    p.C_DigestInit(h, { mechanism: CK.CKM_SHA256 });
    p.C_DigestKey(h, aes);
    p.C_DigestUpdate(h, pt2);
    p.C_DigestFinal(h, Buffer.alloc(32));

    // Saved operation states (default profile): a CBC_PAD encryption and an HMAC half-way, restored elsewhere.
    const blobs: Buffer[] = [];
    const contents: Uint8Array[] = [];
    if (profile === "default") {
      p.C_EncryptInit(h, { mechanism: CK.CKM_AES_CBC_PAD, parameter: iv }, aes);
      p.C_EncryptUpdate(h, pt.subarray(0, 20), Buffer.alloc(64));
      blobs.push(p.C_GetOperationState(h));
      p.C_SetOperationState(h2, blobs[0]!, aes, Buffer.alloc(8));
      p.C_EncryptFinal(h2, Buffer.alloc(64));
      p.C_EncryptFinal(h, Buffer.alloc(64));
      p.C_SignInit(h, { mechanism: CK.CKM_SHA256_HMAC }, mac);
      p.C_SignUpdate(h, pt2);
      blobs.push(p.C_GetOperationState(h));
      p.C_SetOperationState(h2, blobs[1]!, Buffer.alloc(8), mac);
      p.C_SignFinal(h2, Buffer.alloc(32));
      p.C_SignFinal(h, Buffer.alloc(32));
      // What the blobs hold inside: the states' chaining values and pending plaintext, as they are serialised.
      const key = operationStateKey(deriveKeys(SIM_KEY).seal);
      for (const b of blobs) {
        const plain = openOperation(key, b);
        expect(plain).not.toBeNull();
        const saved = JSON.parse(Buffer.from(plain!).toString()) as { state: Record<string, unknown> };
        contents.push(plain!);
        for (const v of Object.values(saved.state)) {
          if (typeof v === "string" && v.length >= 16) contents.push(Buffer.from(v, "hex"));
          if (v && typeof v === "object") for (const w of Object.values(v)) if (typeof w === "string" && w.length >= 16) contents.push(Buffer.from(w, "hex"));
        }
      }
      expect(contents.length).toBeGreaterThan(3);
    }
    p.C_Logout(h);
    p.C_Finalize();

    const raw = store.raw();
    expect(raw.length).toBeGreaterThan(5000);
    // The scan can see: the label is there, and the facts that carry sealed values.
    expect(raw).toContain("crypto-secrets");
    expect(raw).toContain('"type":"CryptoStarted"');
    expect(raw).toContain('"type":"CryptoUpdated"');
    expectNoSecrets(raw, [AES_KEY, AES256_KEY, HMAC_KEY, pt, pt2, pt.subarray(0, 16), pt.subarray(16, 32), pt2.subarray(0, 16), ...outputs, ...blobs, ...contents]);
  });
});
