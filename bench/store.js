#!/usr/bin/env node
// One store bench child (issue 5): runs ONE file-store workload on dist/ and prints `BENCH_RESULT {json}`.
//
//   node --expose-gc bench/store.js <workload> [--quick] [--events N] [--tmp DIR]
//
// Workloads (bench/README.md, "The file store"):
//   append-fsync, append-group, append-none   records/s through the simulator on a file store in that durability
//   replay     a log of the session-cycle mix, 200k records then extended to 1M: open (verifying it whole), replay
//              (from the facts cache; and from the log's lines with the cache off), with read / decode / apply timed
//              apart, and the replay's warm-up profiled
//   verify     `hsmsim audit verify` on that log: in-process and as the CLI, events/s
//   snapshot   what writing one snapshot costs (capture + seal, write + fsync) for a small and a large state, inline,
//              and the pause the calling append sees with the background writer against that writer's total
//   open-10M   build a 10M-event store (1M with --quick) with a real simulator, then open it in a fresh process
//   snapshot-nats   the snapshot pause on the JetStream store (a nats-server started here), background and inline
//   open-only <dir>   (used by open-10M) open a store and its simulator, print the time
//   replay-only <dir> (used by replay) open a store, time its replay into a simulator, print a digest of the state
//
// Each workload's store is built fresh in a temporary directory and removed at the end.

import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gc, measure, now } from "./lib/measure.js";

const DIST = new URL("../dist/", import.meta.url);
const { Simulator } = await import(new URL("actors/simulator.js", DIST).href);
const { FileEventStore } = await import(new URL("events/file-store.js", DIST).href);
const { cacheBlocks, openBlock, FACTS_CACHE_FILE } = await import(new URL("events/facts-cache.js", DIST).href);
const { deriveKeys } = await import(new URL("crypto/keys.js", DIST).href);
const { verifyStore } = await import(new URL("events/verify.js", DIST).href);
const { snapshotState } = await import(new URL("model/snapshot.js", DIST).href);
const { canonicalJson } = await import(new URL("events/chain.js", DIST).href);
const { CK } = await import(new URL("pkcs11/constants.js", DIST).href);
const HSMSIM = fileURLToPath(new URL("../bin/hsmsim.js", import.meta.url));

const SO_PIN = "12345678";
const USER_PIN = "1234";
const KEY = new Uint8Array(32).fill(3);
const FACTS_KEY = deriveKeys(KEY).factsCache;
const RW = CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION;

function parseArgs(argv) {
  const [workload, ...rest] = argv;
  const o = { workload, quick: false, tmp: process.env.BENCH_TMP ?? tmpdir() };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === "--quick") o.quick = true;
    else if (a === "--events") o.events = Number(rest[++i]);
    else if (a === "--tmp") o.tmp = rest[++i];
    else if (!a.startsWith("--")) o.arg = a;
    else throw new Error(`unknown argument ${a}`);
  }
  o.timing = o.quick ? { rounds: 1, minMs: 300, warmupMs: 100 } : { rounds: 3, minMs: 1000, warmupMs: 300 };
  return o;
}

const ulong = (n) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
};

/** A new application on `sim` (initialised): a call that throws on any rv but CKR_OK. */
function application(sim) {
  const app = sim.application();
  const call = (c) => {
    const r = app.call(c);
    if (r.rv !== 0) throw new Error(`${c.fn} answered ${r.rv}`);
    return r;
  };
  call({ fn: "C_Initialize", args: {} });
  return call;
}

/** An application on `sim` with the token set up (SO and user PINs). */
function setUp(sim) {
  const call = application(sim);
  call({ fn: "C_InitToken", args: { slotID: 0, pin: SO_PIN, label: "bench" } });
  const so = call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).out.hSession;
  call({ fn: "C_Login", args: { hSession: so, userType: CK.CKU_SO, pin: SO_PIN } });
  call({ fn: "C_InitPIN", args: { hSession: so, pin: USER_PIN } });
  call({ fn: "C_CloseSession", args: { hSession: so } });
  return call;
}

