#!/usr/bin/env node
// hsmsim benchmark harness: runs the same PKCS#11 workloads against
//   softhsm      real SoftHSM v2 through pkcs11js
//   softhsm+spy  the same SoftHSM behind OpenSC pkcs11-spy (every call traced to a file)
//   hsmsim       dist/pkcs11/pkcs11js.js, load("memory:?maxSessions=200000")
// each (target, workload) in its own child process (bench/target.js), and prints one table.
//
//   node --expose-gc bench/run.js [--quick] [--only w1,w2] [--targets t1,t2] [--sizes 1k,10k]
//        [--rounds N] [--min-ms MS] [--warmup-ms MS] [--out FILE] [--tmp DIR] [--strict]
//
// See bench/README.md.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const TARGET_JS = join(HERE, "target.js");
const STORE_JS = join(HERE, "store.js");
const HSMSIM_DIST = process.env.HSMSIM_MODULE
  ? process.env.HSMSIM_MODULE.startsWith("file:")
    ? fileURLToPath(process.env.HSMSIM_MODULE)
    : resolve(process.env.HSMSIM_MODULE)
  : join(HERE, "..", "dist", "pkcs11", "pkcs11js.js");

const ALL_TARGETS = ["softhsm", "softhsm+spy", "hsmsim"];
const CRYPTO_WORKLOADS = ["aes-cbc-pad-64", "aes-cbc-pad-1m", "aes-gcm-64", "aes-gcm-1m", "hmac-sha256-64", "keygen-aes256"];
const SIMPLE = ["open+close", "getSessionInfo", "login+logout", "create+destroy", "digest", ...CRYPTO_WORKLOADS];
const FULL_SIZES = ["1k", "10k", "100k"];
const QUICK_SIZES = ["1k", "10k"];
const CHILD_TIMEOUT_MS = 10 * 60 * 1000;
// The file store workloads (bench/store.js), run on hsmsim only, each in its own child. open-10M builds a 10M-event
// store first (1M with --quick), which takes minutes: its child may run longer.
const STORE = ["append-fsync", "append-group", "append-none", "replay", "verify", "snapshot", "open-10M"];
const STORE_TIMEOUT_MS = 40 * 60 * 1000;
const MAX_OPEN_MS = 1000; // issue 5: a 10M-event store opens in < 1 s with snapshots
const MIN_REPLAY_PER_SEC = 1e6; // issue 5: replay from the file store >= 1M events/s

// Issue targets
const MIN_RATIO_VS_SPY = 0.5; // every workload: hsmsim ops/s >= 0.5 x softhsm+spy ops/s
// Issue 3's crypto workloads: >= 1x softhsm+spy on 64 B, >= 0.5x raw SoftHSM on 1 MiB (digest is SHA-256 of 64 B).
const CRYPTO_TARGETS = {
  "aes-cbc-pad-64": { vs: "softhsm+spy", min: 1 },
  "aes-cbc-pad-1m": { vs: "softhsm", min: 0.5 },
  "aes-gcm-64": { vs: "softhsm+spy", min: 1 },
  "aes-gcm-1m": { vs: "softhsm", min: 0.5 },
  "hmac-sha256-64": { vs: "softhsm+spy", min: 1 },
  // keygen-aes256 has no row: issue 3 lists key generation among its workloads but sets targets only for the 64 B
  // and 1 MiB ones, so it is held to the rule for every workload (>= 0.5x spy). Each generated key is sealed with
  // noble's XChaCha20-Poly1305 before it enters its record (~15 µs here) and recorded with its 32 attributes.
  // Issue 3 names SHA-256 64 B among its 64 B workloads: the digest row is held to 1x, not issue 2's 0.5x.
  digest: { vs: "softhsm+spy", min: 1 },
};
const MAX_GROWTH = 1.5; // per-call cost at largest N <= 1.5 x cost at 1k
const MAX_HEAP_PER_SESSION = 2048; // bytes

