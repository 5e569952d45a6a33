/**
 * Mechanism information (PKCS#11 v2.40 §5.5.5, §5.5.6): C_GetMechanismList and C_GetMechanismInfo. Fact sheet §18
 * (InfoTests testGetMechanismList / testGetMechanismInfo) and docs/notes/softhsm-keys.md §6.
 *
 * Check order, both functions (confirmed against SoftHSM 2.6.1 with NULL pointers from C, which pkcs11js cannot pass):
 *
 *   | # | C_GetMechanismList(slotID, pMechanismList, pulCount) | C_GetMechanismInfo(slotID, type, pInfo) |
 *   |---|------------------------------------------------------|-----------------------------------------|
 *   | 1 | not initialised → CRYPTOKI_NOT_INITIALIZED           | not initialised → CRYPTOKI_NOT_INITIALIZED |
 *   | 2 | pulCount NULL → ARGUMENTS_BAD                        | pInfo NULL → ARGUMENTS_BAD              |
 *   | 3 | no such slot → SLOT_ID_INVALID                       | no such slot → SLOT_ID_INVALID          |
 *   | 4 | pMechanismList NULL → OK with the count              | not listed → MECHANISM_INVALID          |
 *   | 5 | *pulCount too small → BUFFER_TOO_SMALL with the count | OK                                     |
 *
 * Which mechanisms (profile switch `mechanismList`, a row of PROFILE_DIFFERENCES):
 * - `softhsm` (softhsm2 profile): SoftHSM 2.6.1's 70, in its order (alphabetical by CKM_ name: it walks a
 *   std::map<std::string, …>), the same for every slot, with the sizes and flags it reports through pkcs11js (which
 *   zero-fills CK_MECHANISM_INFO, so SoftHSM's "flags |=" bug on AES_ECB and friends never shows). Code that
 *   enumerates mechanisms sees exactly what it would see on SoftHSM.
 * - `performed` (default profile): only the mechanisms hsmsim runs end to end, in the same order (alphabetical by
 *   name, so the _GENERAL HMACs SoftHSM lacks fall where SoftHSM would put them) and with the same figures. Anything
 *   else is CKR_MECHANISM_INVALID, as an unknown mechanism is on SoftHSM.
 *
 * One table of facts: a mechanism the crypto registry (src/crypto/mechanisms) implements takes its name, sizes and
 * flags from the registry entry (`reg`), so C_GetMechanismInfo, the deciders and the registry cannot disagree; the
 * other rows of SoftHSM's list (keys, DES, CMAC, derivation, RSA, DSA, DH, EC, EdDSA) are written out here. What is
 * performed: every cipher, digest, MAC and key wrap of the registry (C_Encrypt*, C_Decrypt*, C_Digest*, C_Sign*,
 * C_Verify*, C_WrapKey, C_UnwrapKey), and the key generation mechanisms (C_GenerateKey).
  */
import type { CallArgs, MechanismInfo } from "../events/calls.js";
import { MECHANISMS, type MechanismEntry } from "../crypto/mechanisms/index.js";
import type { CkName } from "../pkcs11/constants.js";
import type { Profile } from "../pkcs11/profiles.js";
import { answer, CK, firstFailure, reject, type DecideContext, type Decision } from "./context.js";

type CkmName = Extract<CkName, `CKM_${string}`>;

const F = CK;
const ENC_DEC = F.CKF_ENCRYPT | F.CKF_DECRYPT;
const SIGN_VERIFY = F.CKF_SIGN | F.CKF_VERIFY;
/** The figure SoftHSM reports as the largest key size of the wrap and generic-secret mechanisms. */
const HUGE = 0x80000000;
/** CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS: SoftHSM adds them to the EC key-pair and ECDSA rows. */
const EC_CAPS = F.CKF_EC_F_P | F.CKF_EC_NAMEDCURVE | F.CKF_EC_UNCOMPRESS;

interface Row {
  name: CkmName;
  mechanism: number;
  info: MechanismInfo;
}

const row = (name: CkmName, minKeySize: number, maxKeySize: number, flags: number): Row => ({ name, mechanism: CK[name], info: { minKeySize, maxKeySize, flags } });

/** A row whose facts live in the crypto registry. */
function reg(name: CkmName): Row {
  const e = MECHANISMS.get(CK[name]);
  if (!e) throw new Error(`${name} is not in the mechanism registry`);
  return { name: e.name, mechanism: e.mechanism, info: { ...e.info } };
}