const template = (token, label) => [
  { type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA) },
  { type: CK.CKA_TOKEN, value: Uint8Array.of(token ? 1 : 0) },
  { type: CK.CKA_LABEL, value: new TextEncoder().encode(label) },
  { type: CK.CKA_VALUE, value: new Uint8Array(32).fill(9) },
];

/**
 * The session-cycle mix: ten calls, one record each, that an application makes in a session's life, leaving the state
 * as it found it: C_OpenSession(RW) C_Login(USER) C_GetSessionInfo C_CreateObject(session data object)
 * C_DigestInit(SHA-256) C_DigestUpdate(64 bytes) C_DigestFinal C_DestroyObject C_Logout C_CloseSession.
 */
function sessionCycle(call) {
  const data = new Uint8Array(64).fill(7);
  const t = template(false, "cycle");
  return () => {
    const h = call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).out.hSession;
    call({ fn: "C_Login", args: { hSession: h, userType: CK.CKU_USER, pin: USER_PIN } });
    call({ fn: "C_GetSessionInfo", args: { hSession: h } });
    const o = call({ fn: "C_CreateObject", args: { hSession: h, template: t } }).out.hObject;
    call({ fn: "C_DigestInit", args: { hSession: h, mechanism: { mechanism: CK.CKM_SHA256 } } });
    call({ fn: "C_DigestUpdate", args: { hSession: h, data } });
    call({ fn: "C_DigestFinal", args: { hSession: h, outLen: 32 } });
    call({ fn: "C_DestroyObject", args: { hSession: h, hObject: o } });
    call({ fn: "C_Logout", args: { hSession: h } });
    call({ fn: "C_CloseSession", args: { hSession: h } });
  };
}

const rate = (n, ms) => (n * 1000) / ms;

