/**
 * The session statechart: a session's single operation slot (fact sheet §17). SoftHSM keeps one "current operation"
 * per session for every kind (find, digest, encrypt, decrypt, sign, verify), so starting any operation while another
 * is active answers CKR_OPERATION_ACTIVE, and a step of a kind that is not running answers
 * CKR_OPERATION_NOT_INITIALIZED. Operations end on their final call, on most step errors, and when the session
 * closes; not on a size query, CKR_BUFFER_TOO_SMALL or C_Logout.
 *
 * Facts (`OperationStarted`, `OperationEnded`) are the only transitions. The rule itself is written on the states as
 * tags: an active state carries `operation` and its kind. A decider asks `operationRule` with the current snapshot,
 * which reads tags and sends nothing: operation calls are the hottest path, and each send costs ~5 µs here.
 *
 * | state      | tags               | start any operation | step of its own kind | step of any other kind     |
 * |------------|--------------------|---------------------|----------------------|----------------------------|
 * | idle       |                    | OK                  | —                    | OPERATION_NOT_INITIALIZED  |
 * | finding    | operation, find    | OPERATION_ACTIVE    | OK                   | OPERATION_NOT_INITIALIZED  |
 * | digesting  | operation, digest  | OPERATION_ACTIVE    | OK                   | OPERATION_NOT_INITIALIZED  |
 * | encrypting | operation, encrypt | OPERATION_ACTIVE    | OK                   | OPERATION_NOT_INITIALIZED  |
 * | decrypting | operation, decrypt | OPERATION_ACTIVE    | OK                   | OPERATION_NOT_INITIALIZED  |
 * | signing    | operation, sign    | OPERATION_ACTIVE    | OK                   | OPERATION_NOT_INITIALIZED  |
 * | verifying  | operation, verify  | OPERATION_ACTIVE    | OK                   | OPERATION_NOT_INITIALIZED  |
 *
 * C_SetOperationState (default profile) replaces whatever runs: it ends the running operation and starts the saved
 * one, as two facts.
 *
 * Re-authentication (CKA_ALWAYS_AUTHENTICATE, fact sheet §15 CKU_CONTEXT_SPECIFIC): a sign or decrypt operation
 * started with such a key (`OperationStarted` with `reauth`) enters `signingAwaitingReauth` /
 * `decryptingAwaitingReauth`, tagged `reauthPending` besides its kind; the `Reauthenticated` fact (a right
 * C_Login(CKU_CONTEXT_SPECIFIC)) moves it on to plain `signing` / `decrypting`, where it stays until it ends (one login
 * covers the whole operation, updates and final included). A step while `reauthPending` answers
 * CKR_USER_NOT_LOGGED_IN and ends the operation (the deciders, functions/rsa.ts); C_Login(CONTEXT_SPECIFIC) without
 * the tag answers CKR_OPERATION_NOT_INITIALIZED (the slot chart's `noReauthPending`).
 */
import { setup } from "xstate";
import type { CkrName } from "../pkcs11/constants.js";

export type OperationKind = "find" | "digest" | "encrypt" | "decrypt" | "sign" | "verify";

export const OPERATION_KINDS: readonly OperationKind[] = ["find", "digest", "encrypt", "decrypt", "sign", "verify"];

export type SessionRequest = { type: "Start"; kind: OperationKind } | { type: "Step"; kind: OperationKind };
export type SessionFactEvent =
  | { type: "OperationStarted"; kind: OperationKind; reauth?: boolean }
  | { type: "Reauthenticated" }
  | { type: "OperationEnded" };

/** The active state of each kind. */
export const ACTIVE_STATE: Record<OperationKind, string> = {
  find: "finding",
  digest: "digesting",
  encrypt: "encrypting",
  decrypt: "decrypting",
  sign: "signing",
  verify: "verifying",
};

export const sessionMachine = setup({
  types: {
    events: {} as SessionFactEvent,
    tags: {} as "operation" | "reauthPending" | OperationKind,
  },
  guards: {
    startsKind: ({ event }, params: { kind: OperationKind }) => event.type === "OperationStarted" && event.kind === params.kind,
    startsKindNeedingReauth: ({ event }, params: { kind: OperationKind }) =>
      event.type === "OperationStarted" && event.kind === params.kind && event.reauth === true,
  },
}).createMachine({
  id: "session",
  initial: "idle",
  states: {
    idle: {
      on: {
        OperationStarted: [
          { guard: { type: "startsKindNeedingReauth" as const, params: { kind: "sign" as const } }, target: "signingAwaitingReauth" },
          { guard: { type: "startsKindNeedingReauth" as const, params: { kind: "decrypt" as const } }, target: "decryptingAwaitingReauth" },
          ...OPERATION_KINDS.map((kind) => ({ guard: { type: "startsKind" as const, params: { kind } }, target: ACTIVE_STATE[kind] })),
        ],
      },
    },
    signingAwaitingReauth: { tags: ["operation", "sign", "reauthPending"], on: { Reauthenticated: { target: "signing" } } },
    decryptingAwaitingReauth: { tags: ["operation", "decrypt", "reauthPending"], on: { Reauthenticated: { target: "decrypting" } } },
    finding: { tags: ["operation", "find"] },
    digesting: { tags: ["operation", "digest"] },
    encrypting: { tags: ["operation", "encrypt"] },
    decrypting: { tags: ["operation", "decrypt"] },
    signing: { tags: ["operation", "sign"] },
    verifying: { tags: ["operation", "verify"] },
  },
  on: {
    OperationEnded: { target: ".idle" },
  },
});

/** The chart's answer to a request, read from the tags of its current state (null: a session with no actor, idle). */
export function operationRule(snapshot: { hasTag(tag: string): boolean } | null, req: SessionRequest): CkrName {
  if (req.type === "Start") return snapshot?.hasTag("operation") ? "CKR_OPERATION_ACTIVE" : "CKR_OK";
  return snapshot?.hasTag(req.kind) ? "CKR_OK" : "CKR_OPERATION_NOT_INITIALIZED";
}

/** Whether the session's operation waits for a C_Login(CKU_CONTEXT_SPECIFIC) (null: a session with no actor). */
export function reauthPending(snapshot: { hasTag(tag: string): boolean } | null): boolean {
  return snapshot?.hasTag("reauthPending") ?? false;
}
