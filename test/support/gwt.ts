/**
 * given / when / then, emmett style, over the dispatcher:
 *
 *   given(setup).when("C_Login", { hSession: h.s, userType: CKU_SO, pin: "x" }).then("CKR_PIN_INCORRECT", ["PinRejected"])
 *
 * `given` runs a setup on a fresh simulator and returns named handles; `when` makes one call (args may be a function
 * of the handles); `then` asserts the rv and, if given, the types of the facts recorded for that call.
 */
import { expect } from "vitest";
import type { CallArgs, FnName } from "../../src/events/calls.js";
import type { SimulatorOptions } from "../../src/actors/simulator.js";
import { CK } from "../../src/pkcs11/constants.js";
import { caller, snapshot, testSimulator, SO_PIN, USER_PIN, bytes } from "./sim.js";

export type Handles = Record<string, number>;
export type Call = ReturnType<typeof caller>;
export type Setup = (c: Call, h: Handles, more: { app2: Call }) => void;

export function given(setup: Setup = () => {}, opts: SimulatorOptions = {}) {
  return {
    when<F extends FnName>(fn: F, args: CallArgs[F] | ((h: Handles) => CallArgs[F]), via: "app" | "app2" = "app") {
      return {
        then(rv: string, facts?: string[]) {
          const sim = testSimulator(opts);
          const app = caller(sim.application());
          const app2 = caller(sim.application());
          const h: Handles = {};
          setup(app, h, { app2 });
          const before = sim.lastSeq;
          const r = (via === "app" ? app : app2)(fn, typeof args === "function" ? (args as (h: Handles) => CallArgs[F])(h) : args);
          expect(r.rv, `${fn} answered`).toBe(rv);
          const recorded = [...sim.store.read(before + 1)];
          expect(recorded).toHaveLength(1);
          if (facts) expect(recorded[0]!.facts.map((f) => f.type)).toEqual(facts);
          return { sim, out: r.out, h, snapshot: () => snapshot(sim) };
        },
      };
    },
  };
}

/** Common setups. Each leaves its handles in `h`. */
export const setups = {
  initialized: ((c) => c("C_Initialize", {})) as Setup,
  /** An initialised token in slot 0 (default profile: fixed slot 0), SO and user PINs set, nobody logged in. */
  token: ((c, h) => {
    c("C_Initialize", {});
    c("C_InitToken", { slotID: 0, pin: SO_PIN, label: "t" });
    h.rw = c("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION }).out.hSession;
    c("C_Login", { hSession: h.rw!, userType: CK.CKU_SO, pin: SO_PIN });
    c("C_InitPIN", { hSession: h.rw!, pin: USER_PIN });
    c("C_Logout", { hSession: h.rw! });
  }) as Setup,
};

/** Unwrap a setup step's output, failing loudly if the step itself failed. */
export const ok = <T>(r: { rv: string; out: T }): T => {
  expect(r.rv, "setup step").toBe("CKR_OK");
  return r.out;
};

/** Keep the setup's caller, to make more calls after `when` (a test then checks what followed). */
export function capture() {
  const app = { call: undefined as unknown as Call };
  const setup: Setup = (c) => void (app.call = c);
  return { setup, get: (): Call => app.call };
}

/** Both profiles, for tests that run alike or compare them. */
export const SOFTHSM = { profile: "softhsm2" } as const;
export const PROFILES = [
  ["default", {}],
  ["softhsm2", SOFTHSM],
] as const;
/** SoftHSM's unit tests use 1<<31 as their invalid slot (§18). */
export const INVALID_SLOT = 0x80000000;
export const SHA256 = { mechanism: CK.CKM_SHA256 };

export const RO = CK.CKF_SERIAL_SESSION;
export const RW = CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION;
export function steps(...s: Setup[]): Setup {
  return (c, h, m) => s.forEach((f) => f(c, h, m));
}
export const openRO: Setup = (c, h) => (h.ro = c("C_OpenSession", { slotID: 0, flags: RO }).out.hSession);
export const loginUser: Setup = (c, h) => void c("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN });
export const loginSO: Setup = (c, h) => void c("C_Login", { hSession: h.rw!, userType: CK.CKU_SO, pin: SO_PIN });
export const ulong = (v: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
};
export const dataTemplate = (token: boolean, priv: boolean, label = "d") => [
  { type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA) },
  { type: CK.CKA_TOKEN, value: Uint8Array.of(token ? 1 : 0) },
  { type: CK.CKA_PRIVATE, value: Uint8Array.of(priv ? 1 : 0) },
  { type: CK.CKA_LABEL, value: bytes(label) },
];
export { CK, bytes, SO_PIN, USER_PIN };
