/**
 * `hsmsim audit verify` and `hsmsim audit show`: the audit trail of a file store, read without its lock (a store in
 * use by another process can be audited).
 *
 * verify: the hash chain and the signed checkpoints (src/events/verify.ts `verifyStore`); exit 1 naming the first bad
 * record (or checkpoint). show: the calls, filtered, as a table, JSON lines, or pkcs11-spy text (spy.ts); the log's
 * chain is checked as it is read, and a bad entry stops the listing with exit 1.
 */
import { parsePublicKey } from "../events/checkpoint.js";
import { LogReadError, MissingPublicKeyError, readLog, verifyStore } from "../events/verify.js";
import type { CallRecord } from "../events/types.js";
import { CK, rvName } from "../pkcs11/constants.js";
import { CliError, integer, isoTime, storeLog, UsageError, type Parsed } from "./args.js";
import { spyHeader, spyLines } from "./spy.js";
import { progress } from "./progress.js";
import { lastSeqOfLog } from "../events/file-store.js";

type Print = (line: string) => void;

export function auditVerify(o: Parsed, print: Print): number {
  const { dir, file } = storeLog("hsmsim audit verify", o);
  const from = integer("from", o.from);
  const to = integer("to", o.to);
  if (from !== undefined && to !== undefined && to < from) throw new UsageError(`--to (${to}) is before --from (${from})`);
  let publicKey: Uint8Array | undefined;
  if (typeof o.pubkey === "string") {
    try {
      publicKey = parsePublicKey(o.pubkey);
    } catch (e) {
      throw new CliError(`hsmsim audit verify: --pubkey: ${(e as Error).message}`);
    }
  }
  const started = performance.now();
  let v;
  // A bar on a terminal (src/cli/progress.ts); silent with --json or when stderr is not one.
  const bar = progress("verifying", to ?? lastSeqOfLog(file), { json: o.json === true });
  try {
    v = verifyStore(dir, {
      ...(from !== undefined ? { from } : {}),
      ...(to !== undefined ? { to } : {}),
      ...(publicKey ? { publicKey } : {}),
      onProgress: (seq) => bar.update(seq),
    });
  } catch (e) {
    if (e instanceof MissingPublicKeyError || e instanceof RangeError) throw new CliError(`hsmsim audit verify: ${e.message.replace(/^hsmsim: /, "")}`);
    throw e;
  } finally {
    bar.finish();
  }
  const seconds = (performance.now() - started) / 1000;
  if (o.json === true) {
    print(JSON.stringify({ ...v, seconds: Number(seconds.toFixed(3)) }));
    return v.ok ? 0 : 1;
  }
  const cp = v.checkpoints;
  if (!v.ok) {
    const where = v.firstBad!.checkpointLine !== undefined ? ` (checkpoints.log line ${v.firstBad!.checkpointLine})` : "";
    print(`bad record: seq ${v.firstBad!.seq}${where}: ${v.firstBad!.problem} (${v.checked} records before it verified)`);
    return 1;
  }
  // A rate over a few records would mostly measure start-up and the first signature check.
  const rate = v.checked >= 10_000 && seconds > 0 ? `, ${Math.round(v.checked / seconds).toLocaleString("en-US")} records/s` : "";
  print(`ok: ${v.checked} records verified (log holds ${v.lastSeq} in range), head ${v.head}${rate}`);
  if (cp.count === 0) print("no signed checkpoints: a log cut short at its end could not be detected");
  else {
    const key = `${cp.publicKey!.slice(0, 16)}… (${cp.keySource === "given" ? "--pubkey" : "audit.pub in the store; trust it only as far as the directory"})`;
    print(`checkpoints: ${cp.verified} of ${cp.count} verified under audit key ${key}, the last at seq ${cp.lastSeq}`);
    if (v.lastSeq > cp.lastSeq && to === undefined) print(`records ${cp.lastSeq + 1}..${v.lastSeq} come after the last checkpoint (not yet signed)`);
  }
  return 0;
}

const FORMATS = ["table", "jsonl", "spy"] as const;

interface Filter {
  fns?: Set<string>;
  rvs?: Set<number>;
  app?: number;
  session?: number;
  since?: number;
  until?: number;
}

function rvValue(s: string): number {
  if (/^(0x[0-9a-f]+|\d+)$/i.test(s)) return Number(s);
  const name = s.toUpperCase().startsWith("CKR_") ? s.toUpperCase() : `CKR_${s.toUpperCase()}`;
  const v = (CK as Record<string, number>)[name];
  if (typeof v !== "number") throw new UsageError(`--rv: unknown return code ${s} (use a name such as CKR_PIN_INCORRECT, or a number)`);
  return v;
}

