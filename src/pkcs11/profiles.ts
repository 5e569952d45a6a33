/**
 * Behaviour profiles. `default` follows the documented behaviour (shared/reference/session-management.md) where it asks
 * for more than SoftHSM does; `softhsm2` reproduces SoftHSM 2.6.1 bug for bug (softhsm-semantics.md). Every difference
 * between the two is one row of PROFILE_DIFFERENCES, and the code reads only these switches: no `profile === ...` test
 * appears anywhere else.
 */

export type ProfileName = "default" | "softhsm2";

export interface Profile {
  name: ProfileName;
  /** Consecutive wrong PINs before a role is locked (CKR_PIN_LOCKED). 0 = never (SoftHSM). */
  pinRetries: number;
  /** Sessions per token before CKR_SESSION_COUNT (all applications). 0 = unlimited (SoftHSM). */
  maxSessions: number;
  maxRwSessions: number;
  /** C_Logout with nobody logged in answers CKR_USER_NOT_LOGGED_IN (PKCS#11 §5.6) rather than CKR_OK. */
  logoutRequiresLogin: boolean;
  /** C_GetTokenInfo reports live session counts rather than CK_UNAVAILABLE_INFORMATION. */
  liveSessionCounts: boolean;
  /**
   * Slot numbering. `fixed`: slots 0..n-1, one token each, stable across C_Finalize/C_Initialize.
   * `softhsm`: IDs derived from token serials, one uninitialised slot listed last, numbered by token count.
   */
  slotNumbering: "fixed" | "softhsm";
  /** One handle counter for sessions and objects (SoftHSM) or one each. */
  sharedHandleCounter: boolean;
  /** C_InitToken refuses while any application has a session on the token, not only the caller. */
  initTokenSeesAllApplications: boolean;
  /**
   * Object writes are all-or-nothing. SoftHSM's are not: a C_CreateObject that fails while applying its template
   * leaves the half-built object behind, and C_SetAttributeValue on a session object keeps the entries it applied
   * before the failing one.
   */
  atomicObjectWrites: boolean;
  /**
   * Each application keeps SoftHSM's per-process view of a token (docs/notes/softhsm-multiprocess.md): PINs copied at
   * C_Initialize and checked against that copy; the token's object list refreshed only at a "look", with the
   * generation-counter bug that hides another application's new objects; C_InitPIN writing back stale settings.
   */
  processCaches: boolean;
  /**
   * Which mechanisms C_GetMechanismList lists and C_GetMechanismInfo describes. `performed`: only those hsmsim can
   * run today (functions/mechanisms.ts). `softhsm`: SoftHSM 2.6.1's 70, whether hsmsim runs them yet or not.
   */
  mechanismList: "performed" | "softhsm";
  /**
   * Error codes of the cryptographic operations where SoftHSM's differ from the spec's (functions/crypto-op.ts
   * failureRv): `spec` answers PKCS#11 v2.40's code, `softhsm` SoftHSM 2.6.1's. Also covers C_Encrypt / C_Decrypt after
   * an update step (spec: not allowed; SoftHSM runs it on, resizing the output) and a CBC_PAD C_DecryptFinal with no
   * input (spec: CKR_ENCRYPTED_DATA_LEN_RANGE; SoftHSM: a size of 2^64-1 that no buffer meets).
   */
  cryptoErrors: "spec" | "softhsm";
  /**
   * C_GetOperationState / C_SetOperationState save and restore digest, HMAC and AES ECB/CBC/CBC_PAD/CTR operations
   * (functions/operation-state.ts); off, both answer CKR_FUNCTION_NOT_SUPPORTED as SoftHSM does.
   */
  saveOperations: boolean;
  /**
   * SoftHSM stores a private object's dates in clear but decrypts them when read or compared (docs/notes/softhsm-keys.md
   * §7.1): an 8-byte CKA_START_DATE / CKA_END_DATE of a private object is CKR_GENERAL_ERROR to C_GetAttributeValue, and
   * C_FindObjectsInit comparing it fails leaving a broken find operation. Off, dates read and match like any value.
   */
  unreadablePrivateDates: boolean;
}

export interface ProfileDifference {
  /** The profile switches this row is about (one behaviour may need several). */
  switches: (keyof Omit<Profile, "name">)[];
  default: string;
  softhsm2: string;
  why: string;
}