function usage(msg) {
  if (msg) console.error(`bench: ${msg}`);
  console.error(
    "usage: node --expose-gc bench/run.js [--quick] [--only w1,w2] [--targets t1,t2] [--sizes 1k,10k,100k]\n" +
      "       [--rounds N] [--min-ms MS] [--warmup-ms MS] [--out FILE] [--tmp DIR] [--strict] [--store-events N]\n" +
      `  workloads: ${SIMPLE.join(" ")} open-N (all sizes) open-<size>\n  store:     ${STORE.join(" ")} (hsmsim only; "store" = all)\n` +
      `  targets:   ${ALL_TARGETS.join(" ")}`,
  );
  process.exit(2);
}

function parseSize(s) {
  const m = /^(\d+)(k?)$/.exec(s);
  if (!m) usage(`bad size ${s}`);
  return Number(m[1]) * (m[2] ? 1000 : 1);
}
const sizeLabel = (n) => (n % 1000 === 0 ? `${n / 1000}k` : String(n));

function parseArgs(argv) {
  const o = { quick: false, strict: false, passthrough: [], out: join(HERE, "results", "latest.json") };
  const list = (v) => (v ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--quick") o.quick = true;
    else if (a === "--strict") o.strict = true;
    else if (a === "--only") o.only = list(val());
    else if (a === "--targets") o.targets = list(val());
    else if (a === "--sizes") o.sizes = list(val());
    else if (a === "--out") o.out = val();
    else if (a === "--tmp") o.tmp = val();
    else if (a === "--store-events") o.storeEvents = Number(val());
    else if (a === "--rounds" || a === "--min-ms" || a === "--warmup-ms") o.passthrough.push(a, val());
    else if (a === "-h" || a === "--help") usage();
    else usage(`unknown argument ${a}`);
  }
  if (o.quick) o.passthrough.unshift("--quick");
  o.targets ??= ALL_TARGETS;
  for (const t of o.targets) if (!ALL_TARGETS.includes(t)) usage(`unknown target ${t}`);
  const sizes = (o.sizes ?? (o.quick ? QUICK_SIZES : FULL_SIZES)).map(parseSize).sort((a, b) => a - b);
  const openAll = sizes.map((n) => `open-${sizeLabel(n)}`);
  let workloads = [...SIMPLE, ...openAll, ...STORE];
  if (o.only) {
    workloads = [];
    for (const w of o.only) {
      if (w === "store") workloads.push(...STORE);
      else if (STORE.includes(w)) workloads.push(w);
      else if (w === "open-N" || w === "open-n") workloads.push(...openAll);
      else if (SIMPLE.includes(w)) workloads.push(w);
      else if (/^open-\d+k?$/.test(w)) workloads.push(`open-${sizeLabel(parseSize(w.slice(5)))}`);
      else usage(`unknown workload ${w}`);
    }
    workloads = [...new Set(workloads)];
  }
  o.workloads = workloads;
  return o;
}

