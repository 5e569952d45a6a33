/**
 * Slot and token management (PKCS#11 v2.40 §5.5): C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo, C_InitToken,
 * C_InitPIN, C_SetPIN. Fact sheet §5, §6, §7 and §15. The three read calls are answered from the read model.
 */
import type { CallArgs, SlotInfo, TokenInfo } from "../events/calls.js";
import type { Fact } from "../events/types.js";
import { toBytes } from "../crypto/encoding.js";
import { isLocked, tokenFlags } from "../projections/read-model.js";
import {
  answer,
  CK,
  findSession,
  firstFailure,
  knownAfterLook,
  looks,
  pinsOf,
  MAX_PIN_LEN,
  MIN_PIN_LEN,
  pinLengthBad,
  reject,
  type DecideContext,
  type Decision,
} from "./context.js";

const pad = (s: string, n: number) => s.padEnd(n, " ");

/** C_GetSlotList — §5.5.1. A size query is also where SoftHSM adds a new uninitialised slot (§5). */
export function C_GetSlotList(ctx: DecideContext, args: CallArgs["C_GetSlotList"]): Decision {
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.pulCount === null, "CKR_ARGUMENTS_BAD"],
  ]);
  if (rv) return reject(rv);
  const view = ctx.read.apps.get(ctx.appId)!;
  const facts: Fact[] = [];
  let slots = slotOrder(ctx, view.slots);
  if (args.pSlotList === null) {
    if (ctx.state.profile.slotNumbering === "softhsm" && !view.slots.some((s) => s.token === null)) {
      // A new uninitialised slot, numbered by the tokens in this application's store: those it found at
      // C_Initialize and those it created since (another process's new tokens are not in it).
      const slotID = view.slots.filter((s) => s.token !== null).length;
      facts.push({ type: "SlotAdded", app: ctx.appId, slotID });
      slots = [...slots, slotID];
    }
    return answer("CKR_OK", { slots: [], count: slots.length }, facts);
  }
  if (args.pSlotList < slots.length) return answer("CKR_BUFFER_TOO_SMALL", { slots: [], count: slots.length });
  return answer("CKR_OK", { slots, count: slots.length });
}

/**
 * The order C_GetSlotList reports. Fixed numbering: by slot ID. SoftHSM: initialised tokens first in ascending ID
 * order (a slot initialised in place keeps its small number, so it sorts first), uninitialised slots last (§5).
 */
function slotOrder(ctx: DecideContext, slots: readonly { slotID: number; token: string | null }[]): number[] {
  if (ctx.state.profile.slotNumbering === "fixed") return slots.map((s) => s.slotID).sort((a, b) => a - b);
  const initialized = (s: { token: string | null }) => s.token !== null && !!ctx.read.tokens.get(s.token)?.initialized;
  return [...slots]
    .sort((a, b) => Number(initialized(b)) - Number(initialized(a)) || a.slotID - b.slotID)
    .map((s) => s.slotID);
}

function slotView(ctx: DecideContext, slotID: number) {
  return ctx.read.apps.get(ctx.appId)?.slots.find((s) => s.slotID === slotID);
}

/** C_GetSlotInfo — §5.5.2. The slot is checked before the pointer. */
export function C_GetSlotInfo(ctx: DecideContext, args: CallArgs["C_GetSlotInfo"]): Decision {
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [() => !slotView(ctx, args.slotID), "CKR_SLOT_ID_INVALID"],
    [args.pInfo === null, "CKR_ARGUMENTS_BAD"],
  ]);
  if (rv) return reject(rv);
  const info: SlotInfo = {
    slotDescription: pad(`SoftHSM slot ID 0x${args.slotID.toString(16)}`, 64),
    manufacturerID: pad("SoftHSM project", 32),
    flags: CK.CKF_TOKEN_PRESENT,
    hardwareVersion: { major: 2, minor: 6 },
    firmwareVersion: { major: 2, minor: 6 },
  };
  return answer("CKR_OK", info);
}

/** "YYYYMMDDhhmmss00" in UTC, from the call's time. */
export function utcTime(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, "").slice(0, 14) + "00";
}

