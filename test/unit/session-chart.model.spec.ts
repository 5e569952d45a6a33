/**
 * The session chart, exhaustively: xstate/graph walks every state reachable through the operation facts, and in each
 * the one-operation rule (operationRule over the state's tags) must answer every request as the fact sheet's §17
 * says: any active operation blocks a new one (CKR_OPERATION_ACTIVE), and a step of a kind that is not running is
 * CKR_OPERATION_NOT_INITIALIZED. Requests read tags only: they never change the chart.
 */
import { describe, expect, it } from "vitest";
import { createActor } from "xstate";
import { getShortestPaths } from "xstate/graph";
import { operationRule, sessionMachine, type OperationKind, type SessionRequest } from "../../src/machines/session.js";

/** Written out here rather than imported, so a kind dropped from the chart fails this test. */
const KINDS: OperationKind[] = ["find", "digest", "encrypt", "decrypt", "sign", "verify"];
const FACTS = [...KINDS.map((kind) => ({ type: "OperationStarted" as const, kind })), { type: "OperationEnded" as const }];
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
    filterEvents: (s, e) => (e.type === "OperationStarted" ? s.value === "idle" : s.value !== "idle"),
  });

  it("reaches idle and one state per operation kind", () => {
    expect(new Set(paths.map((p) => p.state.value))).toEqual(
      new Set(["idle", "finding", "digesting", "encrypting", "decrypting", "signing", "verifying"]),
    );
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
