/**
 * Calls as data: `{ fn: "C_Login", args }`. Every face (typed API, pkcs11js drop-in, CLI, replay) builds these values
 * and hands them to one dispatcher.
 *
 * Pointer arguments that the fact sheet checks for NULL are modelled explicitly: pass `null` for a NULL pointer; leave
 * an output pointer out (undefined) for a normal call. PINs are byte strings (Uint8Array) or UTF-8 strings. Handles and
 * slot IDs are plain numbers (CK_ULONG values).
 */

export type Bytes = Uint8Array;
export type Pin = Bytes | string | null;

export interface Template {
  type: number;
  /** Raw attribute bytes; `null` is a NULL pValue (for C_GetAttributeValue length queries). */
  value: Bytes | null;
}

/**
 * CK_GCM_PARAMS as pkcs11js builds it from `{ type: CK_PARAMS_GCM | CK_PARAMS_AES_GCM | CK_PARAMS_AES_GCM_v240, iv,
 * ivBits?, aad?, tagBits? }`. `size` is the ulParameterLen C receives (48 for all three on amd64; a module refuses
 * another size).
 */
export interface GcmParameter {
  type: "gcm";
  iv: Bytes;
  aad: Bytes | null;
  ivBits: number;
  tagBits: number;
  size: number;
}

/** pParameter: raw bytes (a Buffer, a CK_ULONG as 8 bytes, CK_AES_CTR_PARAMS as 24 bytes), a GCM struct, or NULL. */
export type MechanismParameter = Bytes | GcmParameter | null;

export interface Mechanism {
  mechanism: number;
  parameter?: MechanismParameter;
}

export interface InitArgs {
  /** Any non-null value models pReserved != NULL. */
  pReserved?: unknown;
  flags?: number;
  /** How many of the four mutex callbacks (Create, Destroy, Lock, Unlock) are set: 0 or 4 are valid. */
  mutexCallbacks?: number;
}

