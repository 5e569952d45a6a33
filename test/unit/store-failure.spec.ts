/**
 * The log comes first: a call whose record the store cannot take (disk full, store closed) is answered
 * CKR_DEVICE_ERROR and changes nothing; once the store takes records again, the simulator goes on from the same state.
 */
import { describe, expect, it } from "vitest";
import { MemoryEventStore } from "../../src/events/memory-store.js";
import type { CallRecord } from "../../src/events/types.js";
import { CK } from "../../src/pkcs11/constants.js";
import { caller, snapshot, testSimulator, SO_PIN } from "../support/sim.js";

/** An in-memory store that refuses appends while `full` is set. */
class FillingStore extends MemoryEventStore {
  full = false;
  override append(record: CallRecord): void {
    if (this.full) throw new Error("ENOSPC: no space left on device");
    super.append(record);
  }
}

describe("a store that refuses a record", () => {
  it("answers CKR_DEVICE_ERROR, changes nothing, and the simulator goes on when the store recovers", () => {
    const store = new FillingStore();
    const sim = testSimulator({ store });
    const c = caller(sim.application());
    c("C_Initialize", {});
    c("C_InitToken", { slotID: 0, pin: SO_PIN, label: "t" });
    const before = snapshot(sim);
    const seq = sim.lastSeq;

    store.full = true;
    expect(c("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION }).rv).toBe("CKR_DEVICE_ERROR");
    expect(c("C_GetSessionInfo", { hSession: 1 }).rv).toBe("CKR_DEVICE_ERROR");
    expect(snapshot(sim)).toEqual(before);
    expect(sim.lastSeq).toBe(seq);
    expect(sim.storeFailures).toHaveLength(2);

    store.full = false;
    const opened = c("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION });
    expect(opened).toEqual({ rv: "CKR_OK", out: { hSession: 1 } });
    expect(c("C_GetSessionInfo", { hSession: 1 }).rv).toBe("CKR_OK");
    expect(sim.lastSeq).toBe(seq + 2);
  });
});
