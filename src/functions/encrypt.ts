/**
 * Encryption and decryption (PKCS#11 v2.40 §5.8, §5.9): C_EncryptInit, C_Encrypt, C_EncryptUpdate, C_EncryptFinal,
 * C_DecryptInit, C_Decrypt, C_DecryptUpdate, C_DecryptFinal, for CKM_AES_ECB, CKM_AES_CBC, CKM_AES_CBC_PAD,
 * CKM_AES_CTR and CKM_AES_GCM (the mechanism registry, src/crypto/mechanisms, does the cryptography on plain-data
 * states). Inits: functions/crypto-op.ts (SoftHSM's check order). Steps, as SoftHSM 2.6.1 runs them (SymEncrypt,
 * SymEncryptUpdate, SymEncryptFinal and their Decrypt twins in src/lib/SoftHSM.cpp):
 *
 * | step           | before the size answer (these end the operation)        | size answered (outLen null / too small)   |
 * |----------------|----------------------------------------------------------|-------------------------------------------|
 * | C_Encrypt      | ECB/CBC: length not a block multiple → DATA_LEN_RANGE;   | ECB/CBC/CBC_PAD: rounded up (+16 for      |
 * |                | CTR: counter space exhausted → DATA_LEN_RANGE            | CBC_PAD when aligned); CTR len; GCM len+tag|
 * | C_EncryptUpdate| CTR exhausted → DATA_LEN_RANGE                           | block: (pending+len) rounded down; else len|
 * | C_EncryptFinal | ECB/CBC with pending bytes → DATA_LEN_RANGE              | CBC_PAD 16; GCM the tag; else 0           |
 * | C_Decrypt      | block modes: not a block multiple → ENCRYPTED_DATA_LEN_RANGE; CTR exhausted → same | the input length |
 * | C_DecryptUpdate| CTR exhausted → ENCRYPTED_DATA_LEN_RANGE                 | block: (pending+len−pad) rounded down;     |
 * |                |                                                          | GCM everything so far + len; CTR len      |
 * | C_DecryptFinal | block modes with a partial block → ENCRYPTED_DATA_LEN_RANGE | CBC_PAD 15; GCM everything so far; else 0 |
 *
 * A size query (NULL output) answers the size and keeps the operation; a buffer below it is CKR_BUFFER_TOO_SMALL with
 * the size, also keeping it. A failure in the cipher (bad pad, bad tag) ends it (CKR_GENERAL_ERROR in softhsm2; the
 * spec's codes in the default profile, profile switch `cryptoErrors`). Single-part calls and finals end it.
 *
 * Update inputs reach the log only sealed (the CryptoUpdated fact); outputs only as lengths and hashes
 * (events/call-schema.ts recordOut).
 */
import type { CallArgs } from "../events/calls.js";
import { cipherPair } from "../crypto/mechanisms/lookup.js";
import type { CbcState, CipherStream, CtrState, Failure, GcmState } from "../crypto/mechanisms/index.js";
import type { CryptoOp } from "../model/state.js";
import type { CkrName } from "../pkcs11/constants.js";
import { answer, CK, findSession, firstFailure, reject, type DecideContext, type Decision, type SessionRef } from "./context.js";
import {
  ended,
  endWith,
  failureRv,
  isDecision,
  keyedInit,
  keyOf,
  runtimeParams,
  sizeAnswer,
  stepOpening,
  updated,
  type PlainParams,
} from "./crypto-op.js";
import { isRsaOp, rsaDecrypt, rsaEncrypt, rsaMultiPart } from "./rsa.js";

const BLOCK = 16;
/** SoftHSM's size_t arithmetic below zero: (size_t)-1 and friends, far beyond any buffer. */
export const HUGE_SIZE = 2 ** 64;

interface Mode {
  block: boolean;
  pad: boolean;
  ctr: boolean;
  gcm: boolean;
}

function modeOf(mechanism: number): Mode {
  return {
    block: mechanism === CK.CKM_AES_ECB || mechanism === CK.CKM_AES_CBC || mechanism === CK.CKM_AES_CBC_PAD,
    pad: mechanism === CK.CKM_AES_CBC_PAD,
    ctr: mechanism === CK.CKM_AES_CTR,
    gcm: mechanism === CK.CKM_AES_GCM,
  };
}

/** SoftHSM's getBufferSize(): bytes held by the cipher (GCM decryption holds everything until final). */
function pending(op: CryptoOp, m: Mode, encrypt: boolean): number {
  if (m.block) return (op.state as CbcState).pending.length / 2;
  if (m.gcm && !encrypt) return (op.state as GcmState).length;
  return 0;
}

const tagBytes = (op: CryptoOp) => ((op.params as PlainParams & { kind: "gcm" }).tagBits ?? 0) / 8;
const ctrExhausted = (op: CryptoOp, m: Mode, len: number) => m.ctr && BigInt(len) > BigInt((op.state as CtrState).left);

