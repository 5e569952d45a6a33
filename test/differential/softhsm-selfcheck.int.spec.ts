/**
 * Self-check of the differential harness against the real SoftHSM 2.6.1:
 * - two independent SoftHSM runs (fresh token directories, same worker processes) agree call by call, which
 *   validates the generator, the symbolic resolution, the normalisation and the determinism of the harness;
 * - the in-process pkcs11jsApps() driver agrees with the worker processes (single-application sequences);
 * - a 500-sequence run prints per-function and per-rv counts and checks that deep states are reached.
 */
import { afterAll, describe, expect, it } from "vitest";
import { createSoftHsmEnv, pkcs11js, SOFTHSM_LIB, softHsmAvailable } from "../support/softhsm.js";
import { compareObservations } from "./compare.js";
import {
  addToHistogram,
  formatHistogram,
  newHistogram,
  pkcs11jsApps,
  runSequence,
  softhsmApps,
  stopSoftHsmWorkers,
  type MakeApp,
} from "./run.js";
import { generateSequence, sequenceSeeds } from "./sequence.js";

const BASE_SEED = Number(process.env.HSMSIM_DIFF_SEED ?? 20261126);

describe.skipIf(!softHsmAvailable())("differential harness self-check (SoftHSM 2.6.1 vs itself)", () => {
  afterAll(async () => {
    await stopSoftHsmWorkers();
  });

  it("60 seeded sequences: two independent SoftHSM runs agree call by call", { timeout: 300_000 }, async () => {
    const seeds = sequenceSeeds(BASE_SEED, 60);
    let calls = 0;
    const failures: string[] = [];
    for (const seed of seeds) {
      const seq = generateSequence(seed);
      expect(seq.steps.length).toBeGreaterThanOrEqual(60);
      const a = await runSequence(seq, softhsmApps());
      const b = await runSequence(seq, softhsmApps());
      calls += seq.steps.length;
      const c = compareObservations(seq, a, b, { a: "softhsm run 1", b: "softhsm run 2" });
      if (!c.ok && c.report) failures.push(c.report);
    }
    if (failures.length > 0) {
      throw new Error(`${failures.length} of ${seeds.length} sequences disagree between two SoftHSM runs\n\n${failures.slice(0, 3).join("\n\n")}`);
    }
    console.log(`self-check: ${seeds.length} sequences, ${calls} calls, two SoftHSM runs agree`);
  });

  it("pkcs11jsApps (in-process) agrees with the SoftHSM worker processes on 30 one-application sequences", { timeout: 300_000 }, async () => {
    const { PKCS11 } = pkcs11js();
    const seeds = sequenceSeeds(BASE_SEED + 1, 30);
    for (const seed of seeds) {
      const seq = generateSequence(seed, { apps: 1 });
      const a = await runSequence(seq, softhsmApps());
      // In-process: this (vitest) process is the application; point SoftHSM at a fresh token directory first.
      const env = createSoftHsmEnv();
      env.activate();
      const inProcess: MakeApp = pkcs11jsApps(PKCS11, SOFTHSM_LIB);
      inProcess.dispose = () => env.remove();
      const b = await runSequence(seq, inProcess);
      const c = compareObservations(seq, a, b, { a: "softhsm worker", b: "pkcs11js in-process" });
      if (!c.ok) throw new Error(c.report);
    }
  });

  it("500 sequences: per-function and per-rv counts reach deep states", { timeout: 300_000 }, async () => {
    const h = newHistogram();
    const seeds = sequenceSeeds(BASE_SEED, 500);
    let steps = 0;
    let twoApps = 0;
    const t0 = performance.now();
    for (const seed of seeds) {
      const seq = generateSequence(seed);
      steps += seq.steps.length;
      if (seq.apps === 2) twoApps++;
      addToHistogram(h, seq, await runSequence(seq, softhsmApps()));
    }
    const ms = Math.round(performance.now() - t0);
    console.log(
      `SoftHSM: ${seeds.length} sequences (${twoApps} with 2 applications), ${steps} calls in ${ms} ms\n${formatHistogram(h)}`,
    );

    const rv = (fn: string, name: string): number => h.byFn[fn]?.[name] ?? 0;
    // deep states the generator must reach
    expect(rv("C_Login(USER)", "CKR_OK")).toBeGreaterThan(50);
    expect(rv("C_Login(SO)", "CKR_OK")).toBeGreaterThan(50);
    expect(rv("C_FindObjects", "CKR_OK(objects)")).toBeGreaterThan(50);
    expect(rv("C_InitPIN", "CKR_OK")).toBeGreaterThan(50);
    expect(rv("C_CreateObject", "CKR_OK")).toBeGreaterThan(100);
    expect(rv("C_Digest", "CKR_OK") + rv("C_DigestFinal", "CKR_OK")).toBeGreaterThan(50);
    for (const name of [
      "CKR_OPERATION_ACTIVE",
      "CKR_OPERATION_NOT_INITIALIZED",
      "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
      "CKR_USER_ALREADY_LOGGED_IN",
      "CKR_USER_PIN_NOT_INITIALIZED",
      "CKR_USER_NOT_LOGGED_IN",
      "CKR_SESSION_READ_ONLY_EXISTS",
      "CKR_SESSION_READ_WRITE_SO_EXISTS",
      "CKR_SESSION_READ_ONLY",
      "CKR_SESSION_EXISTS",
      "CKR_SESSION_PARALLEL_NOT_SUPPORTED",
      "CKR_TOKEN_NOT_RECOGNIZED",
      "CKR_PIN_INCORRECT",
      "CKR_PIN_LEN_RANGE",
      "CKR_OBJECT_HANDLE_INVALID",
      "CKR_ATTRIBUTE_TYPE_INVALID",
      "CKR_ATTRIBUTE_READ_ONLY",
      "CKR_TEMPLATE_INCOMPLETE",
      "CKR_BUFFER_TOO_SMALL",
      "CKR_ARGUMENTS_BAD",
      "CKR_MECHANISM_INVALID",
      "CKR_USER_TYPE_INVALID",
      "CKR_SLOT_ID_INVALID",
      "CKR_CRYPTOKI_NOT_INITIALIZED",
      "CKR_CRYPTOKI_ALREADY_INITIALIZED",
      "CKR_FUNCTION_NOT_SUPPORTED",
    ]) {
      expect(h.byRv[name] ?? 0, name).toBeGreaterThan(0);
    }
  });
});
