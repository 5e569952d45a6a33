/**
 * The event vocabulary. One C_* call is one value (`Call`); the dispatcher answers it with `{ rv, out }` and records a
 * `CallRecord`: the call with its secrets redacted, its CK_RV, its outputs, and the facts (past-tense `Fact`s) it caused.
 * State is a fold of facts; call records without facts (reads, rejections) are there for the audit trail.
 *
 * Nothing here carries a PIN: PIN arguments become `{ len }` before a record is built, and PIN verifiers are keyed
 * MACs under the simulator key (see crypto/pins.ts).
 */

export type Role = "so" | "user";
export type Login = "public" | "user" | "so";

/** A keyed PIN verifier: HMAC-SHA256(simulator key, salt || pin). Not the PIN, and useless without the key. */
export interface PinVerifier {
  salt: string; // hex
  mac: string; // hex
}

/**
 * An attribute as stored: type and raw bytes (hex in events), as SoftHSM stores them; key material (the attribute
 * table's `secret` values, e.g. a secret key's CKA_VALUE) as `sealed` instead: sealed under the simulator key.
 */
export type StoredAttribute = { type: number; value: string /* hex */ } | { type: number; sealed: string };

export interface ObjectSnapshot {
  /** Stable object id: `t<token>/<n>` for token objects, `a<app>/<n>` for session objects. */
  id: string;
  token: boolean;
  private: boolean;
  slotID: number;
  /** The session that created a session object (SoftHSM destroys it when that session closes). */
  creator?: number;
  /**
   * softhsm2: a private object whose byte-string values were written in clear (SoftHSM's half-made object of a failed
   * create whose CKA_PRIVATE=false entry was never applied): SoftHSM cannot decrypt them back (functions/objects.ts).
   */
  clearStorage?: true;
  attrs: StoredAttribute[];
}

/** Facts: what happened. Each one is applied by `evolve` (model/evolve.ts) and by the projections. */
export type Fact =
  | { type: "ApplicationStarted"; app: number; slots: { slotID: number; token: string | null }[] }
  | { type: "ApplicationFinalized"; app: number }
  | { type: "SlotAdded"; app: number; slotID: number }
  | {
      type: "TokenInitialized";
      app: number;
      slotID: number;
      token: string;
      serial: string;
      label: string;
      soPin: PinVerifier;
      reinit: boolean;
      /** The token objects the re-initialisation destroyed (all of them, unless the application missed some). */
      destroyed?: string[];
    }
  | { type: "PinRejected"; app: number; token: string; role: Role }
  /** A right PIN where no login follows (SoftHSM's re-initialisation that then fails): the failure flag clears. */
  | { type: "PinAccepted"; app: number; token: string; role: Role }
  | { type: "UserPinSet"; app: number; token: string; pin: PinVerifier }
  | { type: "SoPinSet"; app: number; token: string; pin: PinVerifier }
  /**
   * softhsm2: the application refreshed its view of the token (SoftHSM's OSToken::index + token.object reload): its
   * object list if the token's generation moved, and its copy of the token settings.
   */
  | { type: "TokenLooked"; app: number; token: string }
  /** softhsm2: C_InitPIN wrote the application's stale copy of the token settings back (SoftHSM rule P6). */
  | { type: "TokenSettingsRestored"; token: string; label: string; soPin: PinVerifier | null; failures: { so: number; user: number } }
  | { type: "LoggedIn"; app: number; slotID: number; token: string; role: Role }
  | { type: "LoggedOut"; app: number; slotID: number }
  | { type: "SessionOpened"; app: number; slotID: number; token: string; handle: number; rw: boolean }
  | { type: "SessionClosed"; app: number; handle: number }
  /** C_CloseAllSessions: every session of the application on the slot (`count` of them) closed at once. */
  | { type: "AllSessionsClosed"; app: number; slotID: number; count: number }
  | { type: "ObjectHandlesInvalidated"; app: number; slotID: number; scope: "all" | "private" }
  | { type: "ObjectCreated"; app: number; handle: number; session: number; object: ObjectSnapshot }
  | { type: "ObjectDestroyed"; app: number; object: string }
  | { type: "AttributesChanged"; object: string; attrs: StoredAttribute[] }
  /**
   * `via`: for a session object, the session whose find issued the handle (SoftHSM's handle manager drops the handle
   * when that session closes; only SoftHSM's half-made objects are ever found without a handle already).
   */
  | { type: "ObjectHandleIssued"; app: number; handle: number; object: string; slotID: number; via?: number }
  /** `broken`: SoftHSM failed inside C_FindObjectsInit after making the operation (C_FindObjects then fails). */
  | { type: "FindStarted"; app: number; session: number; handles: number[]; broken?: true }
  | { type: "FindAdvanced"; app: number; session: number; count: number }
  | { type: "DigestStarted"; app: number; session: number; mechanism: number }
  /** The data fed to a digest, sealed under the simulator key: the log never holds the plaintext. */
  | { type: "DigestUpdated"; app: number; session: number; sealed: string }
  /**
   * C_EncryptInit / C_DecryptInit / C_SignInit / C_VerifyInit: an operation with a key. `object` is the key object's
   * id; `key` its CKA_VALUE in the sealed form the object's own facts carry (the operation keeps its own copy of the
   * key, as SoftHSM does; the log never holds it in clear); `params` the mechanism parameters as plain data (IV,
   * counter block, tag or MAC length), with GCM's additional authenticated data in `aad`, sealed.
   */
  | {
      type: "CryptoStarted";
      app: number;
      session: number;
      kind: "encrypt" | "decrypt" | "sign" | "verify";
      mechanism: number;
      object: string;
      key: string;
      params: unknown;
      aad?: string;
      /** The key has CKA_ALWAYS_AUTHENTICATE (asymmetric sign / decrypt): each use needs C_Login(CONTEXT_SPECIFIC). */
      reauth?: true;
    }
  /** A right C_Login(CKU_CONTEXT_SPECIFIC): the session's pending operation may go on; the role's failures clear. */
  | { type: "Reauthenticated"; app: number; session: number; token: string; role: Role }
  /** The data of an encrypt / decrypt / sign / verify update, sealed: replay feeds it to the operation again. */
  | { type: "CryptoUpdated"; app: number; session: number; sealed: string }
  /** C_SetOperationState: a saved operation (plain data with its key, sealed) now runs in the session. */
  | { type: "OperationRestored"; app: number; session: number; sealed: string }
  | { type: "OperationEnded"; app: number; session: number };

export type FactType = Fact["type"];

/** What the caller gets back. `out` is the function's output parameters (absent on failure, except size answers). */
export interface Answer<O = unknown> {
  rv: number;
  out?: O;
}

/** One audited call: the unit of the event log. */
export interface CallRecord {
  seq: number;
  /** Milliseconds since the epoch, taken by the shell before the call was decided. */
  time: number;
  app: number;
  fn: string;
  /** The call's arguments with secrets redacted (PINs become `{ len }`; data to digest becomes its length). */
  args: Record<string, unknown>;
  rv: number;
  out?: unknown;
  facts: Fact[];
}
