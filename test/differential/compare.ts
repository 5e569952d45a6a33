/**
 * Compare two observation lists call by call; on the first mismatch build a readable report
 * (seed, index, the call, both observations, and the previous 10 calls).
 */
import { isDeepStrictEqual } from "node:util";
import { formatStep, type Sequence } from "./sequence.js";
import type { StepObservation } from "./run.js";

export interface CompareResult {
  ok: boolean;
  /** Number of observations compared (both lists' common prefix when ok). */
  compared: number;
  /** Index (in the observation lists) of the first mismatch. */
  index?: number;
  report?: string;
}

/** The compared part of an observation (resolved args are excluded: raw slot IDs/handles may differ). */
export function comparable(o: StepObservation | undefined): unknown {
  if (!o) return undefined;
  const { args: _args, ...rest } = o;
  void _args;
  return JSON.parse(JSON.stringify(rest)) as unknown;
}

function show(o: StepObservation | undefined): string {
  if (!o) return "(no observation)";
  const { step, app, fn, rv, out, err, probe, args } = o;
  const lines = [`step ${step} app${app} ${fn} → ${rv}`];
  if (out !== undefined && out !== null) lines.push(`  out:   ${JSON.stringify(out)}`);
  if (err) lines.push(`  err:   ${JSON.stringify(err)}`);
  if (probe !== undefined) lines.push(`  probe: ${JSON.stringify(probe)}`);
  if (args) lines.push(`  args:  ${JSON.stringify(args, (_k, v: unknown) => (typeof v === "string" && v.length > 40 ? `${v.slice(0, 12)}…(${v.length})` : v))}`);
  return lines.join("\n");
}

export interface CompareLabels {
  a: string;
  b: string;
}

export function compareObservations(
  seq: Sequence,
  a: readonly StepObservation[],
  b: readonly StepObservation[],
  labels: CompareLabels = { a: "A", b: "B" },
): CompareResult {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const oa = a[i];
    const ob = b[i];
    if (isDeepStrictEqual(comparable(oa), comparable(ob))) continue;
    const stepIndex = (oa ?? ob)?.step ?? i;
    const step = seq.steps[stepIndex];
    const lines: string[] = [];
    lines.push(`MISMATCH seed=${seq.seed} apps=${seq.apps} observation #${i} (step ${stepIndex} of ${seq.steps.length})`);
    lines.push(`call: ${step ? formatStep(step) : "?"}`);
    lines.push(`--- ${labels.a}:`);
    lines.push(show(oa));
    lines.push(`--- ${labels.b}:`);
    lines.push(show(ob));
    lines.push(`--- previous calls (${labels.a}${labels.a === labels.b ? "" : `; ${labels.b} agreed`}):`);
    for (let j = Math.max(0, i - 10); j < i; j++) {
      const p = a[j];
      if (!p) continue;
      const s = seq.steps[p.step];
      const outStr = p.out === undefined || p.out === null ? "" : ` out=${JSON.stringify(p.out)}`;
      const probeStr = p.probe === undefined ? "" : ` probe=${JSON.stringify(p.probe)}`;
      lines.push(`  #${j} step ${p.step}: ${s ? formatStep(s) : p.fn} → ${p.rv}${truncate(outStr + probeStr, 300)}`);
    }
    return { ok: false, compared: i, index: i, report: lines.join("\n") };
  }
  return { ok: true, compared: n };
}

function truncate(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
