/**
 * The shapes every mechanism module shares: outcomes (an expected rejection is an answer carrying its CKR name, never
 * an exception), plain-data operation states, and the four operation families PKCS#11 v2.40 groups mechanisms into
 * (§5.8 encryption / §5.9 decryption, §5.10 digesting, §5.11 signing / §5.12 verifying with MACs, §5.14 wrapping).
 *
 * A multi-part operation is `init` → `update`* → `final`, each step a pure function of its inputs. The state between
 * steps is a plain JSON-able object (hex strings and numbers; base64 for GCM's buffered input): it can be stored in
 * the write model, compared, copied, saved by C_GetOperationState and restored in another session or another
 * process. No state holds a key: the caller keeps the key (an object handle) and passes its value to every step, as
 * C_SetOperationState's hEncryptionKey / hAuthenticationKey arguments anticipate. Every state is still secret
 * (pending plaintext, chaining values, the HMAC inner context): seal it before it leaves the process.
 *
 * `rv` in a failure is what SoftHSM 2.6.1 answers in that situation (observed with pkcs11js against the Debian
 * package), `reason` names the situation so a profile can answer the spec's code instead (SoftHSM reports a bad
 * CBC pad, a failed GCM tag and a failed key-wrap integrity check all as CKR_GENERAL_ERROR).
 */
import type { CkrName } from "../../pkcs11/constants.js";

/** Lowercase hex, two digits a byte. */
export type Hex = string;

export type FailureReason =
  /** A key of a length the mechanism cannot take. */
  | "key-size"
  /** A mechanism parameter missing or out of range. */
  | "param"
  /** Input to encrypt / sign whose length the mechanism cannot take (not block-aligned, counter space exhausted). */
  | "data-len"
  /** Input to decrypt whose length the mechanism cannot take. */
  | "encrypted-data-len"
  /** CBC_PAD: the last block does not end in a valid PKCS#7 pad. */
  | "padding"
  /** GCM: the authentication tag does not match. */
  | "auth-tag"
  /** Key wrap: the key to wrap has a length the mechanism cannot take. */
  | "key-len"
  /** Key unwrap: the wrapped key has a length the mechanism cannot take. */
  | "wrapped-len"
  /** Key unwrap: the RFC 3394 / RFC 5649 integrity check failed. */
  | "integrity"
  /** Verify: a MAC of the wrong length, or a MAC that does not match. */
  | "signature-len"
  | "signature";

export interface Failure {
  readonly ok: false;
  readonly rv: CkrName;
  readonly reason: FailureReason;
}

export type Outcome<T extends object> = ({ readonly ok: true } & T) | Failure;

export function fail(rv: CkrName, reason: FailureReason): Failure {
  return { ok: false, rv, reason };
}

/** Encryption or decryption (§5.8, §5.9): every step may produce output. */
export interface CipherStream<P, S> {
  /** Check the key and the parameters (in SoftHSM's order: parameters first) and start. */
  init(key: Uint8Array, params: P): Outcome<{ state: S }>;
  update(key: Uint8Array, state: S, data: Uint8Array): Outcome<{ state: S; out: Uint8Array }>;
  final(key: Uint8Array, state: S): Outcome<{ out: Uint8Array }>;
  /** Single-part (C_Encrypt / C_Decrypt): the same bytes as init + update + final, on the fastest path. */
  once(key: Uint8Array, params: P, data: Uint8Array): Outcome<{ out: Uint8Array }>;
  /** Output size of `update` (exact), for size queries and CKR_BUFFER_TOO_SMALL without running the step. */
  updateLength(state: S, dataLen: number): number;
  /** Output size of `final`: exact, except CBC_PAD decryption where it is an upper bound (the pad is unknown). */
  finalLength(state: S): number;
  /** Output size of `once`: exact, except decryption with CBC_PAD (upper bound). */
  onceLength(params: P, dataLen: number): number;
  /** A state read back from storage, checked field by field; undefined when it is not one of this stream's. */
  parseState(x: unknown): S | undefined;
}

/** A cipher mechanism's two directions (GCM's states differ: encryption streams, decryption buffers). */
export interface CipherPair<P, SE, SD = SE> {
  encrypt: CipherStream<P, SE>;
  decrypt: CipherStream<P, SD>;
}

/** Message digesting (§5.10). No key; C_DigestKey is an `update` with the key's value. */
export interface DigestStream<S> {
  readonly size: number;
  readonly blockLen: number;
  init(): S;
  update(state: S, data: Uint8Array): S;
  final(state: S): Uint8Array;
  once(data: Uint8Array): Uint8Array;
  parseState(x: unknown): S | undefined;
}

/** Signing and verifying with a MAC (§5.11, §5.12). `update` needs no key; `init` and the final steps do. */
export interface MacStream<P, S> {
  init(key: Uint8Array, params: P): Outcome<{ state: S }>;
  /** What `init` would refuse, without building the state (a caller that only needs the verdict). */
  check(key: Uint8Array, params: P): Failure | undefined;
  update(state: S, data: Uint8Array): S;
  final(key: Uint8Array, state: S): Uint8Array;
  /** Verify a MAC: CKR_SIGNATURE_LEN_RANGE when its length is wrong, CKR_SIGNATURE_INVALID when it differs. */
  verifyFinal(key: Uint8Array, state: S, mac: Uint8Array): Outcome<object>;
  once(key: Uint8Array, params: P, data: Uint8Array): Outcome<{ out: Uint8Array }>;
  verifyOnce(key: Uint8Array, params: P, data: Uint8Array, mac: Uint8Array): Outcome<object>;
  /** The MAC length these parameters give (the _GENERAL variants take it as their parameter). */
  macLength(params: P): number;
  parseState(x: unknown): S | undefined;
}

/** Wrapping and unwrapping keys (§5.14). Single-part only. */
export interface KeyWrap {
  wrap(kek: Uint8Array, keyValue: Uint8Array): Outcome<{ out: Uint8Array }>;
  unwrap(kek: Uint8Array, wrapped: Uint8Array): Outcome<{ out: Uint8Array }>;
  wrapLength(keyLen: number): number;
}
