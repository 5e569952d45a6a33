/**
 * The differential test: 500 seeded sequences (≥ 60 calls each, 1 or 2 applications) run on the real SoftHSM 2.6.1
 * (one worker process per application, fresh token directory per sequence) and on hsmsim through its pkcs11js
 * drop-in (one PKCS11 instance per application, all loaded with the same simulator). Every call must agree:
 * rv, normalised return value, error shape, and the probes (token serial symbols, objects found).
 *
 * Environment knobs: HSMSIM_DIFF_SEED (base seed), HSMSIM_DIFF_COUNT (number of sequences, default 500).
 */
import { afterAll, describe, it } from "vitest";
import { createSimulator } from "../../src/index.js";
import { PKCS11 } from "../../src/pkcs11/pkcs11js.js";
import { softHsmAvailable } from "../support/softhsm.js";
import { compareObservations } from "./compare.js";
import { pkcs11jsApps, runSequence, softhsmApps, stopSoftHsmWorkers } from "./run.js";
import { generateSequence, sequenceSeeds } from "./sequence.js";

const BASE_SEED = Number(process.env.HSMSIM_DIFF_SEED ?? 20261126);
const COUNT = Number(process.env.HSMSIM_DIFF_COUNT ?? 500);

describe.skipIf(!softHsmAvailable())("differential: hsmsim (profile softhsm2) vs SoftHSM 2.6.1", () => {
  afterAll(async () => {
    await stopSoftHsmWorkers();
  });

  it(`${COUNT} seeded sequences agree call by call`, { timeout: 600_000 }, async () => {
    const seeds = sequenceSeeds(BASE_SEED, COUNT);
    let calls = 0;
    let failed = 0;
    const reports: string[] = [];
    for (const seed of seeds) {
      const seq = generateSequence(seed);
      const expected = await runSequence(seq, softhsmApps());
      const sim = createSimulator({ profile: "softhsm2" });
      const actual = await runSequence(seq, pkcs11jsApps(PKCS11, sim));
      calls += seq.steps.length;
      const c = compareObservations(seq, expected, actual, { a: "SoftHSM 2.6.1", b: "hsmsim" });
      if (!c.ok) {
        failed++;
        if (reports.length < 3 && c.report) reports.push(c.report);
      }
    }
    if (failed > 0) {
      throw new Error(`differential: ${failed} of ${seeds.length} sequences disagree (first ${reports.length} shown)\n\n${reports.join("\n\n")}`);
    }
    console.log(`differential: ${seeds.length} sequences, ${calls} calls, all agree`);
  });
});
