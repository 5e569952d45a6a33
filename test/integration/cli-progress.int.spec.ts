/**
 * Progress bars end to end (src/cli/progress.ts through src/cli/main.ts): `hsmsim audit verify` and `hsmsim replay`
 * on a 150,000-record store (long enough to outlast the bar's first 100 ms on a fast machine) draw a bar on stderr when it is a terminal, and write nothing there when it is not or with
 * --json. (The bar's rendering and throttling are unit-tested in test/unit/progress.spec.ts.)
 */
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { main } from "../../src/cli/main.js";
import { FileEventStore } from "../../src/events/file-store.js";
import { record } from "../support/file-store-helpers.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "hsmsim-cli-progress-"));
  // Records appended as they are (C_GetInfo, no facts), with the settings a simulator needs to replay them.
  const store = new FileEventStore(dir, { durability: "none" });
  store.settings();
  for (let i = 1; i <= 150_000; i++) store.append(record(i));
  store.close();
  return () => rmSync(dir, { recursive: true, force: true });
}, 120_000);

/** Run the CLI in-process with stderr a terminal or not; what it wrote to stderr. */
async function stderrOf(argv: string[], tty: boolean): Promise<{ code: number; err: string }> {
  const writes: string[] = [];
  const was = process.stderr.isTTY;
  process.stderr.isTTY = tty;
  const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => (writes.push(String(chunk)), true));
  try {
    const code = await main(argv, () => {});
    return { code, err: writes.join("") };
  } finally {
    spy.mockRestore();
    process.stderr.isTTY = was;
  }
}

describe("progress bars in the CLI", () => {
  afterEach(() => {
    FileEventStore.onWalk = undefined;
  });

  it("audit verify: a bar on a terminal, erased at the end; nothing off a terminal or with --json", async () => {
    const tty = await stderrOf(["audit", "verify", "--store", dir], true);
    expect(tty.code).toBe(0);
    expect(tty.err).toMatch(/\rverifying \[[#-]+\] \d+% /);
    expect(tty.err.endsWith("\r\x1b[K")).toBe(true);
    expect((await stderrOf(["audit", "verify", "--store", dir], false)).err).toBe("");
    expect((await stderrOf(["audit", "verify", "--store", dir, "--json"], true)).err).toBe("");
  }, 60_000);

  it("replay: a bar on a terminal; nothing off a terminal or with --json", async () => {
    const tty = await stderrOf(["replay", "--store", dir], true);
    expect(tty.code).toBe(0);
    expect(tty.err).toMatch(/\rreplaying \[[#-]+\] \d+% /);
    expect((await stderrOf(["replay", "--store", dir], false)).err).toBe("");
    expect((await stderrOf(["replay", "--store", dir, "--json"], true)).err).toBe("");
  }, 60_000);
});
