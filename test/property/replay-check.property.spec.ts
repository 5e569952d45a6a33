/**
 * `hsmsim replay --check` on random logs: re-executing every recorded call of a random call sequence (two
 * applications, both profiles; PINs right and wrong, tokens initialised and re-initialised, objects, finds, digests,
 * random bytes, malformed calls) finds no divergence; and a log whose one record was edited is caught at that record.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { ProfileName } from "../../src/pkcs11/profiles.js";
import type { CallRecord } from "../../src/events/types.js";
import { checkRecords } from "../../src/replay/check.js";
import { runSteps, Seen, stepsArb } from "../support/arbitraries.js";
import { testSimulator, TEST_KEY } from "../support/sim.js";

describe.each<ProfileName>(["default", "softhsm2"])("replay --check (profile %s)", (profile) => {
  it("finds no divergence on its own logs", () => {
    fc.assert(
      fc.property(stepsArb(80), (steps) => {
        const live = testSimulator({ profile });
        runSteps([live.application(), live.application()], steps, [new Seen(), new Seen()]);
        const records = [...live.store.read()];
        const report = checkRecords(records, { simulator: { profile, simulatorKey: TEST_KEY } });
        expect(report.divergences).toEqual([]);
        expect(report.stopped).toBeUndefined();
        expect(report.records).toBe(records.length);
      }),
      { numRuns: 150 },
    );
  });

  it("names the record whose return code was edited", () => {
    fc.assert(
      fc.property(stepsArb(60), fc.nat(), (steps, pick) => {
        const live = testSimulator({ profile });
        runSteps([live.application(), live.application()], steps, [new Seen(), new Seen()]);
        const records = [...live.store.read()].map((r) => JSON.parse(JSON.stringify(r)) as CallRecord);
        const i = pick % records.length;
        records[i] = { ...records[i]!, rv: records[i]!.rv === 0 ? 0x101 : 0 };
        const report = checkRecords(records, { simulator: { profile, simulatorKey: TEST_KEY } });
        // A call applied from the record (its template's values are not in the log) is listed as unchecked instead.
        if (report.unchecked.includes(records[i]!.seq)) expect(report.divergences.map((d) => d.seq)).not.toContain(records[i]!.seq);
        // (An edited rv may also change what the arguments are rebuilt from: then its outputs or facts differ.)
        else expect(report.divergences[0]?.seq).toBe(records[i]!.seq);
      }),
      { numRuns: 100 },
    );
  });
});