type Stream = CipherStream<unknown, unknown>;

function streamOf(op: CryptoOp, encrypt: boolean): Stream {
  const pair = cipherPair(op.mechanism);
  return encrypt ? pair.encrypt : pair.decrypt;
}

/** Update then final on a running state (SoftHSM's single-part call after an update). */
function runOn(stream: Stream, key: Uint8Array, state: unknown, data: Uint8Array) {
  const u = stream.update(key, state, data);
  if (!u.ok) return u;
  const f = stream.final(key, u.state);
  if (!f.ok) return f;
  const out = new Uint8Array(u.out.length + f.out.length);
  out.set(u.out);
  out.set(f.out, u.out.length);
  return { ok: true as const, out };
}

/** The rv of a cipher failure; in softhsm2 a decryption whose input ran short in the cipher is CKR_GENERAL_ERROR. */
function cipherFailure(ctx: DecideContext, f: Failure, encrypt: boolean): CkrName {
  if (!encrypt && ctx.state.profile.cryptoErrors === "softhsm" && f.reason === "encrypted-data-len") return "CKR_GENERAL_ERROR";
  return failureRv(ctx.state.profile, f);
}

/** C_Encrypt / C_Decrypt. */
function single(ctx: DecideContext, args: CallArgs["C_Encrypt"], encrypt: boolean): Decision {
  const kind = encrypt ? "encrypt" : "decrypt";
  const ref = stepOpening(ctx, args.hSession, kind, args.data === null || args.pulLen === null);
  if (isDecision(ref)) return ref;
  const h = args.hSession;
  const op = ref.session.op as CryptoOp;
  if (isRsaOp(op)) return (encrypt ? rsaEncrypt : rsaDecrypt)(ctx, ref, op, args.data!, args.outLen);
  const m = modeOf(op.mechanism);
  const data = args.data!;
  const len = data.length;
  const spec = ctx.state.profile.cryptoErrors === "spec";
  if (op.updated && spec) return endWith(ctx, h, "CKR_OPERATION_NOT_INITIALIZED");
  const lenRange: CkrName = encrypt ? "CKR_DATA_LEN_RANGE" : "CKR_ENCRYPTED_DATA_LEN_RANGE";
  const rem = len % BLOCK;
  if (m.block && rem !== 0 && !(encrypt && m.pad)) return endWith(ctx, h, lenRange);
  if (ctrExhausted(op, m, len)) return endWith(ctx, h, lenRange);
  let size = len;
  if (encrypt) size = m.block ? (rem ? len + BLOCK - rem : m.pad ? len + BLOCK : len) : len + tagBytes(op);
  const early = sizeAnswer(args.outLen, size);
  if (early) return early;
  const stream = streamOf(op, encrypt);
  const key = keyOf(op, ctx.shell.unseal);
  const r = op.updated ? runOn(stream, key, op.state, data) : stream.once(key, runtimeParams(op.params as PlainParams), data);
  // After an update (softhsm2 only) SoftHSM's EVP final fails on a partial block or a bad pad: CKR_GENERAL_ERROR.
  if (!r.ok) return endWith(ctx, h, op.updated ? "CKR_GENERAL_ERROR" : cipherFailure(ctx, r, encrypt));
  // SoftHSM sizes the answer from this call's input alone: encryption resizes the output to it (cut or zero-filled),
  // decryption cuts anything longer. Only a call after an update can tell.
  let out = r.out;
  if (encrypt && out.length !== size) {
    const fitted = new Uint8Array(size);
    fitted.set(out.subarray(0, size));
    out = fitted;
  } else if (!encrypt && out.length > len) out = out.subarray(0, len);
  return answer("CKR_OK", { data: out, length: out.length }, [ended(ctx, h)]);
}

/** C_EncryptUpdate / C_DecryptUpdate. */
function update(ctx: DecideContext, args: CallArgs["C_EncryptUpdate"], encrypt: boolean): Decision {
  const ref = stepOpening(ctx, args.hSession, encrypt ? "encrypt" : "decrypt", args.data === null || args.pulLen === null);
  if (isDecision(ref)) return ref;
  const h = args.hSession;
  const op = ref.session.op as CryptoOp;
  if (isRsaOp(op)) return rsaMultiPart();
  const m = modeOf(op.mechanism);
  const data = args.data!;
  const held = pending(op, m, encrypt);
  let size = data.length + held;
  if (m.block) {
    const n = data.length + held - (!encrypt && m.pad ? 1 : 0);
    // An empty CBC_PAD decryption update with nothing held: SoftHSM's size_t arithmetic goes below zero.
    size = n < 0 ? (ctx.state.profile.cryptoErrors === "spec" ? 0 : HUGE_SIZE) : Math.floor(n / BLOCK) * BLOCK;
  }
  if (ctrExhausted(op, m, data.length)) return endWith(ctx, h, encrypt ? "CKR_DATA_LEN_RANGE" : "CKR_ENCRYPTED_DATA_LEN_RANGE");
  const early = sizeAnswer(args.outLen, size);
  if (early) return early;
  const r = streamOf(op, encrypt).update(keyOf(op, ctx.shell.unseal), op.state, data);
  if (!r.ok) return endWith(ctx, h, cipherFailure(ctx, r, encrypt));
  return answer("CKR_OK", { data: r.out, length: r.out.length }, [updated(ctx, h, data)]);
}

