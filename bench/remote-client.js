#!/usr/bin/env node
// One PKCS#11 application for bench/remote.js, in its own process:
//   node bench/remote-client.js hsmsim <nats://host:port/name> <workload> <ms> <warmupMs>
//   node bench/remote-client.js p11kit <p11-kit-client.so>      <workload> <ms> <warmupMs>
// hsmsim: the pkcs11js drop-in (dist/pkcs11/pkcs11js.js) over NATS; p11kit: the real pkcs11js addon on
// p11-kit-client.so (SoftHSM 2.6.1 served by `p11-kit server`, P11_KIT_SERVER_ADDRESS in the environment).
// Sets up (C_Initialize, find the token labelled "bench", open a keeper session), says "ready" to the parent, runs
// the workload for <ms> after "go", and sends { ops, sec, p50, p99, errors } (latencies in µs per op).
// Workloads: getSessionInfo (C_GetSessionInfo on the keeper), open+close (C_OpenSession RW + C_CloseSession),
// login+logout (C_Login CKU_USER "1234" + C_Logout on the keeper).
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const [kind, target, workload, msArg, warmArg] = process.argv.slice(2);
const require = createRequire(import.meta.url);

let p;
let C;
if (kind === "hsmsim") {
  const mod = await import(join(HERE, "..", "dist", "pkcs11", "pkcs11js.js"));
  C = mod.default;
  p = new mod.PKCS11();
  p.load(target);
  p.C_Initialize();
} else {
  C = require("pkcs11js");
  p = new C.PKCS11();
  p.load(target);
  // p11-kit-client.so refuses C_Initialize without CKF_OS_LOCKING_OK (CKR_CANT_LOCK)
  p.C_Initialize({ flags: C.CKF_OS_LOCKING_OK });
}
const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === "bench");
if (!slot) throw new Error(`${kind}: no token labelled "bench"`);
const keeper = p.C_OpenSession(slot, C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
const RW = C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION;

const ops = {
  getSessionInfo: () => p.C_GetSessionInfo(keeper),
  "open+close": () => p.C_CloseSession(p.C_OpenSession(slot, RW)),
  "login+logout": () => {
    p.C_Login(keeper, C.CKU_USER, "1234");
    p.C_Logout(keeper);
  },
};
const op = ops[workload];
if (!op) throw new Error(`unknown workload ${workload}`);

function run(ms, keep) {
  const lat = keep ? [] : undefined;
  let n = 0;
  let errors = 0;
  let firstError;
  const t0 = performance.now();
  const end = t0 + ms;
  let t = t0;
  while (t < end) {
    try {
      op();
    } catch (e) {
      errors++;
      firstError ??= e.message;
    }
    const t1 = performance.now();
    lat?.push((t1 - t) * 1000);
    t = t1;
    n++;
  }
  return { n, sec: (t - t0) / 1000, lat, errors, firstError };
}

process.once("message", () => {
  run(Number(warmArg), false);
  const r = run(Number(msArg), true);
  const s = Float64Array.from(r.lat).sort();
  const q = (x) => s[Math.min(s.length - 1, Math.floor(x * s.length))];
  process.send({ ops: r.n, sec: r.sec, p50: q(0.5), p99: q(0.99), errors: r.errors, firstError: r.firstError }, () => {
    try {
      p.C_CloseSession(keeper);
      p.C_Finalize();
      if (kind === "hsmsim") p.close();
    } finally {
      process.exit(0);
    }
  });
});
process.send("ready");
