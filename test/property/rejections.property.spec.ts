/**
 * Bad input gets a CK_RV, never a crash, and a rejected call changes nothing (non-negotiable 4).
 *
 * 1. Random call sequences (default profile): every call whose rv is not CKR_OK leaves the whole state as it was,
 *    except the PIN-failure counters a wrong PIN moves (the only fact a rejection may record is PinRejected).
 * 2. Garbage: every function, with arguments of every wrong kind (wrong JS types, NaN, 2^64, negative, huge and empty
 *    PINs, unknown flags and user types, unknown functions), sent to a simulator in a deep state (token, user PIN,
 *    sessions, a login, objects, a find and a digest under way): the dispatcher never throws, answers a known
 *    CKR_* code, and a rejected call changes nothing.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { Call } from "../../src/events/calls.js";
import { CALL_SCHEMA } from "../../src/events/call-schema.js";
import { CK, CKR_NAMES } from "../../src/pkcs11/constants.js";
import { resolve, observe, Seen, stepsArb } from "../support/arbitraries.js";
import { dataTemplate, RW, RO, ulong } from "../support/gwt.js";
import { snapshot, testSimulator, SO_PIN, USER_PIN } from "../support/sim.js";

type Snap = ReturnType<typeof snapshot>;

/** The state without the counters a rejected PIN may move (token failures, in the write and the read model). */
function withoutPinCounters(s: Snap) {
  return {
    ...s,
    applied: 0,
    tokens: s.tokens.map((t) => ({ ...t, failures: null })),
    read: { ...s.read, position: 0, tokens: s.read.tokens.map((t) => ({ ...t, failures: null })) },
    apps: s.apps.map((a) => ({ ...a, caches: a.caches.map((c) => ({ ...c, settings: { ...c.settings, failures: null } })) })),
  };
}

/**
 * Functions whose failures end the session's operation (PKCS#11 §5.8-5.12: a failing step terminates it; SoftHSM's
 * resetOp, fact sheet §17): the one fact such a rejection may record is OperationEnded, and the one change is that
 * session's operation ending.
 */
const ENDS_ON_ERROR = new Set<string>([
  "C_Encrypt", "C_EncryptUpdate", "C_EncryptFinal", "C_Decrypt", "C_DecryptUpdate", "C_DecryptFinal",
  "C_Sign", "C_SignFinal", "C_Verify", "C_VerifyFinal",
  // RSA: an update of a single-part mechanism, or one that needed re-authentication, ends the operation.
  "C_SignUpdate", "C_VerifyUpdate",
]);

function checkRejection(sim: ReturnType<typeof testSimulator>, before: Snap, call: Call, rv: number) {
  if (rv === CK.CKR_OK) return;
  const record = [...sim.store.read(sim.lastSeq)][0]!;
  const ending = ENDS_ON_ERROR.has(call.fn) ? record.facts.filter((f) => f.type === "OperationEnded") : [];
  const other = record.facts.map((f) => f.type).filter((t) => t !== "PinRejected" && !(t === "OperationEnded" && ending.length));
  expect({ fn: call.fn, facts: other }).toEqual({ fn: call.fn, facts: [] });
  let expected = before;
  for (const f of ending) {
    const e = f as { app: number; session: number };
    expected = {
      ...expected,
      apps: expected.apps.map((a) =>
        a.id !== e.app ? a : { ...a, sessions: a.sessions.map((s) => (s.handle === e.session ? { ...s, op: null, chart: "idle" } : s)) },
      ),
    };
  }
  expect(withoutPinCounters(snapshot(sim))).toEqual(withoutPinCounters(expected));
}

describe("rejected calls change nothing", () => {
  it("random sequences, default profile", () => {
    fc.assert(
      fc.property(stepsArb(60), (steps) => {
        const sim = testSimulator();
        const apps = [sim.application(), sim.application()];
        const seen = [new Seen(), new Seen()];
        for (const s of steps) {
          const call = resolve(s, seen[s.app]!);
          const before = snapshot(sim);
          const r = apps[s.app]!.call(call as never);
          observe(call, r.out, r.rv, seen[s.app]!);
          checkRejection(sim, before, call, r.rv);
        }
      }),
      { numRuns: 150 },
    );
  });
});

