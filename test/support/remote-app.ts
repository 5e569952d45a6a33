/**
 * A remote application (the async client, src/remote/client.ts) driven by name in tests, and the token set up on it
 * as the remote suites need it: the SO's PIN, then the user's.
 */
import { expect } from "vitest";
import type { RemoteApplication } from "../../src/remote/client.js";
import type { Call, CallArgs, CallOut, FnName } from "../../src/events/calls.js";
import { CK, rvName } from "../../src/pkcs11/constants.js";
import { SO_PIN, USER_PIN } from "./sim.js";

export type RemoteCaller = <F extends FnName>(fn: F, args: CallArgs[F]) => Promise<{ rv: string; out: CallOut[F] }>;

/** `(fn, args)` → `{ rv: name, out }` on a remote application. */
export function remote(app: RemoteApplication): RemoteCaller {
  return async (fn, args) => {
    const r = await app.call({ fn, args } as Extract<Call, { fn: typeof fn }>);
    return { rv: rvName(r.rv), out: r.out as CallOut[typeof fn] };
  };
}

/** C_Initialize, then slot 0's token initialised with `label`, the SO's PIN and the user's set (its session closed). */
export async function initToken(app: RemoteCaller, label: string): Promise<void> {
  const RW = CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION;
  expect((await app("C_Initialize", {})).rv).toBe("CKR_OK");
  expect((await app("C_InitToken", { slotID: 0, pin: SO_PIN, label })).rv).toBe("CKR_OK");
  const h = (await app("C_OpenSession", { slotID: 0, flags: RW })).out.hSession;
  expect((await app("C_Login", { hSession: h, userType: CK.CKU_SO, pin: SO_PIN })).rv).toBe("CKR_OK");
  expect((await app("C_InitPIN", { hSession: h, pin: USER_PIN })).rv).toBe("CKR_OK");
  expect((await app("C_CloseSession", { hSession: h })).rv).toBe("CKR_OK");
}