export interface CallArgs {
  C_Initialize: { pInitArgs?: InitArgs | null };
  C_Finalize: { pReserved?: unknown };
  C_GetInfo: { pInfo?: null };
  C_GetSlotList: { tokenPresent: boolean; pSlotList: number | null; pulCount?: null };
  C_GetSlotInfo: { slotID: number; pInfo?: null };
  C_GetTokenInfo: { slotID: number; pInfo?: null };
  C_InitToken: { slotID: number; pin: Pin; label: Bytes | string | null };
  C_InitPIN: { hSession: number; pin: Pin };
  C_SetPIN: { hSession: number; oldPin: Pin; newPin: Pin };
  /** `pMechanismList`: null for a size query (NULL pMechanismList), else the caller's capacity in entries. */
  C_GetMechanismList: { slotID: number; pMechanismList: number | null; pulCount?: null };
  C_GetMechanismInfo: { slotID: number; type: number; pInfo?: null };
  C_OpenSession: { slotID: number; flags: number; phSession?: null };
  C_CloseSession: { hSession: number };
  C_CloseAllSessions: { slotID: number };
  C_GetSessionInfo: { hSession: number; pInfo?: null };
  C_GetOperationState: { hSession: number };
  C_SetOperationState: { hSession: number; state: Bytes | null; hEncryptionKey: number; hAuthenticationKey: number };
  C_Login: { hSession: number; userType: number; pin: Pin };
  C_Logout: { hSession: number };
  C_WaitForSlotEvent: { flags: number };
  C_GetFunctionStatus: { hSession: number };
  C_CancelFunction: { hSession: number };
  C_CreateObject: { hSession: number; template: Template[] | null; phObject?: null };
  C_DestroyObject: { hSession: number; hObject: number };
  C_CopyObject: { hSession: number; hObject: number; template: Template[] | null; phNewObject?: null };
  C_GetObjectSize: { hSession: number; hObject: number; pulSize?: null };
  C_GetAttributeValue: { hSession: number; hObject: number; template: Template[] | null };
  C_SetAttributeValue: { hSession: number; hObject: number; template: Template[] | null };
  C_FindObjectsInit: { hSession: number; template: Template[] | null };
  C_FindObjects: { hSession: number; maxCount: number; phObject?: null };
  C_FindObjectsFinal: { hSession: number };
  C_DigestInit: { hSession: number; mechanism: { mechanism: number; parameter?: Bytes | null } | null };
  C_Digest: { hSession: number; data: Bytes | null; outLen: number | null };
  C_DigestUpdate: { hSession: number; data: Bytes | null };
  C_DigestFinal: { hSession: number; outLen: number | null };
  /**
   * The cryptographic operations (§5.8–5.12). `outLen`: the caller's output capacity in bytes, null for a NULL output
   * pointer (a size query); `pulLen: null` is a NULL length pointer.
   */
  C_EncryptInit: { hSession: number; mechanism: Mechanism | null; hKey: number };
  C_Encrypt: { hSession: number; data: Bytes | null; outLen: number | null; pulLen?: null };
  C_EncryptUpdate: { hSession: number; data: Bytes | null; outLen: number | null; pulLen?: null };
  C_EncryptFinal: { hSession: number; outLen: number | null; pulLen?: null };
  C_DecryptInit: { hSession: number; mechanism: Mechanism | null; hKey: number };
  C_Decrypt: { hSession: number; data: Bytes | null; outLen: number | null; pulLen?: null };
  C_DecryptUpdate: { hSession: number; data: Bytes | null; outLen: number | null; pulLen?: null };
  C_DecryptFinal: { hSession: number; outLen: number | null; pulLen?: null };
  C_DigestKey: { hSession: number; hKey: number };
  C_SignInit: { hSession: number; mechanism: Mechanism | null; hKey: number };
  C_Sign: { hSession: number; data: Bytes | null; outLen: number | null; pulLen?: null };
  C_SignUpdate: { hSession: number; data: Bytes | null };
  C_SignFinal: { hSession: number; outLen: number | null; pulLen?: null };
  C_VerifyInit: { hSession: number; mechanism: Mechanism | null; hKey: number };
  C_Verify: { hSession: number; data: Bytes | null; signature: Bytes | null };
  C_VerifyUpdate: { hSession: number; data: Bytes | null };
  C_VerifyFinal: { hSession: number; signature: Bytes | null };
  /** `seed`: the seed bytes, or null for a NULL pSeed. */
  C_SeedRandom: { hSession: number; seed: Bytes | null };
  /** `pRandomData: null` is a NULL output pointer; `ulRandomLen` the number of bytes asked for. */
  C_GenerateRandom: { hSession: number; ulRandomLen: number; pRandomData?: null };
  /** Key management (§5.14). `phKey: null` is a NULL output pointer. */
  C_GenerateKey: { hSession: number; mechanism: KeyMechanism | null; template: Template[] | null; phKey?: null };
  /** Key-pair generation (§5.14.2). `phPublicKey` / `phPrivateKey: null` are NULL output pointers. */
  C_GenerateKeyPair: {
    hSession: number;
    mechanism: KeyMechanism | null;
    publicTemplate: Template[] | null;
    privateTemplate: Template[] | null;
    phPublicKey?: null;
    phPrivateKey?: null;
  };
  /** `outLen`: the capacity of pWrappedKey in bytes, null for a NULL pWrappedKey (a size query). */
  C_WrapKey: { hSession: number; mechanism: KeyMechanism | null; hWrappingKey: number; hKey: number; outLen: number | null; pulWrappedKeyLen?: null };
  C_UnwrapKey: {
    hSession: number;
    mechanism: KeyMechanism | null;
    hUnwrappingKey: number;
    wrappedKey: Bytes | null;
    template: Template[] | null;
    phKey?: null;
  };
}

/** CK_MECHANISM for key management: pParameter as raw bytes (an IV for CKM_AES_CBC) or NULL. */
export interface KeyMechanism {
  mechanism: number;
  parameter?: unknown;
}

export type FnName = keyof CallArgs;
export type Call<F extends FnName = FnName> = F extends FnName ? { fn: F; args: CallArgs[F] } : never;

