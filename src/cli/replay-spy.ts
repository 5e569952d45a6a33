/**
 * `hsmsim replay --spy TRACE [--profile default|softhsm2] [--store DIR] [--json]`: re-execute an OpenSC pkcs11-spy
 * trace against hsmsim (src/replay/spy-run.ts) and report, per call, where hsmsim's return code or outputs differ
 * from the traced module's, and the functions skipped with counts and reasons. The profile defaults to softhsm2
 * (traces usually come from real modules); with --store the re-execution is recorded in that file store (a new one,
 * or an existing one whose state it starts from). Exit 0 when no re-executed call diverges, 1 when some do, 2 for
 * usage, unreadable traces and stores.
 *
 * PINs: the trace's PIN bytes are handed to hsmsim, which records them only by length. Nothing here prints an input
 * argument: the report holds function names, return codes and outputs.
 */
import fs from "node:fs";
import type { SimulatorOptions } from "../actors/simulator.js";
import { FileEventStore } from "../events/file-store.js";
import { rvName } from "../pkcs11/constants.js";
import { PROFILES, type ProfileName } from "../pkcs11/profiles.js";
import { parseSpyTrace } from "../replay/spy-parse.js";
import { runSpyTrace, type SpyReport } from "../replay/spy-run.js";
import { CliError, UsageError, type Parsed } from "./args.js";
import { fnCounts } from "./replay-check.js";
import { progress } from "./progress.js";

type Print = (line: string) => void;

export function replaySpy(o: Parsed, print: Print): number {
  const file = o.spy;
  if (typeof file !== "string" || file === "") throw new UsageError("hsmsim replay --spy: give the trace file (PKCS11SPY_OUTPUT)");
  const profile = (o.profile ?? "softhsm2") as string;
  if (!(profile in PROFILES)) throw new UsageError(`--profile expected ${Object.keys(PROFILES).join(" or ")}, got ${profile}`);
  let text: string;
  try {
    text = fs.readFileSync(file, "latin1");
  } catch (e) {
    throw new CliError(`hsmsim replay --spy: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const trace = parseSpyTrace(text);
  if (trace.calls.length === 0) {
    throw new CliError(`hsmsim replay --spy: ${file} holds no pkcs11-spy calls (expected lines such as "1: C_Initialize"; was it written with PKCS11SPY_OUTPUT?)`);
  }
  let store: FileEventStore | undefined;
  let simulator: Omit<SimulatorOptions, "clock" | "shell"> = { profile: profile as ProfileName };
  if (typeof o.store === "string") {
    try {
      store = new FileEventStore(o.store);
      const saved = store.settings(o.profile !== undefined ? { profile } : {}, { profile });
      simulator = { ...(saved.options as SimulatorOptions), simulatorKey: saved.simulatorKey, store };
    } catch (e) {
      store?.close();
      throw new CliError(`hsmsim replay --spy: --store ${o.store}: ${(e as Error).message.replace(/^hsmsim: /, "")}`);
    }
  }
  let report: SpyReport;
  const bar = progress("re-executing", trace.calls.length, { json: o.json === true });
  try {
    report = runSpyTrace(trace, { simulator, progress: (done) => bar.update(done) }).report;
  } finally {
    bar.finish();
    store?.close();
  }
  const ok = report.divergences.length === 0;
  const usedProfile = String(simulator.profile ?? profile);
  if (o.json === true) {
    print(JSON.stringify({ ok, trace: file, profile: usedProfile, ...report }));
    return ok ? 0 : 1;
  }
  print(
    `replay --spy ${file}: ${report.calls} calls in ${report.processes} process${report.processes === 1 ? "" : "es"} (modules: ${[...new Set(trace.modules)].join(", ") || "?"}), re-executed against hsmsim (profile ${usedProfile}${store ? `, recorded in ${o.store}` : ""})`,
  );
  const uncompared = report.reexecuted - report.matched - report.divergences.length;
  print(`  ${report.reexecuted} re-executed: ${report.matched} alike, ${report.divergences.length} divergent${uncompared ? `, ${uncompared} not compared (see below)` : ""}`);
  const skipped = Object.entries(report.skipped);
  if (skipped.length) {
    print(`  ${skipped.reduce((n, [, s]) => n + s.count, 0)} skipped:`);
    for (const [fn, s] of skipped.sort((a, b) => b[1].count - a[1].count || a[0].localeCompare(b[0]))) print(`    ${fn} ×${s.count}: ${s.reason}`);
  }
  if (report.serials.fromTrace || report.serials.drawn) {
    print(`  new token serials: ${report.serials.fromTrace} taken from the trace${report.serials.drawn ? `, ${report.serials.drawn} drawn (the trace showed none for them)` : ""}`);
  }
  const generated = Object.entries(report.underGeneratedKeys);
  if (generated.length) {
    print(`  under keys the traced module generated (their values are in no trace): ${generated.map(([fn, n]) => `${fn} ×${n}`).join(", ")}; encrypt and sign outputs compared by length, decrypt and verify not compared`);
  }
  if (report.explained.length) {
    print(`  ${report.explained.length} difference${report.explained.length === 1 ? "" : "s"} explained by a known behaviour of the traced module, not counted:`);
    for (const x of report.explained) print(`    process ${x.process} call ${x.index} ${x.fn} (trace line ${x.line}): ${x.field} trace ${String(x.trace)}, hsmsim ${String(x.hsmsim)} (SoftHSM ORs into the caller's reused CK_MECHANISM_INFO)`);
  }
  if (report.finalizedOnBehalf) print(`  ${report.finalizedOnBehalf} process${report.finalizedOnBehalf === 1 ? "" : "es"} ended without C_Finalize: finalized on their behalf`);
  for (const d of report.divergences) {
    print(`DIVERGES process ${d.process} call ${d.index} ${d.fn} (trace line ${d.line}): rv trace ${rvName(d.rv.trace)}, hsmsim ${rvName(d.rv.hsmsim)}`);
    for (const x of d.diffs) print(`    ${x.field}: trace ${JSON.stringify(x.trace)}, hsmsim ${JSON.stringify(x.hsmsim)}`);
  }
  print(ok ? `no divergence in ${fnCounts(report.compared)}` : `${report.divergences.length} divergent call${report.divergences.length === 1 ? "" : "s"}`);
  return ok ? 0 : 1;
}
