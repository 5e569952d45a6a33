/**
 * Message digesting with CKM_SHA256 (fact sheet §17; docs/notes/softhsm-data-objects.md §6): C_DigestInit, C_Digest,
 * C_DigestUpdate, C_DigestFinal. Check orders, one operation per session (a find blocks a digest and vice versa),
 * what keeps a digest alive (size queries, CKR_BUFFER_TOO_SMALL, ARGUMENTS_BAD, C_Logout) and what ends it.
 * Digests are checked against node:crypto and the FIPS 180-4 "abc" vector.
 */
import { createHash } from "node:crypto";
import { describe, it, expect } from "vitest";
import { given, setups, steps, openRO, loginUser, ok, capture, CK, RW, bytes, type Setup, SOFTHSM, PROFILES, SHA256 } from "../support/gwt.js";

/** FIPS 180-4, SHA-256("abc"). */
const ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
/** SHA-256(""). */
const EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const sha256 = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");
const hex = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString("hex") : null);

const init =
  (session = "rw"): Setup =>
  (c, h) =>
    void ok(c("C_DigestInit", { hSession: h[session]!, mechanism: SHA256 }));
const update =
  (data: string | Uint8Array, session = "rw"): Setup =>
  (c, h) =>
    void ok(c("C_DigestUpdate", { hSession: h[session]!, data: typeof data === "string" ? bytes(data) : data }));
const findIn =
  (session = "rw"): Setup =>
  (c, h) =>
    void ok(c("C_FindObjectsInit", { hSession: h[session]!, template: [] }));
const openRW2: Setup = (c, h) => void (h.rw2 = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession);
const digesting = steps(setups.token, init());

