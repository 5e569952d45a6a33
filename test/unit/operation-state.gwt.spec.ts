/**
 * C_GetOperationState / C_SetOperationState, default profile (src/functions/operation-state.ts): what is saveable
 * (digests, HMACs, AES ECB / CBC / CBC_PAD / CTR) and what is not (GCM, find), the sealed blob (tampered, truncated,
 * foreign: CKR_SAVED_STATE_INVALID), the key handles of §5.6.6 (KEY_NEEDED, KEY_NOT_NEEDED, KEY_CHANGED,
 * KEY_HANDLE_INVALID), restoring into another session and into a simulator restarted from the log, and what the log
 * keeps. softhsm2: CKR_FUNCTION_NOT_SUPPORTED (also in session.gwt.spec.ts).
 */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Simulator } from "../../src/actors/simulator.js";
import { given, steps, ok, capture, CK, SOFTHSM, bytes, type Setup } from "../support/gwt.js";
import { caller, testSimulator, TEST_KEY } from "../support/sim.js";
import { keys, start, hmac, cbc, cbcPad, ecb, ctr, gcm, IV, GEN64, toHex, openRW2 } from "../support/crypto-setup.js";

type Blob = { state: Uint8Array };
const MSG = bytes("the first half|and the second half of the message");
const blobs = new WeakMap<object, Blob>();
const save: Setup = (c, h) => void blobs.set(h, ok(c("C_GetOperationState", { hSession: h.rw! })) as Blob);
const blobOf = (h: object) => blobs.get(h)!.state;
const feed = (fn: "C_SignUpdate" | "C_DigestUpdate", data: Uint8Array): Setup => (c, h) => void ok(c(fn, { hSession: h.rw!, data }));
const set = (h: Record<string, number>, state: Uint8Array | null, enc = 0, auth = 0) => ({ hSession: h.rw2!, state, hEncryptionKey: enc, hAuthenticationKey: auth });
const signingSaved = steps(keys, openRW2, start("C_SignInit", hmac(), "gen"), feed("C_SignUpdate", MSG.subarray(0, 14)), save);

