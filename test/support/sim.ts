/**
 * Test helpers: a simulator with a fixed clock and a seeded random source (so runs repeat), and a caller that takes
 * calls as `(fn, args)` and hands back `{ rv, out }` with rv as a CKR name.
 */
import { Simulator, type SimulatorOptions } from "../../src/actors/simulator.js";
import { MemoryEventStore } from "../../src/events/memory-store.js";
import type { Application } from "../../src/actors/simulator.js";
import type { Call, CallArgs, CallOut, FnName } from "../../src/events/calls.js";
import { CK, rvName } from "../../src/pkcs11/constants.js";
import { snapshotState } from "../../src/model/snapshot.js";

/** xorshift32 bytes: deterministic, seedable. */
export function seededRandom(seed: number): (n: number) => Uint8Array {
  let x = seed >>> 0 || 0x9e3779b9;
  return (n) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      b[i] = x & 0xff;
    }
    return b;
  };
}

export const TEST_KEY = new Uint8Array(32).fill(7);

export function testSimulator(opts: SimulatorOptions = {}): Simulator {
  return new Simulator({
    clock: () => 1_800_000_000_000,
    randomBytes: seededRandom(1),
    simulatorKey: TEST_KEY,
    // Deep-frozen records: any code that changes a fact or an output after the call would throw here.
    store: new MemoryEventStore({ freeze: true }),
    ...opts,
  });
}

export interface Result<F extends FnName> {
  rv: string;
  out: CallOut[F];
}

export function caller(app: Application) {
  return <F extends FnName>(fn: F, args: CallArgs[F]): Result<F> => {
    const r = app.call({ fn, args } as Extract<Call, { fn: F }>);
    return { rv: rvName(r.rv), out: r.out as CallOut[F] };
  };
}

export const snapshot = (sim: Simulator) => snapshotState(sim.state, sim.read);

export const SO_PIN = "12345678";
export const USER_PIN = "1234";
export const bytes = (s: string) => new TextEncoder().encode(s);

/**
 * `app` (not yet initialised) with slot 0's token initialised (label `label`, the SO and user PINs set) and an RW
 * session logged in as the user: that session's handle. Throws on any rv but CKR_OK.
 */
export function userSession(app: Application, label: string): number {
  const call = caller(app);
  const ok = <F extends FnName>(r: Result<F>): CallOut[F] => {
    if (r.rv !== "CKR_OK") throw new Error(`setting up the token: ${r.rv}`);
    return r.out;
  };
  ok(call("C_Initialize", {}));
  ok(call("C_InitToken", { slotID: 0, pin: SO_PIN, label }));
  const h = ok(call("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION })).hSession;
  ok(call("C_Login", { hSession: h, userType: CK.CKU_SO, pin: SO_PIN }));
  ok(call("C_InitPIN", { hSession: h, pin: USER_PIN }));
  ok(call("C_Logout", { hSession: h }));
  ok(call("C_Login", { hSession: h, userType: CK.CKU_USER, pin: USER_PIN }));
  return h;
}
