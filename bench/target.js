#!/usr/bin/env node
// One bench child: loads ONE PKCS#11 target in-process, sets up a token, runs ONE workload
// and prints a single line `BENCH_RESULT {json}` on stdout.
//
//   node --expose-gc bench/target.js <softhsm|softhsm+spy|hsmsim> <workload> [--quick]
//        [--rounds N] [--min-ms MS] [--warmup-ms MS]
//
// Workloads: open+close getSessionInfo login+logout create+destroy digest open-<N>, and (issue 3)
// aes-cbc-pad-64 aes-cbc-pad-1m aes-gcm-64 aes-gcm-1m hmac-sha256-64 keygen-aes256
// (open-1k, open-10k, open-100k, or any open-<integer>).
//
// Each target lives in its own process: pkcs11js loads the library in-process, SoftHSM is a
// process-wide singleton, and the spy and the raw SoftHSM cannot share one process.

import { createCipheriv, createHash, createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gc, measure, median, now } from "./lib/measure.js";

export const SOFTHSM_LIB = "/usr/lib/softhsm/libsofthsm2.so";
export const SPY_LIB = "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so";
// HSMSIM_MODULE (env) may point at another build of the pkcs11js drop-in (path or file: URL).
export const HSMSIM_MODULE = process.env.HSMSIM_MODULE
  ? process.env.HSMSIM_MODULE.startsWith("file:")
    ? new URL(process.env.HSMSIM_MODULE)
    : pathToFileURL(resolve(process.env.HSMSIM_MODULE))
  : new URL("../dist/pkcs11/pkcs11js.js", import.meta.url);
export const HSMSIM_URI = "memory:?maxSessions=200000";

// PKCS#11 constants (numeric, so the bench does not depend on either module's exports)
const CKF_RW_SESSION = 0x2;
const CKF_SERIAL_SESSION = 0x4;
const CKU_SO = 0;
const CKU_USER = 1;
const CKO_DATA = 0;
const CKA_CLASS = 0x0;
const CKA_TOKEN = 0x1;
const CKA_PRIVATE = 0x2;
const CKA_LABEL = 0x3;
const CKA_VALUE = 0x11;
const CKM_SHA256 = 0x250;
const CKO_SECRET_KEY = 0x4;
const CKA_KEY_TYPE = 0x100;
const CKA_VALUE_LEN = 0x161;
const CKK_AES = 0x1f;
const CKK_GENERIC_SECRET = 0x10;
const CKM_AES_CBC_PAD = 0x1085;
const CKM_AES_GCM = 0x1087;
const CKM_AES_KEY_GEN = 0x1080;
const CKM_SHA256_HMAC = 0x251;
const CK_PARAMS_GCM = 0x19;
const MIB = 1 << 20;

const SO_PIN = "12345678";
const USER_PIN = "1234";
const TOKEN_LABEL = "bench";
const SESSION_FLAGS = CKF_RW_SESSION | CKF_SERIAL_SESSION;

function parseArgs(argv) {
  const [target, workload, ...rest] = argv;
  const opts = { target, workload, quick: false };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === "--quick") opts.quick = true;
    else if (a === "--rounds") opts.rounds = Number(rest[++i]);
    else if (a === "--min-ms") opts.minMs = Number(rest[++i]);
    else if (a === "--warmup-ms") opts.warmupMs = Number(rest[++i]);
    else throw new Error(`unknown argument ${a}`);
  }
  const base = opts.quick ? { rounds: 3, minMs: 200, warmupMs: 100 } : { rounds: 5, minMs: 1000, warmupMs: 300 };
  opts.cfg = {
    rounds: opts.rounds ?? base.rounds,
    minMs: opts.minMs ?? base.minMs,
    warmupMs: opts.warmupMs ?? base.warmupMs,
  };
  return opts;
}

function parseN(workload) {
  const m = /^open-(\d+)(k?)$/.exec(workload);
  if (!m) return null;
  return Number(m[1]) * (m[2] ? 1000 : 1);
}

