/**
 * Which token a call record belongs to, for the JetStream store's subjects per token (issue 4, item 1; design:
 * docs/notes/nats-design.md §11). A pure function of the record, so the writer, every reader and the tests agree by
 * construction, with no state to consult.
 *
 * A record belongs to token T when its facts change T's *persistent* state and no other token's: what SoftHSM keeps
 * in the token's directory and what outlives every application — initialisation (serial, label), the SO and user PIN
 * verifiers, the PIN failure counters, the token objects and their attributes, SoftHSM's generation counter. Such a
 * record goes to `<prefix>.<sim>.events.tok.<T>`; every other record (application lifecycle, slot lists, sessions,
 * logouts, operations, session objects, reads, rejections without a fact) goes to `<prefix>.<sim>.events.sim`.
 *
 * | fact                                                              | token whose persistent state it changes          |
 * |-------------------------------------------------------------------|--------------------------------------------------|
 * | TokenInitialized, UserPinSet, SoPinSet, TokenSettingsRestored     | `token` (init, label, serial, PINs, counters)    |
 * | PinRejected, PinAccepted, LoggedIn, Reauthenticated               | `token` (the failure counter moves or clears)    |
 * | ObjectCreated of a token object, ObjectDestroyed, AttributesChanged | the token in the object id `t<token>/<n>`      |
 * | everything else (ApplicationStarted/Finalized, SlotAdded, sessions, LoggedOut, handles, finds, operations, TokenLooked, session objects) | none: application state |
 *
 * Login state, sessions and handles belong to applications (SoftHSM: to processes), not to the token, so a token's
 * subject rebuilds the token alone (src/events/token-replay.ts) and the applications need the whole log. A record
 * whose facts changed two tokens would go to `.sim` (no call does that today: every C_* call acts on one slot's token;
 * test/property/token-replay.property.spec.ts would catch a token state the token's subject cannot rebuild).
 */
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

/** The one token this record's facts change, or undefined (none, or several: the record then goes to `.sim`). */
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
