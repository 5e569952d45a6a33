/** General functions (fact sheet §3, §14): C_Initialize, C_Finalize, C_GetInfo, C_WaitForSlotEvent, legacy stubs. */
import { describe, it, expect } from "vitest";
import { given, setups, CK, RW } from "../support/gwt.js";


describe("C_Initialize", () => {
  it("starts an application", () => given().when("C_Initialize", {}).then("CKR_OK", ["ApplicationStarted"]));
  it("refuses a second one", () => given(setups.initialized).when("C_Initialize", {}).then("CKR_CRYPTOKI_ALREADY_INITIALIZED", []));
  it("checks pReserved", () => given().when("C_Initialize", { pInitArgs: { pReserved: 1 } }).then("CKR_ARGUMENTS_BAD"));
  it("wants all four mutex callbacks or none", () => {
    given().when("C_Initialize", { pInitArgs: { mutexCallbacks: 1 } }).then("CKR_ARGUMENTS_BAD");
    given().when("C_Initialize", { pInitArgs: { mutexCallbacks: 4, flags: CK.CKF_OS_LOCKING_OK } }).then("CKR_OK");
    // CKF_LIBRARY_CANT_CREATE_OS_THREADS is ignored.
    given().when("C_Initialize", { pInitArgs: { flags: CK.CKF_LIBRARY_CANT_CREATE_OS_THREADS } }).then("CKR_OK");
  });
  it("two rules at once: already initialised wins over bad pReserved", () =>
    given(setups.initialized).when("C_Initialize", { pInitArgs: { pReserved: 1 } }).then("CKR_CRYPTOKI_ALREADY_INITIALIZED"));
});

describe("C_Finalize", () => {
  it("ends the application", () => given(setups.initialized).when("C_Finalize", {}).then("CKR_OK", ["ApplicationFinalized"]));
  it("two rules at once: not initialised wins over pReserved", () =>
    given().when("C_Finalize", { pReserved: 1 }).then("CKR_CRYPTOKI_NOT_INITIALIZED"));
  it("checks pReserved", () => given(setups.initialized).when("C_Finalize", { pReserved: 1 }).then("CKR_ARGUMENTS_BAD"));
  it("closes the application's sessions and restarts handles at 1", () => {
    const { sim } = given(setups.token).when("C_Finalize", {}).then("CKR_OK");
    expect(sim.read.counts.get("slot0")!.sessions).toBe(0);
    const app = sim.application();
    app.call({ fn: "C_Initialize", args: {} });
    expect(app.call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).out).toEqual({ hSession: 1 });
  });
});

describe("C_GetInfo", () => {
  it("describes the library as SoftHSM 2.6 with Cryptoki 2.40", () => {
    const { out } = given(setups.initialized).when("C_GetInfo", {}).then("CKR_OK");
    expect(out).toMatchObject({ cryptokiVersion: { major: 2, minor: 40 }, libraryVersion: { major: 2, minor: 6 }, flags: 0 });
    expect(out.manufacturerID).toBe("SoftHSM".padEnd(32));
  });
  it("two rules at once: not initialised wins over a NULL pInfo", () =>
    given().when("C_GetInfo", { pInfo: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED"));
  it("checks pInfo", () => given(setups.initialized).when("C_GetInfo", { pInfo: null }).then("CKR_ARGUMENTS_BAD"));
});

describe("C_WaitForSlotEvent", () => {
  it("two rules at once: blocking is refused even before C_Initialize", () =>
    given().when("C_WaitForSlotEvent", { flags: 0 }).then("CKR_FUNCTION_NOT_SUPPORTED"));
  it("needs initialisation for CKF_DONT_BLOCK", () =>
    given().when("C_WaitForSlotEvent", { flags: CK.CKF_DONT_BLOCK }).then("CKR_CRYPTOKI_NOT_INITIALIZED"));
  it("has no event to report", () =>
    given(setups.initialized).when("C_WaitForSlotEvent", { flags: CK.CKF_DONT_BLOCK }).then("CKR_NO_EVENT"));
});

describe.each(["C_GetFunctionStatus", "C_CancelFunction"] as const)("%s", (fn) => {
  it("two rules at once: not initialised wins over a bad session", () =>
    given().when(fn, { hSession: 99 }).then("CKR_CRYPTOKI_NOT_INITIALIZED"));
  it("checks the session", () => given(setups.initialized).when(fn, { hSession: 99 }).then("CKR_SESSION_HANDLE_INVALID"));
  it("is a legacy function", () => given(setups.token).when(fn, (h) => ({ hSession: h.rw! })).then("CKR_FUNCTION_NOT_PARALLEL"));
});

