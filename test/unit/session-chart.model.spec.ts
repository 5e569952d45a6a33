/**
 * The session chart, exhaustively: xstate/graph walks every state reachable through the operation facts, and in each
 * the one-operation rule (operationRule over the state's tags) must answer every request as the fact sheet's §17
 * says: any active operation blocks a new one (CKR_OPERATION_ACTIVE), and a step of a kind that is not running is
 * CKR_OPERATION_NOT_INITIALIZED. Requests read tags only: they never change the chart.
 */
import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import { getShortestPaths } from "xstate/graph";
import { operationRule, reauthPending, sessionMachine, type OperationKind, type SessionRequest } from "../../src/machines/session.js";
import { chartStep, persistSession, restoreSession, SESSION_IDLE } from "../../src/actors/session-chart.js";

/** Written out here rather than imported, so a kind dropped from the chart fails this test. */
const KINDS: OperationKind[] = ["find", "digest", "encrypt", "decrypt", "sign", "verify"];
const FACTS = [
  ...KINDS.map((kind) => ({ type: "OperationStarted" as const, kind })),
  // A key with CKA_ALWAYS_AUTHENTICATE: only asymmetric sign and decrypt inits start one so (functions/rsa.ts).
  { type: "OperationStarted" as const, kind: "sign" as const, reauth: true },
  { type: "OperationStarted" as const, kind: "decrypt" as const, reauth: true },
  { type: "Reauthenticated" as const },
  { type: "OperationEnded" as const },
];
const REQUESTS: SessionRequest[] = KINDS.flatMap((kind) => [
  { type: "Start" as const, kind },
  { type: "Step" as const, kind },
]);

/** §17 as a plain function of "which operation is running". */
function oracle(running: OperationKind | null, req: SessionRequest): string {
  if (req.type === "Start") return running ? "CKR_OPERATION_ACTIVE" : "CKR_OK";
  return running === req.kind ? "CKR_OK" : "CKR_OPERATION_NOT_INITIALIZED";
}

describe("session chart", () => {
  const paths = getShortestPaths(sessionMachine, {
    events: FACTS,
    // The deciders start an operation only from idle and end one only while one runs.
    // A right C_Login(CONTEXT_SPECIFIC) is recorded only while re-authentication is pending.
    filterEvents: (s, e) =>
      e.type === "OperationStarted" ? s.value === "idle" : e.type === "Reauthenticated" ? s.hasTag("reauthPending") : s.value !== "idle",
  });

  it("reaches idle, one state per operation kind, and the two awaiting re-authentication", () => {
    expect(new Set(paths.map((p) => p.state.value))).toEqual(
      new Set(["idle", "finding", "digesting", "encrypting", "decrypting", "signing", "verifying", "signingAwaitingReauth", "decryptingAwaitingReauth"]),
    );
  });

  it("re-authentication is pending exactly from a re-auth start until Reauthenticated or the end", () => {
    for (const path of paths) {
      const actor = createActor(sessionMachine).start();
      let pending = false;
      for (const step of path.steps) {
        actor.send(step.event);
        const e = step.event;
        pending = e.type === "OperationStarted" ? e.reauth === true : e.type === "Reauthenticated" ? false : e.type === "OperationEnded" ? false : pending;
      }
      expect({ state: actor.getSnapshot().value, pending: reauthPending(actor.getSnapshot()) }).toEqual({ state: actor.getSnapshot().value, pending });
    }
    expect(reauthPending(null)).toBe(false);
  });

  it("answers every request as §17 says, in every state, without changing state", () => {
    for (const path of paths) {
      const actor = createActor(sessionMachine).start();
      let running: OperationKind | null = null;
      for (const step of path.steps) {
        actor.send(step.event);
        running = step.event.type === "OperationStarted" ? step.event.kind : null;
      }
      for (const req of REQUESTS) {
        const before = actor.getSnapshot().value;
        expect({ state: before, req, rv: operationRule(actor.getSnapshot(), req) }).toEqual({ state: before, req, rv: oracle(running, req) });
        expect(actor.getSnapshot().value).toBe(before);
      }
    }
    // A session with no actor yet (it never ran an operation) answers as idle.
    for (const req of REQUESTS) expect(operationRule(null, req)).toBe(oracle(null, req));
  });
});

/**
 * The session actors run the chart through a memoized pure step (src/actors/session-chart.ts). From every state,
 * every fact (allowed or not) must lead where an interpreted XState actor of the chart goes, with the same tags and
 * the same persisted snapshot, and a persisted snapshot must restore to the same state.
 */
describe("memoized session chart = interpreted session chart", () => {
  const states = Object.keys(sessionMachine.root.states);
  const withExtra = [...FACTS, { type: "OperationStarted" as const, kind: "digest" as const, reauth: true }];
  for (const state of states) {
    it(`from ${state}: every fact steps as the interpreter does`, () => {
      for (const fact of withExtra) {
        const from = restoreSession({ status: "active", value: state } as never);
        const actor = createActor(sessionMachine, { snapshot: sessionMachine.resolveState({ value: state, context: undefined as never }) }).start();
        actor.send(fact);
        const want = actor.getSnapshot();
        const got = chartStep(from, fact);
        expect(got.value, `${state} + ${JSON.stringify(fact)}`).toBe(want.value);
        expect([...got.tags].sort()).toEqual([...want.tags].sort());
        expect(persistSession(got)).toEqual(actor.getPersistedSnapshot());
        expect(restoreSession(persistSession(got))).toBe(got); // interned: one snapshot object per state
        actor.stop();
      }
    });
  }
  it("starts idle", () => expect(SESSION_IDLE.value).toBe("idle"));
});
