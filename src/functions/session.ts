/**
 * Session management (PKCS#11 v2.40 §5.6): C_OpenSession, C_CloseSession, C_CloseAllSessions, C_GetSessionInfo,
 * C_GetOperationState, C_SetOperationState, C_Login, C_Logout. Fact sheet §9-§15.
 *
 * The login / SO / RO rules are the slot chart's (machines/slot.ts); this file checks the arguments in SoftHSM's
 * order, asks the chart, and turns its outcome into facts.
 */
import type { CallArgs, SessionInfo } from "../events/calls.js";
import type { Fact, Role } from "../events/types.js";
import { toBytes } from "../crypto/encoding.js";
import type { PinCheck, SlotDecision } from "../machines/slot.js";
import type { AppSlotState, SessionState, TokenState } from "../model/state.js";
import { isLocked, sessionState } from "../projections/read-model.js";
import { getOperationState, setOperationState } from "./operation-state.js";
import { answer, CK, findSession, firstFailure, looks, nextHandle, pinsOf, reject, type DecideContext, type Decision } from "./context.js";

/** C_OpenSession — §5.6.1. phSession before the slot; the SERIAL flag before "token initialised" (§9). */
export function C_OpenSession(ctx: DecideContext, args: CallArgs["C_OpenSession"]): Decision {
  const { state } = ctx;
  const slot = ctx.app?.slots.get(args.slotID);
  const token = slot?.token ? state.tokens.get(slot.token) : undefined;
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.phSession === null, "CKR_ARGUMENTS_BAD"],
    [!slot, "CKR_SLOT_ID_INVALID"],
    [(args.flags & CK.CKF_SERIAL_SESSION) === 0, "CKR_SESSION_PARALLEL_NOT_SUPPORTED"],
    [!token?.initialized, "CKR_TOKEN_NOT_RECOGNIZED"],
  ]);
  if (rv) return reject(rv);
  // Unknown flag bits are ignored (SoftHSM: SERIAL|0x100 opens, and reports flags 0x4).
  const rw = (args.flags & CK.CKF_RW_SESSION) !== 0;
  const { maxSessions, maxRwSessions } = state.profile;
  const limitReached =
    (maxSessions > 0 && token!.sessions >= maxSessions) || (rw && maxRwSessions > 0 && token!.rwSessions >= maxRwSessions);
  const d = slot!.actor.decide({ type: "OpenSession", rw, limitReached });
  if (d.rv !== "CKR_OK") return reject(d.rv);
  const handle = nextHandle(ctx, "session");
  return answer("CKR_OK", { hSession: handle }, [
    { type: "SessionOpened", app: ctx.appId, slotID: args.slotID, token: token!.id, handle, rw },
  ]);
}

/**
 * The facts of closing sessions on one slot. SoftHSM §10/§11: the sessions go (with the session objects they
 * created); when none is left, every object handle of the slot is dropped and the token is logged out.
 */
function closeFacts(ctx: DecideContext, slot: AppSlotState, handle: number | "all"): Fact[] {
  const facts: Fact[] =
    handle === "all"
      ? [{ type: "AllSessionsClosed", app: ctx.appId, slotID: slot.slotID, count: slot.sessions.size }]
      : [{ type: "SessionClosed", app: ctx.appId, handle }];
  if (handle === "all" || slot.sessions.size === 1) {
    facts.push({ type: "ObjectHandlesInvalidated", app: ctx.appId, slotID: slot.slotID, scope: "all" });
    if (slot.actor.login !== "public") facts.push({ type: "LoggedOut", app: ctx.appId, slotID: slot.slotID });
  }
  return facts;
}

/** C_CloseSession — §5.6.2. */
export function C_CloseSession(ctx: DecideContext, args: CallArgs["C_CloseSession"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv) return reject(rv);
  return answer("CKR_OK", undefined, closeFacts(ctx, ref!.slot, args.hSession));
}

/** C_CloseAllSessions — §5.6.3. OK for a slot with no sessions, and it logs the token out regardless. */
export function C_CloseAllSessions(ctx: DecideContext, args: CallArgs["C_CloseAllSessions"]): Decision {
  const slot = ctx.app?.slots.get(args.slotID);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!slot, "CKR_SLOT_ID_INVALID"],
  ]);
  if (rv) return reject(rv);
  return answer("CKR_OK", undefined, closeFacts(ctx, slot!, "all"));
}

/** C_GetSessionInfo — §5.6.4, answered by the read model. The session is checked before the pointer. */
export function C_GetSessionInfo(ctx: DecideContext, args: CallArgs["C_GetSessionInfo"]): Decision {
  const view = ctx.appId === 0 ? undefined : ctx.read.session(ctx.appId, args.hSession);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!view, "CKR_SESSION_HANDLE_INVALID"],
    [args.pInfo === null, "CKR_ARGUMENTS_BAD"],
  ]);
  if (rv) return reject(rv);
  const info: SessionInfo = {
    slotID: view!.slotID,
    state: sessionState(ctx.read.login(ctx.appId, view!.slotID), view!.rw),
    flags: CK.CKF_SERIAL_SESSION | (view!.rw ? CK.CKF_RW_SESSION : 0),
    deviceError: 0,
  };
  return answer("CKR_OK", info);
}