function appendWorkload(o, durability) {
  const dir = mkdtempSync(join(o.tmp, "hsmsim-bench-store-"));
  try {
    const store = new FileEventStore(dir, { durability });
    const sim = new Simulator({ store, simulatorKey: KEY });
    const call = setUp(sim);
    const keeper = call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION } }).out.hSession;
    const read = measure(() => call({ fn: "C_GetSessionInfo", args: { hSession: keeper } }), o.timing);
    const cycle = measure(sessionCycle(call), o.timing);
    const stats = store.snapshotStats;
    store.close();
    return {
      durability,
      getSessionInfoRecordsPerSec: read.opsPerSec,
      cycleRecordsPerSec: cycle.opsPerSec * 10,
      records: store.lastSeq,
      logBytesPerRecord: statSync(join(dir, "events.log")).size / store.lastSeq,
      snapshotsWritten: stats.written,
      rounds: { getSessionInfo: read.rounds, cycle: cycle.rounds.map((x) => x * 10) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A closed store of the session-cycle mix, `records` long, without snapshots (so opening replays it all). */
function cycleStore(o, records, opts = {}) {
  const dir = mkdtempSync(join(o.tmp, "hsmsim-bench-store-"));
  const store = new FileEventStore(dir, { durability: "none", snapshotEvery: 0, snapshotOnClose: false, ...opts });
  const sim = new Simulator({ store, simulatorKey: KEY });
  const cycle = sessionCycle(setUp(sim));
  const t0 = now();
  while (sim.lastSeq < records) cycle();
  const ms = now() - t0;
  store.close();
  return { dir, sim, records: store.lastSeq, buildRecordsPerSec: rate(store.lastSeq, ms), bytes: statSync(join(dir, "events.log")).size };
}

/** The bytes of a log read as replay reads them (1 MiB chunks) and split into lines: the I/O part of a replay. */
function readLines(file) {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let lines = 0;
    for (let pos = 0, n; (n = readSync(fd, buf, 0, buf.length, pos)) > 0; pos += n) {
      for (let i = buf.indexOf(10, 0); i >= 0 && i < n; i = buf.indexOf(10, i + 1)) lines++;
    }
    return lines;
  } finally {
    closeSync(fd);
  }
}

/** Every block of a store's facts cache read and checked (MAC, bound to the log), not decoded: its I/O part. */
function readCacheBlocks(dir) {
  const fd = openSync(join(dir, FACTS_CACHE_FILE), "r");
  const log = openSync(join(dir, "events.log"), "r");
  try {
    const logReader = (offset, n) => {
      const b = Buffer.alloc(n);
      return b.subarray(0, readSync(log, b, 0, n, offset));
    };
    let records = 0;
    for (const b of cacheBlocks(fd, statSync(join(dir, FACTS_CACHE_FILE)).size)) {
      if (!openBlock(fd, b, FACTS_KEY, logReader)) throw new Error(`cache block at seq ${b.first} does not check`);
      records += b.count;
    }
    return records;
  } finally {
    closeSync(fd);
    closeSync(log);
  }
}

/** `rounds` replays of the open `store` into a new simulator each, timed; the last simulator. */
function timedReplays(store, rounds) {
  const ms = [];
  let sim;
  for (let i = 0; i < rounds; i++) {
    sim = undefined; // the previous one's state is garbage before the next replay
    gc();
    const t = now();
    sim = new Simulator({ store, simulatorKey: KEY });
    ms.push(now() - t);
  }
  return { sim, ms };
}

/** `rounds` runs of `f`, each after a gc(), timed (ms). */
function timed(rounds, f) {
  const ms = [];
  for (let i = 0; i < rounds; i++) {
    gc();
    const t = now();
    f();
    ms.push(now() - t);
  }
  return ms;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * `records` more records of the session-cycle mix appended to the closed store in `dir` (a new application: the token
 * and its user PIN are there already): the store reopened, its simulator rebuilt from it, the cycles run, closed.
 * The simulator that wrote them, for its state.
 */
function extendStore(dir, records) {
  const store = new FileEventStore(dir, { durability: "none", snapshotEvery: 0, snapshotOnClose: false });
  const sim = new Simulator({ store, simulatorKey: KEY });
  const cycle = sessionCycle(application(sim));
  const until = store.lastSeq + records;
  while (sim.lastSeq < until) cycle();
  store.close();
  return { sim, records: store.lastSeq, bytes: statSync(join(dir, "events.log")).size };
}

/** The same replay in three fresh processes (`replay-only`): each state must be the writer's; the times (ms). */
function freshReplays(dir, records, writerDigest) {
  const ms = [];
  for (let i = 0; i < 3; i++) {
    const child = spawnSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), "replay-only", dir], { encoding: "utf8" });
    const line = child.stdout.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
    if (!line) throw new Error(`replay-only failed: ${child.stderr}`);
    const r = JSON.parse(line.slice(13)).result;
    if (r.records !== records || r.stateDigest !== writerDigest) throw new Error("the state replayed in a fresh process differs from the writer's");
    ms.push(r.replayMs);
  }
  return ms;
}

/**
 * One more replay of the open `store`, with the time at every `every` records (the store's walk hook): the rate over
 * each stretch, µs a record. The first stretches run before the JIT's optimizing compiler has caught up.
 */
function replayProfile(store, every) {
  const marks = [];
  FileEventStore.onWalk = () => ({ update: (n) => n % every === 0 && marks.push(now()), finish() {} });
  try {
    gc();
    const t0 = now();
    new Simulator({ store, simulatorKey: KEY });
    return [t0, ...marks].slice(1).map((t, i) => ((t - (i ? marks[i - 1] : t0)) * 1000) / every);
  } finally {
    FileEventStore.onWalk = undefined;
  }
}

/**
 * Replay from the file store: a closed log of the session-cycle mix, written with the store's defaults but no
 * snapshots (so opening replays it all; the facts cache, src/events/facts-cache.ts, is on by default), reopened (its
 * whole chain verified), then replayed into a real Simulator, five times (each a new simulator on the open store; the
 * median is the figure), at two lengths: 200k records (the short log), then the same log extended to 1M (the long
 * log; `--events N` sets it). A replay's first ~50k records run at a few µs each, before V8's optimizing compiler has
 * compiled its code (each replay in this process too: the shapes of the previous one's objects die with them at the
 * collection between replays, and the code built on them is dropped); a profile of one replay shows it. The short log
 * is mostly that warm-up, so the issue's target, a rate, is checked on the long one. On the long log the replay is
 * also split into its parts, each timed on its own pass: read (the cache's blocks read and checked: MAC, bound to the
 * log), decode (the store's `eachFacts` handing every record's facts to a no-op, minus read), apply (evolve and read
 * model: the replay minus `eachFacts`). Also, for comparison: the replay with the cache off (`factsCache: false`: each
 * line's facts cut out and parsed as JSON), and whole records parsed (`read()`). The replayed state must equal the
 * writer's (src/model/snapshot.ts's picture of write and read model, chart states included), with and without the
 * cache, and the replayed simulator must then serve a session cycle; otherwise the workload fails. Both logs are also
 * replayed in three fresh processes (the median reported).
 */