/** Loads the target. Returns { pk, traceFile?, tmp? } or { notBuilt: true }. */
async function loadTarget(target) {
  if (target === "hsmsim") {
    if (!existsSync(fileURLToPath(HSMSIM_MODULE))) return { notBuilt: true };
    const mod = await import(HSMSIM_MODULE.href);
    const pk = new mod.PKCS11();
    pk.load(HSMSIM_URI);
    return { pk, library: `hsmsim ${HSMSIM_URI}` };
  }
  if (target !== "softhsm" && target !== "softhsm+spy") throw new Error(`unknown target ${target}`);
  // Private token dir: never touches /var/lib/softhsm. The parent passes BENCH_TMP (a dir it
  // removes afterwards, even if this child crashes); standalone runs use os.tmpdir().
  const root = process.env.BENCH_TMP || tmpdir();
  mkdirSync(root, { recursive: true });
  const tmp = mkdtempSync(join(root, `${target.replace(/\W/g, "_")}-`));
  const tokendir = join(tmp, "tokens");
  mkdirSync(tokendir);
  const conf = join(tmp, "softhsm2.conf");
  writeFileSync(
    conf,
    [
      `directories.tokendir = ${tokendir}`,
      "objectstore.backend = file",
      "log.level = ERROR",
      "slots.removable = false",
      "slots.mechanisms = ALL",
      "library.reset_on_fork = false",
      "",
    ].join("\n"),
  );
  // getenv() in SoftHSM (C_Initialize) and in the spy (C_GetFunctionList) sees these: node's
  // process.env setter calls setenv(3), and nothing is loaded yet.
  process.env.SOFTHSM2_CONF = conf;
  let traceFile;
  let lib = SOFTHSM_LIB;
  if (target === "softhsm+spy") {
    traceFile = join(tmp, "pkcs11-spy.log");
    process.env.PKCS11SPY = SOFTHSM_LIB;
    process.env.PKCS11SPY_OUTPUT = traceFile;
    lib = SPY_LIB;
  }
  const { default: pkcs11js } = await import("pkcs11js");
  const pk = new pkcs11js.PKCS11();
  pk.load(lib);
  return { pk, traceFile, tmp, library: target === "softhsm+spy" ? `${SPY_LIB} -> ${SOFTHSM_LIB}` : SOFTHSM_LIB };
}

function findSlot(pk) {
  for (const s of pk.C_GetSlotList(true)) {
    const info = pk.C_GetTokenInfo(s);
    if (String(info.label).replace(/[\s\0]+$/, "") === TOKEN_LABEL) return s;
  }
  throw new Error(`token "${TOKEN_LABEL}" not found after C_InitToken`);
}

/** C_Initialize, init token, set user PIN, return { slot, keeper } with `keeper` an open RW public session. */
function setupToken(pk) {
  pk.C_Initialize();
  const slots = pk.C_GetSlotList(true);
  if (!slots.length) throw new Error("no slot with a token");
  pk.C_InitToken(slots[0], SO_PIN, TOKEN_LABEL);
  let slot = findSlot(pk);
  const s = pk.C_OpenSession(slot, SESSION_FLAGS);
  pk.C_Login(s, CKU_SO, SO_PIN);
  pk.C_InitPIN(s, USER_PIN);
  pk.C_Logout(s);
  // SoftHSM renumbers an initialised token's slot on the next C_Initialize; within one process
  // the slot keeps its number, but read the list again anyway (cheap, and target-agnostic).
  slot = findSlot(pk);
  return { slot, keeper: s };
}

const fileSize = (f) => {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
};