function runChild(target, workload, opts, tmpRoot) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const store = STORE.includes(workload);
    const args = store
      ? [STORE_JS, workload, ...(opts.quick ? ["--quick"] : []), ...(workload === "open-10M" && opts.storeEvents ? ["--events", String(opts.storeEvents)] : [])]
      : [TARGET_JS, target, workload, ...opts.passthrough];
    const timeoutMs = store ? STORE_TIMEOUT_MS : CHILD_TIMEOUT_MS;
    const child = spawn(process.execPath, ["--expose-gc", ...args], {
      env: { ...process.env, BENCH_TMP: tmpRoot },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => {
      stderr += d;
      if (store) process.stderr.write(d); // open-10M reports its progress
    });
    const timer = setTimeout(() => {
      stderr += `\n[bench] child timed out after ${timeoutMs / 1000}s, killed`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split("\n").reverse().find((l) => l.startsWith("BENCH_RESULT "));
      let res;
      if (line) {
        try {
          res = JSON.parse(line.slice("BENCH_RESULT ".length));
        } catch (e) {
          res = { status: "error", error: `unparseable child output: ${e}` };
        }
      } else {
        res = { status: "error", error: `no result (exit ${code ?? signal})\n${stderr.slice(-2000)}` };
      }
      res.target ??= target;
      res.workload ??= workload;
      res.wallMs = Date.now() - t0;
      if (stderr.trim()) res.stderr = stderr.slice(-4000);
      resolve(res);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// formatting
// ---------------------------------------------------------------------------------------------
function fmtOps(x) {
  if (x == null || !Number.isFinite(x)) return "-";
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(2)}k`;
  return x.toFixed(1);
}
const fmtUs = (x) => (x == null || !Number.isFinite(x) ? "-" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const fmtRatio = (x) => (x == null || !Number.isFinite(x) ? "-" : `${x.toFixed(2)}x`);
const fmtBytes = (x) => (x == null || !Number.isFinite(x) ? "-" : x.toFixed(0));
const fmtMB = (x) => `${(x / 1048576).toFixed(1)} MB`;

function table(header, rows, alignLeft = [0]) {
  const cells = [header, ...rows].map((r) => r.map((c) => String(c ?? "")));
  const w = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (alignLeft.includes(i) ? c.padEnd(w[i]) : c.padStart(w[i]))).join(" | ");
  return [line(cells[0]), w.map((n) => "-".repeat(n)).join("-|-"), ...cells.slice(1).map(line)].join("\n");
}

// ---------------------------------------------------------------------------------------------
async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const hsmsimBuilt = existsSync(HSMSIM_DIST);
  const targets = opts.targets.filter((t) => t !== "hsmsim" || hsmsimBuilt);
  if (opts.targets.includes("hsmsim") && !hsmsimBuilt) console.log(`hsmsim: not built (${relative(process.cwd(), HSMSIM_DIST)} missing) — skipped`);

  const tmpRoot = mkdtempSync(join(opts.tmp ?? tmpdir(), "hsmsim-bench-"));
  const cleanup = () => rmSync(tmpRoot, { recursive: true, force: true });
  process.on("SIGINT", () => {
    cleanup();
    process.exit(130);
  });

  console.log(
    `bench: ${opts.quick ? "quick" : "full"} run, targets ${targets.join(", ") || "(none)"}; workloads ${opts.workloads.join(", ")}` +
      `\n       node ${process.version}, ${cpus().length} cpu(s) ${cpus()[0]?.model ?? ""}`,
  );

  // results[workload][target] = child output. Interleave targets per workload so slow drift
  // (thermal, page cache writeback from the spy trace) hits all targets alike.
  const results = {};
  const children = [];
  try {
    for (const w of opts.workloads) {
      results[w] = {};
      for (const t of STORE.includes(w) ? targets.filter((x) => x === "hsmsim") : targets) {
        process.stderr.write(`  ${w.padEnd(15)} ${t.padEnd(12)} ... `);
        const r = await runChild(t, w, opts, tmpRoot);
        children.push(r);
        results[w][t] = r;
        if (r.status === "ok") process.stderr.write(`${(r.wallMs / 1000).toFixed(1)}s\n`);
        else if (r.status === "not built") process.stderr.write("not built\n");
        else process.stderr.write(`ERROR\n${indent(r.error)}\n`);
      }
    }
  } finally {
    cleanup();
  }

  // -------------------------------------------------------------------------------------------
  // spy trace sanity: the audited peer must really have written a trace for each workload
  // -------------------------------------------------------------------------------------------
  const spyRuns = children.filter((c) => c.target === "softhsm+spy" && c.status === "ok");
  const noTrace = spyRuns.filter((c) => !(c.result.traceBytes > 0));
  for (const c of noTrace) {
    c.status = "error";
    c.error = "pkcs11-spy trace file did not grow";
    console.error(`ERROR: ${c.target}/${c.workload}: ${c.error} (is the spy really in front of SoftHSM?)`);
  }
  // -------------------------------------------------------------------------------------------
  // rows: one per measured quantity, ops/s for every target
  // -------------------------------------------------------------------------------------------
  const get = (w, t) => (results[w]?.[t]?.status === "ok" ? results[w][t].result : undefined);
  const rows = [];
  for (const w of opts.workloads.filter((x) => SIMPLE.includes(x))) {
    rows.push({ workload: w, child: w, ops: Object.fromEntries(ALL_TARGETS.map((t) => [t, get(w, t)?.opsPerSec])) });
  }
  const sizes = opts.workloads.filter((w) => w.startsWith("open-") && !STORE.includes(w)).map((w) => parseSize(w.slice(5)));
  for (const n of sizes) {
    const w = `open-${sizeLabel(n)}`;
    const L = sizeLabel(n);
    const pick = (f) => Object.fromEntries(ALL_TARGETS.map((t) => [t, get(w, t) ? f(get(w, t)) : undefined]));
    rows.push({ workload: `open@${L} (last 10%)`, child: w, ops: pick((r) => r.openLast10OpsPerSec) });
    rows.push({ workload: `getSessionInfo@${L}`, child: w, ops: pick((r) => r.getSessionInfoAtN.opsPerSec) });
    rows.push({ workload: `open+close@${L}`, child: w, ops: pick((r) => r.openCloseAtN.opsPerSec) });
    rows.push({ workload: `closeAll@${L} (sessions/s)`, child: w, ops: pick((r) => r.closeAllSessionsPerSec) });
  }
  for (const r of rows) {
    r.errors = ALL_TARGETS.filter((t) => results[r.child]?.[t]?.status === "error");
  }
  for (const r of rows) {
    const h = r.ops.hsmsim;
    r.hsmsimVsSofthsm = h && r.ops.softhsm ? h / r.ops.softhsm : undefined;
    r.hsmsimVsSpy = h && r.ops["softhsm+spy"] ? h / r.ops["softhsm+spy"] : undefined;
    r.check = r.errors.length ? "ERR" : r.hsmsimVsSpy == null ? "n/a" : r.hsmsimVsSpy >= MIN_RATIO_VS_SPY ? "PASS" : "FAIL";
    const ct = CRYPTO_TARGETS[r.workload];
    if (ct && !r.errors.length) {
      const ratio = h && r.ops[ct.vs] ? h / r.ops[ct.vs] : undefined;
      r.target = `>= ${ct.min}x ${ct.vs}`;
      r.check = ratio == null ? "n/a" : ratio >= ct.min ? "PASS" : "FAIL";
    }
  }

  console.log(`\nops/s = completed workload iterations per second (median of rounds)\n`);
  console.log(
    table(
      ["workload", "softhsm ops/s", "softhsm+spy ops/s", "hsmsim ops/s", "hsmsim/softhsm", "hsmsim/spy", "target", "check"],
      rows.map((r) => [
        r.workload,
        ...["softhsm", "softhsm+spy", "hsmsim"].map((t) => (r.errors.includes(t) ? "ERR" : fmtOps(r.ops[t]))),
        fmtRatio(r.hsmsimVsSofthsm),
        fmtRatio(r.hsmsimVsSpy),
        r.target ?? `>= ${MIN_RATIO_VS_SPY}x spy`,
        r.check,
      ]),
    ),
  );
  console.log(
    "\nnotes: a separate 'keeper' session stays open during every workload, so open+close never closes the\n" +
      "       token's last session (SoftHSM's last-session => logout path is not taken per iteration).\n" +
      "       open@N = per-call cost of the last 10% of N C_OpenSession calls; X@N = X measured with N sessions open;\n" +
      "       closeAll@N = C_CloseAllSessions with N+1 open, in sessions closed per second.",
  );

  // -------------------------------------------------------------------------------------------
  // scaling: µs/call at each N, growth largest-N vs smallest-N, heap per session
  // -------------------------------------------------------------------------------------------
  const checks = [];
  if (sizes.length) {
    const lo = sizes[0];
    const hi = sizes[sizes.length - 1];
    const at = (t, n) => get(`open-${sizeLabel(n)}`, t);
    const metrics = [
      ["open (last 10%)", (r) => r.usPerOpenLast10],
      ["getSessionInfo", (r) => r.getSessionInfoAtN.usPerOp],
      ["open+close", (r) => r.openCloseAtN.usPerOp],
      ["closeAll (per session)", (r) => (r.closeAllMs * 1000) / (r.N + 1)],
    ];
    const scal = [];
    for (const [name, f] of metrics) {
      for (const t of ALL_TARGETS) {
        if (!sizes.some((n) => at(t, n))) continue;
        const us = sizes.map((n) => (at(t, n) ? f(at(t, n)) : undefined));
        const growth = us[0] && us[us.length - 1] && sizes.length > 1 ? us[us.length - 1] / us[0] : undefined;
        let check = "";
        if (t === "hsmsim" && name !== "closeAll (per session)" && sizes.length > 1) {
          check = growth == null ? "n/a" : growth <= MAX_GROWTH ? "PASS" : "FAIL";
          checks.push({ check: `flat ${name} ${sizeLabel(lo)}->${sizeLabel(hi)}`, value: growth, limit: MAX_GROWTH, result: check });
        }
        scal.push([name, t, ...us.map(fmtUs), fmtRatio(growth), check]);
      }
    }
    const heap = [];
    for (const t of ALL_TARGETS) {
      if (!sizes.some((n) => at(t, n))) continue;
      const hb = sizes.map((n) => at(t, n)?.heapBytesPerSession);
      const rss = sizes.map((n) => at(t, n)?.rssBytesPerSession);
      heap.push(["heap bytes/session", t, ...hb.map(fmtBytes), "", t === "hsmsim" ? (hb.every((b) => b != null && b <= MAX_HEAP_PER_SESSION) ? "PASS" : "FAIL") : ""]);
      if (t === "hsmsim") heap.push(["external bytes/session (info)", t, ...sizes.map((n) => fmtBytes(at(t, n)?.externalBytesPerSession)), "", ""]);
      heap.push(["rss bytes/session (info)", t, ...rss.map(fmtBytes), "", ""]);
      if (t === "hsmsim") {
        const row = heap.find((r) => r[0] === "heap bytes/session" && r[1] === t);
        checks.push({ check: "heap bytes/session", value: Math.max(...hb.filter((x) => x != null)), limit: MAX_HEAP_PER_SESSION, result: row.at(-1) });
      }
    }
    console.log(
      `\nscaling: µs per call with N sessions open ` +
        (sizes.length > 1 ? `(growth = cost@${sizeLabel(hi)} / cost@${sizeLabel(lo)}; target <= ${MAX_GROWTH}x for hsmsim)\n` : "(growth needs two sizes)\n"),
    );
    console.log(
      table(
        ["per call", "target", ...sizes.map((n) => `µs@${sizeLabel(n)}`), "growth", "check"],
        [...scal, ...heap],
        [0, 1],
      ),
    );
    console.log(
      `\nheap bytes/session = (heapUsed after N opens - before) / N, each after global.gc(); target <= ${MAX_HEAP_PER_SESSION} for hsmsim.` +
        "\nSoftHSM keeps sessions in native memory, so only rss (first-touch, coarse) shows them." +
        (sizes.length > 1 && (lo !== 1000 || hi !== 100000) ? `\nnote: 'flat' is checked ${sizeLabel(lo)}->${sizeLabel(hi)} here, not 1k->100k (the issue's target).` : ""),
    );
    const open = ALL_TARGETS.flatMap((t) =>
      sizes.filter((n) => at(t, n)).map((n) => `${t}@${sizeLabel(n)}: ${(at(t, n).openTotalMs / 1000).toFixed(2)}s to open, closeAll ${at(t, n).closeAllMs.toFixed(1)} ms`),
    );
    if (open.length) console.log(`\n${open.join("\n")}`);
  }
  for (const r of rows) {
    const ct = CRYPTO_TARGETS[r.workload];
    const value = ct ? (r.ops.hsmsim && r.ops[ct.vs] ? r.ops.hsmsim / r.ops[ct.vs] : undefined) : r.hsmsimVsSpy;
    checks.push({ check: `${r.workload} ${r.target ?? `>= ${MIN_RATIO_VS_SPY}x spy`}`, value, limit: ct ? ct.min : MIN_RATIO_VS_SPY, result: r.check });
  }

  storeSection(opts, (w) => get(w, "hsmsim"), checks);

  if (spyRuns.length) {
    const total = spyRuns.reduce((s, c) => s + (c.traceFileBytes ?? 0), 0);
    const per = spyRuns
      .filter((c) => c.result.traceBytesPerOp)
      .map((c) => `${c.workload} ${c.result.traceBytesPerOp} B/op`)
      .join(", ");
    console.log(
      `\nspy trace: ${noTrace.length ? `FAILED to grow for ${noTrace.map((c) => c.workload).join(", ")}; ` : "grew in every run; "}` +
        `${fmtMB(total)} written in total${per ? ` (${per})` : ""}`,
    );
  }

  const errors = children.filter((c) => c.status === "error");
  const fails = checks.filter((c) => c.result === "FAIL");
  const passes = checks.filter((c) => c.result === "PASS");
  const elapsed = (Date.now() - started) / 1000;
  console.log(
    `\ntargets: ${hsmsimBuilt && targets.includes("hsmsim") ? `${passes.length} PASS, ${fails.length} FAIL` : "n/a (hsmsim not measured)"}` +
      `${errors.length ? `; ${errors.length} child error(s): ${errors.map((e) => `${e.target}/${e.workload}`).join(", ")}` : ""}` +
      `\ntotal bench time ${elapsed.toFixed(1)}s`,
  );

  const out = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    mode: opts.quick ? "quick" : "full",
    argv: process.argv.slice(2),
    targets,
    hsmsimBuilt,
    workloads: opts.workloads,
    elapsedSec: elapsed,
    rows,
    checks,
    children,
  };
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`results: ${relative(process.cwd(), opts.out)}`);
  if (errors.length) process.exitCode = 1;
  else if (opts.strict && fails.length) process.exitCode = 1;
}