/** Output shapes (the `out` of an answer). */
export interface Version {
  major: number;
  minor: number;
}
export interface ModuleInfo {
  cryptokiVersion: Version;
  manufacturerID: string;
  flags: number;
  libraryDescription: string;
  libraryVersion: Version;
}
export interface SlotInfo {
  slotDescription: string;
  manufacturerID: string;
  flags: number;
  hardwareVersion: Version;
  firmwareVersion: Version;
}
export interface TokenInfo {
  label: string;
  manufacturerID: string;
  model: string;
  serialNumber: string;
  flags: number;
  maxSessionCount: number;
  sessionCount: number;
  maxRwSessionCount: number;
  rwSessionCount: number;
  maxPinLen: number;
  minPinLen: number;
  totalPublicMemory: number;
  freePublicMemory: number;
  totalPrivateMemory: number;
  freePrivateMemory: number;
  hardwareVersion: Version;
  firmwareVersion: Version;
  utcTime: string;
}
export interface SessionInfo {
  slotID: number;
  state: number;
  flags: number;
  deviceError: number;
}
export interface AttributeOut {
  type: number;
  /** The value, or null when the caller asked for the length only (or the attribute is unavailable). */
  value: Bytes | null;
  /** ulValueLen as PKCS#11 reports it (CK_UNAVAILABLE_INFORMATION for an invalid or sensitive attribute). */
  length: number;
}

/** CK_MECHANISM_INFO. Key sizes in bytes (AES, HMAC, generic secret) or bits (RSA, DSA, DH, EC), as SoftHSM says. */
export interface MechanismInfo {
  minKeySize: number;
  maxKeySize: number;
  flags: number;
}

/** A crypto step's output: `data`, the output (null for a size query or CKR_BUFFER_TOO_SMALL); `length`, *pulLen as
 * the module set it. */
export type DataOut = { data: Bytes | null; length: number };
/** C_Digest / C_DigestFinal's output, as DataOut. */
export type DigestOut = { digest: Bytes | null; length: number };

export interface CallOut {
  C_Initialize: undefined;
  C_Finalize: undefined;
  C_GetInfo: ModuleInfo;
  C_GetSlotList: { slots: number[]; count: number };
  C_GetSlotInfo: SlotInfo;
  C_GetTokenInfo: TokenInfo;
  C_InitToken: undefined;
  C_InitPIN: undefined;
  C_SetPIN: undefined;
  C_GetMechanismList: { mechanisms: number[]; count: number };
  C_GetMechanismInfo: MechanismInfo;
  C_OpenSession: { hSession: number };
  C_CloseSession: undefined;
  C_CloseAllSessions: undefined;
  C_GetSessionInfo: SessionInfo;
  C_GetOperationState: { state: Bytes };
  C_SetOperationState: undefined;
  C_Login: undefined;
  C_Logout: undefined;
  C_WaitForSlotEvent: { slotID: number };
  C_GetFunctionStatus: undefined;
  C_CancelFunction: undefined;
  C_CreateObject: { hObject: number };
  C_DestroyObject: undefined;
  C_CopyObject: { hObject: number };
  C_GetObjectSize: { size: number };
  C_GetAttributeValue: { attrs: AttributeOut[] };
  C_SetAttributeValue: undefined;
  C_FindObjectsInit: undefined;
  C_FindObjects: { handles: number[] };
  C_FindObjectsFinal: undefined;
  C_DigestInit: undefined;
  C_Digest: DigestOut;
  C_DigestUpdate: undefined;
  C_DigestFinal: DigestOut;
  C_SeedRandom: undefined;
  C_GenerateRandom: { random: Bytes };
  C_GenerateKey: { hKey: number };
  C_GenerateKeyPair: { hPublicKey: number; hPrivateKey: number };
  /** `wrapped`: null for a size query or CKR_BUFFER_TOO_SMALL; `length`: *pulWrappedKeyLen as the module set it. */
  C_WrapKey: { wrapped: Bytes | null; length: number };
  C_UnwrapKey: { hKey: number };
  C_EncryptInit: undefined;
  C_Encrypt: DataOut;
  C_EncryptUpdate: DataOut;
  C_EncryptFinal: DataOut;
  C_DecryptInit: undefined;
  C_Decrypt: DataOut;
  C_DecryptUpdate: DataOut;
  C_DecryptFinal: DataOut;
  C_DigestKey: undefined;
  C_SignInit: undefined;
  C_Sign: DataOut;
  C_SignUpdate: undefined;
  C_SignFinal: DataOut;
  C_VerifyInit: undefined;
  C_Verify: undefined;
  C_VerifyUpdate: undefined;
  C_VerifyFinal: undefined;
}
