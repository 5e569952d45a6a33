/**
 * `hsmsim replay --check` on real file stores: the demo's log and a log with wrong PINs, re-initialisation, digests,
 * objects and random bytes re-execute without divergence (PIN checks labelled as answered from the record); a log
 * whose record was edited and re-chained, a log whose PinRejected fact was dropped, and a store replayed under another
 * profile are reported call by call with exit 1; usage and store errors exit 2.
 */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cliInProcess } from "../support/cli-in-process.js";
import { Simulator, type SimulatorOptions } from "../../src/actors/simulator.js";
import { FileEventStore } from "../../src/events/file-store.js";
import { readLog } from "../../src/events/verify.js";
import type { CallRecord } from "../../src/events/types.js";
import { checkRecords, type CheckReport } from "../../src/replay/check.js";
import { CK } from "../../src/pkcs11/constants.js";

const { cli, tempDir } = cliInProcess();

const SO_PIN = "87651234";
const USER_PIN = "24681357";
const ulong = (v: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
};

/** A store whose log holds the interesting cases: wrong PINs, re-initialisation, digests, objects, random bytes. */
function busyStore(profile: "default" | "softhsm2"): string {
  const dir = path.join(tempDir("hsmsim-check-"), "store");
  const store = new FileEventStore(dir, { durability: "none" });
  const saved = store.settings({ profile }, { profile: "default" });
  const sim = new Simulator({ ...(saved.options as SimulatorOptions), simulatorKey: saved.simulatorKey, store });
  const a = sim.application();
  const b = sim.application();
  const enc = new TextEncoder();
  a.call({ fn: "C_Initialize", args: {} });
  const slots = a.call({ fn: "C_GetSlotList", args: { tokenPresent: false, pSlotList: 8 } }).out!.slots;
  const slot = slots[0]!;
  a.call({ fn: "C_InitToken", args: { slotID: slot, pin: SO_PIN, label: "check" } });
  a.call({ fn: "C_InitToken", args: { slotID: slot, pin: "00000000", label: "wrong so pin" } });
  // The size query first: a softhsm2 application sees new slots when it asks for it (as SoftHSM's processes do).
  a.call({ fn: "C_GetSlotList", args: { tokenPresent: true, pSlotList: null } });
  const tokenSlot = a.call({ fn: "C_GetSlotList", args: { tokenPresent: true, pSlotList: 8 } }).out!.slots[0]!;
  const so = a.call({ fn: "C_OpenSession", args: { slotID: tokenSlot, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION } }).out!.hSession;
  a.call({ fn: "C_Login", args: { hSession: so, userType: CK.CKU_SO, pin: "99999999" } });
  a.call({ fn: "C_Login", args: { hSession: so, userType: CK.CKU_SO, pin: SO_PIN } });
  a.call({ fn: "C_InitPIN", args: { hSession: so, pin: USER_PIN } });
  a.call({ fn: "C_InitPIN", args: { hSession: so, pin: "12" } });
  a.call({ fn: "C_Logout", args: { hSession: so } });
  a.call({ fn: "C_CloseSession", args: { hSession: so } });
  // A second application, started once the token exists (softhsm2 numbers its slot from the token's serial).
  b.call({ fn: "C_Initialize", args: {} });
  b.call({ fn: "C_GetSlotList", args: { tokenPresent: true, pSlotList: null } });
  const bSlot = b.call({ fn: "C_GetSlotList", args: { tokenPresent: true, pSlotList: 8 } }).out!.slots[0]!;
  const h = b.call({ fn: "C_OpenSession", args: { slotID: bSlot, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION } }).out!.hSession;
  b.call({ fn: "C_Login", args: { hSession: h, userType: CK.CKU_USER, pin: "11111111" } });
  b.call({ fn: "C_Login", args: { hSession: h, userType: CK.CKU_USER, pin: USER_PIN } });
  b.call({ fn: "C_SetPIN", args: { hSession: h, oldPin: "11111111", newPin: "22222222" } });
  b.call({ fn: "C_SetPIN", args: { hSession: h, oldPin: USER_PIN, newPin: USER_PIN } });
  const obj = b.call({
    fn: "C_CreateObject",
    args: { hSession: h, template: [{ type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA) }, { type: CK.CKA_TOKEN, value: new Uint8Array([1]) }, { type: CK.CKA_LABEL, value: enc.encode("kept") }, { type: CK.CKA_VALUE, value: enc.encode("value bytes") }] },
  }).out!.hObject;
  // A failed create: its template's values are in no fact, so the check applies it from the record.
  b.call({ fn: "C_CreateObject", args: { hSession: h, template: [{ type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA) }, { type: CK.CKA_TOKEN, value: new Uint8Array([1, 2]) }] } });
  b.call({ fn: "C_SetAttributeValue", args: { hSession: h, hObject: obj, template: [{ type: CK.CKA_LABEL, value: enc.encode("relabelled") }] } });
  b.call({ fn: "C_CopyObject", args: { hSession: h, hObject: obj, template: [{ type: CK.CKA_TOKEN, value: new Uint8Array([0]) }] } });
  b.call({ fn: "C_GetAttributeValue", args: { hSession: h, hObject: obj, template: [{ type: CK.CKA_VALUE, value: null }, { type: CK.CKA_LABEL, value: new Uint8Array(3) }] } });
  b.call({ fn: "C_FindObjectsInit", args: { hSession: h, template: [] } });
  b.call({ fn: "C_FindObjects", args: { hSession: h, maxCount: 10 } });
  b.call({ fn: "C_FindObjectsFinal", args: { hSession: h } });
  b.call({ fn: "C_DigestInit", args: { hSession: h, mechanism: { mechanism: CK.CKM_SHA256 } } });
  b.call({ fn: "C_DigestUpdate", args: { hSession: h, data: enc.encode("multi-part ") } });
  b.call({ fn: "C_DigestUpdate", args: { hSession: h, data: enc.encode("digest") } });
  b.call({ fn: "C_DigestFinal", args: { hSession: h, outLen: null } });
  b.call({ fn: "C_DigestFinal", args: { hSession: h, outLen: 32 } });
  b.call({ fn: "C_DigestInit", args: { hSession: h, mechanism: { mechanism: CK.CKM_SHA256 } } });
  b.call({ fn: "C_Digest", args: { hSession: h, data: enc.encode("single part"), outLen: 32 } });
  b.call({ fn: "C_GenerateRandom", args: { hSession: h, ulRandomLen: 24 } });
  b.call({ fn: "C_SeedRandom", args: { hSession: h, seed: enc.encode("seed") } });
  b.call({ fn: "C_GetTokenInfo", args: { slotID: bSlot } });
  b.call({ fn: "C_GetSessionInfo", args: { hSession: h } });
  b.call({ fn: "C_Login", args: { hSession: h, userType: 7, pin: USER_PIN } });
  b.call({ fn: "C_GetInfo", args: "not an object" } as never);
  b.call({ fn: "C_NoSuchFunction", args: {} } as never);
  b.call({ fn: "C_Finalize", args: {} });
  a.call({ fn: "C_Finalize", args: {} });
  store.close();
  return dir;
}

