/**
 * The session statechart: a session's single operation slot (fact sheet §17). SoftHSM keeps one "current operation"
 * per session for every kind (find, digest, encrypt, decrypt, sign, verify), so starting any operation while another
 * is active answers CKR_OPERATION_ACTIVE, and a step of a kind that is not running answers
 * CKR_OPERATION_NOT_INITIALIZED. Operations end on their final call, on most step errors, and when the session
 * closes; not on a size query, CKR_BUFFER_TOO_SMALL or C_Logout.
 *
 * As in the slot chart, commands (`Start`, `Step`) only emit a decision; facts (`OperationStarted`, `OperationEnded`)
 * are the only transitions.
 */
import { emit, setup } from "xstate";
import type { CkrName } from "../pkcs11/constants.js";

export type OperationKind = "find" | "digest";

export type SessionCommand = { type: "Start"; kind: OperationKind } | { type: "Step"; kind: OperationKind };
export type SessionFactEvent = { type: "OperationStarted"; kind: OperationKind } | { type: "OperationEnded" };
export interface SessionDecision {
  type: "decision";
  rv: CkrName;
}

export const sessionMachine = setup({
  types: {
    events: {} as SessionCommand | SessionFactEvent,
    emitted: {} as SessionDecision,
  },
  guards: {
    isSameKind: ({ event }, params: { kind: OperationKind }) => "kind" in event && event.kind === params.kind,
  },
  actions: {
    answer: emit((_, params: { rv: CkrName }): SessionDecision => ({ type: "decision", rv: params.rv })),
  },
}).createMachine({
  id: "session",
  initial: "idle",
  states: {
    idle: {
      on: {
        Start: { actions: { type: "answer", params: { rv: "CKR_OK" } } },
        Step: { actions: { type: "answer", params: { rv: "CKR_OPERATION_NOT_INITIALIZED" } } },
        OperationStarted: [
          { guard: { type: "isSameKind", params: { kind: "find" } }, target: "finding" },
          { target: "digesting" },
        ],
      },
    },
    finding: {
      on: {
        Step: [
          { guard: { type: "isSameKind", params: { kind: "find" } }, actions: { type: "answer", params: { rv: "CKR_OK" } } },
          { actions: { type: "answer", params: { rv: "CKR_OPERATION_NOT_INITIALIZED" } } },
        ],
      },
    },
    digesting: {
      on: {
        Step: [
          {
            guard: { type: "isSameKind", params: { kind: "digest" } },
            actions: { type: "answer", params: { rv: "CKR_OK" } },
          },
          { actions: { type: "answer", params: { rv: "CKR_OPERATION_NOT_INITIALIZED" } } },
        ],
      },
    },
  },
  on: {
    // Any operation already running blocks a new one, whatever its kind.
    Start: { actions: { type: "answer", params: { rv: "CKR_OPERATION_ACTIVE" } } },
    OperationEnded: { target: ".idle" },
  },
});
