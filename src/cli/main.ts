/**
 * The hsmsim command line: `hsmsim <command> [options]`. Exit codes: 0 done, 1 failed (a verification found a bad
 * record), 2 usage or a store that cannot be opened.
 */
import fs from "node:fs";
import { join } from "node:path";
import { demo } from "./demo.js";
import { FileEventStore } from "../events/file-store.js";
import { verifyLogFile } from "../events/verify.js";

const USAGE = `usage: hsmsim <command> [options]

commands:
  demo [--store DIR] [--json]
           run the documented example (open, log in, use, inspect, log out, close) on the embedded default,
           printing each step's session state from the read model and the audit trail; with --store, record it in
           a new file store in DIR and verify its hash chain afterwards
  audit verify --store DIR [--from N] [--to M] [--json]
           verify the hash chain of a file store's log (needs only the log); exit 1 naming the first bad record
  help     this text`;

class UsageError extends Error {}

function parse(args: string[], flags: Record<string, "value" | "bool">): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const name = a.replace(/^--/, "");
    if (!a.startsWith("--") || !(name in flags)) throw new UsageError(`unknown option ${a}`);
    if (flags[name] === "bool") out[name] = true;
    else {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      out[name] = v;
    }
  }
  return out;
}

function integer(name: string, v: string | true | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${name} expected a positive integer, got ${String(v)}`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "demo":
        return runDemo(parse(rest, { json: "bool", store: "value" }));
      case "audit": {
        const [sub, ...more] = rest;
        if (sub !== "verify") throw new UsageError(`hsmsim audit: unknown subcommand ${sub === undefined ? "(none)" : `"${sub}"`}`);
        return auditVerify(parse(more, { store: "value", from: "value", to: "value", json: "bool" }));
      }
      case undefined:
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return 0;
      default:
        throw new UsageError(`hsmsim: unknown command "${cmd}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}

function runDemo(o: Record<string, string | true>): number {
  const json = o.json === true;
  if (typeof o.store !== "string") return demo({ json });
  const dir = o.store;
  if (fs.existsSync(join(dir, "events.log")) && fs.statSync(join(dir, "events.log")).size > 0) {
    console.error(`hsmsim demo: ${dir} already holds a log; the demo records into a new store (choose an empty directory)`);
    return 2;
  }
  const store = new FileEventStore(dir, { durability: "fsync" });
  let code: number;
  try {
    code = demo({ json, store, storeName: `file store ${dir}, fsync durability` });
  } finally {
    store.close();
  }
  const v = verifyLogFile(store.file);
  if (!json) {
    console.log(
      v.ok
        ? `\naudit verify: ${v.checked} records, hash chain intact, head ${v.head}`
        : `\naudit verify: FAILED at seq ${v.firstBad!.seq}: ${v.firstBad!.problem}`,
    );
  }
  return v.ok ? code : 1;
}

function auditVerify(o: Record<string, string | true>): number {
  if (typeof o.store !== "string") throw new UsageError("hsmsim audit verify: --store DIR is required");
  const file = join(o.store, "events.log");
  if (!fs.existsSync(file)) {
    console.error(`hsmsim audit verify: no log in ${o.store} (expected ${file})`);
    return 2;
  }
  const from = integer("from", o.from);
  const to = integer("to", o.to);
  const v = verifyLogFile(file, { ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) });
  if (o.json === true) console.log(JSON.stringify(v));
  else if (v.ok) console.log(`ok: ${v.checked} records verified (log holds ${v.lastSeq} in range), head ${v.head}`);
  else console.log(`bad record: seq ${v.firstBad!.seq}: ${v.firstBad!.problem} (${v.checked} records before it verified)`);
  return v.ok ? 0 : 1;
}
