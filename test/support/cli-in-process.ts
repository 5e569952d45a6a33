/**
 * The hsmsim CLI run in this process (src/cli/main.ts `main`), for tests that need no build: standard output
 * collected line by line, console.error (where errors go) captured, console.log (the demo's) silenced; and
 * temporary directories removed after the file's tests.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeEach, vi } from "vitest";
import { main } from "../../src/cli/main.js";

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Call in a test file's top level: sets up the capture hooks and returns the runner and a temp-dir maker. */
export function cliInProcess(): { cli: (...argv: string[]) => Promise<CliResult>; tempDir: (prefix?: string) => string } {
  const tmp: string[] = [];
  let errors: string[] = [];
  beforeEach(() => {
    errors = [];
    vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void errors.push(a.join(" ")));
    vi.spyOn(console, "log").mockImplementation(() => undefined);
  });
  afterEach(() => vi.restoreAllMocks());
  afterAll(() => tmp.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  return {
    async cli(...argv) {
      const lines: string[] = [];
      const code = await main(argv, (l) => lines.push(l));
      return { code, out: lines.join("\n"), err: errors.join("\n") };
    },
    tempDir(prefix = "hsmsim-test-") {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
      tmp.push(d);
      return d;
    },
  };
}
