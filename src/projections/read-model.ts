/**
 * The read model: folds call records' facts into the views that answer C_GetSessionInfo, C_GetTokenInfo,
 * C_GetSlotList and C_GetSlotInfo. It never reads the write model; a remote client or a projection process can build
 * the same views from the same log.
 *
 * Shape, chosen for the O(1) budget (an immer `produce` over one Map of 10k sessions costs 1-3 ms here):
 * - `sessions` is a flat index (application -> handle -> record); each record is small, frozen, and never updated,
 *   because nothing about a session changes after it opens except the login state of its slot, which lives in the
 *   application view. A session's CKS_* state is computed on read (sessionState below).
 * - token views and application views are small immutable records, each updated with immer's `produce`.
 */
import { produce, freeze } from "immer";
import type { Fact, Login } from "../events/types.js";
import { CK } from "../pkcs11/constants.js";
import type { Profile } from "../pkcs11/profiles.js";

export interface TokenView {
  id: string;
  initialized: boolean;
  serial: string;
  label: string;
  userPinSet: boolean;
  failures: { so: number; user: number };
}

/** Open sessions on a token, all applications: counted in place, they change on every open and close. */
export interface SessionCounts {
  sessions: number;
  rwSessions: number;
}

export interface SlotView {
  slotID: number;
  token: string | null;
}

export interface AppView {
  id: number;
  slots: readonly SlotView[];
  logins: Readonly<Record<number, Login>>;
}

export interface SessionView {
  readonly handle: number;
  readonly slotID: number;
  readonly token: string;
  readonly rw: boolean;
}

/**
 * CKS_* from (login state of the slot, RW flag): fact sheet §13. Never stored per session.
 *
 * | login \ session | RO                    | RW                    |
 * |-----------------|-----------------------|-----------------------|
 * | so              | (cannot exist)        | CKS_RW_SO_FUNCTIONS   |
 * | user            | CKS_RO_USER_FUNCTIONS | CKS_RW_USER_FUNCTIONS |
 * | public          | CKS_RO_PUBLIC_SESSION | CKS_RW_PUBLIC_SESSION |
 */
export function sessionState(login: Login, rw: boolean): number {
  if (login === "so") return CK.CKS_RW_SO_FUNCTIONS;
  if (login === "user") return rw ? CK.CKS_RW_USER_FUNCTIONS : CK.CKS_RO_USER_FUNCTIONS;
  return rw ? CK.CKS_RW_PUBLIC_SESSION : CK.CKS_RO_PUBLIC_SESSION;
}

/** Token flags as PKCS#11 v2.40 §3.2 defines them, from a token view (fact sheet §6 for SoftHSM's choices). */
export function tokenFlags(t: TokenView | undefined, profile: Profile): number {
  if (!t || !t.initialized) {
    // SoftHSM's uninitialised token: RNG | LOGIN_REQUIRED | RESTORE_KEY_NOT_NEEDED | SO_PIN_LOCKED | SO_PIN_TO_BE_CHANGED.
    return CK.CKF_RNG | CK.CKF_LOGIN_REQUIRED | CK.CKF_RESTORE_KEY_NOT_NEEDED | CK.CKF_SO_PIN_LOCKED | CK.CKF_SO_PIN_TO_BE_CHANGED;
  }
  let f = CK.CKF_RNG | CK.CKF_LOGIN_REQUIRED | CK.CKF_RESTORE_KEY_NOT_NEEDED | CK.CKF_TOKEN_INITIALIZED;
  if (t.userPinSet) f |= CK.CKF_USER_PIN_INITIALIZED;
  f |= pinFlags(t.failures.user, profile.pinRetries, CK.CKF_USER_PIN_COUNT_LOW, CK.CKF_USER_PIN_FINAL_TRY, CK.CKF_USER_PIN_LOCKED);
  f |= pinFlags(t.failures.so, profile.pinRetries, CK.CKF_SO_PIN_COUNT_LOW, CK.CKF_SO_PIN_FINAL_TRY, CK.CKF_SO_PIN_LOCKED);
  return f;
}

