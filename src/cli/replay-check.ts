/**
 * `hsmsim replay --check --store DIR [--json]`: re-execute a file store's log on a fresh simulator (its saved options
 * and simulator key) and report every call whose return code, outputs or facts differ from the record
 * (src/replay/check.ts says what each call is re-executed with). Exit 0 when none differs, 1 when some do, 2 for
 * usage and stores that cannot be read.
 *
 * `hsmsim replay --spy TRACE [--profile default|softhsm2] [--store DIR] [--json]`: re-execute an OpenSC pkcs11-spy
 * trace against hsmsim (src/replay/spy-run.ts); exit 0 when no re-executed call diverges, 1 when some do.
 */
import fs from "node:fs";
import { type SimulatorOptions } from "../actors/simulator.js";
import { FileEventStore, lastSeqOfLog } from "../events/file-store.js";
import { LogReadError, readLog } from "../events/verify.js";
import { rvName } from "../pkcs11/constants.js";
import { checkRecords, type CheckReport, type Divergence } from "../replay/check.js";
import { CliError, storeLog, type Parsed } from "./args.js";
import { progress } from "./progress.js";

type Print = (line: string) => void;

const MODE_NOTE = {
  pin: "re-executed with the recorded PIN outcome (no PIN is in the log: the PIN comparison answered from the record's PinRejected fact, new PIN verifiers taken from its facts; everything else decided again)",
  partial: "re-executed without its input (not in the log): rv, facts and the output's length compared, the digest's value not",
  record: "not re-executed (the argument values it depends on are not in the log): its recorded facts applied",
} as const;

export function replayCheck(o: Parsed, print: Print): number {
  const { dir, file } = storeLog("hsmsim replay --check", o);
  let settings;
  try {
    settings = FileEventStore.readSettings(dir);
  } catch (e) {
    throw new CliError(`hsmsim replay --check: ${(e as Error).message.replace(/^hsmsim: /, "")}`);
  }
  if (!settings) {
    if (fs.statSync(file).size === 0) {
      print(o.json === true ? JSON.stringify({ ok: true, records: 0, divergences: [] }) : "replay --check: the log is empty; nothing to re-execute");
      return 0;
    }
    throw new CliError(
      `hsmsim replay --check: ${dir} has no simulator.json (it was written by a simulator created in code); re-execution needs the options and simulator key it was written with`,
    );
  }
  const profile = String(settings.options.profile ?? "default");
  let report: CheckReport;
  // A bar on a terminal (src/cli/progress.ts); silent with --json or when stderr is not one.
  const bar = progress("re-executing", lastSeqOfLog(file), { json: o.json === true });
  try {
    report = checkRecords(readLog(file), {
      simulator: { ...(settings.options as SimulatorOptions), simulatorKey: settings.simulatorKey },
      progress: (seq) => bar.update(seq),
    });
  } catch (e) {
    if (e instanceof LogReadError) throw new CliError(`hsmsim replay --check: ${e.message.replace(/^hsmsim: /, "")} (run hsmsim audit verify --store ${dir})`, 1);
    throw e;
  } finally {
    bar.finish();
  }
  const ok = report.divergences.length === 0 && !report.stopped;
  if (o.json === true) {
    print(JSON.stringify({ ok, profile, ...report }));
    return ok ? 0 : 1;
  }
  print(`replay --check: ${report.records} recorded calls re-executed on a fresh simulator (profile ${profile}, the store's simulator key)`);
  print(`  ${report.modes.exact} decided again from the recorded arguments and compared in full`);
  for (const m of ["pin", "partial", "record"] as const) {
    if (report.modes[m] === 0) continue;
    print(`  ${report.modes[m]} ${MODE_NOTE[m]}: ${fnCounts(report.byMode[m])}`);
  }
  for (const d of report.divergences) printDivergence(d, print);
  if (report.stopped) print(`stopped at seq ${report.stopped.seq}: ${report.stopped.reason}`);
  print(ok ? "no divergence" : `${report.divergences.length} divergent call${report.divergences.length === 1 ? "" : "s"}${report.divergences.length ? `, the first at seq ${report.divergences[0]!.seq}` : ""}`);
  return ok ? 0 : 1;
}

export const fnCounts = (m: Record<string, number>) =>
  Object.entries(m)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([fn, n]) => `${fn} ×${n}`)
    .join(", ");

const short = (v: unknown) => {
  const s = JSON.stringify(v);
  return s === undefined ? "(none)" : s.length > 300 ? s.slice(0, 297) + "..." : s;
};

function printDivergence(d: Divergence, print: Print): void {
  const label = d.mode === "pin" ? " [recorded PIN outcome]" : d.mode === "partial" ? " [input not recorded]" : "";
  print(`DIVERGES seq ${d.seq} ${d.fn} app ${d.app}${label}: ${d.differs.join(", ")}`);
  if (d.differs.includes("rv")) print(`    rv       recorded ${rvName(d.recorded.rv)}, re-executed ${rvName(d.reexecuted.rv)}`);
  if (d.differs.includes("out")) print(`    out      recorded ${short(d.recorded.out)}\n             re-executed ${short(d.reexecuted.out)}`);
  if (d.differs.includes("facts")) print(`    facts    recorded ${short(d.recorded.facts)}\n             re-executed ${short(d.reexecuted.facts)}`);
  if (d.differs.includes("args")) print(`    args     the re-built arguments redact differently from the record's (a re-execution fault, please report)`);
}
