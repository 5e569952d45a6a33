/**
 * The slot statechart: one per (application, slot). It owns the application's login state on the slot and the
 * counts of its read-only and read/write sessions there, and it encodes the login / SO / RO rules of PKCS#11 v2.40
 * §5.6 as SoftHSM 2.6.1 applies them (fact sheet §9, §13, §15).
 *
 * Two kinds of events:
 * - commands (`LoginSO`, `LoginUser`, `LoginContext`, `Logout`, `OpenSession`) change nothing: guards pick the answer,
 *   in the fact sheet's check order, and the machine `emit`s a `decision` (an rv and the facts to record);
 * - facts (`LoggedIn`, `LoggedOut`) are the only transitions.
 * So replaying recorded facts rebuilds the chart exactly, without deciding anything again.
 *
 * The chart's states are the login states. How many RO sessions the application has on the slot comes in with the
 * commands that need it (`ro`), counted by the write model: keeping the counts as chart context would cost two more
 * sends on every open and close (~5 µs each here) for no rule the chart does not already see.
 *
 * Login rules, first matching row wins (checks after the session handle and PIN pointer are validated):
 *
 * | state  | C_Login(SO)                                     | C_Login(USER)                                         |
 * |--------|-------------------------------------------------|-------------------------------------------------------|
 * | public | RO session exists → SESSION_READ_ONLY_EXISTS;   | no user PIN → USER_PIN_NOT_INITIALIZED; locked →      |
 * |        | locked → PIN_LOCKED; wrong → PIN_INCORRECT; OK   | PIN_LOCKED; wrong → PIN_INCORRECT; OK                 |
 * | user   | RO session exists → SESSION_READ_ONLY_EXISTS;   | USER_ALREADY_LOGGED_IN                                |
 * |        | USER_ANOTHER_ALREADY_LOGGED_IN                  |                                                       |
 * | so     | USER_ALREADY_LOGGED_IN                          | USER_ANOTHER_ALREADY_LOGGED_IN                        |
 *
 * C_OpenSession: RO requested while SO logged in → SESSION_READ_WRITE_SO_EXISTS; token at its limit → SESSION_COUNT.
 * C_Logout: nobody logged in → OK (softhsm2) or USER_NOT_LOGGED_IN (default profile).
 */
import { emit, setup } from "xstate";
import type { CkrName } from "../pkcs11/constants.js";
import type { Role } from "../events/types.js";

export interface PinCheck {
  /** A PIN for the role exists (CKF_USER_PIN_INITIALIZED for the user). */
  initialized: boolean;
  /** The role is locked out (default profile only). */
  locked: boolean;
  /** The PIN given matches. Computed by the shell; the machine never sees the PIN. */
  matches: boolean;
}

export type SlotCommand =
  | { type: "LoginSO"; pin: PinCheck; ro: number }
  | { type: "LoginUser"; pin: PinCheck }
  | { type: "LoginContext"; reauthPending: boolean; so: PinCheck; user: PinCheck }
  | { type: "Logout" }
  | { type: "OpenSession"; rw: boolean; limitReached: boolean };

export type SlotFactEvent = { type: "LoggedIn"; role: Role } | { type: "LoggedOut" };

/** What the slot decided: an rv and, in order, the facts it asks the dispatcher to record. */
export type SlotOutcome =
  | { kind: "loggedIn"; role: Role }
  | { kind: "loggedOut" }
  | { kind: "pinRejected"; role: Role }
  | { kind: "reauthenticated"; role: Role }
  | { kind: "sessionOpened" };
export interface SlotDecision {
  type: "decision";
  rv: CkrName;
  outcome?: SlotOutcome;
}

export interface SlotContext {
  logoutRequiresLogin: boolean;
}

export interface SlotInput {
  logoutRequiresLogin: boolean;
}

type Answer = { rv: CkrName; outcome?: SlotOutcome };