function pinFlags(failures: number, retries: number, countLow: number, finalTry: number, locked: number): number {
  let f = failures > 0 ? countLow : 0;
  if (retries > 0) {
    if (failures >= retries) f |= locked;
    else if (failures === retries - 1) f |= finalTry;
  }
  return f;
}

export function isLocked(failures: number, profile: Profile): boolean {
  return profile.pinRetries > 0 && failures >= profile.pinRetries;
}

export class ReadModel {
  readonly tokens = new Map<string, TokenView>();
  readonly apps = new Map<number, AppView>();
  readonly sessions = new Map<number, Map<number, SessionView>>();
  readonly counts = new Map<string, SessionCounts>();
  /** Sequence of the last record folded in. */
  position = 0;

  constructor(readonly profile: Profile, fixedTokens: readonly string[] = []) {
    for (const id of fixedTokens) this.tokens.set(id, emptyToken(id));
  }

  apply(record: { readonly seq: number; readonly facts: readonly Fact[] }): void {
    this.applyFacts(record.seq, record.facts);
  }

  applyFacts(seq: number, facts: readonly Fact[]): void {
    for (let i = 0; i < facts.length; i++) this.applyFact(facts[i]!);
    this.position = seq;
  }

  session(app: number, handle: number): SessionView | undefined {
    return this.sessions.get(app)?.get(handle);
  }

  login(app: number, slotID: number): Login {
    return this.apps.get(app)?.logins[slotID] ?? "public";
  }

  private updateToken(id: string, f: (t: TokenView) => void): void {
    const t = this.tokens.get(id) ?? emptyToken(id);
    this.tokens.set(id, produce(t, f));
  }

  private updateApp(id: number, f: (a: AppView) => void): void {
    const a = this.apps.get(id);
    if (a) this.apps.set(id, produce(a, f));
  }