/** Rewrite a store's log through `edit` (re-chained by a new FileEventStore, the settings copied). */
function rewrite(dir: string, edit: (r: CallRecord) => CallRecord): string {
  const out = path.join(tempDir("hsmsim-check-"), "edited");
  const records = [...readLog(path.join(dir, "events.log"))];
  const store = new FileEventStore(out, { durability: "none" });
  for (const r of records) store.append(edit(JSON.parse(JSON.stringify(r)) as CallRecord));
  store.close();
  fs.copyFileSync(path.join(dir, "simulator.json"), path.join(out, "simulator.json"));
  return out;
}

describe("hsmsim replay --check", () => {
  it("finds no divergence on the demo's store; PIN checks are labelled as answered from the record", async () => {
    const dir = path.join(tempDir("hsmsim-check-"), "demo");
    expect((await cli("demo", "--store", dir)).code).toBe(0);
    const r = await cli("replay", "--check", "--store", dir);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^replay --check: \d+ recorded calls re-executed on a fresh simulator \(profile default/);
    expect(r.out).toMatch(/re-executed with the recorded PIN outcome .*: C_Login ×2, C_InitPIN ×1, C_InitToken ×1/);
    expect(r.out).toMatch(/C_Digest ×1/); // its input is not in the log: compared without the digest's value
    expect(r.out.split("\n").at(-1)).toBe("no divergence");
    const j = await cli("replay", "--check", "--store", dir, "--json");
    const report = JSON.parse(j.out) as CheckReport & { ok: boolean };
    expect(report.ok).toBe(true);
    expect(report.modes.exact).toBeGreaterThan(10);
    expect(report.modes.record).toBe(0);
  });

  it.each(["default", "softhsm2"] as const)("finds no divergence on a busy log (profile %s), and prints no PIN", async (profile) => {
    const dir = busyStore(profile);
    const records = [...readLog(path.join(dir, "events.log"))];
    expect(records.some((r) => r.facts.some((f) => f.type === "PinRejected"))).toBe(true);
    expect(records.some((r) => r.facts.some((f) => f.type === "DigestUpdated"))).toBe(true);
    const j = await cli("replay", "--check", "--store", dir, "--json");
    const report = JSON.parse(j.out) as CheckReport & { ok: boolean };
    expect(report.divergences).toEqual([]);
    expect(j.code).toBe(0);
    expect(report.records).toBe(records.length);
    // The PIN calls that compared a PIN or made a verifier; C_InitPIN with a 2-byte PIN and C_Login with user type 7
    // were refused before that.
    expect(report.byMode.pin).toEqual({ C_InitToken: 2, C_InitPIN: 1, C_SetPIN: 2, C_Login: 4 });
    expect(report.byMode.record).toEqual({ C_CreateObject: 1 });
    expect(report.unchecked).toHaveLength(1);
    const t = await cli("replay", "--check", "--store", dir);
    expect(t.code).toBe(0);
    for (const pin of [SO_PIN, USER_PIN]) {
      expect(j.out).not.toContain(pin);
      expect(t.out).not.toContain(pin);
    }
  });

  it("reports an edited and re-chained record: seq, function, app, recorded and re-executed rv", async () => {
    const dir = busyStore("default");
    const target = [...readLog(path.join(dir, "events.log"))].find((r) => r.fn === "C_GetSessionInfo")!;
    const edited = rewrite(dir, (r) => (r.seq === target.seq ? { ...r, rv: CK.CKR_SESSION_HANDLE_INVALID, out: undefined } as CallRecord : r));
    expect((await cli("audit", "verify", "--store", edited)).code).toBe(0); // the chain is intact: only re-execution sees it
    const r = await cli("replay", "--check", "--store", edited);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`DIVERGES seq ${target.seq} C_GetSessionInfo app ${target.app}: rv, out`);
    expect(r.out).toContain("rv       recorded CKR_SESSION_HANDLE_INVALID, re-executed CKR_OK");
    expect(r.out.split("\n").at(-1)).toBe(`1 divergent call, the first at seq ${target.seq}`);
  });

  it("re-decides a PIN check from the recorded outcome: a dropped PinRejected fact is a divergence, labelled", async () => {
    const dir = busyStore("default");
    const target = [...readLog(path.join(dir, "events.log"))].find((r) => r.fn === "C_Login" && r.rv === CK.CKR_PIN_INCORRECT)!;
    const edited = rewrite(dir, (r) => (r.seq === target.seq ? { ...r, facts: r.facts.filter((f) => f.type !== "PinRejected") } : r));
    const j = await cli("replay", "--check", "--store", edited, "--json");
    expect(j.code).toBe(1);
    const report = JSON.parse(j.out) as CheckReport;
    // With no rejection recorded, the oracle says the PIN matched: the decider logs the SO in, and the record disagrees.
    expect(report.divergences[0]).toMatchObject({ seq: target.seq, fn: "C_Login", mode: "pin", differs: ["rv", "facts"], recorded: { rv: CK.CKR_PIN_INCORRECT }, reexecuted: { rv: CK.CKR_OK } });
    const t = await cli("replay", "--check", "--store", edited);
    expect(t.out).toContain(`DIVERGES seq ${target.seq} C_Login app 1 [recorded PIN outcome]: rv, facts`);
  });

  it("a store re-executed under another profile diverges", async () => {
    const dir = busyStore("default");
    const settings = path.join(dir, "simulator.json");
    const s = JSON.parse(fs.readFileSync(settings, "utf8")) as { options: Record<string, unknown> };
    s.options.profile = "softhsm2";
    fs.writeFileSync(settings, JSON.stringify(s));
    const r = await cli("replay", "--check", "--store", dir, "--json");
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out) as CheckReport;
    expect(report.divergences.length).toBeGreaterThan(3);
  });

  it("usage and store errors exit 2 with a message a shell user can act on", async () => {
    const none = await cli("replay", "--check");
    expect(none.code).toBe(2);
    expect(none.err).toContain("hsmsim replay --check: --store DIR is required");
    const missing = await cli("replay", "--check", "--store", "/nonexistent/store");
    expect(missing.code).toBe(2);
    expect(missing.err).toContain("/nonexistent/store does not exist");
    const dir = busyStore("default");
    expect((await cli("replay", "--check", "--store", dir, "--until", "3")).code).toBe(2);
    expect((await cli("replay", "--store", dir, "--profile", "softhsm2")).code).toBe(2);
    fs.rmSync(path.join(dir, "simulator.json"));
    const nokey = await cli("replay", "--check", "--store", dir);
    expect(nokey.code).toBe(2);
    expect(nokey.err).toContain("has no simulator.json");
  });
});