function replayWorkload(o) {
  const long = o.events ?? (o.quick ? 200_000 : 1_000_000);
  const built = cycleStore(o, Math.min(o.quick ? 50_000 : 200_000, long));
  try {
    // The short log.
    let writerState = snapshotState(built.sim.state, built.sim.read);
    let writerDigest = stateDigest(built.sim);
    // The writer's simulator is done: its live state would otherwise share the heap (and the collector's work) with
    // every replay below, which a process opening the store does not have.
    built.sim = undefined;
    const shortFresh = freshReplays(built.dir, built.records, writerDigest);
    let store = new FileEventStore(built.dir, { durability: "none", snapshotEvery: 0, snapshotOnClose: false });
    let { sim, ms: shortReplays } = timedReplays(store, 5);
    if (!isDeepStrictEqual(snapshotState(sim.state, sim.read), writerState)) throw new Error("the replayed state differs from the writer's");
    sim = undefined;
    const warmup = replayProfile(store, 20_000);
    store.close();

    // The long log: the same, extended.
    const t0 = now();
    const ext = extendStore(built.dir, long - built.records);
    const extendMs = now() - t0;
    const records = ext.records;
    writerState = snapshotState(ext.sim.state, ext.sim.read);
    writerDigest = stateDigest(ext.sim);
    ext.sim = undefined;
    const fresh = freshReplays(built.dir, records, writerDigest);
    gc();
    let t = now();
    // No snapshot along the way (the session cycle below would write one, and the replay from the lines then restore it).
    store = new FileEventStore(built.dir, { durability: "none", snapshotEvery: 0, snapshotOnClose: false });
    const openMs = now() - t;
    // read and decode: the median of three passes each, as the replays below (the first pass also compiles the code).
    let cached = 0;
    const readMs = median(timed(3, () => (cached = readCacheBlocks(built.dir))));
    if (cached !== records) throw new Error(`the facts cache holds ${cached} of ${records} records`);
    let n = 0;
    const eachFactsMs = median(timed(3, () => ((n = 0), store.eachFacts(1, FACTS_KEY, (seq) => (n += seq > 0 ? 1 : 0)))));
    gc();
    t = now();
    const lines = readLines(join(built.dir, "events.log"));
    const readLinesMs = now() - t;
    gc();
    t = now();
    let w = 0;
    for (const r of store.read()) if (r.seq > 0) w++;
    const readWholeMs = now() - t;
    let replays;
    ({ sim, ms: replays } = timedReplays(store, 5));
    const replayMs = median(replays);
    if (sim.lastSeq !== records || n !== records || w !== records || lines !== records) {
      throw new Error("replay did not reach the end of the log");
    }
    if (!isDeepStrictEqual(snapshotState(sim.state, sim.read), writerState)) throw new Error("the replayed state differs from the writer's");
    // It serves: a whole session cycle (every call must answer CKR_OK) on the replayed simulator.
    sessionCycle(application(sim))();
    store.close();
    // Without the cache: each line's facts parsed (the store reopened with the cache off; the cycle above added ten).
    const plainStore = new FileEventStore(built.dir, { durability: "none", snapshotEvery: 0, snapshotOnClose: false, factsCache: false });
    const { sim: plainSim, ms: plain } = timedReplays(plainStore, 3);
    if (!isDeepStrictEqual(snapshotState(plainSim.state, plainSim.read), snapshotState(sim.state, sim.read))) throw new Error("the replay from the lines differs from the one from the cache");
    plainStore.close();
    return {
      mix: "session cycle (10 calls: open, login, info, create, digest init/update/final, destroy, logout, close)",
      records,
      logBytes: ext.bytes,
      cacheBytes: statSync(join(built.dir, FACTS_CACHE_FILE)).size,
      buildRecordsPerSec: built.buildRecordsPerSec,
      extendRecordsPerSec: rate(records - built.records, extendMs),
      openVerifyEventsPerSec: rate(records, openMs),
      replayEventsPerSec: rate(records, replayMs),
      replayRoundsEventsPerSec: replays.map((ms) => rate(records, ms)),
      replayStateChecked: true,
      freshProcessReplayEventsPerSec: rate(records, median(fresh)),
      freshProcessReplayMs: fresh,
      shortLog: {
        records: built.records,
        replayEventsPerSec: rate(built.records, median(shortReplays)),
        replayRoundsEventsPerSec: shortReplays.map((ms) => rate(built.records, ms)),
        freshProcessReplayEventsPerSec: rate(built.records, median(shortFresh)),
        warmupUsPerRecordPer20k: warmup,
      },
      breakdownUsPerRecord: {
        read: (readMs * 1000) / records,
        decode: ((eachFactsMs - readMs) * 1000) / records,
        apply: ((replayMs - eachFactsMs) * 1000) / records,
      },
      replayFromLinesEventsPerSec: rate(records + 10, median(plain)),
      readLinesEventsPerSec: rate(lines, readLinesMs),
      readWholeRecordsEventsPerSec: rate(w, readWholeMs),
      openMs,
      readMs,
      eachFactsMs,
      replayMs,
    };
  } finally {
    rmSync(built.dir, { recursive: true, force: true });
  }
}

