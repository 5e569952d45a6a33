/**
 * C_GetOperationState and C_SetOperationState (PKCS#11 v2.40 §5.6.5, §5.6.6) beyond SoftHSM, which answers
 * CKR_FUNCTION_NOT_SUPPORTED to both (fact sheet §14; profile switch `saveOperations`, a row of PROFILE_DIFFERENCES).
 *
 * Every operation's state is plain data (model/state.ts), so saving one is serialising it. What can be saved: a
 * digest, an HMAC sign or verify, and AES ECB / CBC / CBC_PAD / CTR encryption or decryption (the registry's
 * `saveable`). GCM is not (restoring an encryption twice would reuse its IV, which breaks GCM; crypto/mechanisms/
 * aes-gcm.ts), nor is a find (its handles belong to the session's application): CKR_STATE_UNSAVEABLE.
 *
 * The blob holds the operation without its key (crypto/operation-blob.ts seals and authenticates it under a key
 * derived from the simulator key): restoring an operation with a key needs the key again, as §5.6.6 lays out:
 *
 * | # | C_SetOperationState check                                                     | rv                        |
 * |---|-------------------------------------------------------------------------------|---------------------------|
 * | 1 | not initialised                                                               | CRYPTOKI_NOT_INITIALIZED  |
 * | 2 | session (before the pointer, as in softhsm2's order)                          | SESSION_HANDLE_INVALID    |
 * | 3 | pOperationState NULL                                                          | ARGUMENTS_BAD             |
 * | 4 | the blob does not open (tampered, truncated, another simulator's) or parse    | SAVED_STATE_INVALID       |
 * | 5 | a key handle given that the operation does not use (hEncryptionKey for a MAC or a digest, hAuthenticationKey for a cipher or a digest) | KEY_NOT_NEEDED |
 * | 6 | the operation uses a key and its handle is 0                                  | KEY_NEEDED                |
 * | 7 | the handle does not resolve                                                   | KEY_HANDLE_INVALID        |
 * | 8 | a private key and no user session (hsmsim's own rule: a restore must not lend a private key to a public session) | USER_NOT_LOGGED_IN |
 * | 9 | not the key the operation was saved with (SHA-256 of the value differs)        | KEY_CHANGED               |
 * | 10| —: the session's running operation, if any, ends, and the saved one runs      | OK                        |
 *
 * C_GetOperationState: init, session, no operation → OPERATION_NOT_INITIALIZED, unsaveable → STATE_UNSAVEABLE, else
 * the blob. The blob's nonce is drawn through the shell; the log keeps the blob's length, nonce and hash
 * (events/call-schema.ts), never its content.
 */
import { createHash } from "node:crypto";
import type { CallArgs } from "../events/calls.js";
import { bytesToHex, hexToBytes } from "../crypto/encoding.js";
import { MECHANISMS } from "../crypto/mechanisms/index.js";
import { resolveObjectHandle, type CryptoKind, type CryptoOp, type OperationState } from "../model/state.js";
import type { Fact } from "../events/types.js";
import { answer, findSession, firstFailure, reject, type DecideContext, type Decision } from "./context.js";
import { decodeParameter, keyOf, rememberKey, sealedKeyOf, type PlainParams } from "./crypto-op.js";
import { keyValueOf } from "../model/key-material.js";
import { readAccess } from "./objects.js";

const VERSION = 1;

/** What a blob holds (before sealing). */
interface SavedOperation {
  v: number;
  kind: "digest" | CryptoKind;
  mechanism: number;
  params: PlainParams | null;
  state: unknown;
  updated: boolean;
  /** SHA-256 of the key's value (ops with a key): enough to say CKR_KEY_CHANGED, no use without the key. */
  keyHash: string | null;
}

const fingerprint = (key: Uint8Array) => createHash("sha256").update(key).digest("hex");

function saveableMechanism(mechanism: number): boolean {
  return MECHANISMS.get(mechanism)?.saveable === true;
}

/** C_GetOperationState — §5.6.5 (default profile). */
export function getOperationState(ctx: DecideContext, args: CallArgs["C_GetOperationState"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv) return reject(rv);
  const op = ref!.session.op;
  if (!op) return reject("CKR_OPERATION_NOT_INITIALIZED");
  if (op.kind === "find" || !saveableMechanism(op.mechanism)) return reject("CKR_STATE_UNSAVEABLE");
  const saved: SavedOperation = {
    v: VERSION,
    kind: op.kind,
    mechanism: op.mechanism,
    params: op.kind === "digest" ? null : (op.params as PlainParams),
    state: op.state,
    updated: op.updated,
    keyHash: op.kind === "digest" ? null : fingerprint(keyOf(op, ctx.shell.unseal)),
  };
  // The nonce is a draw like any other (through the shell); the record keeps it (events/call-schema.ts recordOut).
  const blob = ctx.shell.sealOperation(new TextEncoder().encode(JSON.stringify(saved)), ctx.shell.randomBytes(24));
  return answer("CKR_OK", { state: blob });
}

