/**
 * AES key wrap (PKCS#11 v2.40 Current Mechanisms §2.13): CKM_AES_KEY_WRAP (RFC 3394, the default IV A6A6A6A6A6A6A6A6)
 * and CKM_AES_KEY_WRAP_PAD (RFC 5649, the alternative IV A65959A6 || MLI). Single-part: C_WrapKey and C_UnwrapKey
 * take the whole key at once. The bytes run through an AesEngine: node's `id-aes*-wrap[-pad]` ciphers (OpenSSL,
 * what SoftHSM uses) by default, @noble/ciphers' `aeskw` / `aeskwp` as the cross-check.
 *
 * SoftHSM 2.6.1's rules, observed with pkcs11js:
 *
 * | step   | CKM_AES_KEY_WRAP                                          | CKM_AES_KEY_WRAP_PAD                  |
 * |--------|-----------------------------------------------------------|---------------------------------------|
 * | wrap   | the key value is first zero-padded to a multiple of 8     | the same zero padding first (!), then |
 * |        | (SoftHSM PR #307); under 16 bytes after that →            | RFC 5649 over the padded value, so    |
 * |        | CKR_KEY_SIZE_RANGE (so 9..15 bytes wrap as 16)            | the MLI counts the padding            |
 * | unwrap | under 24 bytes or not a multiple of 8 →                   | under 16 bytes or not a multiple of 8 |
 * |        | CKR_WRAPPED_KEY_LEN_RANGE                                 | → CKR_WRAPPED_KEY_LEN_RANGE           |
 * | both   | integrity check failed, or a wrapping key that is not 16, 24 or 32 bytes → CKR_GENERAL_ERROR      |
 *
 * The zero padding is the default (`zeroPad: true`), so wrapped bytes match SoftHSM's; unwrapping then returns the
 * padded value, as SoftHSM does. It only shows for key values whose length is not a multiple of 8 (never an AES
 * key). `zeroPad: false` gives the RFCs exactly: RFC 3394 refuses such lengths (CKR_KEY_SIZE_RANGE) and RFC 5649
 * records the true length, which is how the RFC 5649 §6 vectors are produced.
 *
 * SoftHSM refuses any mechanism parameter for either (CKR_ARGUMENTS_BAD): that check belongs to the caller, which
 * decodes the CK_MECHANISM.
 */
import { aesKeyOk } from "./aes.js";
import type { AesEngine } from "./engines.js";
import { fail, type KeyWrap } from "./types.js";

const KEK_BAD = fail("CKR_GENERAL_ERROR", "key-size");

export interface KeyWrapOptions {
  /** Zero-pad the key value to a multiple of 8 before wrapping, as SoftHSM 2.6.1 does (default true). */
  zeroPad?: boolean;
}

const toMultipleOf8 = (n: number) => Math.ceil(n / 8) * 8;

function zeroPadded(value: Uint8Array): Uint8Array {
  const n = toMultipleOf8(value.length);
  if (n === value.length) return value;
  const out = new Uint8Array(n);
  out.set(value);
  return out;
}

function kw(engine: AesEngine, zeroPad: boolean): KeyWrap {
  const wrappedLength = (n: number) => (zeroPad ? toMultipleOf8(n) : n);
  return {
    wrap(kek, keyValue) {
      const n = wrappedLength(keyValue.length);
      if (n < 16 || n % 8 !== 0) return fail("CKR_KEY_SIZE_RANGE", "key-len");
      if (!aesKeyOk(kek)) return KEK_BAD;
      return { ok: true, out: engine.wrap(false, kek, zeroPad ? zeroPadded(keyValue) : keyValue) };
    },
    unwrap(kek, wrapped) {
      if (wrapped.length < 24 || wrapped.length % 8 !== 0) return fail("CKR_WRAPPED_KEY_LEN_RANGE", "wrapped-len");
      if (!aesKeyOk(kek)) return KEK_BAD;
      const key = engine.unwrap(false, kek, wrapped);
      return key ? { ok: true, out: key } : fail("CKR_GENERAL_ERROR", "integrity");
    },
    wrapLength: (keyLen) => wrappedLength(keyLen) + 8,
  };
}

function kwp(engine: AesEngine, zeroPad: boolean): KeyWrap {
  return {
    wrap(kek, keyValue) {
      if (keyValue.length < 1) return fail("CKR_KEY_SIZE_RANGE", "key-len");
      if (!aesKeyOk(kek)) return KEK_BAD;
      return { ok: true, out: engine.wrap(true, kek, zeroPad ? zeroPadded(keyValue) : keyValue) };
    },
    unwrap(kek, wrapped) {
      if (wrapped.length < 16 || wrapped.length % 8 !== 0) return fail("CKR_WRAPPED_KEY_LEN_RANGE", "wrapped-len");
      if (!aesKeyOk(kek)) return KEK_BAD;
      const key = engine.unwrap(true, kek, wrapped);
      return key ? { ok: true, out: key } : fail("CKR_GENERAL_ERROR", "integrity");
    },
    wrapLength: (keyLen) => Math.max(8, toMultipleOf8(keyLen)) + 8,
  };
}

export function aesKeyWrap(engine: AesEngine, options: KeyWrapOptions = {}): KeyWrap {
  return kw(engine, options.zeroPad ?? true);
}

export function aesKeyWrapPad(engine: AesEngine, options: KeyWrapOptions = {}): KeyWrap {
  return kwp(engine, options.zeroPad ?? true);
}