function verifyWorkload(o) {
  const built = cycleStore(o, o.events ?? (o.quick ? 50_000 : 200_000), { checkpointEvery: 1000 });
  try {
    gc();
    let t = now();
    const v = verifyStore(built.dir);
    const inProcessMs = now() - t;
    if (!v.ok) throw new Error(`verify failed: ${JSON.stringify(v.firstBad)}`);
    t = now();
    const out = execFileSync(process.execPath, [HSMSIM, "audit", "verify", "--store", built.dir, "--json"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const cliMs = now() - t;
    const cli = JSON.parse(out);
    return {
      records: built.records,
      checkpoints: v.checkpoints.verified,
      verifyEventsPerSec: rate(built.records, inProcessMs),
      cliEventsPerSec: rate(built.records, cliMs),
      cliMs,
      cliOk: cli.ok,
    };
  } finally {
    rmSync(built.dir, { recursive: true, force: true });
  }
}

/** The cost of one snapshot, for the bench's own small state and for a large one (objects and sessions). */
function snapshotWorkload(o) {
  const cases = o.quick ? [[0, 0], [10_000, 1_000]] : [[0, 0], [10_000, 1_000], [100_000, 10_000]];
  const out = [];
  for (const [objects, sessions] of cases) {
    const dir = mkdtempSync(join(o.tmp, "hsmsim-bench-store-"));
    try {
      const store = new FileEventStore(dir, { durability: "group", snapshotEvery: 0, snapshotOnClose: false, checkpointEvery: 0 });
      const sim = new Simulator({ store, simulatorKey: KEY });
      const call = setUp(sim);
      const h = call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).out.hSession;
      call({ fn: "C_Login", args: { hSession: h, userType: CK.CKU_USER, pin: USER_PIN } });
      for (let i = 0; i < objects; i++) call({ fn: "C_CreateObject", args: { hSession: h, template: template(true, `o${i}`) } });
      for (let i = 0; i < sessions; i++) call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION } });
      const times = [];
      for (let r = 0; r < 3; r++) {
        call({ fn: "C_GetSessionInfo", args: { hSession: h } });
        gc();
        store.snapshotNow();
        times.push(store.snapshotStats);
      }
      times.sort((a, b) => a.lastCaptureMs + a.lastWriteMs - (b.lastCaptureMs + b.lastWriteMs));
      const m = times[1];
      // Opening it: restore the snapshot alone (no tail).
      store.close();
      const t = now();
      const again = new FileEventStore(dir, { durability: "none", snapshotOnClose: false });
      new Simulator({ store: again, simulatorKey: KEY });
      const openMs = now() - t;
      again.close();
      const background = backgroundPause(dir, o.quick);
      out.push({ objects, sessions, bytes: m.lastBytes, captureMs: m.lastCaptureMs, writeMs: m.lastWriteMs, openMs, background });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return { cases: out };
}