/** Keys and cryptographic operations (issue 3's functions), logged by a simulator in memory. */
function cryptoLog(profile: "default" | "softhsm2"): { records: CallRecord[]; key: Uint8Array; rvs: string[] } {
  const key = new Uint8Array(32).fill(3);
  const sim = new Simulator({ profile, simulatorKey: key });
  const a = sim.application();
  const T = new Uint8Array([1]);
  const enc = new TextEncoder();
  const rvs: string[] = [];
  const c = (fn: string, args: unknown) => {
    const r = a.call({ fn, args } as never) as { rv: number; out?: Record<string, unknown> };
    rvs.push(`${fn} ${r.rv}`);
    return r.out;
  };
  c("C_Initialize", {});
  const slot = (c("C_GetSlotList", { tokenPresent: false, pSlotList: 8 })!.slots as number[])[0];
  c("C_InitToken", { slotID: slot, pin: SO_PIN, label: "crypto" });
  c("C_GetSlotList", { tokenPresent: true, pSlotList: null });
  const ts = (c("C_GetSlotList", { tokenPresent: true, pSlotList: 8 })!.slots as number[])[0];
  const h = c("C_OpenSession", { slotID: ts, flags: 6 })!.hSession;
  c("C_Login", { hSession: h, userType: CK.CKU_SO, pin: SO_PIN });
  c("C_InitPIN", { hSession: h, pin: USER_PIN });
  c("C_Logout", { hSession: h });
  c("C_Login", { hSession: h, userType: CK.CKU_USER, pin: USER_PIN });
  const keyOf = (o: Record<string, unknown> | undefined) => (o?.hKey ?? o?.hObject) as number;
  const aes = keyOf(c("C_GenerateKey", { hSession: h, mechanism: { mechanism: CK.CKM_AES_KEY_GEN }, template: [{ type: CK.CKA_VALUE_LEN, value: ulong(32) }, { type: CK.CKA_ENCRYPT, value: T }, { type: CK.CKA_DECRYPT, value: T }, { type: CK.CKA_TOKEN, value: T }] }));
  const mac = keyOf(c("C_GenerateKey", { hSession: h, mechanism: { mechanism: CK.CKM_GENERIC_SECRET_KEY_GEN }, template: [{ type: CK.CKA_VALUE_LEN, value: ulong(32) }, { type: CK.CKA_SIGN, value: T }, { type: CK.CKA_VERIFY, value: T }] }));
  c("C_EncryptInit", { hSession: h, mechanism: { mechanism: CK.CKM_AES_CBC_PAD, parameter: new Uint8Array(16).fill(9) }, hKey: aes });
  c("C_EncryptUpdate", { hSession: h, data: enc.encode("some plaintext that spans blocks"), outLen: 64 });
  c("C_EncryptFinal", { hSession: h, outLen: 64 });
  const gcm = { type: "gcm", iv: new Uint8Array(12).fill(1), aad: enc.encode("aad"), ivBits: 96, tagBits: 128, size: 48 };
  c("C_EncryptInit", { hSession: h, mechanism: { mechanism: CK.CKM_AES_GCM, parameter: gcm }, hKey: aes });
  const ct = c("C_Encrypt", { hSession: h, data: enc.encode("gcm text"), outLen: 64 });
  c("C_DecryptInit", { hSession: h, mechanism: { mechanism: CK.CKM_AES_GCM, parameter: gcm }, hKey: aes });
  c("C_Decrypt", { hSession: h, data: ct!.data, outLen: 64 });
  const ctr = new Uint8Array(24);
  ctr.set(ulong(128), 0);
  ctr.fill(5, 8);
  c("C_EncryptInit", { hSession: h, mechanism: { mechanism: CK.CKM_AES_CTR, parameter: ctr }, hKey: aes });
  c("C_EncryptUpdate", { hSession: h, data: new Uint8Array(20).fill(7), outLen: 64 });
  c("C_GetOperationState", { hSession: h });
  c("C_EncryptFinal", { hSession: h, outLen: 64 });
  c("C_SignInit", { hSession: h, mechanism: { mechanism: CK.CKM_SHA256_HMAC }, hKey: mac });
  c("C_SignUpdate", { hSession: h, data: enc.encode("mac me") });
  const sig = c("C_SignFinal", { hSession: h, outLen: 64 });
  c("C_VerifyInit", { hSession: h, mechanism: { mechanism: CK.CKM_SHA256_HMAC }, hKey: mac });
  c("C_VerifyUpdate", { hSession: h, data: enc.encode("mac me") });
  c("C_VerifyFinal", { hSession: h, signature: sig!.data });
  c("C_SignInit", { hSession: h, mechanism: { mechanism: CK.CKM_SHA256_HMAC }, hKey: mac });
  c("C_Sign", { hSession: h, data: enc.encode("single part"), outLen: 64 });
  c("C_EncryptInit", { hSession: h, mechanism: { mechanism: CK.CKM_AES_CBC, parameter: new Uint8Array(3) }, hKey: aes });
  return { records: [...sim.store.read()].map((r) => JSON.parse(JSON.stringify(r)) as CallRecord), key, rvs };
}

