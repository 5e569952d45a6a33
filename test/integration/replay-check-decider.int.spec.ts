/**
 * `replay --check` finds a changed decider: a log recorded with today's deciders is re-executed by a simulator whose
 * C_GetSessionInfo and C_Logout deciders were changed (vi.doMock on their module, the simulator imported afresh), and
 * every call they now answer differently is reported at its sequence, with what differs.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { CallRecord } from "../../src/events/types.js";
import type { Decision } from "../../src/functions/context.js";
import { CK } from "../../src/pkcs11/constants.js";
import { testSimulator, TEST_KEY } from "../support/sim.js";

function recordedLog(): CallRecord[] {
  const sim = testSimulator();
  const a = sim.application();
  a.call({ fn: "C_Initialize", args: {} });
  a.call({ fn: "C_InitToken", args: { slotID: 0, pin: "12345678", label: "decider" } });
  const h = a.call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION } }).out!.hSession;
  a.call({ fn: "C_GetSessionInfo", args: { hSession: h } });
  a.call({ fn: "C_Login", args: { hSession: h, userType: CK.CKU_SO, pin: "12345678" } });
  a.call({ fn: "C_GetSessionInfo", args: { hSession: h } });
  a.call({ fn: "C_Logout", args: { hSession: h } });
  a.call({ fn: "C_GetSessionInfo", args: { hSession: 99 } });
  a.call({ fn: "C_Finalize", args: {} });
  return [...sim.store.read()].map((r) => JSON.parse(JSON.stringify(r)) as CallRecord);
}

afterEach(() => {
  vi.doUnmock("../../src/functions/session.js");
  vi.resetModules();
});

describe("replay --check against changed deciders", () => {
  it("the unchanged deciders find nothing; changed ones are reported call by call", async () => {
    const records = recordedLog();
    const same = await import("../../src/replay/check.js");
    expect(same.checkRecords(records, { simulator: { simulatorKey: TEST_KEY } }).divergences).toEqual([]);

    vi.resetModules();
    vi.doMock("../../src/functions/session.js", async (importOriginal) => {
      const real = await importOriginal<typeof import("../../src/functions/session.js")>();
      return {
        ...real,
        // An output changed: the device error of every answered C_GetSessionInfo.
        C_GetSessionInfo: (ctx: never, args: never): Decision => {
          const d = real.C_GetSessionInfo(ctx, args);
          return d.rv === "CKR_OK" ? { ...d, out: { ...(d.out as object), deviceError: 7 } } : d;
        },
        // A return code changed (and its facts gone): C_Logout refuses.
        C_Logout: (): Decision => ({ rv: "CKR_USER_NOT_LOGGED_IN", facts: [] }),
      };
    });
    const changed = await import("../../src/replay/check.js");
    const report = changed.checkRecords(records, { simulator: { simulatorKey: TEST_KEY } });
    const infoSeqs = records.filter((r) => r.fn === "C_GetSessionInfo" && r.rv === CK.CKR_OK).map((r) => r.seq);
    const logout = records.find((r) => r.fn === "C_Logout")!;
    expect(infoSeqs).toHaveLength(2);
    expect(report.divergences.map((d) => [d.seq, d.fn, d.differs])).toEqual([
      [infoSeqs[0], "C_GetSessionInfo", ["out"]],
      [infoSeqs[1], "C_GetSessionInfo", ["out"]],
      [logout.seq, "C_Logout", ["rv", "facts"]],
    ]);
    expect(report.divergences[2]!.reexecuted.rv).toBe(CK.CKR_USER_NOT_LOGGED_IN);
    expect((report.divergences[0]!.reexecuted.out as { deviceError: number }).deviceError).toBe(7);
  });
});
