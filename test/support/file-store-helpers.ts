/**
 * Helpers for the file store tests: temporary store directories (removed after each test), synthetic call records,
 * the log's lines, and a second process (test/support/file-store-child.ts) to hold or contend for a lock.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach } from "vitest";
import type { CallRecord } from "../../src/events/types.js";

const made: string[] = [];

/** A new empty directory, removed after the current test. */
export function tempDir(prefix = "hsmsim-file-store-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

afterEach(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A small record with sequence `seq` (facts-free, like a C_GetInfo). */
export const record = (seq: number, extra: Partial<CallRecord> = {}): CallRecord => ({
  seq,
  time: 1_800_000_000_000 + seq,
  app: 1,
  fn: "C_GetInfo",
  args: {},
  rv: 0,
  out: { cryptokiVersion: { major: 2, minor: 40 }, manufacturerID: "hsmsim", n: seq },
  facts: [],
  ...extra,
});

/** The log's lines (without the final empty string after the last newline). */
export function logLines(dir: string): string[] {
  const text = readFileSync(join(dir, "events.log"), "utf8");
  return text === "" ? [] : text.replace(/\n$/, "").split("\n");
}

export const CHILD = fileURLToPath(new URL("./file-store-child.ts", import.meta.url));

/** Start the helper process under tsx; `lines` resolves with its stdout lines once it has answered (held, opened, or refused). */
export function startChild(mode: "hold" | "open", dir: string): { child: ChildProcessWithoutNullStreams; lines: Promise<string[]> } {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD, mode, dir], { stdio: "pipe" });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const lines = new Promise<string[]>((resolve, reject) => {
    const check = () => {
      const ls = out.split("\n").filter(Boolean);
      if (mode === "hold" ? ls.length >= 1 : ls.length >= 1 && (ls[0] === "opened" || ls.length >= 2)) resolve(ls);
    };
    child.stdout.on("data", check);
    child.on("exit", (code) => {
      check();
      reject(new Error(`child (${mode}) exited with ${code} before answering: ${out} ${err}`));
    });
  });
  return { child, lines };
}

/** Resolves when the child has exited. */
export const exited = (child: ChildProcessWithoutNullStreams) =>
  new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve())));
