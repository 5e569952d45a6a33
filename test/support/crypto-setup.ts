/**
 * Setups for the cryptographic tests: a token with the user logged in on `h.rw`, and session keys imported with
 * C_CreateObject (CKA_VALUE given): `h.aes` (the SP 800-38A AES-128 key), `h.aes256`, `h.gen` (a 64-byte generic
 * secret for HMACs), `h.noUse` (AES, every usage false), `h.onlyCbc` (AES, CKA_ALLOWED_MECHANISMS = [AES_CBC]),
 * `h.aes10` (a 10-byte "AES" key, which only create accepts), `h.hmac256` (CKK_SHA256_HMAC).
 */
import { CK, RW, loginUser, ok, setups, steps, ulong, type Setup } from "./gwt.js";

export const hex = (h: string) => new Uint8Array(Buffer.from(h, "hex"));
export const toHex = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString("hex") : null);

export const AES128 = "2b7e151628aed2a6abf7158809cf4f3c";
export const AES256 = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
export const GEN64 = "5a".repeat(64);
export const IV = hex("000102030405060708090a0b0c0d0e0f");

export function secretKey(keyType: number, value: Uint8Array, more: { type: number; value: Uint8Array }[] = []) {
  return [
    { type: CK.CKA_CLASS, value: ulong(CK.CKO_SECRET_KEY) },
    { type: CK.CKA_KEY_TYPE, value: ulong(keyType) },
    { type: CK.CKA_TOKEN, value: Uint8Array.of(0) },
    { type: CK.CKA_VALUE, value },
    ...more,
  ];
}

const F = Uint8Array.of(0);

export const withKey =
  (name: string, keyType: number, value: Uint8Array, more: { type: number; value: Uint8Array }[] = []): Setup =>
  (c, h) =>
    void (h[name] = ok(c("C_CreateObject", { hSession: h.rw!, template: secretKey(keyType, value, more) })).hObject);

export const keys: Setup = steps(
  setups.token,
  loginUser,
  withKey("aes", CK.CKK_AES, hex(AES128)),
  withKey("aes256", CK.CKK_AES, hex(AES256)),
  withKey("gen", CK.CKK_GENERIC_SECRET, hex(GEN64)),
  withKey("noUse", CK.CKK_AES, hex(AES128), [
    { type: CK.CKA_ENCRYPT, value: F },
    { type: CK.CKA_DECRYPT, value: F },
    { type: CK.CKA_SIGN, value: F },
    { type: CK.CKA_VERIFY, value: F },
  ]),
  withKey("onlyCbc", CK.CKK_AES, hex(AES128), [{ type: CK.CKA_ALLOWED_MECHANISMS, value: ulong(CK.CKM_AES_CBC) }]),
  withKey("aes10", CK.CKK_AES, new Uint8Array(10).fill(3)),
  withKey("hmac256", CK.CKK_SHA256_HMAC, new Uint8Array(32).fill(1)),
);

export const cbc = (iv: Uint8Array | null = IV) => ({ mechanism: CK.CKM_AES_CBC, parameter: iv });
export const cbcPad = (iv: Uint8Array | null = IV) => ({ mechanism: CK.CKM_AES_CBC_PAD, parameter: iv });
export const ecb = { mechanism: CK.CKM_AES_ECB };
export function ctr(bits: number, cb: Uint8Array) {
  const p = new Uint8Array(24);
  new DataView(p.buffer).setBigUint64(0, BigInt(bits), true);
  p.set(cb, 8);
  return { mechanism: CK.CKM_AES_CTR, parameter: p };
}
export const gcm = (iv: Uint8Array, aad: Uint8Array | null, tagBits = 128) => ({
  mechanism: CK.CKM_AES_GCM,
  parameter: { type: "gcm" as const, iv, aad, ivBits: iv.length * 8, tagBits, size: 48 },
});
export const hmac = (mechanism: number = CK.CKM_SHA256_HMAC) => ({ mechanism });
export const general = (mechanism: number, macLength: number) => ({ mechanism, parameter: ulong(macLength) });

/** Start an operation as a setup step (failing loudly if it does not start). */
export const start =
  (fn: "C_EncryptInit" | "C_DecryptInit" | "C_SignInit" | "C_VerifyInit", mechanism: object, key: string, session = "rw"): Setup =>
  (c, h) =>
    void ok(c(fn, { hSession: h[session]!, mechanism: mechanism as never, hKey: h[key]! }));

export const openRW2: Setup = (c, h) => void (h.rw2 = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession);
