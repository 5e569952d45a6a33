/**
 * The mechanism registry: every mechanism hsmsim implements, by CKM_* value, with what C_GetMechanismInfo reports
 * for it (the values SoftHSM 2.6.1 reports, observed through pkcs11js), which parameter it takes, whether
 * C_GetOperationState may save it, and its implementation (pure functions over plain-data states: types.ts).
 *
 * | mechanism                     | family | parameter         | default path                                | saveable |
 * |-------------------------------|--------|-------------------|---------------------------------------------|----------|
 * | CKM_AES_ECB, _CBC, _CBC_PAD   | cipher | none, IV, IV      | node (OpenSSL); padding, carry in the state | yes      |
 * | CKM_AES_CTR                   | cipher | CK_AES_CTR_PARAMS | node CTR; counter and offset in the state   | yes      |
 * | CKM_AES_GCM                   | cipher | CK_GCM_PARAMS     | node GCM; multi-part: node CTR per update,  | no       |
 * |                               |        |                   | input kept, node GCM for the tag at final   |          |
 * | CKM_AES_KEY_WRAP, _WRAP_PAD   | wrap   | none              | node id-aes*-wrap, id-aes*-wrap-pad         | n/a      |
 * | CKM_MD5, CKM_SHA_1, CKM_SHA*  | digest | none              | single-part node; multi-part noble contexts | yes      |
 * | CKM_*_HMAC, CKM_*_HMAC_GENERAL| mac    | none, MAC length  | single-part node; multi-part noble contexts | yes      |
 *
 * `createMechanisms(NOBLE_ENGINES)` builds the same registry on @noble only: the tests run every mechanism on both
 * and compare, and the benchmark measures both.
 */
import { CK, type CkName } from "../../pkcs11/constants.js";
import { aesCbc, aesCbcPad, aesCtr, aesEcb } from "./aes.js";
import { aesGcm } from "./aes-gcm.js";
import { aesKeyWrap, aesKeyWrapPad } from "./aes-wrap.js";
import { digest, type DigestState } from "./digest.js";
import { NODE_ENGINES, type Engines, type HashName } from "./engines.js";
import { hmacMechanism, type HmacParams, type HmacState } from "./hmac.js";
import type { CipherPair, DigestStream, KeyWrap, MacStream } from "./types.js";

export type CkmName = Extract<CkName, `CKM_${string}`>;

/** CK_MECHANISM_INFO. Key sizes in bytes for AES and HMAC keys, as SoftHSM reports them. */
export interface MechanismInfo {
  minKeySize: number;
  maxKeySize: number;
  flags: number;
}

/** What the mechanism's pParameter must hold, for the caller that decodes a CK_MECHANISM. */
export type ParamKind = "none" | "iv" | "ctr" | "gcm" | "mac-length";

interface Common {
  mechanism: number;
  name: CkmName;
  info: MechanismInfo;
  param: ParamKind;
  /** C_GetOperationState may save an active operation of this mechanism (otherwise CKR_STATE_UNSAVEABLE). */
  saveable: boolean;
  /** SoftHSM 2.6.1 implements it too (the `softhsm2` profile lists only these). */
  softhsm: boolean;
}

export type MechanismEntry =
  | (Common & { family: "cipher"; cipher: CipherPair<unknown, unknown, unknown> })
  | (Common & { family: "digest"; digest: DigestStream<DigestState> })
  | (Common & { family: "mac"; mac: MacStream<HmacParams | undefined, HmacState> })
  | (Common & { family: "wrap"; wrap: KeyWrap });

const F = CK;
const AES_INFO = (flags: number): MechanismInfo => ({ minKeySize: 16, maxKeySize: 32, flags });
/** SoftHSM reports 0x80000000 as the largest key size for the wrap and generic-secret mechanisms. */
const WRAP_MAX = 0x80000000;

const HASHES: readonly { hash: HashName; digest: CkmName; hmac: CkmName; general: CkmName; size: number }[] = [
  { hash: "md5", digest: "CKM_MD5", hmac: "CKM_MD5_HMAC", general: "CKM_MD5_HMAC_GENERAL", size: 16 },
  { hash: "sha1", digest: "CKM_SHA_1", hmac: "CKM_SHA_1_HMAC", general: "CKM_SHA_1_HMAC_GENERAL", size: 20 },
  { hash: "sha224", digest: "CKM_SHA224", hmac: "CKM_SHA224_HMAC", general: "CKM_SHA224_HMAC_GENERAL", size: 28 },
  { hash: "sha256", digest: "CKM_SHA256", hmac: "CKM_SHA256_HMAC", general: "CKM_SHA256_HMAC_GENERAL", size: 32 },
  { hash: "sha384", digest: "CKM_SHA384", hmac: "CKM_SHA384_HMAC", general: "CKM_SHA384_HMAC_GENERAL", size: 48 },
  { hash: "sha512", digest: "CKM_SHA512", hmac: "CKM_SHA512_HMAC", general: "CKM_SHA512_HMAC_GENERAL", size: 64 },
];