/** SoftHSM 2.6.1's C_GetMechanismList, in its order, with its C_GetMechanismInfo (observed through pkcs11js). */
export const SOFTHSM_MECHANISMS: readonly Row[] = [
  reg("CKM_AES_CBC"),
  row("CKM_AES_CBC_ENCRYPT_DATA", 0, 0, F.CKF_DERIVE),
  reg("CKM_AES_CBC_PAD"),
  row("CKM_AES_CMAC", 16, 32, SIGN_VERIFY),
  reg("CKM_AES_CTR"),
  reg("CKM_AES_ECB"),
  row("CKM_AES_ECB_ENCRYPT_DATA", 0, 0, F.CKF_DERIVE),
  reg("CKM_AES_GCM"),
  row("CKM_AES_KEY_GEN", 16, 32, F.CKF_GENERATE),
  reg("CKM_AES_KEY_WRAP"),
  reg("CKM_AES_KEY_WRAP_PAD"),
  row("CKM_DES2_KEY_GEN", 0, 0, F.CKF_GENERATE),
  row("CKM_DES3_CBC", 0, 0, ENC_DEC | F.CKF_WRAP),
  row("CKM_DES3_CBC_ENCRYPT_DATA", 0, 0, F.CKF_DERIVE),
  row("CKM_DES3_CBC_PAD", 0, 0, ENC_DEC),
  row("CKM_DES3_CMAC", 0, 0, SIGN_VERIFY),
  row("CKM_DES3_ECB", 0, 0, ENC_DEC),
  row("CKM_DES3_ECB_ENCRYPT_DATA", 0, 0, F.CKF_DERIVE),
  row("CKM_DES3_KEY_GEN", 0, 0, F.CKF_GENERATE),
  row("CKM_DES_CBC", 0, 0, ENC_DEC | F.CKF_WRAP),
  row("CKM_DES_CBC_ENCRYPT_DATA", 0, 0, F.CKF_DERIVE),
  row("CKM_DES_CBC_PAD", 0, 0, ENC_DEC | F.CKF_WRAP),
  row("CKM_DES_ECB", 0, 0, ENC_DEC | F.CKF_WRAP),
  row("CKM_DES_ECB_ENCRYPT_DATA", 0, 0, F.CKF_DERIVE),
  row("CKM_DES_KEY_GEN", 0, 0, F.CKF_GENERATE),
  row("CKM_DH_PKCS_DERIVE", 512, 10000, F.CKF_DERIVE),
  row("CKM_DH_PKCS_KEY_PAIR_GEN", 512, 10000, F.CKF_GENERATE_KEY_PAIR),
  row("CKM_DH_PKCS_PARAMETER_GEN", 512, 10000, F.CKF_GENERATE),
  row("CKM_DSA", 512, 1024, SIGN_VERIFY),
  row("CKM_DSA_KEY_PAIR_GEN", 512, 1024, F.CKF_GENERATE_KEY_PAIR),
  row("CKM_DSA_PARAMETER_GEN", 512, 1024, F.CKF_GENERATE),
  row("CKM_DSA_SHA1", 512, 1024, SIGN_VERIFY),
  row("CKM_DSA_SHA224", 512, 1024, SIGN_VERIFY),
  row("CKM_DSA_SHA256", 512, 1024, SIGN_VERIFY),
  row("CKM_DSA_SHA384", 512, 1024, SIGN_VERIFY),
  row("CKM_DSA_SHA512", 512, 1024, SIGN_VERIFY),
  row("CKM_ECDH1_DERIVE", 112, 521, F.CKF_DERIVE),
  row("CKM_ECDSA", 112, 521, SIGN_VERIFY | EC_CAPS),
  row("CKM_EC_EDWARDS_KEY_PAIR_GEN", 256, 456, F.CKF_GENERATE_KEY_PAIR),
  row("CKM_EC_KEY_PAIR_GEN", 112, 521, F.CKF_GENERATE_KEY_PAIR | EC_CAPS),
  row("CKM_EDDSA", 256, 456, SIGN_VERIFY),
  row("CKM_GENERIC_SECRET_KEY_GEN", 1, HUGE, F.CKF_GENERATE),
  reg("CKM_MD5"),
  reg("CKM_MD5_HMAC"),
  row("CKM_MD5_RSA_PKCS", 512, 16384, SIGN_VERIFY),
  row("CKM_RSA_PKCS", 512, 16384, ENC_DEC | SIGN_VERIFY | F.CKF_WRAP | F.CKF_UNWRAP),
  row("CKM_RSA_PKCS_KEY_PAIR_GEN", 512, 16384, F.CKF_GENERATE_KEY_PAIR),
  row("CKM_RSA_PKCS_OAEP", 512, 16384, ENC_DEC | F.CKF_WRAP | F.CKF_UNWRAP),
  row("CKM_RSA_PKCS_PSS", 512, 16384, SIGN_VERIFY),
  row("CKM_RSA_X_509", 512, 16384, ENC_DEC | SIGN_VERIFY),
  row("CKM_SHA1_RSA_PKCS", 512, 16384, SIGN_VERIFY),
  row("CKM_SHA1_RSA_PKCS_PSS", 512, 16384, SIGN_VERIFY),
  reg("CKM_SHA224"),
  reg("CKM_SHA224_HMAC"),
  row("CKM_SHA224_RSA_PKCS", 512, 16384, SIGN_VERIFY),
  row("CKM_SHA224_RSA_PKCS_PSS", 512, 16384, SIGN_VERIFY),
  reg("CKM_SHA256"),
  reg("CKM_SHA256_HMAC"),
  row("CKM_SHA256_RSA_PKCS", 512, 16384, SIGN_VERIFY),
  row("CKM_SHA256_RSA_PKCS_PSS", 512, 16384, SIGN_VERIFY),
  reg("CKM_SHA384"),
  reg("CKM_SHA384_HMAC"),
  row("CKM_SHA384_RSA_PKCS", 512, 16384, SIGN_VERIFY),
  row("CKM_SHA384_RSA_PKCS_PSS", 512, 16384, SIGN_VERIFY),
  reg("CKM_SHA512"),
  reg("CKM_SHA512_HMAC"),
  row("CKM_SHA512_RSA_PKCS", 512, 16384, SIGN_VERIFY),
  row("CKM_SHA512_RSA_PKCS_PSS", 512, 16384, SIGN_VERIFY),
  reg("CKM_SHA_1"),
  reg("CKM_SHA_1_HMAC"),
];