function notSupportedAfterSession(ctx: DecideContext, hSession: number): Decision {
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [() => !findSession(ctx, hSession), "CKR_SESSION_HANDLE_INVALID"],
  ]);
  return reject(rv ?? "CKR_FUNCTION_NOT_SUPPORTED");
}

/** C_GetOperationState — §5.6.5. SoftHSM: not supported, whatever the arguments (§14); default: functions/operation-state.ts. */
export const C_GetOperationState = (ctx: DecideContext, a: CallArgs["C_GetOperationState"]) =>
  ctx.state.profile.saveOperations ? getOperationState(ctx, a) : notSupportedAfterSession(ctx, a.hSession);
/** C_SetOperationState — §5.6.6. SoftHSM: not supported, whatever the arguments (§14); default: operation-state.ts. */
export const C_SetOperationState = (ctx: DecideContext, a: CallArgs["C_SetOperationState"]) =>
  ctx.state.profile.saveOperations ? setOperationState(ctx, a) : notSupportedAfterSession(ctx, a.hSession);

function pinCheck(ctx: DecideContext, token: TokenState, role: Role, pin: Uint8Array): PinCheck {
  const verifier = pinsOf(ctx, token)[role];
  const locked = isLocked(token.failures[role], ctx.state.profile);
  // Only compute the MAC when the chart could reach the comparison.
  return { initialized: verifier !== null, locked, matches: !locked && ctx.shell.pinMatches(verifier, pin) };
}

function loginFacts(ctx: DecideContext, session: SessionState, d: SlotDecision): Fact[] {
  const o = d.outcome;
  if (!o) return [];
  switch (o.kind) {
    // Past the early checks SoftHSM refreshes its view of the token before comparing the PIN (rule O1).
    case "loggedIn":
      return [
        ...looks(ctx, session.token),
        { type: "LoggedIn", app: ctx.appId, slotID: session.slotID, token: session.token, role: o.role },
      ];
    case "pinRejected":
      return [...looks(ctx, session.token), { type: "PinRejected", app: ctx.appId, token: session.token, role: o.role }];
    case "loggedOut":
      return [{ type: "LoggedOut", app: ctx.appId, slotID: session.slotID }];
    case "reauthenticated":
      return [
        ...looks(ctx, session.token),
        { type: "Reauthenticated", app: ctx.appId, session: session.handle, token: session.token, role: o.role },
      ];
    default:
      return [];
  }
}

/** C_Login — §5.6.7. A NULL PIN is checked before the user type (§15). */
export function C_Login(ctx: DecideContext, args: CallArgs["C_Login"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
    [args.pin === null, "CKR_ARGUMENTS_BAD"],
    [
      args.userType !== CK.CKU_SO && args.userType !== CK.CKU_USER && args.userType !== CK.CKU_CONTEXT_SPECIFIC,
      "CKR_USER_TYPE_INVALID",
    ],
  ]);
  if (rv) return reject(rv);
  const { session, slot } = ref!;
  const token = ctx.state.tokens.get(session.token)!;
  const pin = toBytes(args.pin!);
  let d: SlotDecision;
  if (args.userType === CK.CKU_SO) {
    d = slot.actor.decide({ type: "LoginSO", pin: pinCheck(ctx, token, "so", pin), ro: slot.roSessions });
  }
  else if (args.userType === CK.CKU_USER) {
    d = slot.actor.decide({ type: "LoginUser", pin: pinCheck(ctx, token, "user", pin) });
  } else {
    // Re-authentication needs a sign or decrypt operation whose key has CKA_ALWAYS_AUTHENTICATE, which SoftHSM reads
    // only on its asymmetric paths (docs/notes/softhsm-keys.md §3): an RSA private key's sign or decrypt here. The
    // session chart says whether one is pending; without it the slot chart answers CKR_OPERATION_NOT_INITIALIZED
    // (during an HMAC too, as SoftHSM does) and the PINs are not compared.
    const pending = slot.actor.reauthPending(session.handle);
    const none: PinCheck = { initialized: true, locked: false, matches: false };
    const role = slot.actor.login;
    d = slot.actor.decide({
      type: "LoginContext",
      reauthPending: pending,
      so: pending && role === "so" ? pinCheck(ctx, token, "so", pin) : none,
      user: pending && role === "user" ? pinCheck(ctx, token, "user", pin) : none,
    });
  }
  return answer(d.rv, undefined, loginFacts(ctx, session, d));
}

/** C_Logout — §5.6.8. Any session of the slot may log it out; active operations are not ended (§15). */
export function C_Logout(ctx: DecideContext, args: CallArgs["C_Logout"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv) return reject(rv);
  const d = ref!.slot.actor.decide({ type: "Logout" });
  return answer(d.rv, undefined, loginFacts(ctx, ref!.session, d));
}