/** The saved operation in a blob's plaintext, checked field by field against the registry; undefined if not one. */
function parseSaved(plain: Uint8Array): SavedOperation | undefined {
  let x: SavedOperation;
  try {
    x = JSON.parse(new TextDecoder().decode(plain)) as SavedOperation;
  } catch {
    return undefined;
  }
  if (!x || typeof x !== "object" || x.v !== VERSION || typeof x.updated !== "boolean") return undefined;
  const e = typeof x.mechanism === "number" ? MECHANISMS.get(x.mechanism) : undefined;
  if (!e || !e.saveable) return undefined;
  if (x.kind === "digest") {
    if (e.family !== "digest" || x.params !== null || x.keyHash !== null) return undefined;
    const state = e.digest.parseState(x.state);
    return state ? { ...x, state } : undefined;
  }
  if (typeof x.keyHash !== "string" || !/^[0-9a-f]{64}$/.test(x.keyHash) || !validParams(e.param, x.params)) return undefined;
  let state: unknown;
  if (e.family === "cipher" && (x.kind === "encrypt" || x.kind === "decrypt")) state = e.cipher[x.kind].parseState(x.state);
  else if (e.family === "mac" && (x.kind === "sign" || x.kind === "verify")) state = e.mac.parseState(x.state);
  return state === undefined ? undefined : { ...x, state };
}

/** Parameters as `decodeParameter` writes them for this kind (round-tripped through it, so nothing else passes). */
function validParams(kind: "none" | "iv" | "ctr" | "gcm" | "mac-length", p: PlainParams | null): boolean {
  if (!p || typeof p !== "object" || p.kind !== kind) return false;
  switch (p.kind) {
    case "none":
      return Object.keys(p).length === 1;
    case "iv":
      return p.iv === null || (typeof p.iv === "string" && /^([0-9a-f]{2}){16}$/.test(p.iv) && roundTrips(p, hexToBytes(p.iv)));
    case "ctr": {
      if (typeof p.cb !== "string" || !/^([0-9a-f]{2}){16}$/.test(p.cb) || !Number.isSafeInteger(p.counterBits) || p.counterBits < 1) return false;
      const raw = new Uint8Array(24);
      new DataView(raw.buffer).setBigUint64(0, BigInt(p.counterBits), true);
      raw.set(hexToBytes(p.cb), 8);
      return roundTrips(p, raw);
    }
    case "mac-length": {
      if (!Number.isSafeInteger(p.macLength) || p.macLength < 0) return false;
      const raw = new Uint8Array(8);
      new DataView(raw.buffer).setBigUint64(0, BigInt(p.macLength), true);
      return roundTrips(p, raw);
    }
    default:
      return false; // GCM is never saved
  }
}

function roundTrips(p: PlainParams, raw: Uint8Array): boolean {
  return JSON.stringify(decodeParameter(p.kind as never, raw)) === JSON.stringify(p);
}

/** What an OperationRestored fact seals: the operation as it will run, and the key it runs with. */
interface Restored {
  op: OperationState;
  key: string | null;
}

/** The operation an OperationRestored fact carries (evolve); its key is remembered beside it. */
export function parseSavedOperation(bytes: Uint8Array): OperationState | undefined {
  const r = JSON.parse(new TextDecoder().decode(bytes)) as Restored;
  if (r.key !== null && r.op.kind !== "find" && r.op.kind !== "digest") rememberKey(r.op as CryptoOp, hexToBytes(r.key));
  return r.op;
}

/** C_SetOperationState — §5.6.6 (default profile). */
export function setOperationState(ctx: DecideContext, args: CallArgs["C_SetOperationState"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
    [args.state === null, "CKR_ARGUMENTS_BAD"],
  ]);
  if (rv) return reject(rv);
  const plain = ctx.shell.openOperation(args.state!);
  const saved = plain ? parseSaved(plain) : undefined;
  if (!saved) return reject("CKR_SAVED_STATE_INVALID");
  const { session, slot, app } = ref!;
  const usesCipherKey = saved.kind === "encrypt" || saved.kind === "decrypt";
  const usesMacKey = saved.kind === "sign" || saved.kind === "verify";
  const handle = usesCipherKey ? args.hEncryptionKey : args.hAuthenticationKey;
  const keyRv = firstFailure([
    [(args.hEncryptionKey !== 0 && !usesCipherKey) || (args.hAuthenticationKey !== 0 && !usesMacKey), "CKR_KEY_NOT_NEEDED"],
    [(usesCipherKey || usesMacKey) && handle === 0, "CKR_KEY_NEEDED"],
  ]);
  if (keyRv) return reject(keyRv);
  let op: OperationState;
  let key: Uint8Array | null = null;
  if (saved.kind === "digest") {
    op = { kind: "digest", mechanism: saved.mechanism, state: saved.state, updated: saved.updated };
  } else {
    const found = resolveObjectHandle(ctx.state, app, handle);
    if (!found) return reject("CKR_KEY_HANDLE_INVALID");
    if (!readAccess(slot.actor.login, found.object.private)) return reject("CKR_USER_NOT_LOGGED_IN");
    key = keyValueOf(found.object) ?? new Uint8Array(0);
    if (fingerprint(key) !== saved.keyHash) return reject("CKR_KEY_CHANGED");
    const params = saved.params as PlainParams;
    op = {
      kind: saved.kind,
      mechanism: saved.mechanism,
      object: found.object.id,
      sealed: sealedKeyOf(found.object, key, ctx.shell.seal),
      params,
      state: saved.state,
      updated: saved.updated,
    };
  }
  const facts: Fact[] = [];
  if (session.op) facts.push({ type: "OperationEnded", app: ctx.appId, session: session.handle });
  const restored: Restored = { op, key: key ? bytesToHex(key) : null };
  facts.push({
    type: "OperationRestored",
    app: ctx.appId,
    session: session.handle,
    sealed: ctx.shell.seal(new TextEncoder().encode(JSON.stringify(restored))),
  });
  return answer("CKR_OK", undefined, facts);
}