  private applyFact(f: Fact): void {
    switch (f.type) {
      case "ApplicationStarted":
        this.apps.set(f.app, freeze({ id: f.app, slots: f.slots.map((s) => ({ ...s })), logins: {} }, true));
        this.sessions.set(f.app, new Map());
        return;
      case "ApplicationFinalized": {
        for (const s of this.sessions.get(f.app)?.values() ?? []) this.countSession(s, -1);
        this.sessions.delete(f.app);
        this.apps.delete(f.app);
        return;
      }
      case "SlotAdded":
        this.updateApp(f.app, (a) => {
          (a.slots as SlotView[]).push({ slotID: f.slotID, token: null });
        });
        return;
      case "TokenInitialized":
        this.updateToken(f.token, (t) => {
          if (t.initialized) {
            t.userPinSet = false;
            t.failures.user = 0;
          }
          t.initialized = true;
          t.serial = f.serial;
          t.label = f.label;
          t.failures.so = 0;
        });
        this.updateApp(f.app, (a) => {
          const s = (a.slots as SlotView[]).find((x) => x.slotID === f.slotID);
          if (s) s.token = f.token;
        });
        return;
      case "PinRejected":
        this.updateToken(f.token, (t) => {
          t.failures[f.role]++;
        });
        return;
      case "UserPinSet":
        this.updateToken(f.token, (t) => {
          t.userPinSet = true;
          t.failures.user = 0;
        });
        return;
      case "SoPinSet":
        this.updateToken(f.token, (t) => {
          t.failures.so = 0;
        });
        return;
      case "PinAccepted":
        this.updateToken(f.token, (t) => {
          t.failures[f.role] = 0;
        });
        return;
      case "TokenSettingsRestored":
        this.updateToken(f.token, (t) => {
          t.label = f.label;
          t.failures = { ...f.failures };
        });
        return;
      // Login and logout come with every session cycle: their views are rebuilt by hand, as `produce` would (new
      // frozen records for what changed, the rest shared; nothing new when nothing changes), at a tenth of its cost.
      case "LoggedIn": {
        if (this.tokens.get(f.token)?.failures[f.role] !== 0) {
          this.updateToken(f.token, (t) => {
            t.failures[f.role] = 0;
          });
        }
        const a = this.apps.get(f.app);
        if (a && a.logins[f.slotID] !== f.role) this.apps.set(f.app, Object.freeze({ id: a.id, slots: a.slots, logins: loginsWith(a.logins, f.slotID, f.role) }));
        return;
      }
      case "LoggedOut": {
        const a = this.apps.get(f.app);
        if (a && f.slotID in a.logins) this.apps.set(f.app, Object.freeze({ id: a.id, slots: a.slots, logins: loginsWith(a.logins, f.slotID, undefined) }));
        return;
      }
      case "SessionOpened": {
        const v: SessionView = Object.freeze({ handle: f.handle, slotID: f.slotID, rw: f.rw, token: f.token });
        this.sessions.get(f.app)?.set(f.handle, v);
        this.countSession(v, +1);
        return;
      }
      case "AllSessionsClosed": {
        const m = this.sessions.get(f.app);
        if (!m || f.count === 0) return;
        let token: string | undefined;
        let rw = 0;
        let n = 0;
        const onSlot = f.count === m.size; // then every session of the application goes: drop the map whole
        // Values, not entries: this loop runs once per C_CloseAllSessions, mostly before the JIT has optimized it, and
        // an entry's destructuring is the costliest part of an iteration there (the view holds its handle anyway).
        for (const v of m.values()) {
          if (v.slotID !== f.slotID) continue;
          token = v.token;
          n++;
          if (v.rw) rw++;
          if (!onSlot) m.delete(v.handle);
        }
        if (onSlot) this.sessions.set(f.app, new Map());
        const c = token === undefined ? undefined : this.counts.get(token);
        if (c) {
          c.sessions -= n;
          c.rwSessions -= rw;
        }
        return;
      }
      case "SessionClosed": {
        const m = this.sessions.get(f.app);
        const v = m?.get(f.handle);
        if (m && v) {
          m.delete(f.handle);
          this.countSession(v, -1);
        }
        return;
      }
      default:
        return; // objects, handles and operations have no read view yet
    }
  }

  private countSession(v: SessionView, delta: number): void {
    let c = this.counts.get(v.token);
    if (!c) this.counts.set(v.token, (c = { sessions: 0, rwSessions: 0 }));
    c.sessions += delta;
    if (v.rw) c.rwSessions += delta;
  }
}

/**
 * An application's logins with `slotID`'s set to `role` (undefined: removed). Login records are immutable values, so
 * equal ones are one shared object, interned by content; each record also keeps its successors, so a login or logout
 * is two lookups. Building a record per login was most of a replayed C_Login or C_Logout (~1.6 µs: the spread of a
 * record keyed by numbers, then freeze, which moves its elements to a dictionary). There are as many records as
 * combinations of (slot, role) in use.
 */
type Logins = Readonly<Record<number, Login>>;
const LOGINS_BY_CONTENT = new Map<string, Logins>();
const NEXT_LOGINS = new WeakMap<Logins, Map<string, Logins>>();
function loginsWith(from: Logins, slotID: number, role: Login | undefined): Logins {
  let next = NEXT_LOGINS.get(from);
  if (!next) NEXT_LOGINS.set(from, (next = new Map()));
  const change = role === undefined ? `${slotID}` : `${slotID}:${role}`;
  let to = next.get(change);
  if (!to) {
    const copy: Record<number, Login> = { ...from };
    if (role === undefined) delete copy[slotID];
    else copy[slotID] = role;
    const content = Object.entries(copy).join(";");
    to = LOGINS_BY_CONTENT.get(content);
    if (!to) LOGINS_BY_CONTENT.set(content, (to = Object.freeze(copy)));
    next.set(change, to);
  }
  return to;
}

function emptyToken(id: string): TokenView {
  return {
    id,
    initialized: false,
    serial: "",
    label: "",
    userPinSet: false,
    failures: { so: 0, user: 0 },
  };
}
