/**
 * Message digesting (PKCS#11 v2.40 §5.10): C_DigestInit, C_Digest, C_DigestUpdate, C_DigestKey, C_DigestFinal with
 * CKM_MD5, CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384 and CKM_SHA512 (the mechanism registry's digests).
 * Enough to exercise the session rules: one operation per session (the session chart, machines/session.ts),
 * size queries and CKR_BUFFER_TOO_SMALL keep the operation, and closing the session ends it.
 *
 * Output buffers follow §5.2: `outLen === null` is a size query (NULL pDigest) answering the length, a buffer that
 * is too small answers CKR_BUFFER_TOO_SMALL with the length, and neither ends the operation.
 */
import type { CallArgs } from "../events/calls.js";
import { digestEntry, digestStream } from "../crypto/mechanisms/lookup.js";
import type { DigestState } from "../crypto/mechanisms/index.js";
import { resolveObjectHandle, type DigestOp } from "../model/state.js";
import { answer, CK, findSession, firstFailure, isDecision, reject, startOperation, type DecideContext, type Decision, type SessionRef } from "./context.js";
import { boolAttr } from "./crypto-op.js";
import { keyValueOf } from "../model/key-material.js";
import { readAccess } from "./objects.js";

/** C_DigestInit — §5.10.1. */
export function C_DigestInit(ctx: DecideContext, args: CallArgs["C_DigestInit"]): Decision {
  const ref = startOperation(ctx, args.hSession, args.mechanism === null, "digest");
  if (isDecision(ref)) return ref;
  const { session, slot } = ref;
  const mech = args.mechanism!;
  if (!digestEntry(mech.mechanism)) return reject("CKR_MECHANISM_INVALID");
  return answer("CKR_OK", undefined, [
    { type: "DigestStarted", app: ctx.appId, session: session.handle, mechanism: mech.mechanism },
  ]);
}

/** The common opening of the step functions: init, pointers, session, then "a digest is running" (the chart). */
function digestStep(ctx: DecideContext, hSession: number, nullArg: boolean): SessionRef | Decision {
  const ref = startOperation(ctx, hSession, nullArg, "digest", "Step");
  if (isDecision(ref)) return ref;
  // A digest rebuilt from a log without its simulator key has no state (model/evolve.ts).
  if ((ref.session.op as DigestOp).state === null) return reject("CKR_GENERAL_ERROR");
  return ref;
}


function ended(ctx: DecideContext, hSession: number) {
  return { type: "OperationEnded" as const, app: ctx.appId, session: hSession };
}

/** Finish a digest into the caller's buffer, or answer its size without ending the operation. */
function finish(ctx: DecideContext, ref: SessionRef, outLen: number | null, data: Uint8Array | null): Decision {
  const op = ref.session.op as DigestOp;
  const stream = digestStream(op.mechanism);
  const size = stream.size;
  if (outLen === null) return answer("CKR_OK", { digest: null, length: size });
  if (outLen < size) return answer("CKR_BUFFER_TOO_SMALL", { digest: null, length: size });
  // States are values: finishing reads the state and changes nothing (the operation ends by the fact). A digest that
  // was never fed takes the single-part path (node's OpenSSL), the others finish their plain-data context.
  const state = op.state as DigestState;
  const digest = !op.updated && data ? stream.once(data) : stream.final(data ? stream.update(state, data) : state);
  return answer("CKR_OK", { digest, length: size }, [ended(ctx, ref.session.handle)]);
}

/** C_Digest — §5.10.2. Single-part: it ends the operation. */
export function C_Digest(ctx: DecideContext, args: CallArgs["C_Digest"]): Decision {
  const ref = digestStep(ctx, args.hSession, args.data === null);
  if (isDecision(ref)) return ref;
  return finish(ctx, ref, args.outLen, args.data);
}

/** C_DigestUpdate — §5.10.3. The data is sealed into the fact: replay needs it, the log must not show it. */
export function C_DigestUpdate(ctx: DecideContext, args: CallArgs["C_DigestUpdate"]): Decision {
  const ref = digestStep(ctx, args.hSession, args.data === null);
  if (isDecision(ref)) return ref;
  return answer("CKR_OK", undefined, [
    { type: "DigestUpdated", app: ctx.appId, session: args.hSession, sealed: ctx.shell.seal(args.data!) },
  ]);
}

/** C_DigestFinal — §5.10.5. */
export function C_DigestFinal(ctx: DecideContext, args: CallArgs["C_DigestFinal"]): Decision {
  const ref = digestStep(ctx, args.hSession, false);
  if (isDecision(ref)) return ref;
  return finish(ctx, ref, args.outLen, null);
}

/**
 * C_DigestKey — §5.10.4. SoftHSM 2.6.1's order (C_DigestKey in src/lib/SoftHSM.cpp; docs/notes/softhsm-keys.md §2):
 * init, session, "a digest is running" (OPERATION_NOT_INITIALIZED), the handle (KEY_HANDLE_INVALID, the one init-like
 * call that uses it), read access (a private object from a public session → CKR_GENERAL_ERROR, since
 * USER_NOT_LOGGED_IN is not a valid code here), then MD5 only: an unextractable or sensitive key → KEY_INDIGESTIBLE;
 * any object without CKA_VALUE → KEY_INDIGESTIBLE. SHA-1/2 digest any value, sensitive or not. The value is fed to the
 * digest sealed, as C_DigestUpdate's data is.
 */
export function C_DigestKey(ctx: DecideContext, args: CallArgs["C_DigestKey"]): Decision {
  const ref = digestStep(ctx, args.hSession, false);
  if (isDecision(ref)) return ref;
  const found = resolveObjectHandle(ctx.state, ref.app, args.hKey);
  if (!found) return reject("CKR_KEY_HANDLE_INVALID");
  const o = found.object;
  const op = ref.session.op as DigestOp;
  const value = keyValueOf(o);
  const rv = firstFailure([
    [!readAccess(ref.slot.actor.login, o.private), "CKR_GENERAL_ERROR"],
    [op.mechanism === CK.CKM_MD5 && (!boolAttr(o, CK.CKA_EXTRACTABLE) || boolAttr(o, CK.CKA_SENSITIVE)), "CKR_KEY_INDIGESTIBLE"],
    [value === undefined, "CKR_KEY_INDIGESTIBLE"],
  ]);
  if (rv) return reject(rv);
  return answer("CKR_OK", undefined, [
    { type: "DigestUpdated", app: ctx.appId, session: args.hSession, sealed: ctx.shell.seal(value!) },
  ]);
}
