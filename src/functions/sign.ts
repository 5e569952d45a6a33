/**
 * Signing and verifying with MACs (PKCS#11 v2.40 §5.11, §5.12): C_SignInit, C_Sign, C_SignUpdate, C_SignFinal,
 * C_VerifyInit, C_Verify, C_VerifyUpdate, C_VerifyFinal for CKM_MD5_HMAC, CKM_SHA_1_HMAC, CKM_SHA224_HMAC,
 * CKM_SHA256_HMAC, CKM_SHA384_HMAC, CKM_SHA512_HMAC, and (default profile only: SoftHSM 2.6.1 has none) their
 * _GENERAL variants. Inits: functions/crypto-op.ts. Steps, as SoftHSM runs them (MacSign, MacSignUpdate, MacSignFinal,
 * MacVerify, MacVerifyUpdate, MacVerifyFinal in src/lib/SoftHSM.cpp):
 *
 * | step           | checks after "a sign / verify operation runs"                                      |
 * |----------------|------------------------------------------------------------------------------------|
 * | C_Sign         | after an update → OPERATION_NOT_INITIALIZED, ending it; size query / BUFFER_TOO_SMALL keep it; else the MAC, ending it |
 * | C_SignUpdate   | feeds the data; single-part C_Sign is no longer allowed                            |
 * | C_SignFinal    | size query / BUFFER_TOO_SMALL keep it; else the MAC, ending it                      |
 * | C_Verify       | after an update → OPERATION_NOT_INITIALIZED; MAC length wrong → SIGNATURE_LEN_RANGE; MAC wrong → SIGNATURE_INVALID; all end it |
 * | C_VerifyUpdate | as C_SignUpdate                                                                    |
 * | C_VerifyFinal  | SIGNATURE_LEN_RANGE / SIGNATURE_INVALID / OK, all ending it                         |
 *
 * NULL pointers (data, signature, the length pointer) are CKR_ARGUMENTS_BAD before the session is looked up.
 * C_Verify answers OK or an error; pkcs11js turns OK into `true` and throws on the errors.
 */
import type { CallArgs } from "../events/calls.js";
import { macStream } from "../crypto/mechanisms/lookup.js";
import type { HmacParams, HmacState } from "../crypto/mechanisms/index.js";
import type { CryptoOp } from "../model/state.js";
import { answer, type DecideContext, type Decision } from "./context.js";
import { isRsaOp, rsaSign, rsaSignFinal, rsaSignUpdate, rsaVerify, rsaVerifyFinal, rsaVerifyUpdate } from "./rsa.js";
import { ended, endWith, isDecision, keyedInit, keyOf, runtimeParams, sizeAnswer, stepOpening, updated, type PlainParams } from "./crypto-op.js";

function macOf(op: CryptoOp) {
  const stream = macStream(op.mechanism);
  const params = runtimeParams(op.params as PlainParams) as HmacParams | undefined;
  return { stream, params, size: stream.macLength(params) };
}

/** C_SignInit — §5.11.1. */
export const C_SignInit = (ctx: DecideContext, args: CallArgs["C_SignInit"]) => keyedInit(ctx, args, "sign");

/** C_Sign — §5.11.2. */
export function C_Sign(ctx: DecideContext, args: CallArgs["C_Sign"]): Decision {
  const ref = stepOpening(ctx, args.hSession, "sign", args.data === null || args.pulLen === null);
  if (isDecision(ref)) return ref;
  const op = ref.session.op as CryptoOp;
  if (isRsaOp(op)) return rsaSign(ctx, ref, op, args.data!, args.outLen);
  if (op.updated) return endWith(ctx, args.hSession, "CKR_OPERATION_NOT_INITIALIZED");
  const { stream, params, size } = macOf(op);
  const early = sizeAnswer(args.outLen, size);
  if (early) return early;
  const r = stream.once(keyOf(op, ctx.shell.unseal), params, args.data!);
  if (!r.ok) return endWith(ctx, args.hSession, r.rv);
  return answer("CKR_OK", { data: r.out, length: r.out.length }, [ended(ctx, args.hSession)]);
}