export const slotMachine = setup({
  types: {
    context: {} as SlotContext,
    events: {} as SlotCommand | SlotFactEvent,
    emitted: {} as SlotDecision,
    input: {} as SlotInput,
  },
  guards: {
    hasReadOnlySession: ({ event }) => event.type === "LoginSO" && event.ro > 0,
    isReadOnlyRequest: ({ event }) => event.type === "OpenSession" && !event.rw,
    isSessionLimitReached: ({ event }) => event.type === "OpenSession" && event.limitReached,
    pinNotInitialized: ({ event }) => "pin" in event && !event.pin.initialized,
    pinLocked: ({ event }) => "pin" in event && event.pin.locked,
    pinIncorrect: ({ event }) => "pin" in event && !event.pin.matches,
    noReauthPending: ({ event }) => event.type === "LoginContext" && !event.reauthPending,
    userPinLocked: ({ event }) => event.type === "LoginContext" && event.user.locked,
    userPinIncorrect: ({ event }) => event.type === "LoginContext" && !event.user.matches,
    soPinLocked: ({ event }) => event.type === "LoginContext" && event.so.locked,
    soPinIncorrect: ({ event }) => event.type === "LoginContext" && !event.so.matches,
    logoutNeedsLogin: ({ context }) => context.logoutRequiresLogin,
  },
  actions: {
    answer: emit((_, params: Answer): SlotDecision => ({ type: "decision", ...params })),
  },
}).createMachine({
  id: "slot",
  context: ({ input }) => ({ logoutRequiresLogin: input.logoutRequiresLogin }),
  initial: "public",
  on: {
    LoggedOut: { target: ".public" },
    // Outside the SO state only the limit can refuse a session; the SO state overrides this with its RO rule.
    OpenSession: [
      { guard: "isSessionLimitReached", actions: { type: "answer", params: { rv: "CKR_SESSION_COUNT" } } },
      { actions: { type: "answer", params: { rv: "CKR_OK", outcome: { kind: "sessionOpened" } } } },
    ],
  },
  states: {
    public: {
      on: {
        LoginSO: [
          { guard: "hasReadOnlySession", actions: { type: "answer", params: { rv: "CKR_SESSION_READ_ONLY_EXISTS" } } },
          { guard: "pinLocked", actions: { type: "answer", params: { rv: "CKR_PIN_LOCKED" } } },
          {
            guard: "pinIncorrect",
            actions: { type: "answer", params: { rv: "CKR_PIN_INCORRECT", outcome: { kind: "pinRejected", role: "so" } } },
          },
          { actions: { type: "answer", params: { rv: "CKR_OK", outcome: { kind: "loggedIn", role: "so" } } } },
        ],
        LoginUser: [
          { guard: "pinNotInitialized", actions: { type: "answer", params: { rv: "CKR_USER_PIN_NOT_INITIALIZED" } } },
          { guard: "pinLocked", actions: { type: "answer", params: { rv: "CKR_PIN_LOCKED" } } },
          {
            guard: "pinIncorrect",
            actions: {
              type: "answer",
              params: { rv: "CKR_PIN_INCORRECT", outcome: { kind: "pinRejected", role: "user" } },
            },
          },
          { actions: { type: "answer", params: { rv: "CKR_OK", outcome: { kind: "loggedIn", role: "user" } } } },
        ],
        // Nobody logged in: there is nobody to re-authenticate (fact sheet §15, CKU_CONTEXT_SPECIFIC b).
        LoginContext: { actions: { type: "answer", params: { rv: "CKR_OPERATION_NOT_INITIALIZED" } } },
        Logout: [
          { guard: "logoutNeedsLogin", actions: { type: "answer", params: { rv: "CKR_USER_NOT_LOGGED_IN" } } },
          // SoftHSM: logging out twice is OK twice, and changes nothing.
          { actions: { type: "answer", params: { rv: "CKR_OK" } } },
        ],
        LoggedIn: [
          { guard: ({ event }) => event.role === "so", target: "so" },
          { target: "user" },
        ],
      },
    },
    user: {
      on: {
        LoginSO: [
          { guard: "hasReadOnlySession", actions: { type: "answer", params: { rv: "CKR_SESSION_READ_ONLY_EXISTS" } } },
          { actions: { type: "answer", params: { rv: "CKR_USER_ANOTHER_ALREADY_LOGGED_IN" } } },
        ],
        LoginUser: { actions: { type: "answer", params: { rv: "CKR_USER_ALREADY_LOGGED_IN" } } },
        LoginContext: [
          { guard: "noReauthPending", actions: { type: "answer", params: { rv: "CKR_OPERATION_NOT_INITIALIZED" } } },
          { guard: "userPinLocked", actions: { type: "answer", params: { rv: "CKR_PIN_LOCKED" } } },
          {
            guard: "userPinIncorrect",
            actions: {
              type: "answer",
              params: { rv: "CKR_PIN_INCORRECT", outcome: { kind: "pinRejected", role: "user" } },
            },
          },
          { actions: { type: "answer", params: { rv: "CKR_OK", outcome: { kind: "reauthenticated", role: "user" } } } },
        ],
        Logout: { actions: { type: "answer", params: { rv: "CKR_OK", outcome: { kind: "loggedOut" } } } },
      },
    },
    so: {
      on: {
        // An RO session cannot exist while the SO is logged in, so SESSION_READ_ONLY_EXISTS cannot fire here.
        LoginSO: { actions: { type: "answer", params: { rv: "CKR_USER_ALREADY_LOGGED_IN" } } },
        LoginUser: { actions: { type: "answer", params: { rv: "CKR_USER_ANOTHER_ALREADY_LOGGED_IN" } } },
        LoginContext: [
          { guard: "noReauthPending", actions: { type: "answer", params: { rv: "CKR_OPERATION_NOT_INITIALIZED" } } },
          { guard: "soPinLocked", actions: { type: "answer", params: { rv: "CKR_PIN_LOCKED" } } },
          {
            guard: "soPinIncorrect",
            actions: { type: "answer", params: { rv: "CKR_PIN_INCORRECT", outcome: { kind: "pinRejected", role: "so" } } },
          },
          { actions: { type: "answer", params: { rv: "CKR_OK", outcome: { kind: "reauthenticated", role: "so" } } } },
        ],
        Logout: { actions: { type: "answer", params: { rv: "CKR_OK", outcome: { kind: "loggedOut" } } } },
        OpenSession: [
          {
            guard: "isReadOnlyRequest",
            actions: { type: "answer", params: { rv: "CKR_SESSION_READ_WRITE_SO_EXISTS" } },
          },
          { guard: "isSessionLimitReached", actions: { type: "answer", params: { rv: "CKR_SESSION_COUNT" } } },
          { actions: { type: "answer", params: { rv: "CKR_OK", outcome: { kind: "sessionOpened" } } } },
        ],
      },
    },
  },
});