/** The file store section: append per durability mode, replay, verify, snapshot cost, the 10M-event store's open. */
function storeSection(opts, get, checks) {
  const ws = opts.workloads.filter((w) => STORE.includes(w));
  if (!ws.length) return;
  const rows = [];
  for (const mode of ["fsync", "group", "none"]) {
    const r = get(`append-${mode}`);
    if (r) rows.push([`append, durability ${mode}`, `${fmtOps(r.getSessionInfoRecordsPerSec)} records/s (C_GetSessionInfo), ${fmtOps(r.cycleRecordsPerSec)} records/s (session cycle)`, ""]);
  }
  const rp = get("replay");
  if (rp) {
    const check = rp.replayEventsPerSec >= MIN_REPLAY_PER_SEC ? "PASS" : "FAIL";
    checks.push({ check: "replay from the file store (session cycle)", value: rp.replayEventsPerSec, limit: MIN_REPLAY_PER_SEC, result: check });
    const b = rp.breakdownUsPerRecord;
    rows.push([
      `replay ${fmtOps(rp.records)} records (session cycle)`,
      `${fmtOps(rp.replayEventsPerSec)} events/s read + applied (median of ${rp.replayRoundsEventsPerSec?.length ?? 1}: ${(rp.replayRoundsEventsPerSec ?? []).map(fmtOps).join(", ")}), state checked against the writer's; ` +
        `facts from the facts cache (${(rp.cacheBytes / 2 ** 20).toFixed(1)} MiB beside a ${(rp.logBytes / 2 ** 20).toFixed(0)} MiB log); per record ` +
        `read ${b.read.toFixed(2)} µs, decode ${b.decode.toFixed(2)} µs, apply ${b.apply.toFixed(2)} µs`,
      check,
    ]);
    if (rp.freshProcessReplayEventsPerSec !== undefined) {
      rows.push([
        `replay in a fresh process (as a process opening the store)`,
        `${fmtOps(rp.freshProcessReplayEventsPerSec)} events/s (median of 3), state checked against the writer's (the check above holds the in-process figure)`,
        "",
      ]);
    }
    const sl = rp.shortLog;
    if (sl) {
      const w = sl.warmupUsPerRecordPer20k;
      rows.push([
        `replay of the first ${fmtOps(sl.records)} records alone (mostly JIT warm-up)`,
        `${fmtOps(sl.replayEventsPerSec)} events/s in-process (median of ${sl.replayRoundsEventsPerSec.length}: ${sl.replayRoundsEventsPerSec.map(fmtOps).join(", ")}), ` +
          `${fmtOps(sl.freshProcessReplayEventsPerSec)} in a fresh process; one replay's µs a record per 20k records: ${w.map((x) => x.toFixed(2)).join(" ")}`,
        "",
      ]);
    }
    if (rp.replayFromLinesEventsPerSec !== undefined) {
      rows.push([
        `replay with the facts cache off (each line's JSON)`,
        `${fmtOps(rp.replayFromLinesEventsPerSec)} events/s, state checked against the cached replay's (whole records parsed: ${fmtOps(rp.readWholeRecordsEventsPerSec)}/s)`,
        "",
      ]);
    }
    rows.push([`open without snapshots (verifies the log)`, `${fmtOps(rp.openVerifyEventsPerSec)} events/s`, ""]);
  }
  const v = get("verify");
  if (v) rows.push([`audit verify ${fmtOps(v.records)} records`, `${fmtOps(v.verifyEventsPerSec)} events/s in-process, ${fmtOps(v.cliEventsPerSec)} events/s as \`hsmsim audit verify\``, ""]);
  const sn = get("snapshot");
  for (const c of sn?.cases ?? []) {
    rows.push([`snapshot, ${c.objects} objects + ${c.sessions} sessions`, `${(c.bytes / 1024).toFixed(0)} KiB: capture+seal ${c.captureMs.toFixed(1)} ms, write ${c.writeMs.toFixed(1)} ms; open from it ${c.openMs.toFixed(0)} ms`, ""]);
    const b = c.background;
    if (b) {
      rows.push([
        `  the calling append's pause`,
        `inline ${(c.captureMs + c.writeMs).toFixed(1)} ms; background writer: ${b.dueMedianMs.toFixed(2)} ms (max ${b.dueMaxMs.toFixed(2)} of ${b.dueCalls}), ` +
          `other calls p99 ${b.otherP99Ms.toFixed(2)} ms max ${b.otherMaxMs.toFixed(1)} ms; the writer's total ${b.last.totalMs.toFixed(0)} ms (catch-up ${b.last.catchUpMs.toFixed(0)} ms)`,
        "",
      ]);
    }
  }
  const o = get("open-10M");
  if (o) {
    const check = o.events >= 10_000_000 - 1 ? (o.openMs <= MAX_OPEN_MS ? "PASS" : "FAIL") : "n/a";
    if (check !== "n/a") checks.push({ check: "open a 10M-event store", value: o.openMs, limit: MAX_OPEN_MS, result: check });
    rows.push([
      `open a ${fmtOps(o.events)}-event store (fresh process)`,
      `${o.openMs.toFixed(0)} ms (store ${o.storeOpenMs.toFixed(0)} ms + simulator ${o.simulatorMs.toFixed(0)} ms: snapshot of seq ${o.restoredSeq}, ${o.tailRecords} records replayed)`,
      check,
    ]);
    rows.push([`  built with a real simulator`, `${(o.buildMs / 1000).toFixed(0)} s (${fmtOps(o.buildRecordsPerSec)} records/s), ${(o.logBytes / 1048576).toFixed(0)} MiB log, snapshot ${(o.snapshotBytes / 1024).toFixed(0)} KiB`, ""]);
  }
  console.log(`\nfile store (bench/store.js; durability none unless named; the machine's disk and load move these a lot)\n`);
  console.log(table(["measure", "figure", "check"], rows, [0, 1]));
}

function indent(s) {
  return String(s ?? "")
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
}

await main();

// Issue 4's remote workloads (hsmsim served over NATS beside SoftHSM served by p11-kit): their own harness,
// bench/remote.js, in the same run; left out when --only picks workloads (run `node bench/remote.js` for them alone).
if (!process.argv.includes("--only") && !process.argv.includes("--help")) {
  await (await import("./remote.js")).runRemote({ quick: process.argv.includes("--quick") });
}