export function createMechanisms(engines: Engines = NODE_ENGINES): ReadonlyMap<number, MechanismEntry> {
  const { aes, hash } = engines;
  const entries: MechanismEntry[] = [];
  const common = (name: CkmName, info: MechanismInfo, param: ParamKind, saveable: boolean, softhsm = true): Common => ({
    mechanism: CK[name],
    name,
    info,
    param,
    saveable,
    softhsm,
  });
  // Erased to unknown: the caller picks the parameter decoder by `param` and keeps the state it was given.
  const cipher = <P, SE, SD>(c: Common, pair: CipherPair<P, SE, SD>) =>
    entries.push({ ...c, family: "cipher", cipher: pair as CipherPair<unknown, unknown, unknown> });

  const ENC_DEC = F.CKF_ENCRYPT | F.CKF_DECRYPT;
  cipher(common("CKM_AES_ECB", AES_INFO(ENC_DEC), "none", true), aesEcb(aes));
  // SoftHSM lists CKF_WRAP (not CKF_UNWRAP) for CKM_AES_CBC.
  cipher(common("CKM_AES_CBC", AES_INFO(ENC_DEC | F.CKF_WRAP), "iv", true), aesCbc(aes));
  cipher(common("CKM_AES_CBC_PAD", AES_INFO(ENC_DEC), "iv", true), aesCbcPad(aes));
  cipher(common("CKM_AES_CTR", AES_INFO(ENC_DEC), "ctr", true), aesCtr(aes));
  cipher(common("CKM_AES_GCM", AES_INFO(ENC_DEC), "gcm", false), aesGcm(aes));

  const WRAP_UNWRAP = F.CKF_WRAP | F.CKF_UNWRAP;
  const wrapInfo = (min: number): MechanismInfo => ({ minKeySize: min, maxKeySize: WRAP_MAX, flags: WRAP_UNWRAP });
  entries.push({ ...common("CKM_AES_KEY_WRAP", wrapInfo(16), "none", false), family: "wrap", wrap: aesKeyWrap(aes) });
  entries.push({ ...common("CKM_AES_KEY_WRAP_PAD", wrapInfo(1), "none", false), family: "wrap", wrap: aesKeyWrapPad(aes) });

  const DIGEST_INFO: MechanismInfo = { minKeySize: 0, maxKeySize: 0, flags: F.CKF_DIGEST };
  for (const h of HASHES) {
    entries.push({ ...common(h.digest, DIGEST_INFO, "none", true), family: "digest", digest: digest(hash, h.hash) });
    const macInfo: MechanismInfo = { minKeySize: h.size, maxKeySize: 512, flags: F.CKF_SIGN | F.CKF_VERIFY };
    entries.push({ ...common(h.hmac, macInfo, "none", true), family: "mac", mac: hmacMechanism(hash, h.hash, { general: false }) });
    entries.push({
      ...common(h.general, macInfo, "mac-length", true, false),
      family: "mac",
      mac: hmacMechanism(hash, h.hash, { general: true }),
    });
  }
  return new Map(entries.map((e) => [e.mechanism, e]));
}

/** The registry on the default engines (node's OpenSSL for bulk AES and single-part hashing). */
export const MECHANISMS: ReadonlyMap<number, MechanismEntry> = createMechanisms();

export function mechanismEntry(mechanism: number): MechanismEntry | undefined {
  return MECHANISMS.get(mechanism);
}

export * from "./types.js";
export { aesEcb, aesCbc, aesCbcPad, aesCtr, AES_KEY_LENGTHS } from "./aes.js";
export type { EcbParams, CbcParams, CtrParams, EcbState, CbcState, CtrState } from "./aes.js";
export { aesGcm } from "./aes-gcm.js";
export type { GcmParams, GcmState } from "./aes-gcm.js";
export { aesKeyWrap, aesKeyWrapPad } from "./aes-wrap.js";
export type { KeyWrapOptions } from "./aes-wrap.js";
export { digest, hashContext } from "./digest.js";
export type { DigestState, HashContext } from "./digest.js";
export { hmacMechanism } from "./hmac.js";
export type { HmacParams, HmacState, HmacOptions } from "./hmac.js";
export { NODE_ENGINES, NOBLE_ENGINES, nodeAes, nobleAes, nodeHash, nobleHash } from "./engines.js";
export type { AesEngine, HashEngine, HashName, Engines, EngineName } from "./engines.js";
export { systemRandom, seededRandom } from "./random.js";
export type { RandomSource } from "./random.js";