/**
 * The opening of C_EncryptFinal / C_DecryptFinal: SoftHSM checks the length pointer after the session and, when it
 * is NULL, ends whatever operation the session runs (its GitHub issue #469 fix) before answering CKR_ARGUMENTS_BAD.
 */
function finalOpening(ctx: DecideContext, args: CallArgs["C_EncryptFinal"], encrypt: boolean): SessionRef | Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv) return reject(rv);
  if (args.pulLen === null) return ref!.session.op ? endWith(ctx, args.hSession, "CKR_ARGUMENTS_BAD") : reject("CKR_ARGUMENTS_BAD");
  const step = ref!.slot.actor.operation(args.hSession, { type: "Step", kind: encrypt ? "encrypt" : "decrypt" });
  if (step !== "CKR_OK") return reject(step);
  return (ref!.session.op as CryptoOp).state === null ? reject("CKR_GENERAL_ERROR") : ref!;
}

/** C_EncryptFinal / C_DecryptFinal. */
function final(ctx: DecideContext, args: CallArgs["C_EncryptFinal"], encrypt: boolean): Decision {
  const ref = finalOpening(ctx, args, encrypt);
  if (isDecision(ref)) return ref;
  const h = args.hSession;
  const op = ref.session.op as CryptoOp;
  if (isRsaOp(op)) return rsaMultiPart();
  const m = modeOf(op.mechanism);
  const held = pending(op, m, encrypt);
  let size = held;
  if (m.block) {
    if (held % BLOCK !== 0 && !(encrypt && m.pad)) return endWith(ctx, h, encrypt ? "CKR_DATA_LEN_RANGE" : "CKR_ENCRYPTED_DATA_LEN_RANGE");
    if (encrypt) size = m.pad ? BLOCK : held;
    else if (m.pad) {
      if (held === 0 && ctx.state.profile.cryptoErrors === "spec") return endWith(ctx, h, "CKR_ENCRYPTED_DATA_LEN_RANGE");
      size = held === 0 ? HUGE_SIZE : held - 1;
    }
  } else if (encrypt) size = tagBytes(op);
  const early = sizeAnswer(args.outLen, size);
  if (early) return early;
  const r = streamOf(op, encrypt).final(keyOf(op, ctx.shell.unseal), op.state);
  if (!r.ok) return endWith(ctx, h, cipherFailure(ctx, r, encrypt));
  return answer("CKR_OK", { data: r.out, length: r.out.length }, [ended(ctx, h)]);
}

/** C_EncryptInit — §5.8.1. */
export const C_EncryptInit = (ctx: DecideContext, args: CallArgs["C_EncryptInit"]) => keyedInit(ctx, args, "encrypt");
/** C_Encrypt — §5.8.2. Single-part: it ends the operation (not on a size query or CKR_BUFFER_TOO_SMALL). */
export const C_Encrypt = (ctx: DecideContext, args: CallArgs["C_Encrypt"]) => single(ctx, args, true);
/** C_EncryptUpdate — §5.8.3. */
export const C_EncryptUpdate = (ctx: DecideContext, args: CallArgs["C_EncryptUpdate"]) => update(ctx, args, true);
/** C_EncryptFinal — §5.8.4. */
export const C_EncryptFinal = (ctx: DecideContext, args: CallArgs["C_EncryptFinal"]) => final(ctx, args, true);
/** C_DecryptInit — §5.9.1. */
export const C_DecryptInit = (ctx: DecideContext, args: CallArgs["C_DecryptInit"]) => keyedInit(ctx, args, "decrypt");
/** C_Decrypt — §5.9.2. */
export const C_Decrypt = (ctx: DecideContext, args: CallArgs["C_Decrypt"]) => single(ctx, args, false);
/** C_DecryptUpdate — §5.9.3. */
export const C_DecryptUpdate = (ctx: DecideContext, args: CallArgs["C_DecryptUpdate"]) => update(ctx, args, false);
/** C_DecryptFinal — §5.9.4. */
export const C_DecryptFinal = (ctx: DecideContext, args: CallArgs["C_DecryptFinal"]) => final(ctx, args, false);
