/**
 * C_GetMechanismList / C_GetMechanismInfo (fact sheet §18 InfoTests; docs/notes/softhsm-keys.md §6) and
 * C_SeedRandom / C_GenerateRandom (fact sheet §14): every check in its order, two rules at once, both profiles, the
 * profile switch `mechanismList`, and what the log keeps of random output and seeds (lengths only).
 */
import { describe, expect, it } from "vitest";
import { Simulator } from "../../src/actors/simulator.js";
import { PERFORMED_MECHANISMS, SOFTHSM_MECHANISMS } from "../../src/functions/mechanisms.js";
import { MAX_RANDOM_LEN } from "../../src/functions/random.js";
import { PKCS11 } from "../../src/pkcs11/pkcs11js.js";
import { caller, seededRandom, testSimulator } from "../support/sim.js";
import { given, setups, steps, openRO, loginUser, ok, CK, bytes, SOFTHSM, PROFILES, INVALID_SLOT, type Setup } from "../support/gwt.js";

const DIGESTS = [CK.CKM_MD5, CK.CKM_SHA224, CK.CKM_SHA256, CK.CKM_SHA384, CK.CKM_SHA512, CK.CKM_SHA_1];
/** What the default profile performs, written out (SoftHSM's alphabetical order, the _GENERAL HMACs where they sort). */
const PERFORMED = [
  CK.CKM_AES_CBC, CK.CKM_AES_CBC_PAD, CK.CKM_AES_CTR, CK.CKM_AES_ECB, CK.CKM_AES_GCM, CK.CKM_AES_KEY_GEN, CK.CKM_AES_KEY_WRAP, CK.CKM_AES_KEY_WRAP_PAD,
  CK.CKM_GENERIC_SECRET_KEY_GEN, CK.CKM_MD5, CK.CKM_MD5_HMAC, CK.CKM_MD5_HMAC_GENERAL,
  CK.CKM_RSA_PKCS, CK.CKM_RSA_PKCS_KEY_PAIR_GEN, CK.CKM_SHA1_RSA_PKCS,
  CK.CKM_SHA224, CK.CKM_SHA224_HMAC, CK.CKM_SHA224_HMAC_GENERAL, CK.CKM_SHA224_RSA_PKCS,
  CK.CKM_SHA256, CK.CKM_SHA256_HMAC, CK.CKM_SHA256_HMAC_GENERAL, CK.CKM_SHA256_RSA_PKCS,
  CK.CKM_SHA384, CK.CKM_SHA384_HMAC, CK.CKM_SHA384_HMAC_GENERAL, CK.CKM_SHA384_RSA_PKCS,
  CK.CKM_SHA512, CK.CKM_SHA512_HMAC, CK.CKM_SHA512_HMAC_GENERAL, CK.CKM_SHA512_RSA_PKCS,
  CK.CKM_SHA_1, CK.CKM_SHA_1_HMAC, CK.CKM_SHA_1_HMAC_GENERAL,
];
const openRW: Setup = (c, h) => void (h.rw = ok(c("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION })).hSession);
/** An application with a session on an initialised token, in either profile (slot 0 keeps its number on init). */
const session = steps(setups.token);

describe("C_GetMechanismList", () => {
  it("two rules at once: not initialised wins over a NULL pulCount and a bad slot", () =>
    given().when("C_GetMechanismList", { slotID: INVALID_SLOT, pMechanismList: null, pulCount: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it.each(PROFILES)("%s: two rules at once: a NULL pulCount wins over a bad slot", (_, opts) =>
    void given(setups.initialized, opts).when("C_GetMechanismList", { slotID: INVALID_SLOT, pMechanismList: null, pulCount: null }).then("CKR_ARGUMENTS_BAD", []));
  it.each(PROFILES)("%s: two rules at once: a bad slot wins over a buffer too small", (_, opts) =>
    void given(setups.initialized, opts).when("C_GetMechanismList", { slotID: INVALID_SLOT, pMechanismList: 0 }).then("CKR_SLOT_ID_INVALID", []));
  it("softhsm2: a size query answers SoftHSM's 70, for the uninitialised slot too", () => {
    const { out } = given(setups.initialized, SOFTHSM).when("C_GetMechanismList", { slotID: 0, pMechanismList: null }).then("CKR_OK", []);
    expect(out).toEqual({ mechanisms: [], count: 70 });
  });
  it("softhsm2: too small a buffer answers CKR_BUFFER_TOO_SMALL with the count (InfoTests: n = 0)", () => {
    const { out } = given(session, SOFTHSM).when("C_GetMechanismList", { slotID: 0, pMechanismList: 69 }).then("CKR_BUFFER_TOO_SMALL", []);
    expect(out).toEqual({ mechanisms: [], count: 70 });
  });
  it("softhsm2: the list is SoftHSM's, in its order (alphabetical by CKM_ name)", () => {
    const { out } = given(session, SOFTHSM).when("C_GetMechanismList", { slotID: 0, pMechanismList: 100 }).then("CKR_OK", []);
    const list = (out as { mechanisms: number[] }).mechanisms;
    expect(list).toEqual(SOFTHSM_MECHANISMS.map((m) => m.mechanism));
    expect(list.slice(0, 3)).toEqual([CK.CKM_AES_CBC, CK.CKM_AES_CBC_ENCRYPT_DATA, CK.CKM_AES_CBC_PAD]);
    expect(list.at(-1)).toBe(CK.CKM_SHA_1_HMAC);
    const names = SOFTHSM_MECHANISMS.map((m) => m.name);
    expect(names).toEqual([...names].sort());
  });
  it("default: lists only what hsmsim performs, alphabetically by name as SoftHSM orders its own", () => {
    const { out } = given(session).when("C_GetMechanismList", { slotID: 0, pMechanismList: PERFORMED.length }).then("CKR_OK", []);
    expect((out as { mechanisms: number[] }).mechanisms).toEqual(PERFORMED);
    expect(PERFORMED_MECHANISMS.map((m) => m.mechanism)).toEqual(PERFORMED);
  });
  it(`default: a size query answers ${PERFORMED.length}, a buffer of one less is too small`, () => {
    const n = PERFORMED.length;
    expect(given(setups.initialized).when("C_GetMechanismList", { slotID: 0, pMechanismList: null }).then("CKR_OK", []).out).toEqual({ mechanisms: [], count: n });
    expect(given(setups.initialized).when("C_GetMechanismList", { slotID: 0, pMechanismList: n - 1 }).then("CKR_BUFFER_TOO_SMALL", []).out).toEqual({ mechanisms: [], count: n });
  });
  it("the profile switch alone decides the list", () => {
    const { out } = given(setups.initialized, { switches: { mechanismList: "softhsm" } }).when("C_GetMechanismList", { slotID: 0, pMechanismList: null }).then("CKR_OK", []);
    expect(out).toEqual({ mechanisms: [], count: 70 });
  });
  it("a wrong argument type is CKR_ARGUMENTS_BAD, recorded", () =>
    given(setups.initialized).when("C_GetMechanismList", { slotID: -1, pMechanismList: null }).then("CKR_ARGUMENTS_BAD", []));
});

describe("C_GetMechanismInfo", () => {
  it("two rules at once: not initialised wins over a NULL pInfo", () =>
    given().when("C_GetMechanismInfo", { slotID: INVALID_SLOT, type: CK.CKM_RSA_PKCS, pInfo: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it.each(PROFILES)("%s: two rules at once: a NULL pInfo wins over a bad slot and a bad mechanism", (_, opts) =>
    void given(setups.initialized, opts).when("C_GetMechanismInfo", { slotID: INVALID_SLOT, type: 0x12345, pInfo: null }).then("CKR_ARGUMENTS_BAD", []));
  it.each(PROFILES)("%s: two rules at once: a bad slot wins over a bad mechanism", (_, opts) =>
    void given(setups.initialized, opts).when("C_GetMechanismInfo", { slotID: INVALID_SLOT, type: CK.CKM_VENDOR_DEFINED }).then("CKR_SLOT_ID_INVALID", []));
  it.each(PROFILES)("%s: unknown mechanisms are CKR_MECHANISM_INVALID", (_, opts) => {
    for (const type of [CK.CKM_VENDOR_DEFINED, 0x12345, CK.CKM_RIPEMD160]) {
      given(setups.initialized, opts).when("C_GetMechanismInfo", { slotID: 0, type }).then("CKR_MECHANISM_INVALID", []);
    }
  });
  it("softhsm2: no *_HMAC_GENERAL (notes §6, §9.3); default: SHA256_HMAC_GENERAL as SHA256_HMAC", () => {
    given(setups.initialized, SOFTHSM).when("C_GetMechanismInfo", { slotID: 0, type: CK.CKM_SHA256_HMAC_GENERAL }).then("CKR_MECHANISM_INVALID", []);
    const { out } = given(setups.initialized).when("C_GetMechanismInfo", { slotID: 0, type: CK.CKM_SHA256_HMAC_GENERAL }).then("CKR_OK", []);
    expect(out).toEqual({ minKeySize: 32, maxKeySize: 512, flags: CK.CKF_SIGN | CK.CKF_VERIFY });
  });
  it("one table: every mechanism both profiles list answers the same figures in both (CKM_RSA_PKCS: not wrap / unwrap)", () => {
    const softhsm = new Map(SOFTHSM_MECHANISMS.map((m) => [m.mechanism, m.info]));
    for (const m of PERFORMED_MECHANISMS) {
      if (!softhsm.has(m.mechanism)) continue;
      // The default profile does not wrap with RSA, so it does not claim CKF_WRAP / CKF_UNWRAP for CKM_RSA_PKCS.
      const want = m.mechanism === CK.CKM_RSA_PKCS ? { ...softhsm.get(m.mechanism)!, flags: softhsm.get(m.mechanism)!.flags & ~(CK.CKF_WRAP | CK.CKF_UNWRAP) } : softhsm.get(m.mechanism);
      expect(m.info, m.name).toEqual(want);
    }
  });
  it("softhsm2: every listed mechanism answers SoftHSM's figures (the InfoTests loop)", () => {
    for (const m of SOFTHSM_MECHANISMS) {
      const { out } = given(setups.initialized, SOFTHSM).when("C_GetMechanismInfo", { slotID: 0, type: m.mechanism }).then("CKR_OK", []);
      expect(out, m.name).toEqual(m.info);
    }
  });
  it("softhsm2: spot checks against docs/notes/softhsm-keys.md §6", () => {
    const info = (type: number) => given(setups.initialized, SOFTHSM).when("C_GetMechanismInfo", { slotID: 0, type }).then("CKR_OK", []).out;
    expect(info(CK.CKM_AES_CBC)).toEqual({ minKeySize: 16, maxKeySize: 32, flags: 0x20300 });
    expect(info(CK.CKM_AES_KEY_WRAP_PAD)).toEqual({ minKeySize: 1, maxKeySize: 0x80000000, flags: 0x60000 });
    expect(info(CK.CKM_SHA256_HMAC)).toEqual({ minKeySize: 32, maxKeySize: 512, flags: 0x2800 });
    expect(info(CK.CKM_EC_EDWARDS_KEY_PAIR_GEN)).toEqual({ minKeySize: 256, maxKeySize: 456, flags: CK.CKF_GENERATE_KEY_PAIR });
  });
  it("default: the digests answer SoftHSM's figures; what hsmsim cannot perform is CKR_MECHANISM_INVALID", () => {
    for (const type of DIGESTS) {
      expect(given(setups.initialized).when("C_GetMechanismInfo", { slotID: 0, type }).then("CKR_OK", []).out).toEqual({ minKeySize: 0, maxKeySize: 0, flags: CK.CKF_DIGEST });
    }
    expect(given(setups.initialized).when("C_GetMechanismInfo", { slotID: 0, type: CK.CKM_AES_CBC }).then("CKR_OK", []).out).toEqual({ minKeySize: 16, maxKeySize: 32, flags: 0x20300 });
    for (const type of [CK.CKM_RSA_PKCS_OAEP, CK.CKM_AES_CMAC, CK.CKM_DES3_CBC, CK.CKM_ECDSA]) {
      given(setups.initialized).when("C_GetMechanismInfo", { slotID: 0, type }).then("CKR_MECHANISM_INVALID", []);
    }
  });
});

const draw = (len: number): Setup => (c, h) => void ok(c("C_GenerateRandom", { hSession: h.rw!, ulRandomLen: len }));

describe("C_SeedRandom", () => {
  it("two rules at once: not initialised wins over a NULL pSeed", () =>
    given().when("C_SeedRandom", { hSession: 1, seed: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it.each(PROFILES)("%s: two rules at once: a NULL pSeed wins over an invalid session", (_, opts) =>
    void given(setups.initialized, opts).when("C_SeedRandom", { hSession: 99, seed: null }).then("CKR_ARGUMENTS_BAD", []));
  it.each(PROFILES)("%s: an invalid session (never issued, 0, closed) is CKR_SESSION_HANDLE_INVALID, empty seed included", (_, opts) => {
    given(setups.token, opts).when("C_SeedRandom", { hSession: 99, seed: new Uint8Array(0) }).then("CKR_SESSION_HANDLE_INVALID", []);
    given(setups.token, opts).when("C_SeedRandom", { hSession: 0, seed: bytes("s") }).then("CKR_SESSION_HANDLE_INVALID", []);
    const closed: Setup = (c, h) => void ok(c("C_CloseSession", { hSession: h.rw! }));
    given(steps(setups.token, closed), opts).when("C_SeedRandom", (h) => ({ hSession: h.rw!, seed: bytes("s") })).then("CKR_SESSION_HANDLE_INVALID", []);
  });
  it.each(PROFILES)("%s: OK in any session state, no login needed; an empty seed is fine", (_, opts) => {
    given(steps(setups.token, openRO), opts).when("C_SeedRandom", (h) => ({ hSession: h.ro!, seed: bytes("seed") })).then("CKR_OK", []);
    given(steps(setups.token, loginUser), opts).when("C_SeedRandom", (h) => ({ hSession: h.rw!, seed: new Uint8Array(0) })).then("CKR_OK", []);
  });
  it("the record keeps the seed's length only", () => {
    const { sim } = given(setups.token).when("C_SeedRandom", (h) => ({ hSession: h.rw!, seed: bytes("secret seed") })).then("CKR_OK", []);
    const r = [...sim.store.read()].at(-1)!;
    expect(r.args).toEqual({ hSession: expect.any(Number), seed: { len: 11 } });
    expect(JSON.stringify(r)).not.toContain(Buffer.from("secret seed").toString("hex"));
    expect(r.out).toBeUndefined();
  });
  it("seeding does not change the injected source's stream", () => {
    const run = (seed: boolean) => {
      const sim = testSimulator();
      const c = caller(sim.application());
      const h: Record<string, number> = {};
      setups.token(c, h, { app2: c });
      if (seed) ok(c("C_SeedRandom", { hSession: h.rw!, seed: bytes("x") }));
      return Buffer.from(ok(c("C_GenerateRandom", { hSession: h.rw!, ulRandomLen: 32 })).random).toString("hex");
    };
    expect(run(true)).toBe(run(false));
  });
});

describe("C_GenerateRandom", () => {
  it("two rules at once: not initialised wins over a NULL pRandomData", () =>
    given().when("C_GenerateRandom", { hSession: 1, ulRandomLen: 4, pRandomData: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it.each(PROFILES)("%s: two rules at once: a NULL pRandomData wins over an invalid session", (_, opts) =>
    void given(setups.initialized, opts).when("C_GenerateRandom", { hSession: 99, ulRandomLen: 4, pRandomData: null }).then("CKR_ARGUMENTS_BAD", []));
  it.each(PROFILES)("%s: a NULL pRandomData of length 0 is still CKR_ARGUMENTS_BAD", (_, opts) =>
    void given(setups.token, opts).when("C_GenerateRandom", (h) => ({ hSession: h.rw!, ulRandomLen: 0, pRandomData: null })).then("CKR_ARGUMENTS_BAD", []));
  it.each(PROFILES)("%s: two rules at once: an invalid session wins over a length too large", (_, opts) =>
    void given(setups.token, opts).when("C_GenerateRandom", { hSession: 99, ulRandomLen: MAX_RANDOM_LEN + 1 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("more than MAX_RANDOM_LEN bytes in one call: CKR_HOST_MEMORY, nothing allocated", () =>
    given(setups.token).when("C_GenerateRandom", (h) => ({ hSession: h.rw!, ulRandomLen: 2 ** 52 })).then("CKR_HOST_MEMORY", []));
  it.each(PROFILES)("%s: OK with exactly the bytes asked for, in an RO public session (no login), 0 included", (_, opts) => {
    const { out } = given(steps(setups.token, openRO), opts).when("C_GenerateRandom", (h) => ({ hSession: h.ro!, ulRandomLen: 33 })).then("CKR_OK", []);
    expect((out as { random: Uint8Array }).random).toHaveLength(33);
    const empty = given(setups.token, opts).when("C_GenerateRandom", (h) => ({ hSession: h.rw!, ulRandomLen: 0 })).then("CKR_OK", []);
    expect((empty.out as { random: Uint8Array }).random).toHaveLength(0);
  });
  it("the bytes come from the injected source: the same seed gives the same bytes, another seed others", () => {
    const bytesFor = (seed: number) => {
      const sim = testSimulator({ randomBytes: seededRandom(seed) });
      const c = caller(sim.application());
      const h: Record<string, number> = {};
      setups.token(c, h, { app2: c });
      return Buffer.from(ok(c("C_GenerateRandom", { hSession: h.rw!, ulRandomLen: 16 })).random).toString("hex");
    };
    expect(bytesFor(5)).toBe(bytesFor(5));
    expect(bytesFor(5)).not.toBe(bytesFor(6));
  });
  it("the record keeps the length only, and no fact: the bytes are output, not state", () => {
    const { sim, out } = given(setups.token).when("C_GenerateRandom", (h) => ({ hSession: h.rw!, ulRandomLen: 24 })).then("CKR_OK", []);
    const r = [...sim.store.read()].at(-1)!;
    expect(r.out).toEqual({ length: 24 });
    expect(r.args).toEqual({ hSession: expect.any(Number), ulRandomLen: 24 });
    expect(JSON.stringify(r)).not.toContain(Buffer.from((out as { random: Uint8Array }).random).toString("hex"));
  });
  it("replay rebuilds the same state without drawing", () => {
    const { sim } = given(steps(setups.token, draw(16), openRW, draw(8))).when("C_GenerateRandom", (h) => ({ hSession: h.rw!, ulRandomLen: 4 })).then("CKR_OK", []);
    let draws = 0;
    const replayed = Simulator.replay(sim.store.read(), { simulatorKey: new Uint8Array(32).fill(7), randomBytes: (n) => (draws++, new Uint8Array(n)) });
    expect(draws).toBe(0);
    expect(replayed.lastSeq).toBe(sim.lastSeq);
  });
});

describe("pkcs11js drop-in", () => {
  const load = (target = "memory:") => {
    const p = new PKCS11();
    p.load(target);
    p.C_Initialize();
    const [slot] = p.C_GetSlotList(false);
    return { p, slot: slot! };
  };
  it("C_GetMechanismList: a size query then the fill, two recorded calls", () => {
    const { p, slot } = load("memory:?profile=softhsm2");
    const before = p.simulator!.lastSeq;
    expect(p.C_GetMechanismList(slot)).toEqual(SOFTHSM_MECHANISMS.map((m) => m.mechanism));
    const recs = [...p.simulator!.store.read(before + 1)];
    expect(recs.map((r) => [r.fn, r.args.pMechanismList])).toEqual([
      ["C_GetMechanismList", null],
      ["C_GetMechanismList", 70],
    ]);
  });
  it("C_GetMechanismInfo: { minKeySize, maxKeySize, flags } as uint32; errors as pkcs11js throws them", () => {
    const { p, slot } = load("memory:?profile=softhsm2");
    expect(p.C_GetMechanismInfo(slot, CK.CKM_AES_KEY_WRAP)).toEqual({ minKeySize: 16, maxKeySize: 2147483648, flags: 0x60000 });
    expect(() => p.C_GetMechanismInfo(slot, 0x12345)).toThrow(expect.objectContaining({ message: "CKR_MECHANISM_INVALID", method: "C_GetMechanismInfo" }));
    expect(() => p.C_GetMechanismInfo(slot, "x" as unknown as number)).toThrow(TypeError);
    const bad = Buffer.from("0000008000000000", "hex");
    expect(() => p.C_GetMechanismList(bad)).toThrow(expect.objectContaining({ message: "CKR_SLOT_ID_INVALID", method: "C_GetMechanismList" }));
  });
  it("C_GenerateRandom fills and returns the caller's Buffer; an empty Buffer is a NULL pointer", () => {
    const { p, slot } = load();
    p.C_InitToken(slot, "12345678", "t");
    const h = p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION);
    const buf = Buffer.alloc(32);
    expect(p.C_GenerateRandom(h, buf)).toBe(buf);
    expect(buf.equals(Buffer.alloc(32))).toBe(false);
    expect(() => p.C_GenerateRandom(h, Buffer.alloc(0))).toThrow(expect.objectContaining({ message: "CKR_ARGUMENTS_BAD", method: "C_GenerateRandom" }));
    expect(p.C_GenerateRandom(h, Buffer.alloc(4).subarray(0, 0))).toHaveLength(0);
    expect(p.C_SeedRandom(h, Buffer.from("seed"))).toBeUndefined();
    expect(() => p.C_SeedRandom(h, Buffer.alloc(0))).toThrow(expect.objectContaining({ message: "CKR_ARGUMENTS_BAD", method: "C_SeedRandom" }));
  });
});
