/**
 * The chain check's fast path (src/events/chain.ts entryProblem with the line): a line as encodeEntry writes it is
 * checked by hashing its record text as it stands; any other layout of the same entry falls back to re-encoding and
 * still verifies; a changed byte fails either way, with the same problem named as without the line.
 */
import { describe, expect, it } from "vitest";
import { encodeEntry, entryProblem, GENESIS } from "../../src/events/chain.js";
import { record } from "../support/file-store-helpers.js";

describe("entryProblem with the line it was parsed from", () => {
  const { line } = encodeEntry(GENESIS, record(1, { out: { label: "é ☃ \u0000", n: 1.5e-7 } as never }));
  const e = JSON.parse(line) as Record<string, unknown>;

  it("accepts the line as written, and the same entry laid out otherwise (another encoder)", () => {
    expect(entryProblem(e, 1, GENESIS, line)).toBeUndefined();
    const other = JSON.stringify({ hash: e.hash, record: e.record, prev: e.prev, seq: e.seq }, null, 0).replace(/,/g, ", ");
    expect(entryProblem(JSON.parse(other), 1, GENESIS, other)).toBeUndefined();
  });

  it("names the same problem as the full check for a changed byte, a wrong link or a wrong sequence", () => {
    const changed = line.replace('"n":1.5e-7', '"n":1.6e-7');
    const c = JSON.parse(changed) as unknown;
    expect(entryProblem(c, 1, GENESIS, changed)).toBe("hash does not match the entry's contents");
    expect(entryProblem(c, 1, GENESIS, changed)).toBe(entryProblem(c, 1, GENESIS));
    expect(entryProblem(e, 1, "1".repeat(64), line)).toMatch(/prev does not match/);
    expect(entryProblem(e, 2, GENESIS, line)).toMatch(/envelope seq is 1, expected 2/);
  });
});