/** The application a record belongs to: C_Initialize is recorded before it has one; its output names it. */
const appOf = (r: CallRecord): number => (r.fn === "C_Initialize" && r.out && typeof (r.out as { app?: unknown }).app === "number" ? (r.out as { app: number }).app : r.app);
/** The session a record concerns: its hSession argument, or the session C_OpenSession opened. */
function sessionOf(r: CallRecord): number | undefined {
  if (typeof r.args.hSession === "number") return r.args.hSession;
  if (r.fn === "C_OpenSession" && r.out && typeof (r.out as { hSession?: unknown }).hSession === "number") return (r.out as { hSession: number }).hSession;
  return undefined;
}

function matches(r: CallRecord, f: Filter): boolean {
  if (f.fns && !f.fns.has(r.fn)) return false;
  if (f.rvs && !f.rvs.has(r.rv)) return false;
  if (f.app !== undefined && appOf(r) !== f.app) return false;
  if (f.session !== undefined && sessionOf(r) !== f.session) return false;
  if (f.since !== undefined && r.time < f.since) return false;
  if (f.until !== undefined && r.time > f.until) return false;
  return true;
}

export function auditShow(o: Parsed, print: Print): number {
  const { dir, file } = storeLog("hsmsim audit show", o);
  const format = o.json === true ? "jsonl" : ((o.format ?? "table") as string);
  if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format expected table, jsonl or spy, got ${format}`);
  const list = (v: string | true | undefined) => (typeof v === "string" ? v.split(",").map((s) => s.trim()).filter(Boolean) : undefined);
  const fns = list(o.fn)?.map((f) => (f.startsWith("C_") ? f : `C_${f}`));
  const filter: Filter = {
    ...(fns ? { fns: new Set(fns) } : {}),
    ...(o.rv !== undefined ? { rvs: new Set(list(o.rv)!.map(rvValue)) } : {}),
  };
  const app = integer("app", o.app);
  const session = integer("session", o.session);
  const since = isoTime("since", o.since);
  const until = isoTime("until", o.until);
  if (app !== undefined) filter.app = app;
  if (session !== undefined) filter.session = session;
  if (since !== undefined) filter.since = since;
  if (until !== undefined) filter.until = until;
  if (since !== undefined && until !== undefined && until < since) throw new UsageError(`--until is before --since`);

  const rows: string[][] = [];
  let shown = 0;
  if (format === "spy") spyHeader(`hsmsim store ${dir}`).forEach((l) => print(l));
  try {
    for (const r of readLog(file)) {
      if (!matches(r, filter)) continue;
      shown++;
      if (format === "jsonl") print(JSON.stringify(r));
      else if (format === "spy") {
        for (const l of spyLines(r)) print(l);
        print("");
      } else rows.push(row(r));
    }
  } catch (e) {
    if (e instanceof LogReadError) {
      if (format === "table" && rows.length) print(table(rows));
      throw new CliError(`hsmsim audit show: ${e.message.replace(/^hsmsim: /, "")}; ${shown} calls listed before it`, 1);
    }
    throw e;
  }
  if (format === "table") {
    if (rows.length) print(table(rows));
    print(`${shown} call${shown === 1 ? "" : "s"}${Object.keys(filter).length ? " matching" : ""}`);
  }
  return 0;
}

const HEAD = ["seq", "time (UTC)", "app", "session", "call", "args", "rv", "facts"];

function row(r: CallRecord): string[] {
  const { hSession: _h, ...rest } = r.args as Record<string, unknown>;
  let args = JSON.stringify(rest);
  if (args === "{}") args = "";
  if (args.length > 60) args = args.slice(0, 57) + "...";
  const session = sessionOf(r);
  return [
    String(r.seq),
    new Date(r.time).toISOString().replace("T", " ").replace("Z", ""),
    String(appOf(r)),
    session === undefined ? "" : String(session),
    r.fn,
    args,
    rvName(r.rv),
    r.facts.map((f) => f.type).join(", "),
  ];
}

function table(rows: string[][]): string {
  const w = HEAD.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i]!)).join("  ").trimEnd();
  return [line(HEAD), line(w.map((n) => "-".repeat(n))), ...rows.map(line)].join("\n");
}