describe.each(["default", "softhsm2"] as const)("replay --check on keys and cryptographic operations (profile %s)", (profile) => {
  it("re-derives IVs, counter blocks, GCM parameters, update data and generated keys from the sealed facts: no divergence", () => {
    const { records, key, rvs } = cryptoLog(profile);
    expect(rvs.filter((r) => r.endsWith(" 0")).length).toBeGreaterThan(25); // the operations really ran
    const report = checkRecords(records, { simulator: { profile, simulatorKey: key } });
    expect(report.divergences).toEqual([]);
    // Applied from the record: their deciding input is not in the log (the data, the signature, the failed init's IV).
    expect(report.byMode.record).toEqual({ C_Decrypt: 1, C_VerifyFinal: 1, C_EncryptInit: 1 });
    expect(report.byMode.partial).toMatchObject({ C_Encrypt: 1, C_Sign: 1 });
    // Encrypt updates and finals compared in full: the hash of the ciphertext each answered.
    const encrypted = records.filter((r) => (r.fn === "C_EncryptUpdate" || r.fn === "C_EncryptFinal") && r.rv === 0);
    expect(encrypted.length).toBe(4);
    expect(encrypted.every((r) => typeof (r.out as { sha256?: string }).sha256 === "string" || (r.out as { length: number }).length === 0)).toBe(true);
  });

  it("catches a ciphertext that differs from the record", () => {
    const { records, key } = cryptoLog(profile);
    const i = records.findIndex((r) => r.fn === "C_EncryptUpdate" && r.rv === 0);
    records[i] = { ...records[i]!, out: { ...(records[i]!.out as object), sha256: "0".repeat(64) } };
    const report = checkRecords(records, { simulator: { profile, simulatorKey: key } });
    expect(report.divergences.map((d) => [d.seq, d.fn, d.differs])).toEqual([[records[i]!.seq, "C_EncryptUpdate", ["out"]]]);
  });
});
