/**
 * Deterministic replay (non-negotiable 2): for random call sequences, rebuilding a simulator from its log yields
 * exactly the live state (write model, chart states, operations in progress, handles, objects, read model), in both
 * profiles; and the rebuilt simulator then answers further calls exactly as the live one does.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Simulator } from "../../src/actors/simulator.js";
import { MemoryEventStore } from "../../src/events/memory-store.js";
import type { ProfileName } from "../../src/pkcs11/profiles.js";
import { runSteps, Seen, stepsArb } from "../support/arbitraries.js";
import { snapshot, testSimulator, TEST_KEY } from "../support/sim.js";

describe.each<ProfileName>(["default", "softhsm2"])("replay (profile %s)", (profile) => {
  it("rebuilds exactly the live state, and then answers alike", () => {
    fc.assert(
      fc.property(stepsArb(60), stepsArb(15), (steps, more) => {
        const live = testSimulator({ profile });
        const apps = [live.application(), live.application()];
        const seen = [new Seen(), new Seen()];
        runSteps(apps, steps, seen);

        const replayed = Simulator.replay(live.store.read(), {
          profile,
          simulatorKey: TEST_KEY,
          clock: () => 1_800_000_000_000,
          store: new MemoryEventStore({ freeze: true }),
        });
        expect(snapshot(replayed)).toEqual(snapshot(live));

        // The rebuilt simulator serves the same applications on: attach callers with the same application ids.
        const again = [replayed.application(), replayed.application()];
        apps.forEach((a, i) => (again[i]!.appId = a.appId));
        // New draws (a new token's serial, PIN salts) come from each simulator's own random source from here on,
        // so behaviour is compared, not states: every rv and output, less the serial a new token may have drawn.
        const seenAgain = seen.map((x) => Object.assign(new Seen(), structuredClone(x)));
        const behaviour = (r: ReturnType<typeof runSteps>) =>
          r.map((x) => ({
            ...x,
            out:
              x.call.fn === "C_GetTokenInfo"
                ? { ...(x.out as object), serialNumber: "-" }
                : // A saved operation is sealed under a fresh nonce (a draw): compared by length.
                  x.call.fn === "C_GetOperationState" && x.out
                  ? { length: (x.out as { state: Uint8Array }).state.length }
                  : // Keys generated after the replay are drawn from each simulator's own source: what shows their
                    // bytes (the value, its check value, a wrap) is compared by length.
                    x.call.fn === "C_GetAttributeValue" && x.out
                    ? { attrs: (x.out as { attrs: { type: number; length: number }[] }).attrs.map((a) => ({ type: a.type, length: a.length })) }
                    : x.call.fn === "C_WrapKey" && x.out
                      ? { length: (x.out as { length: number }).length }
                      : x.out,
          }));
        expect(behaviour(runSteps(again, more, seenAgain))).toEqual(behaviour(runSteps(apps, more, seen)));
      }),
      { numRuns: 150 },
    );
  });

  it("refuses a log that skips a record", () => {
    const live = testSimulator({ profile });
    const app = live.application();
    app.call({ fn: "C_Initialize", args: {} });
    app.call({ fn: "C_GetInfo", args: {} });
    const [first, second] = [...live.store.read()];
    expect(() => Simulator.replay([second!], { profile, simulatorKey: TEST_KEY })).toThrow(/expected 1/);
    expect(() => Simulator.replay([first!, second!], { profile, simulatorKey: TEST_KEY })).not.toThrow();
  });
});