/** C_GetTokenInfo — §5.5.3. The slot is checked before the pointer. */
export function C_GetTokenInfo(ctx: DecideContext, args: CallArgs["C_GetTokenInfo"]): Decision {
  const slot = ctx.appId === 0 ? undefined : slotView(ctx, args.slotID);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!slot, "CKR_SLOT_ID_INVALID"],
    [args.pInfo === null, "CKR_ARGUMENTS_BAD"],
  ]);
  if (rv) return reject(rv);
  const profile = ctx.state.profile;
  const t = slot!.token === null ? undefined : ctx.read.tokens.get(slot!.token);
  const initialized = !!t?.initialized;
  const counts = slot!.token === null ? undefined : ctx.read.counts.get(slot!.token);
  const unavailable = CK.CK_UNAVAILABLE_INFORMATION;
  const info: TokenInfo = {
    label: initialized ? t!.label : pad("", 32),
    manufacturerID: pad("SoftHSM project", 32),
    model: pad("SoftHSM v2", 16),
    serialNumber: initialized ? t!.serial : pad("", 16),
    flags: tokenFlags(t, profile),
    maxSessionCount: profile.maxSessions,
    sessionCount: profile.liveSessionCounts ? (counts?.sessions ?? 0) : unavailable,
    maxRwSessionCount: profile.maxRwSessions,
    rwSessionCount: profile.liveSessionCounts ? (counts?.rwSessions ?? 0) : unavailable,
    maxPinLen: MAX_PIN_LEN,
    minPinLen: MIN_PIN_LEN,
    totalPublicMemory: unavailable,
    freePublicMemory: unavailable,
    totalPrivateMemory: unavailable,
    freePrivateMemory: unavailable,
    hardwareVersion: { major: 2, minor: 6 },
    firmwareVersion: { major: 2, minor: 6 },
    utcTime: utcTime(ctx.time),
  };
  // SoftHSM reads the token's settings from disk here, which is also a look at its object list (rule O1).
  return answer("CKR_OK", info, initialized ? looks(ctx, t!.id) : []);
}

/** The 32 label bytes as C_InitToken reads them: exactly 32, space-padded by the caller's binding, never trimmed. */
function labelOf(label: Uint8Array | string): string {
  const b = toBytes(label);
  return pad(Buffer.from(b.subarray(0, 32)).toString("latin1"), 32);
}

/** C_InitToken — §5.5.4. Sessions are checked before the PIN arguments; a bad SO PIN length is PIN_INCORRECT. */
export function C_InitToken(ctx: DecideContext, args: CallArgs["C_InitToken"]): Decision {
  const { state } = ctx;
  const app = ctx.app;
  const slot = app?.slots.get(args.slotID);
  const token = slot?.token ? state.tokens.get(slot.token) : undefined;
  const pin = args.pin === null ? null : toBytes(args.pin);
  const sessionsOpen = () =>
    slot!.sessions.size > 0 || (state.profile.initTokenSeesAllApplications && (token?.sessions ?? 0) > 0);
  const reinit = !!token?.initialized;
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!slot, "CKR_SLOT_ID_INVALID"],
    [sessionsOpen, "CKR_SESSION_EXISTS"],
    [pin === null, "CKR_ARGUMENTS_BAD"],
    [() => pinLengthBad(pin!), "CKR_PIN_INCORRECT"],
    [args.label === null, "CKR_ARGUMENTS_BAD"],
    [() => reinit && isLocked(token!.failures.so, state.profile), "CKR_PIN_LOCKED"],
  ]);
  if (rv) return reject(rv);
  const facts: Fact[] = reinit ? looks(ctx, token!.id) : [];
  let destroyed: string[] | undefined;
  if (reinit) {
    if (!ctx.shell.pinMatches(pinsOf(ctx, token!).so, pin!)) {
      return answer("CKR_PIN_INCORRECT", undefined, [...facts, { type: "PinRejected", app: ctx.appId, token: token!.id, role: "so" }]);
    }
    if (state.profile.processCaches) {
      // SoftHSM deletes the object files it knows of; one already gone (deleted by another process after this one
      // stopped looking) fails the whole reset (rule O7); objects it never saw survive it (rule O6).
      destroyed = [...knownAfterLook(ctx, token!)];
      if (destroyed.some((id) => !token!.objects.has(id))) {
        return answer("CKR_DEVICE_ERROR", undefined, [...facts, { type: "PinAccepted", app: ctx.appId, token: token!.id, role: "so" }]);
      }
    }
  }
  // A new token for SoftHSM's uninitialised slot; a fixed slot's token exists already, uninitialised.
  const tokenId = token?.id ?? `tok${state.tokenOrder.length + 1}`;
  const serial = token?.serial || ctx.shell.newSerial();
  return answer("CKR_OK", undefined, [
    ...facts,
    {
      type: "TokenInitialized",
      app: ctx.appId,
      slotID: args.slotID,
      token: tokenId,
      serial,
      label: labelOf(args.label!),
      // Re-initialisation keeps the SO PIN (it had to match), so the verifier is kept too.
      soPin: reinit ? token!.soPin! : ctx.shell.newPinVerifier(pin!),
      reinit,
      ...(destroyed ? { destroyed } : {}),
    },
  ]);
}

