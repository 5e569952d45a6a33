/**
 * The default profile against SoftHSM 2.6.1: the same 500 seeded sequences as the softhsm2 differential. The default
 * profile may differ from SoftHSM only where PROFILE_DIFFERENCES says. Proof, per disagreeing sequence: flipping the
 * table's switches to their softhsm2 values (on top of the default profile, name and all) makes it agree; a greedy
 * pass then drops every switch not needed for agreement, and what remains is the set of table rows that explain the
 * differences. A difference no switch explains would leave the fully flipped profile disagreeing, and fail the test.
 */
import { afterAll, describe, expect, it } from "vitest";
import { Simulator } from "../../src/actors/simulator.js";
import { PKCS11 } from "../../src/pkcs11/pkcs11js.js";
import { PROFILE_DIFFERENCES, PROFILES, type ProfileSwitches } from "../../src/pkcs11/profiles.js";
import { softHsmAvailable } from "../support/softhsm.js";
import { compareObservations } from "./compare.js";
import { pkcs11jsApps, runSequence, softhsmApps, stopSoftHsmWorkers, type StepObservation } from "./run.js";
import { generateSequence, sequenceSeeds, type Sequence } from "./sequence.js";

const BASE_SEED = Number(process.env.HSMSIM_DIFF_SEED ?? 20261126);
const COUNT = Number(process.env.HSMSIM_DIFF_COUNT ?? 500);
/** A row of the table, named by its first switch. */
type Row = (typeof PROFILE_DIFFERENCES)[number];
const ROWS = PROFILE_DIFFERENCES;
const rowName = (r: Row) => r.switches.join("+");

/** The default profile with the given rows' switches set to softhsm2's values. */
function flipped(rows: readonly Row[]) {
  return Object.fromEntries(rows.flatMap((r) => r.switches.map((s) => [s, PROFILES.softhsm2[s]]))) as Partial<ProfileSwitches>;
}

async function agrees(seq: Sequence, expected: StepObservation[], rows: readonly Row[]): Promise<boolean> {
  const sim = new Simulator({ profile: "default", switches: flipped(rows) });
  const actual = await runSequence(seq, pkcs11jsApps(PKCS11, sim));
  return compareObservations(seq, expected, actual, { a: "SoftHSM 2.6.1", b: "hsmsim" }).ok;
}

describe.skipIf(!softHsmAvailable())("differential: hsmsim (default profile) vs SoftHSM 2.6.1", () => {
  afterAll(async () => {
    await stopSoftHsmWorkers();
  });

  it("every profile switch is a row of the table, and the table's rows are all switches", () => {
    const { name: _n, ...switches } = PROFILES.default;
    expect(new Set(Object.keys(switches))).toEqual(new Set(ROWS.flatMap((r) => r.switches)));
  });

  it(`${COUNT} sequences differ only where the profile table says`, { timeout: 900_000 }, async () => {
    const explained = new Map<string, number>(ROWS.map((r) => [rowName(r), 0]));
    let differing = 0;
    const unexplained: string[] = [];
    for (const seed of sequenceSeeds(BASE_SEED, COUNT)) {
      const seq = generateSequence(seed);
      const expected = await runSequence(seq, softhsmApps());
      if (await agrees(seq, expected, [])) continue;
      differing++;
      if (!(await agrees(seq, expected, ROWS))) {
        unexplained.push(`seed ${seed}`);
        continue;
      }
      let needed = [...ROWS];
      for (const r of ROWS) {
        const without = needed.filter((x) => x !== r);
        if (await agrees(seq, expected, without)) needed = without;
      }
      for (const r of needed) explained.set(rowName(r), explained.get(rowName(r))! + 1);
    }
    console.log(
      `default profile: ${differing} of ${COUNT} sequences differ from SoftHSM 2.6.1, all explained by the profile table:\n` +
        [...explained].map(([s, n]) => `  ${s.padEnd(32)} ${n}`).join("\n"),
    );
    expect(unexplained).toEqual([]);
    // The default profile is not SoftHSM: if nothing differed, this suite would not be testing the table.
    expect(differing).toBeGreaterThan(COUNT / 2);
  });
});
