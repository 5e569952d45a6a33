/**
 * Which token a call record belongs to, for the JetStream store's subjects per token (issue 4, item 1; design:
 * docs/notes/nats-design.md §11).
 *
 * Two rules, the first decides:
 * 1. (correctness; a pure function of the record, `recordToken`) A record whose facts change token T's *persistent*
 *    state, and no other token's, belongs to T. Persistent state is what SoftHSM keeps in the token's directory and
 *    what outlives every application: initialisation (serial, label), the SO and user PIN verifiers, the PIN failure
 *    counters, the token objects and their attributes, SoftHSM's generation counter. One token replays alone from
 *    its subject because of this rule (src/events/token-replay.ts).
 * 2. (affinity; `tokenOfCall`, given by the dispatcher as the store's routing hint) Any other record belongs to the
 *    token the call acted on: the token of its session (hSession) or slot (slotID) before the call. So sessions,
 *    logouts and operations on T's sessions go to T's subject too: a token's subject is the trail of the calls on it,
 *    and a load on one token batches into long messages (group commit batches runs of one subject).
 * Records of neither kind (C_Initialize, C_Finalize, C_GetInfo, slot lists, unknown handles, an application's expiry)
 * go to `<prefix>.<sim>.events.sim`; records of a token T to `<prefix>.<sim>.events.tok.<T>`.
 *
 * | fact                                                              | token whose persistent state it changes          |
 * |-------------------------------------------------------------------|--------------------------------------------------|
 * | TokenInitialized, UserPinSet, SoPinSet, TokenSettingsRestored     | `token` (init, label, serial, PINs, counters)    |
 * | PinRejected, PinAccepted, LoggedIn, Reauthenticated               | `token` (the failure counter moves or clears)    |
 * | ObjectCreated of a token object, ObjectDestroyed, AttributesChanged | the token in the object id `t<token>/<n>`      |
 * | everything else (ApplicationStarted/Finalized, SlotAdded, sessions, LoggedOut, handles, finds, operations, TokenLooked, session objects) | none: application state |
 *
 * Login state, sessions and handles belong to applications (SoftHSM: to processes), not to the token: C_Finalize
 * and an application's expiry end them on `.sim`. So a token's subject rebuilds the token's persistent state alone,
 * and the applications need the whole log. A record whose facts changed two tokens would go to `.sim` (no call does
 * that: every C_* call acts on one slot's token; test/property/token-replay.property.spec.ts would catch a token
 * state the token's subject cannot rebuild).
 */
import type { SimState } from "../model/state.js";
import type { CallRecord, Fact } from "./types.js";

/** The token of a token object id `t<token>/<n>`; undefined for a session object (`a<app>/<n>`). */
export function tokenOfObject(id: string): string | undefined {
  if (id.charCodeAt(0) !== 116 /* 't' */) return undefined;
  const slash = id.indexOf("/");
  return slash > 1 ? id.slice(1, slash) : undefined;
}

/** The token whose persistent state this fact changes, if any (the table above). */
export function factToken(f: Fact): string | undefined {
  switch (f.type) {
    case "TokenInitialized":
    case "UserPinSet":
    case "SoPinSet":
    case "TokenSettingsRestored":
    case "PinRejected":
    case "PinAccepted":
    case "LoggedIn":
    case "Reauthenticated":
      return f.token;
    case "ObjectCreated":
      return f.object.token ? tokenOfObject(f.object.id) : undefined;
    case "ObjectDestroyed":
    case "AttributesChanged":
      return tokenOfObject(f.object);
    case "ApplicationStarted":
    case "ApplicationFinalized":
    case "SlotAdded":
    case "TokenLooked":
    case "LoggedOut":
    case "SessionOpened":
    case "SessionClosed":
    case "AllSessionsClosed":
    case "ObjectHandlesInvalidated":
    case "ObjectHandleIssued":
    case "FindStarted":
    case "FindAdvanced":
    case "DigestStarted":
    case "DigestUpdated":
    case "CryptoStarted":
    case "CryptoUpdated":
    case "OperationRestored":
    case "OperationEnded":
      return undefined;
    default: {
      // A new fact type must be placed in the table: the compiler stops here until it is.
      const unplaced: never = f;
      throw new Error(`factToken: unknown fact ${(unplaced as Fact).type}`);
    }
  }
}

/** The one token this record's facts change (rule 1), or undefined (none, or several). */
export function recordToken(r: CallRecord): string | undefined {
  let token: string | undefined;
  for (const f of r.facts) {
    const t = factToken(f);
    if (t === undefined || t === token) continue;
    if (token !== undefined) return undefined;
    token = t;
  }
  return token;
}

/**
 * Rule 2: the token a call acts on, from the state before it is applied: its session's (hSession) or its slot's
 * (slotID) token; undefined for calls on neither, unknown handles and SoftHSM's uninitialised slot. O(1).
 */
export function tokenOfCall(state: SimState, appId: number, args: unknown): string | undefined {
  if (args === null || typeof args !== "object") return undefined;
  const a = state.apps.get(appId);
  if (!a) return undefined;
  const { hSession, slotID } = args as { hSession?: unknown; slotID?: unknown };
  if (typeof hSession === "number") return a.sessions.get(hSession)?.token;
  if (typeof slotID === "number") return a.slots.get(slotID)?.token ?? undefined;
  return undefined;
}

/**
 * The token whose subject a record goes to: rule 1 if its facts change a token's persistent state (or several tokens':
 * none then), else the dispatcher's hint (rule 2).
 */
export function subjectToken(r: CallRecord, hint: string | undefined): string | undefined {
  let named = false;
  for (const f of r.facts) if (factToken(f) !== undefined) named = true;
  return named ? recordToken(r) : hint;
}