describe("C_GetOperationState (default profile)", () => {
  it("no operation → CKR_OPERATION_NOT_INITIALIZED", () => given(keys).when("C_GetOperationState", (h) => ({ hSession: h.rw! })).then("CKR_OPERATION_NOT_INITIALIZED", []));
  it("two rules at once: an invalid session wins over no operation", () => given(keys).when("C_GetOperationState", { hSession: 99 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("GCM and find cannot be saved: CKR_STATE_UNSAVEABLE", () => {
    given(steps(keys, start("C_EncryptInit", gcm(IV.subarray(0, 12), null), "aes"))).when("C_GetOperationState", (h) => ({ hSession: h.rw! })).then("CKR_STATE_UNSAVEABLE", []);
    const finding: Setup = (c, h) => void ok(c("C_FindObjectsInit", { hSession: h.rw!, template: [] }));
    given(steps(keys, finding)).when("C_GetOperationState", (h) => ({ hSession: h.rw! })).then("CKR_STATE_UNSAVEABLE", []);
  });
  it("saves digests, HMACs and AES ECB/CBC/CBC_PAD/CTR; the blob holds no key, no data; saving changes nothing", () => {
    const digesting: Setup = (c, h) => void ok(c("C_DigestInit", { hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256 } }));
    for (const setup of [
      steps(keys, digesting, feed("C_DigestUpdate", MSG)),
      steps(keys, start("C_SignInit", hmac(), "gen"), feed("C_SignUpdate", MSG)),
      steps(keys, start("C_VerifyInit", hmac(), "gen")),
      steps(keys, start("C_EncryptInit", ecb, "aes")),
      steps(keys, start("C_DecryptInit", cbc(), "aes")),
      steps(keys, start("C_EncryptInit", cbcPad(), "aes")),
      steps(keys, start("C_EncryptInit", ctr(64, IV), "aes")),
    ]) {
      const { out, sim } = given(setup).when("C_GetOperationState", (h) => ({ hSession: h.rw! })).then("CKR_OK", []);
      const blob = Buffer.from((out as Blob).state);
      expect(blob.subarray(0, 14).toString()).toBe("hsmsim-opstate");
      expect(blob.toString("hex")).not.toContain(GEN64);
      expect(blob.toString("latin1")).not.toContain("the first half");
      // The log keeps its length, hash and nonce, not the blob.
      const r = [...sim.store.read()].at(-1)!;
      expect(JSON.stringify(r)).not.toContain(blob.toString("hex"));
      expect(r.out).toMatchObject({ length: blob.length });
    }
  });
  it("softhsm2: CKR_FUNCTION_NOT_SUPPORTED, whatever runs", () =>
    void given(steps(keys, start("C_SignInit", hmac(), "gen")), SOFTHSM).when("C_GetOperationState", (h) => ({ hSession: h.rw! })).then("CKR_FUNCTION_NOT_SUPPORTED", []));
});

describe("C_SetOperationState (default profile)", () => {
  it("restores an HMAC into another session: it finishes with the uninterrupted MAC", () => {
    const later = capture();
    const { h } = given(steps(signingSaved, later.setup)).when("C_SetOperationState", (h) => set(h, blobOf(h), 0, h.gen!)).then("CKR_OK", ["OperationRestored"]);
    const c = later.get();
    ok(c("C_SignUpdate", { hSession: h.rw2!, data: MSG.subarray(14) }));
    const mac = ok(c("C_SignFinal", { hSession: h.rw2!, outLen: 32 })) as { data: Uint8Array };
    expect(toHex(mac.data)).toBe(createHmac("sha256", Buffer.from(GEN64, "hex")).update(MSG).digest("hex"));
    // The original session's operation is untouched: it finishes too, with the same MAC.
    ok(c("C_SignUpdate", { hSession: h.rw!, data: MSG.subarray(14) }));
    expect(toHex((ok(c("C_SignFinal", { hSession: h.rw!, outLen: 32 })) as { data: Uint8Array }).data)).toBe(toHex(mac.data));
  });
  it("two rules at once: an invalid session wins over a NULL state", () =>
    given(signingSaved).when("C_SetOperationState", { hSession: 99, state: null, hEncryptionKey: 0, hAuthenticationKey: 0 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("a NULL state → CKR_ARGUMENTS_BAD", () => given(signingSaved).when("C_SetOperationState", (h) => set(h, null)).then("CKR_ARGUMENTS_BAD", []));
  it("tampered, truncated or foreign blobs → CKR_SAVED_STATE_INVALID, and nothing changes", () => {
    for (const mutate of [
      (b: Uint8Array) => b.map((x, i) => (i === b.length - 1 ? x ^ 1 : x)),
      (b: Uint8Array) => b.map((x, i) => (i === 40 ? x ^ 0x80 : x)),
      (b: Uint8Array) => b.map((x, i) => (i === 14 ? 2 : x)), // another version
      (b: Uint8Array) => b.subarray(0, b.length - 1),
      (b: Uint8Array) => b.subarray(0, 20),
      () => bytes("not a blob at all"),
      () => new Uint8Array(0),
    ]) {
      given(signingSaved).when("C_SetOperationState", (h) => set(h, mutate(Uint8Array.from(blobOf(h))), 0, h.gen!)).then("CKR_SAVED_STATE_INVALID", []);
    }
    // Another simulator (another simulator key) cannot open this one's blobs.
    const a = given(signingSaved).when("C_GetOperationState", (h) => ({ hSession: h.rw! })).then("CKR_OK");
    const other = new Uint8Array(32).fill(9);
    given(signingSaved, { simulatorKey: other }).when("C_SetOperationState", (h) => set(h, (a.out as Blob).state, 0, h.gen!)).then("CKR_SAVED_STATE_INVALID", []);
  });
  it("§5.6.6 key handles: KEY_NOT_NEEDED, KEY_NEEDED, KEY_HANDLE_INVALID, KEY_CHANGED, in that order", () => {
    given(signingSaved).when("C_SetOperationState", (h) => set(h, blobOf(h), h.gen!, h.gen!)).then("CKR_KEY_NOT_NEEDED", []);
    // Two rules at once: KEY_NOT_NEEDED (an encryption key for a MAC) wins over KEY_NEEDED (no authentication key).
    given(signingSaved).when("C_SetOperationState", (h) => set(h, blobOf(h), h.aes!, 0)).then("CKR_KEY_NOT_NEEDED", []);
    given(signingSaved).when("C_SetOperationState", (h) => set(h, blobOf(h), 0, 0)).then("CKR_KEY_NEEDED", []);
    given(signingSaved).when("C_SetOperationState", (h) => set(h, blobOf(h), 0, 0xdead)).then("CKR_KEY_HANDLE_INVALID", []);
    given(signingSaved).when("C_SetOperationState", (h) => set(h, blobOf(h), 0, h.hmac256!)).then("CKR_KEY_CHANGED", []);
    const digestSaved = steps(keys, openRW2, (c, h) => void ok(c("C_DigestInit", { hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256 } })), save);
    given(digestSaved).when("C_SetOperationState", (h) => set(h, blobOf(h), 0, h.gen!)).then("CKR_KEY_NOT_NEEDED", []);
    given(digestSaved).when("C_SetOperationState", (h) => set(h, blobOf(h))).then("CKR_OK", ["OperationRestored"]);
  });
  it("restoring over a running operation ends it first", () =>
    given(steps(signingSaved, start("C_EncryptInit", ecb, "aes", "rw2"))).when("C_SetOperationState", (h) => set(h, blobOf(h), 0, h.gen!)).then("CKR_OK", ["OperationEnded", "OperationRestored"]));
  it("softhsm2: CKR_FUNCTION_NOT_SUPPORTED", () =>
    void given(steps(keys, openRW2), SOFTHSM).when("C_SetOperationState", (h) => set(h, bytes("x"))).then("CKR_FUNCTION_NOT_SUPPORTED", []));
  it("after a restart: a simulator rebuilt from the log (same simulator key) takes the blob and finishes the same", () => {
    const sim = testSimulator();
    const c = caller(sim.application());
    const h: Record<string, number> = {};
    keys(c, h, { app2: c });
    ok(c("C_EncryptInit", { hSession: h.rw!, mechanism: cbcPad(), hKey: h.aes! }));
    const part1 = ok(c("C_EncryptUpdate", { hSession: h.rw!, data: MSG.subarray(0, 21), outLen: 64 })) as { data: Uint8Array };
    const blob = (ok(c("C_GetOperationState", { hSession: h.rw! })) as Blob).state;
    const rest = ok(c("C_EncryptUpdate", { hSession: h.rw!, data: MSG.subarray(21), outLen: 64 })) as { data: Uint8Array };
    const last = ok(c("C_EncryptFinal", { hSession: h.rw!, outLen: 16 })) as { data: Uint8Array };
    const reborn = Simulator.replay([...sim.store.read()], { simulatorKey: TEST_KEY });
    const c2 = caller(reborn.application());
    ok(c2("C_Initialize", {}));
    const s = (ok(c2("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION })) as { hSession: number }).hSession;
    ok(c2("C_Login", { hSession: s, userType: CK.CKU_USER, pin: "1234" }));
    // A token key would survive the restart; a session key must be made again with the same value.
    const k = (ok(c2("C_CreateObject", { hSession: s, template: [
      { type: CK.CKA_CLASS, value: le(CK.CKO_SECRET_KEY) }, { type: CK.CKA_KEY_TYPE, value: le(CK.CKK_AES) },
      { type: CK.CKA_TOKEN, value: Uint8Array.of(0) }, { type: CK.CKA_VALUE, value: Buffer.from("2b7e151628aed2a6abf7158809cf4f3c", "hex") },
    ] })) as { hObject: number }).hObject;
    ok(c2("C_SetOperationState", { hSession: s, state: blob, hEncryptionKey: k, hAuthenticationKey: 0 }));
    const rest2 = ok(c2("C_EncryptUpdate", { hSession: s, data: MSG.subarray(21), outLen: 64 })) as { data: Uint8Array };
    const last2 = ok(c2("C_EncryptFinal", { hSession: s, outLen: 16 })) as { data: Uint8Array };
    expect(`${toHex(rest2.data)}${toHex(last2.data)}`).toBe(`${toHex(rest.data)}${toHex(last.data)}`);
    expect(part1.data.length).toBe(16);
  });
});

function le(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
}
