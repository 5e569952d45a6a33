/**
 * General-purpose functions (PKCS#11 v2.40 §5.4) and the parallel/event stubs (§5.16, §5.17): C_Initialize,
 * C_Finalize, C_GetInfo, C_WaitForSlotEvent, C_GetFunctionStatus, C_CancelFunction. Fact sheet §3 and §14.
 */
import type { CallArgs, ModuleInfo } from "../events/calls.js";
import type { SimState } from "../model/state.js";
import { answer, CK, findSession, firstFailure, reject, slotIdFromSerial, type DecideContext, type Decision } from "./context.js";

/** The slot list an application sees when it starts (fact sheet §5). */
export function initialSlots(state: SimState): { slotID: number; token: string | null }[] {
  if (state.profile.slotNumbering === "fixed") {
    return state.fixedSlots.map((token, slotID) => ({ slotID, token }));
  }
  // SoftHSM: one slot per token, serial-derived IDs in ascending order, then one uninitialised slot numbered by the
  // token count.
  const tokens = state.tokenOrder
    .map((id) => state.tokens.get(id)!)
    .filter((t) => t.initialized)
    .map((t) => ({ slotID: slotIdFromSerial(t.serial), token: t.id as string | null }))
    .sort((a, b) => a.slotID - b.slotID);
  return [...tokens, { slotID: state.tokenOrder.length, token: null }];
}

/** C_Initialize — PKCS#11 v2.40 §5.4.1. */
export function C_Initialize(ctx: DecideContext, args: CallArgs["C_Initialize"]): Decision {
  const init = args.pInitArgs ?? null;
  const mutexes = init?.mutexCallbacks ?? 0;
  const rv = firstFailure([
    [ctx.appId !== 0, "CKR_CRYPTOKI_ALREADY_INITIALIZED"],
    [init !== null && init.pReserved != null, "CKR_ARGUMENTS_BAD"],
    // Some but not all of the four mutex callbacks, whatever the flags (CKF_LIBRARY_CANT_CREATE_OS_THREADS ignored).
    [init !== null && mutexes !== 0 && mutexes !== 4, "CKR_ARGUMENTS_BAD"],
  ]);
  if (rv) return reject(rv);
  const app = ctx.state.nextApp;
  return answer("CKR_OK", { app }, [{ type: "ApplicationStarted", app, slots: initialSlots(ctx.state) }]);
}

/** C_Finalize — §5.4.2. Everything of the application goes; open sessions need not be closed first. */
export function C_Finalize(ctx: DecideContext, args: CallArgs["C_Finalize"]): Decision {
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.pReserved != null, "CKR_ARGUMENTS_BAD"],
  ]);
  if (rv) return reject(rv);
  return answer("CKR_OK", undefined, [{ type: "ApplicationFinalized", app: ctx.appId }]);
}

const pad = (s: string, n: number) => s.padEnd(n, " ");

/** C_GetInfo — §5.4.3. Initialised is checked before the pointer. */
export function C_GetInfo(ctx: DecideContext, args: CallArgs["C_GetInfo"]): Decision {
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.pInfo === null, "CKR_ARGUMENTS_BAD"],
  ]);
  if (rv) return reject(rv);
  const info: ModuleInfo = {
    cryptokiVersion: { major: 2, minor: 40 },
    manufacturerID: pad("SoftHSM", 32),
    flags: 0,
    libraryDescription: pad("Implementation of PKCS11", 32),
    libraryVersion: { major: 2, minor: 6 },
  };
  return answer("CKR_OK", info);
}

/** C_WaitForSlotEvent — §5.5.8. Blocking waits are not supported, and that is checked before initialisation. */
export function C_WaitForSlotEvent(ctx: DecideContext, args: CallArgs["C_WaitForSlotEvent"]): Decision {
  const rv = firstFailure([
    [(args.flags & CK.CKF_DONT_BLOCK) === 0, "CKR_FUNCTION_NOT_SUPPORTED"],
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
  ]);
  return reject(rv ?? "CKR_NO_EVENT");
}

function notParallel(ctx: DecideContext, hSession: number): Decision {
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [() => !findSession(ctx, hSession), "CKR_SESSION_HANDLE_INVALID"],
  ]);
  return reject(rv ?? "CKR_FUNCTION_NOT_PARALLEL");
}

/** C_GetFunctionStatus — §5.17.1, a legacy function: CKR_FUNCTION_NOT_PARALLEL. */
export const C_GetFunctionStatus = (ctx: DecideContext, a: CallArgs["C_GetFunctionStatus"]) => notParallel(ctx, a.hSession);
/** C_CancelFunction — §5.17.2, a legacy function: CKR_FUNCTION_NOT_PARALLEL. */
export const C_CancelFunction = (ctx: DecideContext, a: CallArgs["C_CancelFunction"]) => notParallel(ctx, a.hSession);