/** C_SignUpdate — §5.11.3. The data is sealed into the fact (replay feeds it again; the log cannot read it). */
export function C_SignUpdate(ctx: DecideContext, args: CallArgs["C_SignUpdate"]): Decision {
  const ref = stepOpening(ctx, args.hSession, "sign", args.data === null);
  if (isDecision(ref)) return ref;
  const op = ref.session.op as CryptoOp;
  if (isRsaOp(op)) return rsaSignUpdate(ctx, ref, op, args.data!, () => updated(ctx, args.hSession, args.data!));
  return answer("CKR_OK", undefined, [updated(ctx, args.hSession, args.data!)]);
}

/** C_SignFinal — §5.11.4. */
export function C_SignFinal(ctx: DecideContext, args: CallArgs["C_SignFinal"]): Decision {
  const ref = stepOpening(ctx, args.hSession, "sign", args.pulLen === null);
  if (isDecision(ref)) return ref;
  const op = ref.session.op as CryptoOp;
  if (isRsaOp(op)) return rsaSignFinal(ctx, ref, op, args.outLen);
  const { stream, size } = macOf(op);
  const early = sizeAnswer(args.outLen, size);
  if (early) return early;
  const mac = stream.final(keyOf(op, ctx.shell.unseal), op.state as HmacState);
  return answer("CKR_OK", { data: mac, length: mac.length }, [ended(ctx, args.hSession)]);
}

/** C_VerifyInit — §5.12.1. */
export const C_VerifyInit = (ctx: DecideContext, args: CallArgs["C_VerifyInit"]) => keyedInit(ctx, args, "verify");

/** C_Verify — §5.12.2. Every answer but a refusal before the operation check ends the operation. */
export function C_Verify(ctx: DecideContext, args: CallArgs["C_Verify"]): Decision {
  const ref = stepOpening(ctx, args.hSession, "verify", args.data === null || args.signature === null);
  if (isDecision(ref)) return ref;
  const op = ref.session.op as CryptoOp;
  if (isRsaOp(op)) return rsaVerify(ctx, ref, op, args.data!, args.signature!);
  if (op.updated) return endWith(ctx, args.hSession, "CKR_OPERATION_NOT_INITIALIZED");
  const { stream, params } = macOf(op);
  const r = stream.verifyOnce(keyOf(op, ctx.shell.unseal), params, args.data!, args.signature!);
  return endWith(ctx, args.hSession, r.ok ? "CKR_OK" : r.rv);
}

/** C_VerifyUpdate — §5.12.3. */
export function C_VerifyUpdate(ctx: DecideContext, args: CallArgs["C_VerifyUpdate"]): Decision {
  const ref = stepOpening(ctx, args.hSession, "verify", args.data === null);
  if (isDecision(ref)) return ref;
  const op = ref.session.op as CryptoOp;
  if (isRsaOp(op)) return rsaVerifyUpdate(ctx, ref, op, () => updated(ctx, args.hSession, args.data!));
  return answer("CKR_OK", undefined, [updated(ctx, args.hSession, args.data!)]);
}

/** C_VerifyFinal — §5.12.4. */
export function C_VerifyFinal(ctx: DecideContext, args: CallArgs["C_VerifyFinal"]): Decision {
  const ref = stepOpening(ctx, args.hSession, "verify", args.signature === null);
  if (isDecision(ref)) return ref;
  const op = ref.session.op as CryptoOp;
  if (isRsaOp(op)) return rsaVerifyFinal(ctx, ref, op, args.signature!);
  const r = macOf(op).stream.verifyFinal(keyOf(op, ctx.shell.unseal), op.state as HmacState, args.signature!);
  return endWith(ctx, args.hSession, r.ok ? "CKR_OK" : r.rv);
}
