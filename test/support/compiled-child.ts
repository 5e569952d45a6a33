/**
 * Shared by the kill -9 tests and their children: compiling a child script once with tsc (so that each of hundreds
 * of starts costs ~0.15 s of node rather than ~0.4 s of tsx) and running one until it is killed. The children
 * acknowledge with ack.ts (which imports nothing of vitest).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll } from "vitest";

const REPO = fileURLToPath(new URL("../../", import.meta.url));

/** Compile `child` (a .ts path) and what it imports into `work`/build (--noCheck, ~5 s); the .js path to run. */
export function compileChild(child: string, work: string): string {
  const build = join(work, "build");
  mkdirSync(build);
  // The compiled files import their packages from the repository's node_modules, as ES modules.
  symlinkSync(join(REPO, "node_modules"), join(build, "node_modules"), "dir");
  writeFileSync(join(build, "package.json"), '{ "type": "module" }\n');
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [
    tsc,
    ...["--outDir", build, "--rootDir", REPO, "--module", "nodenext", "--moduleResolution", "nodenext"],
    ...["--target", "es2022", "--skipLibCheck", "--types", "node", "--noCheck", child],
  ]);
  return join(build, relative(REPO, child)).replace(/\.ts$/, ".js");
}


/** What a killed writer said: its acknowledgements (seq → function), warnings, and its `ready` line's fields. */
export interface KilledRun {
  acked: Map<number, string>;
  warnings: string[];
  ready: string[];
}

/**
 * Run `node childJs ...args`, collect its lines (`warn <message>`, `ready <fields...>`, `<seq> <fn>`), and SIGKILL it
 * `killAfterMs()` after its ready line (or after the line `startLine`, when given: a child that says when what the
 * test aims at has begun). Resolves once it is dead; rejects if it ended any other way.
 */
export function killAfterReady(childJs: string, args: string[], killAfterMs: () => number, startLine?: string): Promise<KilledRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [childJs, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const run: KilledRun = { acked: new Map(), warnings: [], ready: [] };
    let partial = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.on("data", (d: Buffer) => {
      const lines = (partial + d.toString()).split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith("warn ")) run.warnings.push(line.slice(5));
        else if (line.startsWith("ready ")) {
          run.ready = line.slice(6).split(" ");
          if (startLine === undefined) setTimeout(() => child.kill("SIGKILL"), killAfterMs());
        } else if (startLine !== undefined && line === startLine) setTimeout(() => child.kill("SIGKILL"), killAfterMs());
        else {
          const [seq, fn] = line.split(" ");
          run.acked.set(Number(seq), fn!);
        }
      }
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (signal !== "SIGKILL") reject(new Error(`the writer (${args.join(" ")}) ended with ${code ?? signal} before it was killed:\n${stderr}`));
      else resolve(run);
    });
  });
}

/**
 * In a test file: compile `child` once before its tests into a temporary directory (removed after them). `js()` is the
 * compiled script, `work()` the directory (for the test's own scratch files).
 */
export function compiledChild(child: string, prefix: string): { js(): string; work(): string } {
  let work = "";
  let js = "";
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), prefix));
    js = compileChild(child, work);
  }, 120_000);
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });
  return { js: () => js, work: () => work };
}
