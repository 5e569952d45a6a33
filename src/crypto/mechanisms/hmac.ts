/**
 * HMAC (RFC 2104; PKCS#11 v2.40 Current Mechanisms §2.16–2.20, §2.25): CKM_MD5_HMAC, CKM_SHA_1_HMAC,
 * CKM_SHA224_HMAC, CKM_SHA256_HMAC, CKM_SHA384_HMAC, CKM_SHA512_HMAC, and their _GENERAL variants, whose
 * CK_MAC_GENERAL_PARAMS gives the MAC length (1 to the hash size; the MAC is the leading bytes of the full HMAC).
 *
 * HMAC(K, m) = H((K0 ⊕ opad) || H((K0 ⊕ ipad) || m)). The state is the inner digest context as plain data (digest.ts)
 * and the MAC length; the outer context is derived from the key again at the final step, so a state holds no key
 * equivalent: whoever holds a saved state still needs the key to finish it (the caller passes the key to `init` and
 * to the final steps, as it passes hAuthenticationKey to C_SetOperationState). Single-part C_Sign / C_Verify run on
 * the HashEngine (node's createHmac by default).
 *
 * SoftHSM 2.6.1, observed: a key shorter than the hash output → CKR_KEY_SIZE_RANGE (C_GetMechanismInfo says
 * 16/20/28/32/48/64 to 512 bytes, but longer keys are accepted); a parameter given to a plain HMAC mechanism is
 * ignored; C_Verify with a MAC of the wrong length → CKR_SIGNATURE_LEN_RANGE, a wrong MAC → CKR_SIGNATURE_INVALID.
 * SoftHSM does not implement the _GENERAL variants (CKR_MECHANISM_INVALID): the registry marks them hsmsim-only.
 */
import { equalBytes, hasKeys, isRecord, isUint } from "./bytes.js";
import { hashContext, type DigestState } from "./digest.js";
import type { HashEngine, HashName } from "./engines.js";
import { fail, type MacStream, type Outcome } from "./types.js";

/** CK_MAC_GENERAL_PARAMS for the _GENERAL variants; the plain mechanisms ignore their parameter. */
export interface HmacParams {
  macLength: number;
}

export interface HmacState {
  inner: DigestState;
  macLength: number;
}

const OK: Outcome<object> = { ok: true };

export interface HmacOptions {
  /** The _GENERAL variant: the MAC length comes from the parameter. */
  general: boolean;
  /**
   * Shortest key accepted (CKR_KEY_SIZE_RANGE below it). Defaults to the hash output size, SoftHSM's rule; RFC 2104
   * allows any length, and the known-answer tests (RFC 4231 test case 2's key is "Jefe") pass 0.
   */
  minKeyLength?: number;
}

export function hmacMechanism(
  engine: HashEngine,
  name: HashName,
  options: HmacOptions,
): MacStream<HmacParams | undefined, HmacState> {
  const h = hashContext(name);
  const { general } = options;
  const minKeyLength = options.minKeyLength ?? h.size;

  /** K0: the key hashed if longer than a block, then zero-padded to a block. */
  function blockKey(key: Uint8Array): Uint8Array {
    const k0 = new Uint8Array(h.blockLen);
    k0.set(key.length > h.blockLen ? h.final(h.init(), key) : key);
    return k0;
  }
  function padded(key: Uint8Array, pad: number): Uint8Array {
    const k = blockKey(key);
    for (let i = 0; i < k.length; i++) k[i]! ^= pad;
    return k;
  }
  function lengthOf(params: HmacParams | undefined): number | undefined {
    if (!general) return h.size;
    const n = params?.macLength;
    return Number.isInteger(n) && n! >= 1 && n! <= h.size ? n : undefined;
  }
  function check(key: Uint8Array, params: HmacParams | undefined): Outcome<{ macLength: number }> {
    const macLength = lengthOf(params);
    if (macLength === undefined) return fail("CKR_MECHANISM_PARAM_INVALID", "param");
    if (key.length < minKeyLength) return fail("CKR_KEY_SIZE_RANGE", "key-size");
    return { ok: true, macLength };
  }
  function mac(key: Uint8Array, state: HmacState): Uint8Array {
    const inner = h.final(state.inner);
    return h.final(h.init(), padded(key, 0x5c), inner).subarray(0, state.macLength);
  }
  function verify(expected: Uint8Array, given: Uint8Array): Outcome<object> {
    if (given.length !== expected.length) return fail("CKR_SIGNATURE_LEN_RANGE", "signature-len");
    return equalBytes(expected, given) ? OK : fail("CKR_SIGNATURE_INVALID", "signature");
  }

  const stream: MacStream<HmacParams | undefined, HmacState> = {
    init(key, params) {
      const c = check(key, params);
      if (!c.ok) return c;
      return { ok: true, state: { inner: h.update(h.init(), padded(key, 0x36)), macLength: c.macLength } };
    },
    check(key, params) {
      const c = check(key, params);
      return c.ok ? undefined : c;
    },
    update: (state, data) => (data.length === 0 ? state : { inner: h.update(state.inner, data), macLength: state.macLength }),
    final: mac,
    verifyFinal: (key, state, given) => verify(mac(key, state), given),
    once(key, params, data) {
      const c = check(key, params);
      if (!c.ok) return c;
      return { ok: true, out: engine.hmac(name, key, data).subarray(0, c.macLength) };
    },
    verifyOnce(key, params, data, given) {
      const r = stream.once(key, params, data);
      return r.ok ? verify(r.out, given) : r;
    },
    macLength: (params) => lengthOf(params) ?? h.size,
    parseState(x) {
      if (!isRecord(x) || !hasKeys(x, ["inner", "macLength"])) return undefined;
      const inner = h.parseState(x.inner);
      if (!inner || !isUint(x.macLength, h.size) || x.macLength < 1) return undefined;
      if (!general && x.macLength !== h.size) return undefined;
      return { inner, macLength: x.macLength };
    },
  };
  return stream;
}