/** A simulator with everything under way, and the handles that reach it. */
function deepState() {
  const sim = testSimulator({ slots: 2 });
  const app = sim.application();
  const c = (fn: Call["fn"], args: unknown) => app.call({ fn, args } as never) as { rv: number; out: any };
  c("C_Initialize", {});
  c("C_InitToken", { slotID: 0, pin: SO_PIN, label: "deep" });
  const so = c("C_OpenSession", { slotID: 0, flags: RW }).out.hSession;
  c("C_Login", { hSession: so, userType: CK.CKU_SO, pin: SO_PIN });
  c("C_InitPIN", { hSession: so, pin: USER_PIN });
  c("C_CloseSession", { hSession: so });
  const rw = c("C_OpenSession", { slotID: 0, flags: RW }).out.hSession;
  const ro = c("C_OpenSession", { slotID: 0, flags: RO }).out.hSession;
  c("C_Login", { hSession: rw, userType: CK.CKU_USER, pin: USER_PIN });
  const objects = [
    c("C_CreateObject", { hSession: rw, template: dataTemplate(true, true, "tp") }).out.hObject,
    c("C_CreateObject", { hSession: rw, template: dataTemplate(false, false, "sp") }).out.hObject,
  ];
  c("C_FindObjectsInit", { hSession: ro, template: [] });
  c("C_DigestInit", { hSession: rw, mechanism: { mechanism: CK.CKM_SHA256 } });
  c("C_DigestUpdate", { hSession: rw, data: new Uint8Array([1, 2, 3]) });
  // A key, and an encryption and a MAC under way in two more sessions.
  const key = (keyType: number, value: Uint8Array) =>
    c("C_CreateObject", {
      hSession: rw,
      template: [
        { type: CK.CKA_CLASS, value: ulong(CK.CKO_SECRET_KEY) },
        { type: CK.CKA_KEY_TYPE, value: ulong(keyType) },
        { type: CK.CKA_VALUE, value },
      ],
    }).out.hObject;
  const aes = key(CK.CKK_AES, new Uint8Array(16).fill(1));
  const hmac = key(CK.CKK_GENERIC_SECRET, new Uint8Array(32).fill(2));
  const enc = c("C_OpenSession", { slotID: 0, flags: RW }).out.hSession;
  const mac = c("C_OpenSession", { slotID: 0, flags: RW }).out.hSession;
  expect(c("C_EncryptInit", { hSession: enc, mechanism: { mechanism: CK.CKM_AES_CBC_PAD, parameter: new Uint8Array(16) }, hKey: aes }).rv).toBe(0);
  expect(c("C_EncryptUpdate", { hSession: enc, data: new Uint8Array(20), outLen: 64 }).rv).toBe(0);
  expect(c("C_SignInit", { hSession: mac, mechanism: { mechanism: CK.CKM_SHA256_HMAC }, hKey: hmac }).rv).toBe(0);
  // An RSA key pair whose private key needs re-authentication, and a signature awaiting it in one more session.
  const pair = c("C_GenerateKeyPair", {
    hSession: rw,
    mechanism: { mechanism: CK.CKM_RSA_PKCS_KEY_PAIR_GEN },
    publicTemplate: [{ type: CK.CKA_MODULUS_BITS, value: ulong(512) }],
    privateTemplate: [{ type: CK.CKA_ALWAYS_AUTHENTICATE, value: Uint8Array.of(1) }],
  }).out;
  const rsa = c("C_OpenSession", { slotID: 0, flags: RW }).out.hSession;
  expect(c("C_SignInit", { hSession: rsa, mechanism: { mechanism: CK.CKM_SHA256_RSA_PKCS }, hKey: pair.hPrivateKey }).rv).toBe(0);
  for (const o of [...objects, aes, hmac, pair.hPublicKey, pair.hPrivateKey]) expect(o).toBeGreaterThan(0);
  return { sim, app, handles: [rw, ro, ...objects, enc, mac, aes, hmac, rsa, pair.hPublicKey, pair.hPrivateKey] };
}

const garbage = (handles: number[]) =>
  fc.oneof(
    fc.constantFrom(...handles, 0, 2 ** 64, -1, 1.5, NaN, Infinity, Number.MAX_SAFE_INTEGER, 0xffffffff),
    fc.constantFrom("1", "", "x".repeat(100_000), new Uint8Array(0), new Uint8Array(100_000), null, undefined, true, [], {}),
    fc.constantFrom([{ type: -1, value: null }], [{ type: 0, value: "x" }], [null], [{}], [{ type: CK.CKA_LABEL, value: new Uint8Array(1 << 16) }]),
    fc.constantFrom({ mechanism: -5 }, { mechanism: "x" }, { mechanism: CK.CKM_SHA256, parameter: new Uint8Array(9) }),
    fc.constantFrom(
      { mechanism: CK.CKM_AES_GCM, parameter: { type: "gcm", iv: new Uint8Array(0), aad: null, ivBits: 0, tagBits: 129, size: 48 } },
      { mechanism: CK.CKM_AES_GCM, parameter: { type: "gcm", iv: "x", aad: 1, ivBits: -1, tagBits: NaN, size: 48 } },
      { mechanism: CK.CKM_AES_CTR, parameter: new Uint8Array(24).fill(0xff) },
      { mechanism: CK.CKM_AES_CBC, parameter: new Uint8Array(15) },
      { mechanism: CK.CKM_SHA256_HMAC_GENERAL, parameter: new Uint8Array(8).fill(0xff) },
      { mechanism: CK.CKM_SHA256_HMAC, parameter: "junk" },
    ),
    fc.integer({ min: -(2 ** 31), max: 2 ** 32 }), // unknown flags, user types, counts
    fc.anything({ maxDepth: 2 }),
  );

