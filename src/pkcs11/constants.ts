/**
 * The constants hsmsim uses, all from one place. `CK` (constants-table.ts) is the set pkcs11js 2.1.7 exports; `CK_EXTRA`
 * adds the OASIS pkcs11t.h names that pkcs11js does not export but the spec and the fact sheet need (session states,
 * special values, CKR_ACTION_PROHIBITED). Name maps per family are derived here, never written by hand.
 */
import * as PKCS11JS from "./constants-table.js";

export { PKCS11JS as PKCS11JS_CONSTANTS };

export const CK_EXTRA = {
  CK_INVALID_HANDLE: 0,
  CK_EFFECTIVELY_INFINITE: 0,
  /** ~0UL on a 64-bit platform. A JS number cannot hold it exactly; pkcs11js reads it as 2^64 (a double). */
  CK_UNAVAILABLE_INFORMATION: 18446744073709551615,
  CKS_RO_PUBLIC_SESSION: 0,
  CKS_RO_USER_FUNCTIONS: 1,
  CKS_RW_PUBLIC_SESSION: 2,
  CKS_RW_USER_FUNCTIONS: 3,
  CKS_RW_SO_FUNCTIONS: 4,
  CKR_ACTION_PROHIBITED: 0x1b,
  CKR_OPERATION_CANCEL_FAILED: 0x202,
  /** PKCS#11 v3.0 names SoftHSM 2.6.1 lists in C_GetMechanismList (pkcs11js 2.1.7 has no name for them). */
  CKM_EC_EDWARDS_KEY_PAIR_GEN: 0x1055,
  CKM_EDDSA: 0x1057,
} as const;

export const CK = { ...PKCS11JS, ...CK_EXTRA } as const;
export type CkName = keyof typeof CK;

/** CK_RV values by name (CKR_*), and the reverse map used for messages and logs. */
export type CkrName = Extract<CkName, `CKR_${string}`>;

function family<P extends string>(prefix: P): ReadonlyMap<number, string> {
  const m = new Map<number, string>();
  for (const [name, value] of Object.entries(CK)) {
    // First name wins for aliases (CKK_ECDSA/CKK_EC): keep the one the header lists first.
    if (name.startsWith(prefix) && !m.has(value)) m.set(value, name);
  }
  return m;
}

export const CKR_NAMES = family("CKR_");
export const CKS_NAMES = family("CKS_");

export function rvName(rv: number): string {
  return CKR_NAMES.get(rv) ?? `CKR_0x${rv.toString(16)}`;
}

/** The names pkcs11js's native layer knows; it reports any other rv as CKR_VENDOR_DEFINED (src/common.cpp). */
const PKCS11JS_RV_NAMES = new Map<number, string>(
  Object.entries(PKCS11JS)
    .filter(([n]) => n.startsWith("CKR_") && n !== "CKR_VENDOR_DEFINED")
    .map(([n, v]) => [v, n]),
);
export function pkcs11jsRvName(rv: number): string {
  return PKCS11JS_RV_NAMES.get(rv) ?? "CKR_VENDOR_DEFINED";
}