/** The table the differential suite reads to know where the default profile may differ from SoftHSM. */
export const PROFILE_DIFFERENCES: readonly ProfileDifference[] = [
  {
    switches: ["pinRetries"],
    default: "locks after N consecutive failures: CKR_PIN_LOCKED, COUNT_LOW / FINAL_TRY / LOCKED flags",
    softhsm2: "unlimited retries; only *_PIN_COUNT_LOW is ever set",
    why: "session-management.md lists CKR_PIN_LOCKED for C_Login; SoftHSM never returns it (fact sheet §15, §19)",
  },
  {
    switches: ["maxSessions", "maxRwSessions"],
    default: "configurable limit per token, CKR_SESSION_COUNT beyond it; ulMax*SessionCount report it",
    softhsm2: "no limit; ulMax*SessionCount = CK_EFFECTIVELY_INFINITE",
    why: "session-management.md lists CKR_SESSION_COUNT for C_OpenSession; SoftHSM never returns it (fact sheet §9)",
  },
  {
    switches: ["logoutRequiresLogin"],
    default: "CKR_USER_NOT_LOGGED_IN when nobody is logged in",
    softhsm2: "always CKR_OK",
    why: "session-management.md lists CKR_USER_NOT_LOGGED_IN for C_Logout; SoftHSM returns OK (fact sheet §15)",
  },
  {
    switches: ["liveSessionCounts"],
    default: "ulSessionCount / ulRwSessionCount are the open sessions on the token (all applications)",
    softhsm2: "CK_UNAVAILABLE_INFORMATION, even with 2000 sessions open",
    why: "a session limit is only testable if the count is visible; SoftHSM does not count (fact sheet §6)",
  },
  {
    switches: ["slotNumbering"],
    default: "fixed slots 0..n-1, stable across C_Finalize/C_Initialize",
    softhsm2: "serial-derived IDs, one uninitialised slot last, new one only after a size query",
    why: "SoftHSM's numbering changes across re-initialisation (fact sheet §5, §20.1-2); applications expect stable IDs",
  },
  {
    switches: ["sharedHandleCounter"],
    default: "session and object handles counted separately, each from 1",
    softhsm2: "one counter for both, from 1, never reused",
    why: "SoftHSM's handle manager (fact sheet §8); PKCS#11 lets them be independent",
  },
  {
    switches: ["initTokenSeesAllApplications"],
    default: "CKR_SESSION_EXISTS if any application has a session on the token",
    softhsm2: "only the caller's own sessions count",
    why: "session-management.md: C_InitToken requires that no sessions are open; SoftHSM cannot see other processes (§7)",
  },
  {
    switches: ["atomicObjectWrites"],
    default: "a rejected C_CreateObject / C_GenerateKey / C_UnwrapKey / C_SetAttributeValue changes nothing",
    softhsm2:
      "a create, generate or unwrap that fails while applying its template leaves an orphan object without a handle (session: the attributes applied so far, private until a CKA_PRIVATE=false entry is applied; token: defaults, TOKEN=false, unless the failure is TEMPLATE_INCOMPLETE, which keeps what was applied); a failed set on a session object keeps the entries before the failing one",
    why: "non-negotiable 4 (state is never corrupted by a rejected call); SoftHSM's session-object transactions are stubs and its failed creates are never cleaned up (docs/notes/softhsm-data-objects.md §1, §3; softhsm-keys.md §3)",
  },
  {
    switches: ["processCaches"],
    default: "applications share one live token: a PIN or object change is seen by every application at once",
    softhsm2: "per-process copies: PINs as of C_Initialize, objects as of the last look (another process's creates can stay hidden), C_InitPIN restores stale settings",
    why: "what SoftHSM 2.6.1 does to processes sharing a token directory (docs/notes/softhsm-multiprocess.md); an HSM shares one token",
  },
  {
    switches: ["mechanismList"],
    default: "C_GetMechanismList / C_GetMechanismInfo cover only the mechanisms hsmsim performs (AES ECB/CBC/CBC_PAD/CTR/GCM, the six digests, their HMACs and the HMAC _GENERAL variants, key generation); any other is CKR_MECHANISM_INVALID, also at C_EncryptInit / C_SignInit",
    softhsm2: "SoftHSM 2.6.1's 70 mechanisms with its sizes and flags, including those hsmsim cannot run yet; no *_HMAC_GENERAL (C_SignInit answers CKR_MECHANISM_INVALID)",
    why: "code that enumerates mechanisms must see SoftHSM's list under softhsm2; the default profile does not advertise what it cannot do, and offers the _GENERAL HMACs PKCS#11 defines (docs/notes/softhsm-keys.md §6, §9.3)",
  },
  {
    switches: ["cryptoErrors"],
    default: "PKCS#11's codes: bad CBC pad or GCM tag → CKR_ENCRYPTED_DATA_INVALID; AES key of a wrong length → CKR_KEY_SIZE_RANGE; CBC IV of a wrong length → CKR_MECHANISM_PARAM_INVALID; GCM input shorter than the tag → CKR_ENCRYPTED_DATA_LEN_RANGE; C_Encrypt / C_Decrypt after an update → CKR_OPERATION_NOT_INITIALIZED (ends it); CBC_PAD C_DecryptFinal with no input → CKR_ENCRYPTED_DATA_LEN_RANGE; an empty CBC_PAD C_DecryptUpdate before any input answers size 0",
    softhsm2: "CKR_GENERAL_ERROR, CKR_MECHANISM_INVALID, CKR_MECHANISM_INVALID, CKR_GENERAL_ERROR; C_Encrypt / C_Decrypt after an update run on and cut or zero-fill the output to the size computed from their own input; sizes of 2^64-1 and 2^64-16 (CKR_BUFFER_TOO_SMALL for any buffer)",
    why: "PKCS#11 v2.40 §5.8-5.9 name these codes and forbid single-part calls after an update; SoftHSM 2.6.1 reports what its OpenSSL wrapper returns (src/lib/SoftHSM.cpp SymEncrypt, SymDecrypt, SymDecryptFinal)",
  },
  {
    switches: ["saveOperations"],
    default: "C_GetOperationState saves any digest, HMAC and AES ECB/CBC/CBC_PAD/CTR operation as a sealed, authenticated blob; C_SetOperationState restores it in any session, also after a restart (CKR_SAVED_STATE_INVALID, CKR_STATE_UNSAVEABLE, CKR_KEY_NEEDED / NOT_NEEDED / CHANGED as §5.6 says)",
    softhsm2: "CKR_FUNCTION_NOT_SUPPORTED for both, whatever the arguments",
    why: "PKCS#11 v2.40 §5.6.5-5.6.6; SoftHSM 2.6.1 does not implement them (fact sheet §14); issue 3 asks for saveable operations beyond SoftHSM",
  },
  {
    switches: ["unreadablePrivateDates"],
    default: "a private key's or certificate's CKA_START_DATE / CKA_END_DATE reads back and matches in C_FindObjectsInit",
    softhsm2: "an 8-byte date on a private object is CKR_GENERAL_ERROR to C_GetAttributeValue (even for the user) and to C_FindObjectsInit, which leaves its operation active with C_FindObjects failing",
    why: "SoftHSM 2.6.1 stores dates in clear and decrypts them on reading (docs/notes/softhsm-keys.md §7.1); PKCS#11 has dates readable",
  },
];