describe("C_DigestInit", () => {
  it("two rules at once: not initialised wins over a NULL mechanism", () =>
    given().when("C_DigestInit", { hSession: 1, mechanism: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a NULL mechanism wins over an invalid session", () =>
    given(setups.token).when("C_DigestInit", { hSession: 99, mechanism: null }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: an invalid session wins over an invalid mechanism", () =>
    given(setups.token).when("C_DigestInit", { hSession: 99, mechanism: { mechanism: CK.CKM_VENDOR_DEFINED } }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("two rules at once: an active digest wins over an invalid mechanism", () =>
    given(digesting).when("C_DigestInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256_HMAC } })).then("CKR_OPERATION_ACTIVE", []));
  it("two rules at once: an active find wins over an invalid mechanism", () =>
    given(steps(setups.token, findIn())).when("C_DigestInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_VENDOR_DEFINED } })).then("CKR_OPERATION_ACTIVE", []));
  it("one operation per session: a second DigestInit is CKR_OPERATION_ACTIVE", () =>
    given(digesting).when("C_DigestInit", (h) => ({ hSession: h.rw!, mechanism: SHA256 })).then("CKR_OPERATION_ACTIVE", []));
  it("not a digest mechanism: CKR_MECHANISM_INVALID", () => {
    for (const mechanism of [CK.CKM_VENDOR_DEFINED, CK.CKM_AES_KEY_GEN, CK.CKM_SHA256_HMAC, CK.CKM_SHA256_RSA_PKCS, 0xffffffff]) {
      given(setups.token).when("C_DigestInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism } })).then("CKR_MECHANISM_INVALID", []);
    }
  });
  it("a refused init starts nothing: the session can still start a digest", () => {
    const bad: Setup = (c, h) => void c("C_DigestInit", { hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256_HMAC } });
    given(steps(setups.token, bad)).when("C_DigestUpdate", (h) => ({ hSession: h.rw!, data: bytes("x") })).then("CKR_OPERATION_NOT_INITIALIZED", []);
    given(steps(setups.token, bad)).when("C_DigestInit", (h) => ({ hSession: h.rw!, mechanism: SHA256 })).then("CKR_OK", ["DigestStarted"]);
  });
  it.each(PROFILES)("%s: starts a SHA-256 digest, in an RO public session too (no login needed)", (_, opts) => {
    given(setups.token, opts).when("C_DigestInit", (h) => ({ hSession: h.rw!, mechanism: SHA256 })).then("CKR_OK", ["DigestStarted"]);
    given(steps(setups.token, openRO), opts).when("C_DigestInit", (h) => ({ hSession: h.ro!, mechanism: SHA256 })).then("CKR_OK", ["DigestStarted"]);
  });
  it("ignores the mechanism parameter", () =>
    given(setups.token)
      .when("C_DigestInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256, parameter: new Uint8Array(9).fill(0xee) } }))
      .then("CKR_OK", ["DigestStarted"]));
  it("other sessions are independent: a find in one, a digest in the other", () =>
    given(steps(setups.token, openRW2, findIn("rw"))).when("C_DigestInit", (h) => ({ hSession: h.rw2!, mechanism: SHA256 })).then("CKR_OK", ["DigestStarted"]));
  it.each(PROFILES)("%s: another application's session handle is not the caller's", (_, opts) =>
    void given(steps(setups.token, (_c, _h, { app2 }) => void ok(app2("C_Initialize", {}))), opts)
      .when("C_DigestInit", (h) => ({ hSession: h.rw!, mechanism: SHA256 }), "app2")
      .then("CKR_SESSION_HANDLE_INVALID", []));
});

describe("C_Digest", () => {
  const digest = (data: Uint8Array | null, outLen: number | null = 32, session = "rw") => (h: Record<string, number>) => ({ hSession: h[session]!, data, outLen });
  it("two rules at once: not initialised wins over NULL data", () =>
    given().when("C_Digest", { hSession: 1, data: null, outLen: 32 }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: NULL data wins over an invalid session", () =>
    given(setups.token).when("C_Digest", { hSession: 99, data: null, outLen: 32 }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: NULL data wins over no operation", () =>
    given(setups.token).when("C_Digest", digest(null)).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: an invalid session wins over no operation", () =>
    given(setups.token).when("C_Digest", { hSession: 99, data: bytes("abc"), outLen: 32 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("two rules at once: no digest running wins over a size query", () =>
    given(setups.token).when("C_Digest", digest(bytes("abc"), null)).then("CKR_OPERATION_NOT_INITIALIZED", []));
  it("a step of the wrong kind: C_Digest during a find is CKR_OPERATION_NOT_INITIALIZED", () =>
    given(steps(setups.token, findIn())).when("C_Digest", digest(bytes("abc"))).then("CKR_OPERATION_NOT_INITIALIZED", []));
  it.each(PROFILES)("%s: hashes \"abc\" to the FIPS 180-4 vector and ends the operation", (_, opts) => {
    const { out } = given(digesting, opts).when("C_Digest", digest(bytes("abc"))).then("CKR_OK", ["OperationEnded"]);
    expect(hex(out.digest)).toBe(ABC);
    expect(hex(out.digest)).toBe(sha256("abc"));
    expect(out.length).toBe(32);
  });
  it("a larger buffer is fine", () => {
    const { out } = given(digesting).when("C_Digest", digest(bytes("abc"), 64)).then("CKR_OK", ["OperationEnded"]);
    expect(hex(out.digest)).toBe(ABC);
  });
  it("hashes a megabyte as node:crypto does", () => {
    const data = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
    const { out } = given(digesting).when("C_Digest", digest(data)).then("CKR_OK", ["OperationEnded"]);
    expect(hex(out.digest)).toBe(sha256(data));
  });
  it("empty (non-NULL) data hashes to SHA-256(\"\")", () => {
    const { out } = given(digesting).when("C_Digest", digest(new Uint8Array(0))).then("CKR_OK", ["OperationEnded"]);
    expect(hex(out.digest)).toBe(EMPTY);
  });
  it("after a success the operation is over", () =>
    given(steps(digesting, (c, h) => void ok(c("C_Digest", { hSession: h.rw!, data: bytes("abc"), outLen: 32 }))))
      .when("C_Digest", digest(bytes("abc")))
      .then("CKR_OPERATION_NOT_INITIALIZED", []));
  it("a size query answers 32 and keeps the digest alive", () => {
    const { out } = given(digesting).when("C_Digest", digest(bytes("abc"), null)).then("CKR_OK", []);
    expect(out).toEqual({ digest: null, length: 32 });
    const query: Setup = (c, h) => void ok(c("C_Digest", { hSession: h.rw!, data: bytes("abc"), outLen: null }));
    const after = given(steps(digesting, query)).when("C_Digest", digest(bytes("abc"))).then("CKR_OK", ["OperationEnded"]);
    expect(hex(after.out.digest)).toBe(ABC);
  });
  it("a buffer too small answers CKR_BUFFER_TOO_SMALL with 32 and keeps the digest alive", () => {
    const { out } = given(digesting).when("C_Digest", digest(bytes("abc"), 16)).then("CKR_BUFFER_TOO_SMALL", []);
    expect(out).toEqual({ digest: null, length: 32 });
    const small: Setup = (c, h) => void c("C_Digest", { hSession: h.rw!, data: bytes("abc"), outLen: 31 });
    const after = given(steps(digesting, small)).when("C_Digest", digest(bytes("abc"))).then("CKR_OK", ["OperationEnded"]);
    expect(hex(after.out.digest)).toBe(ABC);
  });
  it("ARGUMENTS_BAD does not end the digest", () => {
    const bad: Setup = (c, h) => void c("C_Digest", { hSession: h.rw!, data: null, outLen: 32 });
    const { out } = given(steps(digesting, bad)).when("C_Digest", digest(bytes("abc"))).then("CKR_OK", ["OperationEnded"]);
    expect(hex(out.digest)).toBe(ABC);
  });
  it.each(PROFILES)("%s: after C_DigestUpdate, C_Digest hashes the concatenation", (_, opts) => {
    const { out } = given(steps(digesting, update("ab")), opts).when("C_Digest", digest(bytes("c"))).then("CKR_OK", ["OperationEnded"]);
    expect(hex(out.digest)).toBe(ABC);
  });
  it("two sessions digest independently", () => {
    const both = steps(setups.token, openRW2, init("rw"), init("rw2"), update("a", "rw"), update("zzz", "rw2"), update("b", "rw"));
    const { out } = given(both).when("C_Digest", digest(bytes("c"))).then("CKR_OK", ["OperationEnded"]);
    expect(hex(out.digest)).toBe(ABC);
    const other = given(both).when("C_Digest", digest(bytes(""), 32, "rw2")).then("CKR_OK", ["OperationEnded"]);
    expect(hex(other.out.digest)).toBe(sha256("zzz"));
  });
});

describe("C_DigestUpdate", () => {
  const upd = (data: Uint8Array | null, session = "rw") => (h: Record<string, number>) => ({ hSession: h[session]!, data });
  it("two rules at once: not initialised wins over NULL data", () =>
    given().when("C_DigestUpdate", { hSession: 1, data: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: NULL data wins over an invalid session", () =>
    given(setups.token).when("C_DigestUpdate", { hSession: 99, data: null }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: NULL data wins over no operation", () =>
    given(setups.token).when("C_DigestUpdate", upd(null)).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: an invalid session wins over no operation", () =>
    given(setups.token).when("C_DigestUpdate", { hSession: 99, data: bytes("x") }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("no digest running, or a find running: CKR_OPERATION_NOT_INITIALIZED", () => {
    given(setups.token).when("C_DigestUpdate", upd(bytes("x"))).then("CKR_OPERATION_NOT_INITIALIZED", []);
    given(steps(setups.token, findIn())).when("C_DigestUpdate", upd(bytes("x"))).then("CKR_OPERATION_NOT_INITIALIZED", []);
  });
  it("feeds the digest; zero bytes are fine", () => {
    given(digesting).when("C_DigestUpdate", upd(bytes("abc"))).then("CKR_OK", ["DigestUpdated"]);
    given(digesting).when("C_DigestUpdate", upd(new Uint8Array(0))).then("CKR_OK", ["DigestUpdated"]);
  });
  it("the log never holds the data: not in the arguments, not in the fact", () => {
    const secret = "attack at dawn, bring snacks";
    const { sim } = given(digesting).when("C_DigestUpdate", upd(bytes(secret))).then("CKR_OK", ["DigestUpdated"]);
    const log = JSON.stringify([...sim.store.read(1)]);
    expect(log).not.toContain(secret);
    expect(log).not.toContain(Buffer.from(secret).toString("hex"));
    expect(log).not.toContain(Buffer.from(secret).toString("base64"));
  });
  it("a refused update (NULL data) does not end the digest", () => {
    const bad: Setup = (c, h) => void c("C_DigestUpdate", { hSession: h.rw!, data: null });
    given(steps(digesting, bad)).when("C_DigestUpdate", upd(bytes("x"))).then("CKR_OK", ["DigestUpdated"]);
  });
});

describe("C_DigestFinal", () => {
  const fin = (outLen: number | null = 32, session = "rw") => (h: Record<string, number>) => ({ hSession: h[session]!, outLen });
  it("two rules at once: not initialised wins over an invalid session", () =>
    given().when("C_DigestFinal", { hSession: 99, outLen: 32 }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: an invalid session wins over no operation", () =>
    given(setups.token).when("C_DigestFinal", { hSession: 99, outLen: 32 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("two rules at once: no digest running wins over a size query", () =>
    given(setups.token).when("C_DigestFinal", fin(null)).then("CKR_OPERATION_NOT_INITIALIZED", []));
  it("a step of the wrong kind: C_DigestFinal during a find is CKR_OPERATION_NOT_INITIALIZED", () =>
    given(steps(setups.token, findIn())).when("C_DigestFinal", fin()).then("CKR_OPERATION_NOT_INITIALIZED", []));
  it("with no update: SHA-256(\"\")", () => {
    const { out } = given(digesting).when("C_DigestFinal", fin()).then("CKR_OK", ["OperationEnded"]);
    expect(hex(out.digest)).toBe(EMPTY);
  });
  it.each(PROFILES)("%s: \"a\" + \"bc\" hashes to the \"abc\" vector", (_, opts) => {
    const { out } = given(steps(digesting, update("a"), update("bc")), opts).when("C_DigestFinal", fin()).then("CKR_OK", ["OperationEnded"]);
    expect(hex(out.digest)).toBe(ABC);
  });
  it("a size query and a buffer too small keep the digest alive", () => {
    const q = given(steps(digesting, update("abc"))).when("C_DigestFinal", fin(null)).then("CKR_OK", []);
    expect(q.out).toEqual({ digest: null, length: 32 });
    const s = given(steps(digesting, update("abc"))).when("C_DigestFinal", fin(31)).then("CKR_BUFFER_TOO_SMALL", []);
    expect(s.out).toEqual({ digest: null, length: 32 });
    const both: Setup = (c, h) => {
      ok(c("C_DigestFinal", { hSession: h.rw!, outLen: null }));
      expect(c("C_DigestFinal", { hSession: h.rw!, outLen: 1 }).rv).toBe("CKR_BUFFER_TOO_SMALL");
    };
    const { out } = given(steps(digesting, update("abc"), both)).when("C_DigestFinal", fin()).then("CKR_OK", ["OperationEnded"]);
    expect(hex(out.digest)).toBe(ABC);
  });
  it("after the Final: Final, Update and Digest are no longer initialised, and a find may start", () => {
    const done: Setup = (c, h) => void ok(c("C_DigestFinal", { hSession: h.rw!, outLen: 32 }));
    given(steps(digesting, done)).when("C_DigestFinal", fin()).then("CKR_OPERATION_NOT_INITIALIZED", []);
    given(steps(digesting, done)).when("C_DigestUpdate", (h) => ({ hSession: h.rw!, data: bytes("x") })).then("CKR_OPERATION_NOT_INITIALIZED", []);
    given(steps(digesting, done)).when("C_Digest", (h) => ({ hSession: h.rw!, data: bytes("x"), outLen: 32 })).then("CKR_OPERATION_NOT_INITIALIZED", []);
    given(steps(digesting, done)).when("C_FindObjectsInit", (h) => ({ hSession: h.rw!, template: [] })).then("CKR_OK", ["FindStarted"]);
  });
  it("a find blocks a digest until C_FindObjectsFinal", () => {
    const final: Setup = (c, h) => void ok(c("C_FindObjectsFinal", { hSession: h.rw! }));
    given(steps(setups.token, findIn())).when("C_DigestInit", (h) => ({ hSession: h.rw!, mechanism: SHA256 })).then("CKR_OPERATION_ACTIVE", []);
    given(steps(setups.token, findIn(), final)).when("C_DigestInit", (h) => ({ hSession: h.rw!, mechanism: SHA256 })).then("CKR_OK", ["DigestStarted"]);
  });
  it.each(PROFILES)("%s: a logout does not end the digest", (_, opts) => {
    const logout: Setup = (c, h) => void ok(c("C_Logout", { hSession: h.rw! }));
    const { out } = given(steps(setups.token, loginUser, init(), update("abc"), logout), opts).when("C_DigestFinal", fin()).then("CKR_OK", ["OperationEnded"]);
    expect(hex(out.digest)).toBe(ABC);
  });
  it("closing the session ends its digest (and only its own)", () => {
    const { sim, snapshot } = given(steps(setups.token, openRW2, init("rw"), init("rw2"), update("abc", "rw2")))
      .when("C_CloseSession", (h) => ({ hSession: h.rw! }))
      .then("CKR_OK", ["SessionClosed"]);
    const slot = sim.state.apps.get(1)!.slots.get(0)!;
    expect(slot.actor.sessionState(1)).toBe("idle");
    expect(slot.actor.sessionState(2)).toBe("digesting");
    expect(snapshot().apps[0]!.sessions.map((s) => [s.handle, s.op?.kind ?? null])).toEqual([[2, "digest"]]);
  });
  it("C_Finalize ends the digest: the next application's session 1 has none", () => {
    const app = capture();
    given(steps(digesting, update("abc"), app.setup)).when("C_Finalize", {}).then("CKR_OK", ["ApplicationFinalized"]);
    ok(app.get()("C_Initialize", {}));
    const s = ok(app.get()("C_OpenSession", { slotID: 0, flags: RW })).hSession;
    expect(s).toBe(1);
    expect(app.get()("C_DigestFinal", { hSession: s, outLen: 32 }).rv).toBe("CKR_OPERATION_NOT_INITIALIZED");
  });
});