/**
 * The pause a snapshot costs the calling append with the background writer (the default, src/events/snapshot-writer.ts),
 * on the state just snapshotted in `dir`: the store reopened with snapshots every EVERY records, then C_GetSessionInfo
 * calls (one record each, paced to ~20,000/s so the log stays small) until the writer has written WRITTEN snapshots
 * after its first (which also builds its replica: restore + replay). Every call after the first is timed (before it:
 * the reopening's garbage is collected, the replica is built); the calls that found a snapshot due are told apart. Total: the last snapshot's catch-up (replaying the records since the previous one) +
 * capture and seal + write, as the writer measured them.
 */
function backgroundPause(dir, quick) {
  const EVERY = 1000;
  const WRITTEN = quick ? 2 : 3;
  const store = new FileEventStore(dir, { durability: "group", snapshotEvery: EVERY, snapshotOnClose: false, checkpointEvery: 0 });
  try {
    const sim = new Simulator({ store, simulatorKey: KEY });
    gc();
    const rssBefore = process.memoryUsage().rss;
    // The snapshot the store opened from counts as written: the next is due EVERY records after it.
    let posted = store.lastSeq;
    const call = application(sim);
    const h = call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION } }).out.hSession;
    const due = [];
    const other = [];
    const t0 = now();
    let firstAt = 0;
    for (let i = 0; store.snapshotStats.written < WRITTEN + 1 && now() - t0 < 300_000; i++) {
      const isDue = store.lastSeq - posted >= EVERY;
      const c0 = now();
      call({ fn: "C_GetSessionInfo", args: { hSession: h } });
      const ms = now() - c0;
      if (isDue) posted = store.lastSeq - 1;
      // Counted once the first is written: the steady state, not the reopening's garbage or the replica's build.
      if (firstAt > 0) (isDue ? due : other).push(ms);
      else if (store.snapshotStats.written > 0) firstAt = now() - t0;
      if (i % 20 === 19) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
    const s = store.snapshotStats;
    const sorted = [...other].sort((a, b) => a - b);
    const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
    return {
      every: EVERY,
      calls: due.length + other.length,
      dueCalls: due.length,
      dueMaxMs: Math.max(0, ...due),
      dueMedianMs: due.length ? [...due].sort((a, b) => a - b)[due.length >> 1] : 0,
      otherP50Ms: q(0.5),
      otherP99Ms: q(0.99),
      otherMaxMs: sorted.at(-1) ?? 0,
      written: s.written,
      firstWrittenAfterMs: firstAt,
      // The process's resident memory grown since the live simulator was restored: mostly the writer's replica.
      rssGrowthMiB: (process.memoryUsage().rss - rssBefore) / 1048576,
      last: { seq: s.lastSeq, bytes: s.lastBytes, catchUpMs: s.lastCatchUpMs, captureMs: s.lastCaptureMs, writeMs: s.lastWriteMs, totalMs: s.lastCatchUpMs + s.lastCaptureMs + s.lastWriteMs },
    };
  } finally {
    store.close();
  }
}

/**
 * A store of `events` records written by a real simulator (durability none, snapshots every 10,000 as by default),
 * ending 9,999 records after its last snapshot (the longest tail the default leaves), then opened in a fresh process.
 * The mix, per 1,000 records: one session cycle (10 calls, by a second application) and 990 C_GetSessionInfo on a
 * kept session; the state holds 1,000 token objects and 100 open sessions, made first.
 */
