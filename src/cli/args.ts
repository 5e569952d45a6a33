/**
 * Argument parsing and errors shared by the hsmsim commands. Exit codes: 0 done, 1 a check failed (a bad record, a
 * forged checkpoint), 2 usage, or a store or file that cannot be opened or read. A `CliError` carries the exit code
 * and a message a shell user can act on.
 */
import fs from "node:fs";
import { join } from "node:path";

export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** A failure reported to the user as `message` (stderr), exiting with `code`. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    message: string,
    readonly code: 1 | 2 = 2,
  ) {
    super(message);
  }
}

export type Flags = Record<string, "value" | "bool">;
export type Parsed = Record<string, string | true>;

/** `--name value` and `--name` (bool) options; anything else is a UsageError. */
export function parse(args: string[], flags: Flags): Parsed {
  const out: Parsed = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf("=");
    const name = (eq > 0 ? a.slice(0, eq) : a).replace(/^--/, "");
    if (!a.startsWith("--") || !(name in flags)) throw new UsageError(`unknown option ${a}`);
    if (flags[name] === "bool") {
      if (eq > 0) throw new UsageError(`--${name} takes no value`);
      out[name] = true;
    } else {
      const v = eq > 0 ? a.slice(eq + 1) : args[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value`);
      out[name] = v;
    }
  }
  return out;
}

/** A positive integer option, or undefined when not given. */
export function integer(name: string, v: string | true | undefined, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === true || v.trim() === "" || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name} expected ${min === 0 ? "an integer >= 0" : "a positive integer"}, got ${String(v)}`);
  }
  return n;
}

/** An ISO time (or anything Date.parse reads) as milliseconds since the epoch. */
export function isoTime(name: string, v: string | true | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = typeof v === "string" ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new UsageError(`--${name} expected an ISO time such as 2026-11-26T19:30:00Z, got ${String(v)}`);
  return t;
}

/** `--store DIR`, required, holding a log: the path of its events.log. */
export function storeLog(cmd: string, o: Parsed): { dir: string; file: string } {
  if (typeof o.store !== "string") throw new UsageError(`${cmd}: --store DIR is required`);
  const dir = o.store;
  const file = join(dir, "events.log");
  if (!fs.existsSync(dir)) throw new CliError(`${cmd}: ${dir} does not exist (give the directory of a file store)`);
  if (!fs.existsSync(file)) throw new CliError(`${cmd}: no log in ${dir} (expected ${file}); is it a store directory?`);
  return { dir, file };
}