export const PROFILES: Record<ProfileName, Profile> = {
  default: {
    name: "default",
    pinRetries: 10,
    maxSessions: 65536,
    maxRwSessions: 65536,
    logoutRequiresLogin: true,
    liveSessionCounts: true,
    slotNumbering: "fixed",
    sharedHandleCounter: false,
    initTokenSeesAllApplications: true,
    atomicObjectWrites: true,
    processCaches: false,
    mechanismList: "performed",
    cryptoErrors: "spec",
    saveOperations: true,
    unreadablePrivateDates: false,
  },
  softhsm2: {
    name: "softhsm2",
    pinRetries: 0,
    maxSessions: 0,
    maxRwSessions: 0,
    logoutRequiresLogin: false,
    liveSessionCounts: false,
    slotNumbering: "softhsm",
    sharedHandleCounter: true,
    initTokenSeesAllApplications: false,
    atomicObjectWrites: false,
    processCaches: true,
    mechanismList: "softhsm",
    cryptoErrors: "softhsm",
    saveOperations: false,
    unreadablePrivateDates: true,
  },
};

export type ProfileSwitches = Omit<Profile, "name">;

/** Whether a string (a CLI flag, a URL query) names a profile. */
export function isProfileName(x: unknown): x is ProfileName {
  return typeof x === "string" && Object.prototype.hasOwnProperty.call(PROFILES, x);
}

export interface ProfileOptions {
  profile?: ProfileName;
  pinRetries?: number;
  maxSessions?: number;
  maxRwSessions?: number;
  /** Individual switches over the profile's (for tests that attribute behaviour to rows of PROFILE_DIFFERENCES). */
  switches?: Partial<ProfileSwitches>;
}

export function resolveProfile(opts: ProfileOptions = {}): Profile {
  const name = opts.profile ?? "default";
  const base = PROFILES[name];
  if (!base) throw new RangeError(`"profile" expected "default" or "softhsm2", got ${JSON.stringify(name)}`);
  const p: Profile = { ...base };
  for (const k of ["pinRetries", "maxSessions", "maxRwSessions"] as const) {
    const v = opts[k];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`"${k}" expected a non-negative integer, got ${v}`);
    p[k] = v;
  }
  if (opts.maxSessions !== undefined && opts.maxRwSessions === undefined) p.maxRwSessions = opts.maxSessions;
  for (const [k, v] of Object.entries(opts.switches ?? {})) {
    if (!(k in base) || k === "name") throw new RangeError(`"switches" has no switch "${k}"`);
    (p as unknown as Record<string, unknown>)[k] = v;
  }
  return p;
}