function open10MWorkload(o) {
  const events = o.events ?? (o.quick ? 1_000_000 : 10_000_000);
  const target = events - 1;
  const dir = mkdtempSync(join(o.tmp, "hsmsim-bench-store-"));
  try {
    const store = new FileEventStore(dir, { durability: "none", snapshotOnClose: false });
    const sim = new Simulator({ store, simulatorKey: KEY });
    const call = setUp(sim);
    const keeper = call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).out.hSession;
    call({ fn: "C_Login", args: { hSession: keeper, userType: CK.CKU_USER, pin: USER_PIN } });
    for (let i = 0; i < 1000; i++) call({ fn: "C_CreateObject", args: { hSession: keeper, template: template(true, `o${i}`) } });
    for (let i = 0; i < 99; i++) call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION } });
    // The cycles run as a second application: its login state is its own.
    const cycle = sessionCycle(application(sim));
    const info = { fn: "C_GetSessionInfo", args: { hSession: keeper } };
    const t0 = now();
    let lastReport = t0;
    while (sim.lastSeq < target) {
      if (sim.lastSeq % 1000 === 0 && target - sim.lastSeq >= 10) cycle();
      else call(info);
      if (sim.lastSeq % 100_000 === 0 && now() - lastReport > 10_000) {
        lastReport = now();
        process.stderr.write(`  open-10M: ${(sim.lastSeq / 1e6).toFixed(1)}M records written\n`);
      }
    }
    const buildMs = now() - t0;
    const stats = store.snapshotStats;
    store.close();
    const snaps = readdirSync(dir).filter((n) => n.endsWith(".snap"));
    const opened = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "open-only", dir], { encoding: "utf8" });
    const line = opened.stdout.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
    if (!line) throw new Error(`open-only failed: ${opened.stderr}`);
    const open = JSON.parse(line.slice(13)).result;
    return {
      events: sim.lastSeq,
      logBytes: statSync(join(dir, "events.log")).size,
      buildMs,
      buildRecordsPerSec: rate(sim.lastSeq, buildMs),
      snapshots: snaps,
      snapshotBytes: stats.lastBytes,
      snapshotCaptureMs: stats.lastCaptureMs,
      snapshotWriteMs: stats.lastWriteMs,
      ...open,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A digest of a simulator's whole state (src/model/snapshot.ts's canonical picture), to compare across processes. */
function stateDigest(sim) {
  // Canonical JSON (sorted keys): the live and the replayed state may build their objects' keys in other orders.
  return createHash("sha256").update(canonicalJson(snapshotState(sim.state, sim.read))).digest("hex");
}

/** Open a store (not timed), then time its replay into a simulator (replay's second pass, in a fresh process). */
function replayOnly(dir) {
  const store = new FileEventStore(dir, { durability: "none", snapshotOnClose: false });
  gc();
  const t0 = now();
  const sim = new Simulator({ store, simulatorKey: KEY });
  const replayMs = now() - t0;
  store.close();
  return { records: sim.lastSeq, replayMs, stateDigest: stateDigest(sim) };
}