describe("bad input gets a CK_RV, never a crash", () => {
  it("garbage arguments to every function, in a deep state", () => {
    const fns = Object.keys(CALL_SCHEMA) as Call["fn"][];
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            fn: fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...fns) }, { weight: 1, arbitrary: fc.constantFrom("C_Nope", "toString", "__proto__") }),
            // Which arguments get garbage: each argument of the function's schema, or the whole args value.
            wholeArgs: fc.boolean(),
            picks: fc.array(fc.nat(20), { maxLength: 4 }),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        fc.array(fc.anything({ maxDepth: 1 }), { minLength: 8, maxLength: 8 }),
        fc.infiniteStream(garbage([1, 2, 3, 4, 5, 6, 7, 8])),
        (plan, whole, values) => {
          const { sim, app, handles } = deepState();
          for (const [i, p] of plan.entries()) {
            const names = Object.keys((CALL_SCHEMA as Record<string, object>)[p.fn] ?? { x: 1 });
            const it = values[Symbol.iterator]();
            const args: Record<string, unknown> = {};
            for (const n of names) args[n] = handles[(p.picks[0] ?? 0) % handles.length];
            for (const k of p.picks) args[names[k % names.length]!] = it.next().value;
            const call = { fn: p.fn, args: p.wholeArgs ? whole[i % whole.length] : args } as unknown as Call;
            const before = snapshot(sim);
            let r: { rv: number } | undefined;
            expect(() => (r = app.call(call as never))).not.toThrow();
            expect(CKR_NAMES.has(r!.rv), `${p.fn} answered ${r!.rv}`).toBe(true);
            checkRejection(sim, before, call, r!.rv);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("huge, empty and NULL PINs, unknown user types and flags answer their codes", () => {
    const { sim, app, handles } = deepState();
    const [rw, ro] = handles as [number, number];
    const call = (fn: Call["fn"], args: unknown) => app.call({ fn, args } as never).rv;
    const before = snapshot(sim);
    expect(call("C_Login", { hSession: ro, userType: CK.CKU_USER, pin: "x".repeat(1 << 20) })).toBe(CK.CKR_USER_ALREADY_LOGGED_IN);
    expect(call("C_Login", { hSession: ro, userType: 0x80000000, pin: "" })).toBe(CK.CKR_USER_TYPE_INVALID);
    expect(call("C_Login", { hSession: ro, userType: 7, pin: null })).toBe(CK.CKR_ARGUMENTS_BAD);
    expect(call("C_SetPIN", { hSession: rw, oldPin: USER_PIN, newPin: "x".repeat(256) })).toBe(CK.CKR_PIN_LEN_RANGE);
    expect(call("C_SetPIN", { hSession: rw, oldPin: "", newPin: "" })).toBe(CK.CKR_PIN_LEN_RANGE);
    expect(call("C_InitPIN", { hSession: rw, pin: null })).toBe(CK.CKR_USER_NOT_LOGGED_IN);
    expect(call("C_OpenSession", { slotID: 0, flags: 0 })).toBe(CK.CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    expect(call("C_OpenSession", { slotID: 0, flags: "6" })).toBe(CK.CKR_ARGUMENTS_BAD);
    expect(call("C_CloseSession", { hSession: -1 })).toBe(CK.CKR_ARGUMENTS_BAD);
    expect(call("C_CloseSession", { hSession: 2 ** 40 })).toBe(CK.CKR_SESSION_HANDLE_INVALID);
    expect(call("C_InitToken", { slotID: 1, pin: "x".repeat(256), label: "t" })).toBe(CK.CKR_PIN_INCORRECT);
    expect(call("C_InitToken", { slotID: 0, pin: null, label: null })).toBe(CK.CKR_SESSION_EXISTS);
    expect(call("C_Nope" as never, {})).toBe(CK.CKR_FUNCTION_NOT_SUPPORTED);
    // Each of those was rejected; the state is as it was (a wrong PIN was never among them: no counter moved).
    expect(withoutPinCounters(snapshot(sim))).toEqual(withoutPinCounters(before));
    expect(snapshot(sim).tokens).toEqual(before.tokens);
  });
});
