/**
 * Tamper evidence: a real log (a simulator on a file store), then one change anywhere: a flipped byte, a dropped
 * record, two records swapped, a record inserted. `verifyLogFile` must name the first bad sequence every time.
 * Dropping the LAST record leaves a shorter, valid chain: a hash chain cannot see truncation by itself (that is what
 * signed checkpoints are for); the property checks that this is the only undetected change and that the head moved.
 * With the checkpoints (`verifyStore`) that change is caught too: audit-checkpoints.property.spec.ts.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { FileEventStore } from "../../src/events/file-store.js";
import { verifyLogFile } from "../../src/events/verify.js";
import { runSteps, stepsArb } from "../support/arbitraries.js";
import { testSimulator } from "../support/sim.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "hsmsim-audit-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** Record a log of a few dozen calls and return its lines. */
function makeLog(): { file: string; lines: string[]; head: string } {
  const dir = fs.mkdtempSync(path.join(root, "log-"));
  const store = new FileEventStore(dir, { durability: "none" });
  const sim = testSimulator({ store });
  const [steps] = fc.sample(stepsArb(30), { numRuns: 1, seed: 42 });
  runSteps([sim.application(), sim.application()], steps!);
  store.close();
  const lines = fs.readFileSync(store.file, "utf8").split("\n").slice(0, -1);
  const v = verifyLogFile(store.file);
  expect(v.ok).toBe(true);
  return { file: store.file, lines, head: v.head };
}

const base = makeLog();
const n = base.lines.length;

type Change =
  | { kind: "flip"; line: number; at: number; bit: number }
  | { kind: "drop"; line: number }
  | { kind: "swap"; line: number }
  | { kind: "insert"; line: number; copyOf: number };

const change: fc.Arbitrary<Change> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), line: fc.nat(n - 1), at: fc.nat(10_000), bit: fc.nat(6) }),
  fc.record({ kind: fc.constant("drop" as const), line: fc.nat(n - 1) }),
  fc.record({ kind: fc.constant("swap" as const), line: fc.nat(n - 2) }),
  fc.record({ kind: fc.constant("insert" as const), line: fc.nat(n - 1), copyOf: fc.nat(n - 1) }),
);

function apply(lines: string[], c: Change): { text: string; firstBad: number | null } {
  const l = [...lines];
  switch (c.kind) {
    case "flip": {
      const line = Buffer.from(l[c.line]!, "utf8");
      const i = c.at % line.length;
      line[i] = line[i]! ^ (1 << c.bit);
      l[c.line] = line.toString("latin1");
      return { text: l.join("\n") + "\n", firstBad: c.line + 1 };
    }
    case "drop":
      l.splice(c.line, 1);
      return { text: l.join("\n") + (l.length ? "\n" : ""), firstBad: c.line === lines.length - 1 ? null : c.line + 1 };
    case "swap":
      [l[c.line], l[c.line + 1]] = [l[c.line + 1]!, l[c.line]!];
      return { text: l.join("\n") + "\n", firstBad: c.line + 1 };
    case "insert":
      l.splice(c.line, 0, lines[c.copyOf]!);
      // A copy of the very record that follows is valid in its place; the original after it is then the bad one.
      return { text: l.join("\n") + "\n", firstBad: c.copyOf === c.line ? c.line + 2 : c.line + 1 };
  }
}

describe("audit verify names the first bad record", () => {
  it("for every flipped byte, dropped, swapped or inserted record", () => {
    expect(n).toBeGreaterThan(20);
    const file = path.join(root, "tampered.log");
    fc.assert(
      fc.property(change, (c) => {
        const { text, firstBad } = apply(base.lines, c);
        fs.writeFileSync(file, text, "latin1");
        const v = verifyLogFile(file);
        if (firstBad === null) {
          // The last record dropped: still a valid chain, one shorter, with a different head.
          expect(v).toMatchObject({ ok: true, lastSeq: n - 1 });
          expect(v.head).not.toBe(base.head);
        } else {
          expect({ change: c, bad: v.firstBad?.seq }).toEqual({ change: c, bad: firstBad });
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("verifies a range, still chained from the first record", () => {
    expect(verifyLogFile(base.file, { from: 5, to: 10 })).toMatchObject({ ok: true, checked: 6, lastSeq: 10 });
    fs.writeFileSync(path.join(root, "bad3.log"), apply(base.lines, { kind: "swap", line: 2 }).text);
    // A bad record before the range is still found: the range's links depend on it.
    expect(verifyLogFile(path.join(root, "bad3.log"), { from: 10 }).firstBad?.seq).toBe(3);
  });
});