/** C_InitPIN — §5.5.5. Only an SO session may; that is checked before the PIN pointer. */
export function C_InitPIN(ctx: DecideContext, args: CallArgs["C_InitPIN"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const pin = args.pin === null ? null : toBytes(args.pin);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
    [() => ref!.slot.actor.login !== "so", "CKR_USER_NOT_LOGGED_IN"],
    [pin === null, "CKR_ARGUMENTS_BAD"],
    [() => pinLengthBad(pin!), "CKR_PIN_LEN_RANGE"],
  ]);
  if (rv) return reject(rv);
  const tokenId = ref!.session.token;
  const facts: Fact[] = [];
  const cache = ctx.state.profile.processCaches ? ref!.app.caches.get(tokenId) : undefined;
  if (cache) {
    // SoftHSM writes its cached token settings back before refreshing them: whatever another process changed since
    // this one last refreshed (label, SO PIN, failure flags) is reverted (rule P6).
    facts.push({ type: "TokenSettingsRestored", token: tokenId, ...cache.settings, failures: { ...cache.settings.failures } });
    facts.push(...looks(ctx, tokenId));
  }
  facts.push({ type: "UserPinSet", app: ctx.appId, token: tokenId, pin: ctx.shell.newPinVerifier(pin!) });
  return answer("CKR_OK", undefined, facts);
}

/**
 * C_SetPIN — §5.5.6. The new PIN's length is checked before the read-only rule. The session state picks the role:
 * RW public or RW user change the user PIN (even without a login), RW SO changes the SO PIN.
 */
export function C_SetPIN(ctx: DecideContext, args: CallArgs["C_SetPIN"]): Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, args.hSession);
  const oldPin = args.oldPin === null ? null : toBytes(args.oldPin);
  const newPin = args.newPin === null ? null : toBytes(args.newPin);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
    [oldPin === null, "CKR_ARGUMENTS_BAD"],
    [newPin === null, "CKR_ARGUMENTS_BAD"],
    [() => pinLengthBad(newPin!), "CKR_PIN_LEN_RANGE"],
    [() => !ref!.session.rw, "CKR_SESSION_READ_ONLY"],
  ]);
  if (rv) return reject(rv);
  const { session, slot } = ref!;
  const token = ctx.state.tokens.get(session.token)!;
  const role = slot.actor.login === "so" ? "so" : "user";
  const verifier = pinsOf(ctx, token)[role];
  if (isLocked(token.failures[role], ctx.state.profile)) return reject("CKR_PIN_LOCKED");
  const looked = looks(ctx, token.id);
  if (!ctx.shell.pinMatches(verifier, oldPin!)) {
    return answer("CKR_PIN_INCORRECT", undefined, [...looked, { type: "PinRejected", app: ctx.appId, token: token.id, role }]);
  }
  const pin = ctx.shell.newPinVerifier(newPin!);
  return answer("CKR_OK", undefined, [
    ...looked,
    role === "so" ? { type: "SoPinSet", app: ctx.appId, token: token.id, pin } : { type: "UserPinSet", app: ctx.appId, token: token.id, pin },
  ]);
}
