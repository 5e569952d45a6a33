/**
 * No RSA private key byte, PIN or plaintext in the log (issue 3, non-negotiable 3): a key pair generated through the
 * pkcs11js drop-in (extractable, so its private components can be read back for the scan), a re-authenticated
 * signature, an encryption and a re-authenticated decryption with a wrong context PIN first, in both profiles; then the
 * raw bytes the store holds are scanned for every private component (CKA_PRIVATE_EXPONENT, PRIME_1, PRIME_2,
 * EXPONENT_1, EXPONENT_2, COEFFICIENT) as hex (both cases) and base64 (both alphabets), and for the PINs and the
 * plaintext. The public modulus is in the log (in clear, as SoftHSM stores a public key's): the scan sees it there,
 * so it can see key-sized values at all. A replay with the simulator key rebuilds the private key, which still signs.
 */
import { createPublicKey, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { MemoryEventStore } from "../../src/events/memory-store.js";
import { Simulator } from "../../src/actors/simulator.js";
import { PKCS11 } from "../../src/pkcs11/pkcs11js.js";
import { CK } from "../../src/pkcs11/constants.js";
import type { ProfileName } from "../../src/pkcs11/profiles.js";
import { expectNoSecrets } from "../support/secret-scan.js";

const SIM_KEY = new Uint8Array(32).fill(0x42);
const USER_PIN = "user-pin-rsa-7731";
const WRONG_PIN = "wrong-pin-rsa-0042";
const PLAINTEXT = "RSA secret: the launch code is 0000-swordfish";
const PRIVATE_PARTS = [CK.CKA_PRIVATE_EXPONENT, CK.CKA_PRIME_1, CK.CKA_PRIME_2, CK.CKA_EXPONENT_1, CK.CKA_EXPONENT_2, CK.CKA_COEFFICIENT];

describe.each<ProfileName>(["default", "softhsm2"])("no RSA private key, PIN or plaintext reaches the log (profile %s)", (profile) => {
  it("generate, re-authenticate, sign, encrypt, decrypt through the drop-in", () => {
    const store = new MemoryEventStore();
    const p = new PKCS11();
    p.load(new Simulator({ profile, store, simulatorKey: SIM_KEY }));
    p.C_Initialize();
    p.C_InitToken(p.C_GetSlotList(true)[0]!, "so-pin-rsa-1234", "rsa-secrets".padEnd(32));
    const h = p.C_OpenSession(p.C_GetSlotList(true)[0]!, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION);
    for (const [type, pin] of [[CK.CKU_SO, "so-pin-rsa-1234"]] as const) p.C_Login(h, type, pin);
    p.C_InitPIN(h, USER_PIN);
    p.C_Logout(h);
    p.C_Login(h, CK.CKU_USER, USER_PIN);
    const kp = p.C_GenerateKeyPair(
      h,
      { mechanism: CK.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [{ type: CK.CKA_MODULUS_BITS, value: 1024 }, { type: CK.CKA_TOKEN, value: true }],
      [
        { type: CK.CKA_TOKEN, value: true },
        { type: CK.CKA_EXTRACTABLE, value: true },
        { type: CK.CKA_ALWAYS_AUTHENTICATE, value: true },
      ],
    );
    const parts = p.C_GetAttributeValue(h, kp.privateKey, PRIVATE_PARTS.map((type) => ({ type }))).map((a) => a.value as Buffer);
    const [n, e] = p.C_GetAttributeValue(h, kp.publicKey, [{ type: CK.CKA_MODULUS }, { type: CK.CKA_PUBLIC_EXPONENT }]).map((a) => a.value as Buffer);
    for (const x of parts) expect(x.length).toBeGreaterThanOrEqual(60);
    const pub = createPublicKey({ format: "jwk", key: { kty: "RSA", n: n!.toString("base64url"), e: e!.toString("base64url") } });

    p.C_SignInit(h, { mechanism: CK.CKM_SHA256_RSA_PKCS }, kp.privateKey);
    expect(() => p.C_Login(h, CK.CKU_CONTEXT_SPECIFIC, WRONG_PIN)).toThrow(/PIN_INCORRECT/);
    p.C_Login(h, CK.CKU_CONTEXT_SPECIFIC, USER_PIN);
    p.C_SignUpdate(h, Buffer.from(PLAINTEXT));
    const sig = p.C_SignFinal(h, Buffer.alloc(128));
    expect(verify("sha256", Buffer.from(PLAINTEXT), pub, sig)).toBe(true);
    p.C_EncryptInit(h, { mechanism: CK.CKM_RSA_PKCS }, kp.publicKey);
    const ct = p.C_Encrypt(h, Buffer.from(PLAINTEXT), Buffer.alloc(128));
    p.C_DecryptInit(h, { mechanism: CK.CKM_RSA_PKCS }, kp.privateKey);
    p.C_Login(h, CK.CKU_CONTEXT_SPECIFIC, USER_PIN);
    expect(p.C_Decrypt(h, ct, Buffer.alloc(128)).toString()).toBe(PLAINTEXT);
    p.C_Finalize();

    const raw = store.raw();
    // The scan can see: the public modulus is there in clear, the private components sealed.
    expect(raw.includes(n!.toString("hex"))).toBe(true);
    expect(raw).toContain('"sealed"');
    expectNoSecrets(raw, [...parts, Buffer.from(USER_PIN), Buffer.from(WRONG_PIN), Buffer.from(PLAINTEXT)]);

    // Replayed with the simulator key, the private key is whole again and signs; the signature verifies.
    const again = new PKCS11();
    again.load(Simulator.replay(store.read(), { profile, simulatorKey: SIM_KEY }));
    again.C_Initialize();
    const [s2] = again.C_GetSlotList(true);
    const h2 = again.C_OpenSession(s2!, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION);
    again.C_Login(h2, CK.CKU_USER, USER_PIN);
    again.C_FindObjectsInit(h2, [{ type: CK.CKA_CLASS, value: CK.CKO_PRIVATE_KEY }]);
    const [priv] = again.C_FindObjects(h2, 1);
    again.C_FindObjectsFinal(h2);
    again.C_SignInit(h2, { mechanism: CK.CKM_SHA256_RSA_PKCS }, priv!);
    again.C_Login(h2, CK.CKU_CONTEXT_SPECIFIC, USER_PIN);
    expect(verify("sha256", Buffer.from("after replay"), pub, again.C_Sign(h2, Buffer.from("after replay"), Buffer.alloc(128)))).toBe(true);
  });
});
