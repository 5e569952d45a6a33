/**
 * Snapshots keep replay deterministic (issue 5): for random call sequences, in both profiles, a simulator reopened
 * from a file store's newest snapshot plus the records after it is in exactly the state a full replay of the log
 * rebuilds (model/snapshot.ts `snapshotState`, the read model included, and a field-by-field walk that does not go
 * through the snapshot codec), and then answers further calls alike (both draw from the same seeded source from the
 * reopening on, so generated keys and serials are compared too) and ends in the same state again. Snapshots are
 * taken at random points: every `every` records (1 to 40), by the background writer or inline, and, or not, at close;
 * the test checks the simulator started reading the log right after the snapshot it was expected to restore, so a
 * snapshot that silently failed would fail the test.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Simulator } from "../../src/actors/simulator.js";
import { FileEventStore } from "../../src/events/file-store.js";
import { MemoryEventStore } from "../../src/events/memory-store.js";
import type { ProfileName } from "../../src/pkcs11/profiles.js";
import { runSteps, Seen, stepsArb } from "../support/arbitraries.js";
import { seededRandom, snapshot, testSimulator, TEST_KEY } from "../support/sim.js";
import { tempDir } from "../support/file-store-helpers.js";
import { expectSameState, readsOf } from "../support/snapshot-helpers.js";

const RUNS = 60;

const CASES: [ProfileName, "thread" | "inline"][] = [
  ["default", "thread"],
  ["softhsm2", "thread"],
  ["default", "inline"],
  ["softhsm2", "inline"],
];

// Periodic snapshots written by the background writer's replica (the default) or inline by the append (snapshotThread).
describe.each(CASES)("open from snapshot + tail = full replay (profile %s, snapshots %s)", (profile, mode) => {
  it("restores the newest snapshot, replays only the tail, and answers further calls alike", () => {
    let restoredMidway = 0;
    fc.assert(
      fc.property(stepsArb(60), stepsArb(15), fc.integer({ min: 1, max: 40 }), fc.boolean(), (steps, more, every, onClose) => {
        const dir = tempDir("hsmsim-snapshot-");
        const warnings: string[] = [];
        const opts = {
          durability: "none" as const,
          checkpointEvery: 0,
          snapshotEvery: every,
          snapshotOnClose: onClose,
          snapshotThread: mode === "thread",
          onWarning: (m: string) => warnings.push(m),
        };
        const live = testSimulator({ profile, store: new FileEventStore(dir, opts) });
        const apps = [live.application(), live.application()];
        const seen = [new Seen(), new Seen()];
        runSteps(apps, steps, seen);
        const last = live.lastSeq;
        const records = [...live.store.read()];
        (live.store as FileEventStore).close();

        // Where the newest snapshot is: at close, or the last multiple of `every` that a later append found due.
        const periodic = last > every ? Math.floor((last - 1) / every) * every : 0;
        const expected = onClose && last > 0 ? last : periodic;

        // Replay draws nothing: both start the same seeded random source here, so further calls draw alike too.
        const full = Simulator.replay(records, { profile, simulatorKey: TEST_KEY, clock: () => 1_800_000_000_000, randomBytes: seededRandom(1), store: new MemoryEventStore() });
        const { store, froms } = readsOf(new FileEventStore(dir, opts));
        const reopened = testSimulator({ profile, store });
        expect(warnings).toEqual([]);
        expect(froms[0]).toBe(expected + 1);
        if (expected > 0 && expected < last) restoredMidway++;
        expect(snapshot(reopened)).toEqual(snapshot(full));
        expectSameState(reopened, full);

        const again = [reopened.application(), reopened.application()];
        const twins = [full.application(), full.application()];
        apps.forEach((a, i) => (again[i]!.appId = twins[i]!.appId = a.appId));
        const seenAgain = seen.map((x) => Object.assign(new Seen(), structuredClone(x)));
        expect(runSteps(again, more, seenAgain)).toEqual(runSteps(twins, more, seen));
        expect(snapshot(reopened)).toEqual(snapshot(full));
        store.close();
      }),
      { numRuns: RUNS },
    );
    // The runs did exercise a snapshot with a tail after it, not only snapshots at the very end.
    expect(restoredMidway).toBeGreaterThan(RUNS / 10);
  });
});