// ---------------------------------------------------------------------------------------------
// Simple workloads: each returns { op, before?, after?, check? }.
// `keeper` stays open during every workload, so open+close never closes the last session of
// the token (SoftHSM's "last session closed => logout" path is not taken per iteration).
// ---------------------------------------------------------------------------------------------
const SIMPLE = {
  "open+close": ({ pk, slot }) => ({
    op: () => pk.C_CloseSession(pk.C_OpenSession(slot, SESSION_FLAGS)),
  }),
  getSessionInfo: ({ pk, keeper }) => ({
    op: () => pk.C_GetSessionInfo(keeper),
    check: () => {
      const info = pk.C_GetSessionInfo(keeper);
      if (!(Number(info.flags) & CKF_RW_SESSION)) throw new Error(`getSessionInfo: not RW: ${JSON.stringify(info)}`);
    },
  }),
  "login+logout": ({ pk, keeper }) => ({
    op: () => {
      pk.C_Login(keeper, CKU_USER, USER_PIN);
      pk.C_Logout(keeper);
    },
  }),
  "create+destroy": ({ pk, keeper }) => {
    const template = [
      { type: CKA_CLASS, value: CKO_DATA },
      { type: CKA_TOKEN, value: false },
      { type: CKA_PRIVATE, value: false },
      { type: CKA_LABEL, value: "x" },
      { type: CKA_VALUE, value: randomBytes(32) },
    ];
    return {
      before: () => pk.C_Login(keeper, CKU_USER, USER_PIN),
      op: () => pk.C_DestroyObject(keeper, pk.C_CreateObject(keeper, template)),
      after: () => pk.C_Logout(keeper),
    };
  },
  digest: ({ pk, keeper }) => {
    const input = randomBytes(64);
    const out = Buffer.alloc(32);
    const mech = { mechanism: CKM_SHA256 };
    const op = () => {
      pk.C_DigestInit(keeper, mech);
      return pk.C_Digest(keeper, input, out);
    };
    return {
      op,
      check: () => {
        const got = Buffer.from(op()).toString("hex");
        const want = createHash("sha256").update(input).digest("hex");
        if (got !== want) throw new Error(`digest mismatch: ${got} != ${want}`);
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------
// Issue 3: cryptographic workloads. Keys are imported once (C_CreateObject with CKA_VALUE, a session
// object) with the user logged in; one iteration is an init plus a single-part call, as an
// application encrypting or signing one message does. Results are checked against node:crypto once.
// ---------------------------------------------------------------------------------------------
function importKey(pk, keeper, keyType, value) {
  return pk.C_CreateObject(keeper, [
    { type: CKA_CLASS, value: CKO_SECRET_KEY },
    { type: CKA_KEY_TYPE, value: keyType },
    { type: CKA_TOKEN, value: false },
    { type: CKA_VALUE, value },
  ]);
}

function cipherWorkload(size, gcm) {
  return ({ pk, keeper }) => {
    const key = randomBytes(32);
    const iv = randomBytes(gcm ? 12 : 16);
    const input = randomBytes(size);
    const out = Buffer.alloc(size + 16);
    const mech = gcm
      ? { mechanism: CKM_AES_GCM, parameter: { type: CK_PARAMS_GCM, iv, ivBits: 96, tagBits: 128 } }
      : { mechanism: CKM_AES_CBC_PAD, parameter: iv };
    let h;
    const op = () => {
      pk.C_EncryptInit(keeper, mech, h);
      return pk.C_Encrypt(keeper, input, out);
    };
    return {
      before: () => {
        pk.C_Login(keeper, CKU_USER, USER_PIN);
        h = importKey(pk, keeper, CKK_AES, key);
      },
      op,
      check: () => {
        const got = Buffer.from(op());
        const c = createCipheriv(gcm ? "aes-256-gcm" : "aes-256-cbc", key, iv);
        const want = Buffer.concat([c.update(input), c.final(), gcm ? c.getAuthTag() : Buffer.alloc(0)]);
        if (!got.equals(want)) throw new Error(`${gcm ? "GCM" : "CBC_PAD"} ciphertext differs from node:crypto's`);
      },
      after: () => pk.C_Logout(keeper),
    };
  };
}

const CRYPTO = {
  "aes-cbc-pad-64": cipherWorkload(64, false),
  "aes-cbc-pad-1m": cipherWorkload(MIB, false),
  "aes-gcm-64": cipherWorkload(64, true),
  "aes-gcm-1m": cipherWorkload(MIB, true),
  "hmac-sha256-64": ({ pk, keeper }) => {
    const key = randomBytes(32);
    const input = randomBytes(64);
    const out = Buffer.alloc(32);
    let h;
    const op = () => {
      pk.C_SignInit(keeper, { mechanism: CKM_SHA256_HMAC }, h);
      return pk.C_Sign(keeper, input, out);
    };
    return {
      before: () => {
        pk.C_Login(keeper, CKU_USER, USER_PIN);
        h = importKey(pk, keeper, CKK_GENERIC_SECRET, key);
      },
      op,
      check: () => {
        if (!Buffer.from(op()).equals(createHmac("sha256", key).update(input).digest())) throw new Error("HMAC differs from node:crypto's");
      },
      after: () => pk.C_Logout(keeper),
    };
  },
  // C_GenerateKey of an AES-256 session key, then C_DestroyObject (so objects do not pile up).
  "keygen-aes256": ({ pk, keeper }) => {
    const template = [
      { type: CKA_CLASS, value: CKO_SECRET_KEY },
      { type: CKA_KEY_TYPE, value: CKK_AES },
      { type: CKA_TOKEN, value: false },
      { type: CKA_VALUE_LEN, value: 32 },
    ];
    return {
      before: () => pk.C_Login(keeper, CKU_USER, USER_PIN),
      op: () => pk.C_DestroyObject(keeper, pk.C_GenerateKey(keeper, { mechanism: CKM_AES_KEY_GEN }, template)),
      after: () => pk.C_Logout(keeper),
    };
  },
};
Object.assign(SIMPLE, CRYPTO);

function runSimple(ctx, workload, cfg, traceFile) {
  const w = SIMPLE[workload](ctx);
  w.before?.();
  w.check?.();
  const t0 = fileSize(traceFile);
  const m = measure(w.op, cfg);
  const t1 = fileSize(traceFile);
  w.after?.();
  const res = { ...m };
  if (traceFile) {
    res.traceBytes = t1 - t0;
    res.traceBytesPerOp = Math.round((t1 - t0) / (m.iterations + m.warmupIterations));
  }
  return res;
}

// ---------------------------------------------------------------------------------------------
// open-N: open N sessions (one fresh process per N), then measure with N open.
// ---------------------------------------------------------------------------------------------
function runOpenN(ctx, N, cfg, traceFile) {
  const { pk, slot } = ctx;
  const SAMPLE = 16;
  const stride = Math.max(1, Math.floor(N / SAMPLE));
  // Warm up the open/close path (JIT, allocator) so the 1k case isn't measured cold.
  measure(() => pk.C_CloseSession(pk.C_OpenSession(slot, SESSION_FLAGS)), {
    warmupMs: cfg.warmupMs,
    minMs: cfg.warmupMs,
    rounds: 1,
  });
  // Small N: the last-10% window is only N/10 calls, so repeat the open/closeAll cycle and
  // report medians. getSessionInfo@N / open+close@N are measured once (last cycle).
  const reps = N <= 1000 ? 15 : N <= 10000 ? 5 : 1;
  // with N open, 3 rounds are enough (keeps the full run, incl. 100k on SoftHSM, near 4 min)
  const atN = { ...cfg, rounds: Math.min(cfg.rounds, 3) };
  const cycles = [];
  let sample;
  let gsi;
  let oc;
  const trace0 = fileSize(traceFile);
  for (let rep = 0; rep < reps; rep++) {
    const last = rep === reps - 1;
    sample = [];
    const i10 = Math.ceil(N / 10);
    const i90 = N - i10;
    gc();
    gc();
    const m0 = process.memoryUsage();
    const t0 = now();
    let t10 = t0;
    let t90 = t0;
    for (let i = 0; i < N; i++) {
      if (i === i10) t10 = now();
      if (i === i90) t90 = now();
      const h = pk.C_OpenSession(slot, SESSION_FLAGS);
      // keep only a few handles so the bench itself doesn't add N Buffers to the heap
      if (i % stride === stride - 1 && sample.length < SAMPLE) sample.push(h);
    }
    const t1 = now();
    gc();
    gc();
    const m1 = process.memoryUsage();
    const cycle = {
      openTotalMs: t1 - t0,
      usPerOpenFirst10: ((t10 - t0) * 1000) / i10,
      usPerOpenLast10: ((t1 - t90) * 1000) / (N - i90),
      heapBytesPerSession: (m1.heapUsed - m0.heapUsed) / N,
      externalBytesPerSession: (m1.external - m0.external) / N,
      rssBytesPerSession: (m1.rss - m0.rss) / N,
    };
    if (last) {
      let k = 0;
      const info = pk.C_GetSessionInfo(sample[sample.length - 1]);
      if (!(Number(info.flags) & CKF_RW_SESSION)) throw new Error("sampled session is not RW");
      gsi = measure(() => {
        pk.C_GetSessionInfo(sample[k]);
        k = (k + 1) % sample.length;
      }, atN);
      oc = measure(() => pk.C_CloseSession(pk.C_OpenSession(slot, SESSION_FLAGS)), atN);
    }
    const c0 = now();
    pk.C_CloseAllSessions(slot); // also closes the keeper
    const c1 = now();
    cycle.closeAllMs = c1 - c0;
    cycles.push(cycle);
    // verify they're really gone, then reopen the keeper for the next cycle
    let stale = false;
    try {
      pk.C_GetSessionInfo(sample[0]);
      stale = true;
    } catch {
      /* expected: CKR_SESSION_HANDLE_INVALID */
    }
    if (stale) throw new Error("C_CloseAllSessions left a session open");
    ctx.keeper = pk.C_OpenSession(slot, SESSION_FLAGS);
  }
  const med = (k) => median(cycles.map((c) => c[k]));
  const res = {
    N,
    reps,
    openTotalMs: med("openTotalMs"),
    usPerOpenFirst10: med("usPerOpenFirst10"),
    usPerOpenLast10: med("usPerOpenLast10"),
    openLast10OpsPerSec: 1e6 / med("usPerOpenLast10"),
    heapBytesPerSession: med("heapBytesPerSession"),
    externalBytesPerSession: med("externalBytesPerSession"),
    rssBytesPerSession: med("rssBytesPerSession"),
    closeAllMs: med("closeAllMs"),
    closeAllSessionsPerSec: (N + 1) / (med("closeAllMs") / 1000),
    getSessionInfoAtN: gsi,
    openCloseAtN: oc,
    cycles,
  };
  if (traceFile) res.traceBytes = fileSize(traceFile) - trace0;
  return res;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const out = { target: opts.target, workload: opts.workload, cfg: opts.cfg, quick: opts.quick };
  const emit = (o) => process.stdout.write(`BENCH_RESULT ${JSON.stringify(o)}\n`);
  let loaded;
  try {
    loaded = await loadTarget(opts.target);
    if (loaded.notBuilt) {
      emit({ ...out, status: "not built", module: fileURLToPath(HSMSIM_MODULE) });
      return;
    }
    out.library = loaded.library;
    const { pk } = loaded;
    const t0 = now();
    const ctx = { pk, ...setupToken(pk) };
    out.setupMs = now() - t0;
    const N = parseN(opts.workload);
    const w0 = now();
    if (N) out.result = runOpenN(ctx, N, opts.cfg, loaded.traceFile);
    else if (SIMPLE[opts.workload]) out.result = runSimple(ctx, opts.workload, opts.cfg, loaded.traceFile);
    else throw new Error(`unknown workload ${opts.workload}`);
    out.workloadMs = now() - w0;
    if (loaded.traceFile) out.traceFileBytes = fileSize(loaded.traceFile);
    try {
      pk.C_Finalize();
    } catch {
      /* ignore */
    }
    out.status = "ok";
    emit(out);
  } catch (e) {
    emit({ ...out, status: "error", error: String(e?.stack || e), code: e?.code });
    process.exitCode = 1;
  } finally {
    if (loaded?.tmp && !process.env.BENCH_KEEP_TMP) rmSync(loaded.tmp, { recursive: true, force: true });
  }
}

await main();
