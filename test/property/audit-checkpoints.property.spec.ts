/**
 * Tamper evidence with signed checkpoints (`verifyStore`): the changes of audit-verify.property.spec.ts (a flipped
 * byte, a dropped, swapped or inserted record), plus what the chain alone cannot see: the log cut short anywhere
 * (at a line or inside one), dropping the last record included, and a log changed then re-hashed from the change on;
 * and forged checkpoints (a flipped byte anywhere in one). Each time `verifyStore` names the first bad sequence, and
 * for a forged checkpoint its line.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { FileEventStore } from "../../src/events/file-store.js";
import { encodeEntry } from "../../src/events/chain.js";
import type { CallRecord } from "../../src/events/types.js";
import { verifyLogFile, verifyStore } from "../../src/events/verify.js";
import { runSteps, stepsArb } from "../support/arbitraries.js";
import { testSimulator } from "../support/sim.js";

const EVERY = 7;
const root = fs.mkdtempSync(path.join(os.tmpdir(), "hsmsim-audit-cp-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A real log of a few dozen calls (two applications), checkpointed every EVERY records and at close. */
function makeStore(): { dir: string; lines: string[]; cps: string[] } {
  const dir = fs.mkdtempSync(path.join(root, "log-"));
  const store = new FileEventStore(dir, { durability: "none", checkpointEvery: EVERY });
  const sim = testSimulator({ store });
  const [steps] = fc.sample(stepsArb(40), { numRuns: 1, seed: 7 });
  runSteps([sim.application(), sim.application()], steps!);
  store.close();
  const lines = fs.readFileSync(store.file, "utf8").split("\n").slice(0, -1);
  const cps = fs.readFileSync(path.join(dir, "checkpoints.log"), "utf8").split("\n").slice(0, -1);
  expect(verifyStore(dir)).toMatchObject({ ok: true, checkpoints: { verified: cps.length } });
  return { dir, lines, cps };
}

const base = makeStore();
const n = base.lines.length;
const cpSeqs = base.cps.map((l) => (JSON.parse(l) as { seq: number }).seq);

type Change =
  | { kind: "flip"; line: number; at: number; bit: number }
  | { kind: "drop"; line: number }
  | { kind: "swap"; line: number }
  | { kind: "insert"; line: number; copyOf: number }
  | { kind: "truncate"; byte: number }
  | { kind: "rehash"; line: number }
  | { kind: "forge"; cp: number; at: number; bit: number };

const logBytes = Buffer.byteLength(base.lines.join("\n") + "\n");
const change: fc.Arbitrary<Change> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), line: fc.nat(n - 1), at: fc.nat(10_000), bit: fc.nat(6) }),
  fc.record({ kind: fc.constant("drop" as const), line: fc.nat(n - 1) }),
  fc.record({ kind: fc.constant("swap" as const), line: fc.nat(n - 2) }),
  fc.record({ kind: fc.constant("insert" as const), line: fc.nat(n - 1), copyOf: fc.nat(n - 1) }),
  fc.record({ kind: fc.constant("truncate" as const), byte: fc.nat(logBytes - 1) }),
  fc.record({ kind: fc.constant("rehash" as const), line: fc.nat(n - 1) }),
  fc.record({ kind: fc.constant("forge" as const), cp: fc.nat(base.cps.length - 1), at: fc.nat(10_000), bit: fc.nat(6) }),
);

const flip = (s: string, at: number, bit: number) => {
  const b = Buffer.from(s, "utf8");
  const i = at % b.length;
  b[i] = b[i]! ^ (1 << bit);
  return b.toString("latin1");
};

/** The tampered log and checkpoints, and the first bad sequence (and checkpoint line) verifyStore must name. */
function apply(c: Change): { log: string; cps: string; seq: number; cpLine?: number } {
  const l = [...base.lines];
  const join = (x: string[]) => x.join("\n") + (x.length ? "\n" : "");
  const cps = join(base.cps);
  switch (c.kind) {
    case "flip":
      l[c.line] = flip(l[c.line]!, c.at, c.bit);
      return { log: join(l), cps, seq: c.line + 1 };
    case "drop":
      // Dropping the last record is now caught too: the checkpoint written at close signed it.
      l.splice(c.line, 1);
      return { log: join(l), cps, seq: c.line + 1 };
    case "swap":
      [l[c.line], l[c.line + 1]] = [l[c.line + 1]!, l[c.line]!];
      return { log: join(l), cps, seq: c.line + 1 };
    case "insert":
      l.splice(c.line, 0, base.lines[c.copyOf]!);
      return { log: join(l), cps, seq: c.copyOf === c.line ? c.line + 2 : c.line + 1 };
    case "truncate": {
      const text = Buffer.from(join(l)).subarray(0, c.byte).toString("latin1");
      const whole = text.split("\n").length - 1; // complete lines kept
      return { log: text, cps, seq: whole + 1 };
    }
    case "rehash": {
      // Someone without the audit key changes a record and re-chains the rest: the chain is valid again.
      let prev = c.line === 0 ? "0".repeat(64) : (JSON.parse(l[c.line - 1]!) as { hash: string }).hash;
      for (let i = c.line; i < l.length; i++) {
        const rec = (JSON.parse(l[i]!) as { record: CallRecord }).record;
        if (i === c.line) rec.time += 1;
        const e = encodeEntry(prev, rec);
        l[i] = e.line;
        prev = e.hash;
      }
      const seq = cpSeqs.find((s) => s >= c.line + 1)!;
      return { log: join(l), cps, seq, cpLine: cpSeqs.indexOf(seq) + 1 };
    }
    case "forge": {
      const x = [...base.cps];
      x[c.cp] = flip(x[c.cp]!, c.at, c.bit);
      return { log: join(l), cps: join(x), seq: -1, cpLine: c.cp + 1 };
    }
  }
}

describe("verifyStore names the first bad record or checkpoint", () => {
  it("for every change to the log or the checkpoints, truncation and re-hashing included", () => {
    expect(n).toBeGreaterThan(3 * EVERY);
    expect(cpSeqs.at(-1)).toBe(n);
    const dir = path.join(root, "tampered");
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(base.dir, "audit.pub"), path.join(dir, "audit.pub"));
    let rehashed = 0;
    fc.assert(
      fc.property(change, (c) => {
        const t = apply(c);
        fs.writeFileSync(path.join(dir, "events.log"), t.log, "latin1");
        fs.writeFileSync(path.join(dir, "checkpoints.log"), t.cps, "latin1");
        const v = verifyStore(dir);
        if (c.kind === "rehash") {
          expect(verifyLogFile(path.join(dir, "events.log")).ok).toBe(true);
          rehashed++;
        }
        if (c.kind === "forge") {
          expect({ change: c, ok: v.ok, line: v.firstBad?.checkpointLine }).toEqual({ change: c, ok: false, line: t.cpLine });
        } else {
          expect({ change: c, bad: v.firstBad?.seq, line: v.firstBad?.checkpointLine }).toEqual({
            change: c,
            bad: t.seq,
            line: c.kind === "rehash" ? t.cpLine : v.firstBad?.checkpointLine,
          });
        }
      }),
      // Each run checks every checkpoint's signature (about 1 ms each): 500 runs take about 7 s.
      { numRuns: 500 },
    );
    expect(rehashed).toBeGreaterThan(0);
  });
});
