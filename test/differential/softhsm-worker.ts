/**
 * One SoftHSM "application": a long-lived child process (forked by run.ts with `--import tsx`) that executes
 * pkcs11js calls against the real libsofthsm2.so and replies with observations over IPC.
 *
 * Requests: { id, op: "call", conf, fn, args } — sets SOFTHSM2_CONF = conf (SoftHSM reads it at C_Initialize)
 * and runs p[fn](...args); { id, op: "reset" } — C_Finalize, result ignored (end of a sequence).
 */
import { loadSoftHsm, type Pkcs11Like } from "../support/softhsm.js";
import { invokePkcs11, type WorkerRequest, type WorkerResponse } from "./run.js";

let p: Pkcs11Like | undefined;

function lib(): Pkcs11Like {
  p ??= loadSoftHsm();
  return p;
}

function reply(r: WorkerResponse): void {
  process.send?.(r);
}

process.on("message", (m: WorkerRequest) => {
  try {
    if (m.op === "call") {
      if (process.env.SOFTHSM2_CONF !== m.conf) process.env.SOFTHSM2_CONF = m.conf;
      reply({ id: m.id, obs: invokePkcs11(lib(), m.fn, m.args) });
    } else {
      invokePkcs11(lib(), "C_Finalize", []);
      reply({ id: m.id, obs: { fn: "reset", rv: "CKR_OK" } });
    }
  } catch (e) {
    reply({ id: m.id, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
  }
});

process.on("disconnect", () => process.exit(0));
