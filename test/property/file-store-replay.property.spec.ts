/**
 * Replay from the file store reads only each line's facts (src/events/file-store.ts `readFacts`, `factsOfLine`). It
 * must hand over exactly the facts `read()` parses from the whole line, for any log the simulator writes and for
 * lines crafted to mislead a cut (brackets, quotes, escapes and the very text the cut looks for, inside strings and
 * as keys); and a simulator reopened on the store must hold the live state.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { FileEventStore, factsOfLine } from "../../src/events/file-store.js";
import { encodeEntry, GENESIS } from "../../src/events/chain.js";
import type { CallRecord, Fact } from "../../src/events/types.js";
import { Simulator } from "../../src/actors/simulator.js";
import { runSteps, stepsArb } from "../support/arbitraries.js";
import { seededRandom, snapshot, TEST_KEY } from "../support/sim.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "hsmsim-facts-"));
  dirs.push(d);
  return d;
};
const quiet = { durability: "none", snapshotEvery: 0, snapshotOnClose: false, checkpointEvery: 0, onWarning: () => {} } as const;
const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;

describe("replay from the file store", () => {
  it("readFacts hands over read()'s facts, and a reopened simulator holds the live state", () => {
    fc.assert(
      fc.property(stepsArb(60), fc.constantFrom("default", "softhsm2"), (steps, profile) => {
        const dir = tmp();
        const opts = { profile, simulatorKey: TEST_KEY, clock: () => 1_800_000_000_000 } as const;
        const store = new FileEventStore(dir, quiet);
        const live = new Simulator({ ...opts, store, randomBytes: seededRandom(1) });
        runSteps([live.application(), live.application()], steps);
        const whole = [...store.read()].map((r) => ({ seq: r.seq, facts: r.facts }));
        expect(plain([...store.readFacts()])).toEqual(plain(whole));
        const from = Math.max(1, Math.floor(store.lastSeq / 2));
        expect(plain([...store.readFacts(from)])).toEqual(plain(whole.slice(from - 1)));
        store.close();
        const again = new FileEventStore(dir, quiet);
        try {
          expect(snapshot(new Simulator({ ...opts, store: again }))).toEqual(snapshot(live));
        } finally {
          again.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 40 },
    );
  });

  const tricky = ['],"fn":"', '"],"fn":"x', "\\", '\\"', "]}", "[{", '{"a":[1]},"facts":[]', "é€😀", "\u0000\n", ',"facts":['];
  const record = (seq: number, label: string, facts: Fact[]): CallRecord => ({
    seq,
    time: 1,
    app: 1,
    fn: "C_InitToken",
    args: { slotID: 0, label, pin: { len: 4 }, nested: { a: [label, [label]], b: { [label]: label }, facts: [label], fn: label } },
    rv: 0,
    out: { label, list: [[label], { fn: label }] },
    facts,
  });

  it("cuts out exactly the facts of lines crafted to mislead the cut, or declines the line", () => {
    fc.assert(
      fc.property(fc.constantFrom(...tricky), fc.string(), fc.boolean(), (t, s, fnKey) => {
        const label = t + s;
        const facts: Fact[] = [
          { type: "TokenLooked", app: 1, token: label },
          // A key "fn" after an inner array inside the facts: the cut must not stop there.
          {
            type: "CryptoStarted",
            app: 1,
            session: 2,
            kind: "encrypt",
            mechanism: 1,
            object: label,
            key: "00",
            params: fnKey ? { a: [1, [label]], fn: label } : { iv: label },
          },
        ];
        const r = record(7, label, facts);
        const line = Buffer.from(encodeEntry(GENESIS, r).line, "utf8");
        const got = factsOfLine(line, 0, line.length, 7);
        if (got !== undefined) expect(plain(got)).toEqual(plain(facts));
        // Not declined when nothing in the facts can mislead the cut.
        if (!fnKey) expect(got).toBeDefined();
        // The wrong sequence, or a line in another layout, is declined (the reader then parses the line whole).
        expect(factsOfLine(line, 0, line.length, 8)).toBeUndefined();
        const spaced = Buffer.from(JSON.stringify({ seq: 7, prev: GENESIS, hash: GENESIS, record: r }, null, 1), "utf8");
        expect(factsOfLine(spaced, 0, spaced.length, 7)).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it("a record without facts decodes to none", () => {
    const line = Buffer.from(encodeEntry(GENESIS, record(1, "x", [])).line, "utf8");
    expect(factsOfLine(line, 0, line.length, 1)).toEqual([]);
  });
});
