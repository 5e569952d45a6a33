/**
 * The routing of records to subjects per token (src/events/token-subjects.ts; docs/notes/nats-design.md §11): rule 1
 * (a record that changes one token's persistent state belongs to it, whatever the hint), rule 2 (otherwise the token
 * the call acted on, from the state before the call), and `.sim` for the rest.
 */
import { describe, expect, it } from "vitest";
import { factToken, recordToken, subjectToken, tokenOfCall } from "../../src/events/token-subjects.js";
import type { Fact } from "../../src/events/types.js";
import { CK } from "../../src/pkcs11/constants.js";
import { record } from "../support/file-store-helpers.js";
import { caller, SO_PIN, testSimulator } from "../support/sim.js";

const rejected = (token: string): Fact => ({ type: "PinRejected", app: 1, token, role: "user" });
const object = (id: string, token: boolean): Fact => ({
  type: "ObjectCreated",
  app: 1,
  handle: 1,
  session: 1,
  object: { id, token, private: false, slotID: 0, attrs: [] },
});

describe("subjects per token", () => {
  it("rule 1: the token whose persistent state a fact changes; token objects by their id, session objects none", () => {
    expect(factToken(rejected("slot3"))).toBe("slot3");
    expect(factToken(object("tslot1/4", true))).toBe("slot1");
    expect(factToken(object("a2/4", false))).toBeUndefined();
    expect(factToken({ type: "ObjectDestroyed", app: 1, object: "ttok2/1" })).toBe("tok2");
    expect(factToken({ type: "SessionOpened", app: 1, slotID: 0, token: "slot0", handle: 1, rw: true })).toBeUndefined();
    expect(factToken({ type: "LoggedOut", app: 1, slotID: 0 })).toBeUndefined();
  });

  it("a record of one token goes there whatever the hint; of two tokens to .sim; without such facts to the hint", () => {
    expect(subjectToken(record(1, { facts: [rejected("slot0"), rejected("slot0")] }), "slot9")).toBe("slot0");
    expect(recordToken(record(1, { facts: [rejected("slot0"), rejected("slot1")] }))).toBeUndefined();
    expect(subjectToken(record(1, { facts: [rejected("slot0"), rejected("slot1")] }), "slot0")).toBeUndefined();
    expect(subjectToken(record(1, { facts: [{ type: "LoggedOut", app: 1, slotID: 0 }] }), "slot0")).toBe("slot0");
    expect(subjectToken(record(1), undefined)).toBeUndefined();
  });

  it("rule 2: the call's session or slot token before the call; none for no application, unknown handles, no slot", () => {
    const sim = testSimulator({ slots: 2 });
    const app = caller(sim.application());
    app("C_Initialize", {});
    app("C_InitToken", { slotID: 1, pin: SO_PIN, label: "x" });
    const h = app("C_OpenSession", { slotID: 1, flags: CK.CKF_SERIAL_SESSION }).out!.hSession;
    expect(tokenOfCall(sim.state, 1, { hSession: h })).toBe("slot1");
    expect(tokenOfCall(sim.state, 1, { slotID: 0 })).toBe("slot0");
    expect(tokenOfCall(sim.state, 1, { hSession: 999 })).toBeUndefined();
    expect(tokenOfCall(sim.state, 1, { slotID: 7 })).toBeUndefined();
    expect(tokenOfCall(sim.state, 2, { slotID: 0 })).toBeUndefined();
    expect(tokenOfCall(sim.state, 1, {})).toBeUndefined();
    expect(tokenOfCall(sim.state, 1, null)).toBeUndefined();
  });
});