/** Open a store and a simulator on it, timed: the store (snapshot header check, tail verified), then the simulator. */
function openOnly(dir) {
  const t0 = now();
  const store = new FileEventStore(dir, { durability: "none", snapshotOnClose: false });
  const t1 = now();
  let from = 0;
  const watched = new Proxy(store, {
    get(t, k) {
      if (k === "read") return (f = 1) => ((from = f), t.read(f));
      if (k === "readFacts") return (f = 1) => ((from = f), t.readFacts(f));
      if (k === "eachFacts") return (f, key, apply) => ((from = f), t.eachFacts(f, key, apply));
      const v = Reflect.get(t, k, t);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  const sim = new Simulator({ store: watched, simulatorKey: KEY });
  const t2 = now();
  store.close();
  return { openMs: t2 - t0, storeOpenMs: t1 - t0, simulatorMs: t2 - t1, restoredSeq: from - 1, tailRecords: sim.lastSeq - (from - 1), lastSeq: sim.lastSeq };
}

/**
 * The same pause on the JetStream store (what `hsmsim serve` runs on), against a real nats-server started here
 * (NATS_SERVER, default /usr/sbin/nats-server; JetStream, a temporary store): a state of 10k objects (`--quick`: 1k;
 * `--events N` sets it), snapshots every 3,000 records, then C_GetSessionInfo calls in runs of 50, each run flushed
 * (stored), until three more snapshots were uploaded; every call timed. Once with the background writer
 * (`snapshotThread`, the default) and once sealed inside the append, each on a stream of its own.
 */
async function snapshotNatsWorkload(o) {
  const { JetStreamEventStore } = await import(new URL("events/jetstream-store.js", DIST).href);
  const { connect } = await import("@nats-io/transport-node");
  const objects = o.events ?? (o.quick ? 1_000 : 10_000);
  const dir = mkdtempSync(join(o.tmp, "hsmsim-bench-nats-"));
  const server = spawn(process.env.NATS_SERVER ?? "/usr/sbin/nats-server", ["-js", "-sd", dir, "-a", "127.0.0.1", "-p", "-1"], { stdio: ["ignore", "ignore", "pipe"] });
  try {
    // -p -1: a free port, which the server's log names.
    const url = await new Promise((resolve, reject) => {
      let log = "";
      server.stderr.setEncoding("utf8").on("data", (d) => {
        log += d;
        const m = /Listening for client connections on (\S+:\d+)/.exec(log);
        if (m && /Server is ready/.test(log)) resolve(m[1]);
      });
      server.once("exit", (c) => reject(new Error(`nats-server exited ${c}: ${log}`)));
    });
    const nc = await connect({ servers: url });
    try {
      const out = [];
      for (const snapshotThread of [true, false]) {
        const store = await JetStreamEventStore.open({ nc, sim: snapshotThread ? "thread" : "inline", snapshots: true, snapshotEvery: 3000, snapshotThread });
        const sim = new Simulator({ store, simulatorKey: KEY });
        const call = setUp(sim);
        const h = call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).out.hSession;
        call({ fn: "C_Login", args: { hSession: h, userType: CK.CKU_USER, pin: USER_PIN } });
        for (let i = 0; i < objects; i++) {
          call({ fn: "C_CreateObject", args: { hSession: h, template: template(true, `o${i}`) } });
          if (i % 500 === 499) await store.flush(sim.lastSeq);
        }
        await store.flush(sim.lastSeq);
        const written = store.stats.snapshotsWritten;
        const times = [];
        const t0 = now();
        while (store.stats.snapshotsWritten < written + 3 && now() - t0 < 300_000) {
          for (let k = 0; k < 50; k++) {
            const c0 = now();
            call({ fn: "C_GetSessionInfo", args: { hSession: h } });
            times.push(now() - c0);
          }
          await store.flush(sim.lastSeq);
        }
        const snapshots = store.stats.snapshotsWritten - written;
        await store.close();
        times.sort((a, b) => a - b);
        const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
        out.push({ snapshotThread, objects, calls: times.length, p50Ms: q(0.5), p99Ms: q(0.99), p999Ms: q(0.999), maxMs: times.at(-1), snapshots });
      }
      return { cases: out };
    } finally {
      await nc.close();
    }
  } finally {
    server.kill();
    await new Promise((r) => server.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
}

const o = parseArgs(process.argv.slice(2));
const emit = (x) => process.stdout.write(`BENCH_RESULT ${JSON.stringify(x)}\n`);
try {
  let result;
  if (o.workload === "open-only") result = openOnly(o.arg);
  else if (o.workload === "replay-only") result = replayOnly(o.arg);
  else if (o.workload?.startsWith("append-")) result = appendWorkload(o, o.workload.slice(7));
  else if (o.workload === "replay") result = replayWorkload(o);
  else if (o.workload === "verify") result = verifyWorkload(o);
  else if (o.workload === "snapshot") result = snapshotWorkload(o);
  else if (o.workload === "open-10M") result = open10MWorkload(o);
  else if (o.workload === "snapshot-nats") result = await snapshotNatsWorkload(o);
  else throw new Error(`unknown store workload ${o.workload}`);
  emit({ status: "ok", target: "hsmsim-file", workload: o.workload, result });
} catch (e) {
  emit({ status: "error", target: "hsmsim-file", workload: o.workload, error: String(e?.stack ?? e) });
  process.exitCode = 1;
}