const byName = (a: Row, b: Row) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The key generation mechanisms C_GenerateKey runs (SoftHSM's figures). */
const KEY_GEN = new Set<number>([CK.CKM_AES_KEY_GEN, CK.CKM_GENERIC_SECRET_KEY_GEN]);
const RUN_FAMILIES = new Set<MechanismEntry["family"]>(["cipher", "digest", "mac", "wrap"]);

/**
 * The RSA mechanisms hsmsim runs (functions/rsa.ts), with SoftHSM's sizes and the flags of what runs: key-pair
 * generation, CKM_RSA_PKCS encrypt / decrypt / sign / verify (not wrap / unwrap), the CKM_SHA*_RSA_PKCS signatures.
 */
const RSA_PERFORMED: readonly Row[] = [
  row("CKM_RSA_PKCS_KEY_PAIR_GEN", 512, 16384, F.CKF_GENERATE_KEY_PAIR),
  row("CKM_RSA_PKCS", 512, 16384, ENC_DEC | SIGN_VERIFY),
  row("CKM_SHA1_RSA_PKCS", 512, 16384, SIGN_VERIFY),
  row("CKM_SHA224_RSA_PKCS", 512, 16384, SIGN_VERIFY),
  row("CKM_SHA256_RSA_PKCS", 512, 16384, SIGN_VERIFY),
  row("CKM_SHA384_RSA_PKCS", 512, 16384, SIGN_VERIFY),
  row("CKM_SHA512_RSA_PKCS", 512, 16384, SIGN_VERIFY),
];

/** What hsmsim runs end to end (see the module comment), in SoftHSM's order. */
export const PERFORMED_MECHANISMS: readonly Row[] = [
  ...SOFTHSM_MECHANISMS.filter((m) => KEY_GEN.has(m.mechanism)),
  ...RSA_PERFORMED,
  ...[...MECHANISMS.values()].filter((e) => RUN_FAMILIES.has(e.family)).map((e) => reg(e.name)),
].sort(byName);

const BY_PROFILE = {
  softhsm: { list: SOFTHSM_MECHANISMS.map((m) => m.mechanism), info: new Map(SOFTHSM_MECHANISMS.map((m) => [m.mechanism, m.info])) },
  performed: { list: PERFORMED_MECHANISMS.map((m) => m.mechanism), info: new Map(PERFORMED_MECHANISMS.map((m) => [m.mechanism, m.info])) },
} as const;

/** Whether the profile lists a mechanism (SoftHSM's isMechanismPermitted, first half: the configured list). */
export function listedMechanism(profile: Profile, mechanism: number): boolean {
  return BY_PROFILE[profile.mechanismList].info.has(mechanism);
}

function slotExists(ctx: DecideContext, slotID: number): boolean {
  return !!ctx.read.apps.get(ctx.appId)?.slots.some((s) => s.slotID === slotID);
}

/** C_GetMechanismList — §5.5.5. The same list for every slot, the uninitialised one included. */
export function C_GetMechanismList(ctx: DecideContext, args: CallArgs["C_GetMechanismList"]): Decision {
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.pulCount === null, "CKR_ARGUMENTS_BAD"],
    [() => !slotExists(ctx, args.slotID), "CKR_SLOT_ID_INVALID"],
  ]);
  if (rv) return reject(rv);
  const list = BY_PROFILE[ctx.state.profile.mechanismList].list;
  if (args.pMechanismList === null) return answer("CKR_OK", { mechanisms: [], count: list.length });
  if (args.pMechanismList < list.length) return answer("CKR_BUFFER_TOO_SMALL", { mechanisms: [], count: list.length });
  return answer("CKR_OK", { mechanisms: [...list], count: list.length });
}

/** C_GetMechanismInfo — §5.5.6. */
export function C_GetMechanismInfo(ctx: DecideContext, args: CallArgs["C_GetMechanismInfo"]): Decision {
  const info = BY_PROFILE[ctx.state.profile.mechanismList].info.get(args.type);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.pInfo === null, "CKR_ARGUMENTS_BAD"],
    [() => !slotExists(ctx, args.slotID), "CKR_SLOT_ID_INVALID"],
    [!info, "CKR_MECHANISM_INVALID"],
  ]);
  if (rv) return reject(rv);
  return answer("CKR_OK", { ...info! });
}
