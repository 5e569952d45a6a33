/**
 * Object management for data objects (fact sheet §16, §17, §18 ObjectTests; docs/notes/softhsm-data-objects.md):
 * C_CreateObject, C_DestroyObject, C_GetAttributeValue, C_SetAttributeValue, C_FindObjectsInit, C_FindObjects,
 * C_FindObjectsFinal. The access tables of §16, the data-object attribute rules, handle lifetimes, and the one profile
 * difference that shows here: SoftHSM's non-atomic writes (a failed create leaves an orphan, a failed set on a session
 * object keeps what it applied).
 */
import { describe, it, expect } from "vitest";
import {
  given,
  setups,
  steps,
  openRO,
  loginSO,
  loginUser,
  dataTemplate,
  ulong,
  bytes,
  CK,
  RO,
  RW,
  SO_PIN,
  USER_PIN,
  type Call,
  type Setup,
  SOFTHSM,
  PROFILES,
  ok,
  capture,
} from "../support/gwt.js";

const UNAVAILABLE = CK.CK_UNAVAILABLE_INFORMATION;
/** CKA_UNIQUE_ID (PKCS#11 3.0): SoftHSM 2.6.1 has no such attribute. */
const CKA_UNIQUE_ID = 4;
const T = Uint8Array.of(1);
const F = Uint8Array.of(0);
const attr = (type: number, value: Uint8Array | null) => ({ type, value });
const DATA = attr(CK.CKA_CLASS, ulong(CK.CKO_DATA));
/** A public session object: passes every access rule. */
const PUBLIC_SESSION = [DATA, attr(CK.CKA_TOKEN, F), attr(CK.CKA_PRIVATE, F)];

const openRW2: Setup = (c, h) => void (h.rw2 = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession);
/** Create a data object through session `session` and keep its handle as h[name]. */
const create =
  (name: string, token: boolean, priv: boolean, session = "rw", extra: { type: number; value: Uint8Array | null }[] = [], lbl = name): Setup =>
  (c, h) =>
    void (h[name] = ok(c("C_CreateObject", { hSession: h[session]!, template: [...dataTemplate(token, priv, lbl), ...extra] })).hObject);
const createWith =
  (name: string, template: { type: number; value: Uint8Array | null }[], session = "rw"): Setup =>
  (c, h) =>
    void (h[name] = ok(c("C_CreateObject", { hSession: h[session]!, template })).hObject);
const find = (c: Call, hSession: number, template: { type: number; value: Uint8Array | null }[] = []): number[] => {
  ok(c("C_FindObjectsInit", { hSession, template }));
  const { handles } = ok(c("C_FindObjects", { hSession, maxCount: 100 }));
  ok(c("C_FindObjectsFinal", { hSession }));
  return handles;
};
const getLabel = (c: Call, hSession: number, hObject: number) =>
  new TextDecoder().decode(ok(c("C_GetAttributeValue", { hSession, hObject, template: [attr(CK.CKA_LABEL, new Uint8Array(64))] })).attrs[0]!.value!);
const digestIn =
  (session: string): Setup =>
  (c, h) =>
    void ok(c("C_DigestInit", { hSession: h[session]!, mechanism: { mechanism: CK.CKM_SHA256 } }));
const findIn =
  (session: string, template: { type: number; value: Uint8Array | null }[] = []): Setup =>
  (c, h) =>
    void ok(c("C_FindObjectsInit", { hSession: h[session]!, template }));
const firstSlot = (c: Call) => ok(c("C_GetSlotList", { tokenPresent: true, pSlotList: 16 })).slots[0]!;
const app2Session: Setup = (_c, h, { app2 }) => {
  ok(app2("C_Initialize", {}));
  h.s2 = ok(app2("C_OpenSession", { slotID: firstSlot(app2), flags: RW })).hSession;
};

/**
 * Two slots (default profile, `slots: 2`): slot 0 holds the fixture's token with the user logged in and private
 * objects created; slot 1 holds a second token (SO and user PINs set) with a session h.s1 in the state asked for.
 * Object handles are application-wide, so slot 0's private handles can be used through slot 1's session (§8, §16).
 */
const crossSlot = (state: "RO public" | "RW public" | "RW SO" | "RO user"): Setup =>
  steps(setups.token, loginUser, create("spriv", false, true), create("tpriv", true, true), create("tpub", true, false), (c, h) => {
    ok(c("C_InitToken", { slotID: 1, pin: SO_PIN, label: "one" }));
    const so = ok(c("C_OpenSession", { slotID: 1, flags: RW })).hSession;
    ok(c("C_Login", { hSession: so, userType: CK.CKU_SO, pin: SO_PIN }));
    ok(c("C_InitPIN", { hSession: so, pin: USER_PIN }));
    if (state === "RW SO") {
      h.s1 = so;
      return;
    }
    ok(c("C_CloseSession", { hSession: so }));
    h.s1 = ok(c("C_OpenSession", { slotID: 1, flags: state === "RW public" ? RW : RO })).hSession;
    if (state === "RO user") ok(c("C_Login", { hSession: h.s1, userType: CK.CKU_USER, pin: USER_PIN }));
  });
const TWO_SLOTS = { slots: 2 };

// ---------------------------------------------------------------------------------------------------------------

/** SoftHSM's ObjectTests setup: an RO and an RW session, the user logged in through the RO one, and one data
 * object of each kind: public/private session objects (sPub via ro, sPriv via rw), public/private token objects. */
const fourKinds = steps(
  setups.token,
  openRO,
  (c, h) => void ok(c("C_Login", { hSession: h.ro!, userType: CK.CKU_USER, pin: USER_PIN })),
  create("sPub", false, false, "ro"),
  create("sPriv", false, true, "rw"),
  create("tPub", true, false, "rw"),
  create("tPriv", true, true, "rw"),
);

describe("C_CreateObject", () => {
  it("two rules at once: not initialised wins over a NULL template", () =>
    given().when("C_CreateObject", { hSession: 1, template: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a NULL template wins over an invalid session (C_CreateObject(999, NULL))", () =>
    given(setups.token).when("C_CreateObject", { hSession: 999, template: null }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: a NULL phObject wins over an invalid session", () =>
    given(setups.token).when("C_CreateObject", { hSession: 999, template: PUBLIC_SESSION, phObject: null }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: an invalid session wins over an empty template", () =>
    given(setups.token).when("C_CreateObject", { hSession: 999, template: [] }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("two rules at once: RO public session, private token object: CKR_SESSION_READ_ONLY wins over USER_NOT_LOGGED_IN", () =>
    given(steps(setups.token, openRO)).when("C_CreateObject", (h) => ({ hSession: h.ro!, template: dataTemplate(true, true) })).then("CKR_SESSION_READ_ONLY", []));
  it("two rules at once: a missing CKA_CLASS (template check) wins over the access check", () =>
    given(steps(setups.token, openRO))
      .when("C_CreateObject", (h) => ({ hSession: h.ro!, template: [attr(CK.CKA_TOKEN, T), attr(CK.CKA_PRIVATE, T)] }))
      .then("CKR_TEMPLATE_INCOMPLETE", []));
  it("two rules at once: the access check wins over more than 32 attributes", () => {
    const template = [DATA, attr(CK.CKA_PRIVATE, T), ...Array.from({ length: 31 }, () => attr(CK.CKA_LABEL, bytes("x")))];
    expect(template).toHaveLength(33);
    given(setups.token).when("C_CreateObject", (h) => ({ hSession: h.rw!, template })).then("CKR_USER_NOT_LOGGED_IN", []);
  });
  it("more than 32 attributes is CKR_TEMPLATE_INCONSISTENT; 32 is fine", () => {
    const labels = (n: number) => Array.from({ length: n }, () => attr(CK.CKA_LABEL, bytes("x")));
    given(setups.token).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [...PUBLIC_SESSION, ...labels(30)] })).then("CKR_TEMPLATE_INCONSISTENT", []);
    given(setups.token).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [...PUBLIC_SESSION, ...labels(29)] })).then("CKR_OK", ["ObjectCreated"]);
  });
  it("two rules at once: an unknown class is rejected only after the access check", () => {
    const hw = (more: { type: number; value: Uint8Array | null }[]) => [attr(CK.CKA_CLASS, ulong(CK.CKO_HW_FEATURE)), ...more];
    given(steps(setups.token, openRO))
      .when("C_CreateObject", (h) => ({ hSession: h.ro!, template: hw([attr(CK.CKA_TOKEN, T), attr(CK.CKA_PRIVATE, F)]) }))
      .then("CKR_SESSION_READ_ONLY", []);
    given(setups.token).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: hw([]) })).then("CKR_USER_NOT_LOGGED_IN", []);
  });
  it("an unknown class is CKR_ATTRIBUTE_VALUE_INVALID (HW_FEATURE, MECHANISM, OTP_KEY, 0x80000000, 0x1234)", () => {
    for (const cls of [CK.CKO_HW_FEATURE, CK.CKO_MECHANISM, CK.CKO_OTP_KEY, 0x80000000, 0x1234]) {
      given(setups.token)
        .when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [attr(CK.CKA_CLASS, ulong(cls)), attr(CK.CKA_PRIVATE, F)] }))
        .then("CKR_ATTRIBUTE_VALUE_INVALID", []);
    }
  });
  it("CKA_PRIVATE defaults to true for data: a bare {CKA_CLASS} in a public session is USER_NOT_LOGGED_IN", () =>
    given(setups.token).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [DATA] })).then("CKR_USER_NOT_LOGGED_IN", []));
  it("no CKA_CLASS, or an empty template: CKR_TEMPLATE_INCOMPLETE", () => {
    given(steps(setups.token, loginUser)).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [] })).then("CKR_TEMPLATE_INCOMPLETE", []);
    given(steps(setups.token, loginUser)).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [attr(CK.CKA_LABEL, bytes("x"))] })).then("CKR_TEMPLATE_INCOMPLETE", []);
  });
  it("creates an object and records it", () => {
    const { out, snapshot } = given(setups.token).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: dataTemplate(false, false, "hello") })).then("CKR_OK", ["ObjectCreated"]);
    expect(out).toEqual({ hObject: 1 });
    expect(snapshot().apps[0]!.sessionObjects).toHaveLength(1);
  });
  it("is not blocked by an active operation (find, digest)", () => {
    given(steps(setups.token, findIn("rw"))).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: PUBLIC_SESSION })).then("CKR_OK", ["ObjectCreated"]);
    given(steps(setups.token, digestIn("rw"))).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: PUBLIC_SESSION })).then("CKR_OK", ["ObjectCreated"]);
  });

  describe("access (§16 write rule): 5 session states × 4 object kinds, ObjectTests::testCreateObject", () => {
    const STATES = {
      "RO public": [openRO, "ro"],
      "RW public": [() => {}, "rw"],
      "RO user": [steps(openRO, loginUser), "ro"],
      "RW user": [loginUser, "rw"],
      "RW SO": [loginSO, "rw"],
    } as const;
    const OK = "CKR_OK";
    const UNLI = "CKR_USER_NOT_LOGGED_IN";
    const SRO = "CKR_SESSION_READ_ONLY";
    // [token, private, expected per state in the order of STATES]
    const TABLE: [string, boolean, boolean, string[]][] = [
      ["public session object", false, false, [OK, OK, OK, OK, OK]],
      ["private session object", false, true, [UNLI, UNLI, OK, OK, UNLI]],
      ["public token object", true, false, [SRO, OK, SRO, OK, OK]],
      ["private token object", true, true, [SRO, UNLI, SRO, OK, UNLI]],
    ];
    const cases = TABLE.flatMap(([kind, token, priv, rvs]) =>
      Object.entries(STATES).map(([state, [setup, session]], i) => [kind, state, token, priv, setup as Setup, session, rvs[i]!] as const),
    );
    it.each(cases)("%s in an %s session", (_k, _s, token, priv, setup, session, rv) => {
      for (const [, opts] of PROFILES) {
        given(steps(setups.token, setup), opts)
          .when("C_CreateObject", (h) => ({ hSession: h[session]!, template: dataTemplate(token, priv) }))
          .then(rv, opts === SOFTHSM ? undefined : rv === OK ? ["ObjectCreated"] : []);
      }
    });
    it.each(cases.filter((c) => c[6] === OK))("%s created in an %s session can be destroyed there", (_k, _s, token, priv, setup, session) => {
      const mk: Setup = (c, h) => void (h.o = ok(c("C_CreateObject", { hSession: h[session]!, template: dataTemplate(token, priv) })).hObject);
      given(steps(setups.token, setup, mk)).when("C_DestroyObject", (h) => ({ hSession: h[session]!, hObject: h.o! })).then("CKR_OK", ["ObjectDestroyed"]);
    });
  });

  describe("data object attributes (notes §1)", () => {
    const inUser = steps(setups.token, loginUser);
    const withClass = (...more: { type: number; value: Uint8Array | null }[]) => [...PUBLIC_SESSION, ...more];
    it("has exactly the 10 data attributes, with SoftHSM's defaults (ObjectTests::testDefaultDataAttributes)", () => {
      const app = capture();
      const { out, h } = given(steps(inUser, app.setup)).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [DATA] })).then("CKR_OK", ["ObjectCreated"]);
      const types = [
        CK.CKA_CLASS,
        CK.CKA_TOKEN,
        CK.CKA_PRIVATE,
        CK.CKA_MODIFIABLE,
        CK.CKA_LABEL,
        CK.CKA_COPYABLE,
        CK.CKA_DESTROYABLE,
        CK.CKA_APPLICATION,
        CK.CKA_OBJECT_ID,
        CK.CKA_VALUE,
      ];
      const got = ok(app.get()("C_GetAttributeValue", { hSession: h.rw!, hObject: out.hObject, template: types.map((t) => attr(t, new Uint8Array(16))) })).attrs;
      expect(got.map((a) => [a.type, Array.from(a.value ?? [])])).toEqual([
        [CK.CKA_CLASS, Array.from(ulong(CK.CKO_DATA))],
        [CK.CKA_TOKEN, [0]],
        [CK.CKA_PRIVATE, [1]],
        [CK.CKA_MODIFIABLE, [1]],
        [CK.CKA_LABEL, []],
        [CK.CKA_COPYABLE, [1]],
        [CK.CKA_DESTROYABLE, [1]],
        [CK.CKA_APPLICATION, []],
        [CK.CKA_OBJECT_ID, []],
        [CK.CKA_VALUE, []],
      ]);
    });
    it("any other attribute type is CKR_ATTRIBUTE_TYPE_INVALID (CKA_SIGN, CKA_ID, CKA_KEY_TYPE, CKA_UNIQUE_ID)", () => {
      for (const type of [CK.CKA_SIGN, CK.CKA_ID, CK.CKA_KEY_TYPE, CKA_UNIQUE_ID]) {
        given(inUser).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: withClass(attr(type, type === CK.CKA_KEY_TYPE ? ulong(0) : T)) })).then("CKR_ATTRIBUTE_TYPE_INVALID", []);
      }
    });
    it("a bool must be exactly 1 byte (2 bytes, 0 bytes, 8 bytes: CKR_ATTRIBUTE_VALUE_INVALID)", () => {
      for (const value of [Uint8Array.of(1, 0), new Uint8Array(0), ulong(1)]) {
        given(inUser).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: withClass(attr(CK.CKA_MODIFIABLE, value)) })).then("CKR_ATTRIBUTE_VALUE_INVALID", []);
      }
    });
    it("a bool byte 0x02 is accepted and stored as true", () => {
      const app = capture();
      const { out, h } = given(steps(inUser, app.setup))
        .when("C_CreateObject", (h) => ({ hSession: h.rw!, template: withClass(attr(CK.CKA_MODIFIABLE, Uint8Array.of(2))) }))
        .then("CKR_OK", ["ObjectCreated"]);
      const [m] = ok(app.get()("C_GetAttributeValue", { hSession: h.rw!, hObject: out.hObject, template: [attr(CK.CKA_MODIFIABLE, new Uint8Array(1))] })).attrs;
      expect(Array.from(m!.value!)).toEqual([1]);
    });
    it("a 4-byte CKA_CLASS does not count as present: CKR_TEMPLATE_INCOMPLETE", () =>
      given(inUser).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [attr(CK.CKA_CLASS, new Uint8Array(4))] })).then("CKR_TEMPLATE_INCOMPLETE", []));
    it("a 4-byte CKA_CLASS before a good one: CKR_ATTRIBUTE_VALUE_INVALID", () =>
      given(inUser).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [attr(CK.CKA_CLASS, new Uint8Array(4)), DATA] })).then("CKR_ATTRIBUTE_VALUE_INVALID", []));
    it("CKA_CLASS twice with the same value is fine", () =>
      given(inUser).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [DATA, DATA] })).then("CKR_OK", ["ObjectCreated"]));
    it("CKA_CLASS = SECRET_KEY, then DATA: CKR_TEMPLATE_INCONSISTENT", () =>
      given(inUser).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [attr(CK.CKA_CLASS, ulong(CK.CKO_SECRET_KEY)), DATA] })).then("CKR_TEMPLATE_INCONSISTENT", []));
    it("CKA_CLASS = DATA, then CERTIFICATE with no certificate type: CKR_TEMPLATE_INCOMPLETE", () =>
      given(inUser).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [DATA, attr(CK.CKA_CLASS, ulong(CK.CKO_CERTIFICATE))] })).then("CKR_TEMPLATE_INCOMPLETE", []));
    it("the last of repeated entries wins: LABEL a then bb, TOKEN true then false", () => {
      const app = capture();
      const { out, h } = given(steps(inUser, app.setup))
        .when("C_CreateObject", (h) => ({
          hSession: h.rw!,
          template: [DATA, attr(CK.CKA_TOKEN, T), attr(CK.CKA_TOKEN, F), attr(CK.CKA_LABEL, bytes("a")), attr(CK.CKA_LABEL, bytes("bb"))],
        }))
        .then("CKR_OK", ["ObjectCreated"]);
      const got = ok(app.get()("C_GetAttributeValue", { hSession: h.rw!, hObject: out.hObject, template: [attr(CK.CKA_LABEL, null), attr(CK.CKA_TOKEN, null)] })).attrs;
      expect(got.map((a) => a.length)).toEqual([2, 1]);
      expect(getLabel(app.get(), h.rw!, out.hObject)).toBe("bb");
      const tok = ok(app.get()("C_GetAttributeValue", { hSession: h.rw!, hObject: out.hObject, template: [attr(CK.CKA_TOKEN, new Uint8Array(1))] })).attrs[0]!;
      expect(Array.from(tok.value!)).toEqual([0]);
    });
    it("MODIFIABLE false, then LABEL: create is exempt from the read-only rule", () =>
      given(inUser).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: withClass(attr(CK.CKA_MODIFIABLE, F), attr(CK.CKA_LABEL, bytes("x"))) })).then("CKR_OK", ["ObjectCreated"]));
    it("COPYABLE false, then true: CKR_ATTRIBUTE_READ_ONLY", () =>
      given(inUser).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: withClass(attr(CK.CKA_COPYABLE, F), attr(CK.CKA_COPYABLE, T)) })).then("CKR_ATTRIBUTE_READ_ONLY", []));
    it("byte attributes take any length, a NULL value included", () =>
      given(inUser)
        .when("C_CreateObject", (h) => ({ hSession: h.rw!, template: withClass(attr(CK.CKA_VALUE, null), attr(CK.CKA_APPLICATION, bytes("app")), attr(CK.CKA_OBJECT_ID, new Uint8Array(300))) }))
        .then("CKR_OK", ["ObjectCreated"]));
  });

  describe("a create that fails while applying its template (notes §1)", () => {
    const orphanSession = [DATA, attr(CK.CKA_PRIVATE, F), attr(CK.CKA_LABEL, bytes("orph")), attr(CK.CKA_SIGN, T)];
    it("default: changes nothing", () => {
      const app = capture();
      const { h, snapshot } = given(steps(setups.token, app.setup)).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: orphanSession })).then("CKR_ATTRIBUTE_TYPE_INVALID", []);
      expect(snapshot().apps[0]!.sessionObjects).toEqual([]);
      expect(find(app.get(), h.rw!)).toEqual([]);
    });
    it("softhsm2: leaves a session object with the attributes applied before the failure", () => {
      const app = capture();
      const { h } = given(steps(setups.token, app.setup), SOFTHSM)
        .when("C_CreateObject", (h) => ({ hSession: h.rw!, template: orphanSession }))
        .then("CKR_ATTRIBUTE_TYPE_INVALID", ["ObjectCreated"]);
      const found = find(app.get(), h.rw!);
      expect(found).toHaveLength(1);
      expect(getLabel(app.get(), h.rw!, found[0]!)).toBe("orph");
    });
    it("softhsm2: a token object's orphan keeps its defaults, with CKA_TOKEN false and private", () => {
      const app = capture();
      const template = [DATA, attr(CK.CKA_TOKEN, T), attr(CK.CKA_PRIVATE, F), attr(CK.CKA_LABEL, bytes("orph")), attr(CK.CKA_SIGN, T)];
      const { h } = given(steps(setups.token, loginUser, app.setup), SOFTHSM).when("C_CreateObject", (h) => ({ hSession: h.rw!, template })).then("CKR_ATTRIBUTE_TYPE_INVALID");
      const found = find(app.get(), h.rw!);
      expect(found).toHaveLength(1);
      const got = ok(
        app.get()("C_GetAttributeValue", {
          hSession: h.rw!,
          hObject: found[0]!,
          template: [attr(CK.CKA_TOKEN, new Uint8Array(1)), attr(CK.CKA_PRIVATE, new Uint8Array(1)), attr(CK.CKA_LABEL, null)],
        }),
      ).attrs;
      expect(got.map((a) => (a.value ? Array.from(a.value) : a.length))).toEqual([[0], [1], 0]);
      // Private: a public session does not find it.
      ok(app.get()("C_Logout", { hSession: h.rw! }));
      expect(find(app.get(), h.rw!)).toEqual([]);
    });
  });
});

describe("C_DestroyObject", () => {
  it("two rules at once: not initialised wins over an invalid session", () =>
    given().when("C_DestroyObject", { hSession: 99, hObject: 0 }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: an invalid session wins over an invalid object", () =>
    given(setups.token).when("C_DestroyObject", { hSession: 99, hObject: 0 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("checks the object handle", () =>
    given(setups.token).when("C_DestroyObject", (h) => ({ hSession: h.rw!, hObject: 0 })).then("CKR_OBJECT_HANDLE_INVALID", []));
  it("two rules at once: an RO session wins over a non-destroyable token object", () =>
    given(steps(setups.token, openRO, create("o", true, false, "rw", [attr(CK.CKA_DESTROYABLE, F)])))
      .when("C_DestroyObject", (h) => ({ hSession: h.ro!, hObject: h.o! }))
      .then("CKR_SESSION_READ_ONLY", []));
  it("a non-destroyable object: CKR_ACTION_PROHIBITED", () =>
    given(steps(setups.token, create("o", false, false, "rw", [attr(CK.CKA_DESTROYABLE, F)])))
      .when("C_DestroyObject", (h) => ({ hSession: h.rw!, hObject: h.o! }))
      .then("CKR_ACTION_PROHIBITED", []));
  it("a non-modifiable object can be destroyed", () =>
    given(steps(setups.token, create("o", false, false, "rw", [attr(CK.CKA_MODIFIABLE, F)])))
      .when("C_DestroyObject", (h) => ({ hSession: h.rw!, hObject: h.o! }))
      .then("CKR_OK", ["ObjectDestroyed"]));
  it.each(PROFILES)("%s: a destroyed object's handle is invalid, and a find no longer sees it", (_, opts) => {
    const app = capture();
    const { h } = given(steps(setups.token, create("o", true, false), app.setup), opts).when("C_DestroyObject", (h) => ({ hSession: h.rw!, hObject: h.o! })).then("CKR_OK");
    expect(app.get()("C_DestroyObject", { hSession: h.rw!, hObject: h.o! }).rv).toBe("CKR_OBJECT_HANDLE_INVALID");
    expect(find(app.get(), h.rw!)).toEqual([]);
  });
  it("another session of the application may destroy a session object", () =>
    given(steps(setups.token, openRW2, create("o", false, false))).when("C_DestroyObject", (h) => ({ hSession: h.rw2!, hObject: h.o! })).then("CKR_OK", ["ObjectDestroyed"]));
  it("is not blocked by an active operation", () =>
    given(steps(setups.token, create("o", false, false), digestIn("rw"))).when("C_DestroyObject", (h) => ({ hSession: h.rw!, hObject: h.o! })).then("CKR_OK", ["ObjectDestroyed"]));
  it("two rules at once (default, slots: 2): a private object from a public session on another slot is USER_NOT_LOGGED_IN, before DESTROYABLE", () => {
    const nd = create("nd", true, true, "rw", [attr(CK.CKA_DESTROYABLE, F)]);
    given(steps(crossSlot("RW public"), nd), TWO_SLOTS).when("C_DestroyObject", (h) => ({ hSession: h.s1!, hObject: h.nd! })).then("CKR_USER_NOT_LOGGED_IN", []);
  });
  it("replays ObjectTests::testDestroyObject", () => {
    for (const [, opts] of PROFILES) {
      const loginRO: Setup = (c, h) => void ok(c("C_Login", { hSession: h.ro!, userType: CK.CKU_USER, pin: USER_PIN }));
      const objects = steps(
        setups.token,
        openRO,
        loginRO,
        create("sPub", false, false),
        create("sPriv", false, true),
        create("tPub", true, false),
        create("tPriv", true, true),
        create("nd", false, false, "rw", [attr(CK.CKA_DESTROYABLE, F)]),
      );
      given(setups.initialized, opts).when("C_DestroyObject", { hSession: 99, hObject: 0 }).then("CKR_SESSION_HANDLE_INVALID");
      given(steps(setups.token, openRO), opts).when("C_DestroyObject", (h) => ({ hSession: h.ro!, hObject: 0 })).then("CKR_OBJECT_HANDLE_INVALID");
      given(objects, opts).when("C_DestroyObject", (h) => ({ hSession: h.ro!, hObject: h.nd! })).then("CKR_ACTION_PROHIBITED");
      given(objects, opts).when("C_DestroyObject", (h) => ({ hSession: h.ro!, hObject: h.tPub! })).then("CKR_SESSION_READ_ONLY");
      given(objects, opts).when("C_DestroyObject", (h) => ({ hSession: h.ro!, hObject: h.tPriv! })).then("CKR_SESSION_READ_ONLY");
      // Logout through the other session, log in again through ro.
      const relog = steps((c, h) => void ok(c("C_Logout", { hSession: h.rw! })), loginRO);
      given(steps(objects, relog), opts).when("C_DestroyObject", (h) => ({ hSession: h.ro!, hObject: h.sPub! })).then("CKR_OK");
      given(steps(objects, relog), opts).when("C_DestroyObject", (h) => ({ hSession: h.rw!, hObject: h.sPriv! })).then("CKR_OBJECT_HANDLE_INVALID");
      given(steps(objects, relog), opts).when("C_DestroyObject", (h) => ({ hSession: h.rw!, hObject: h.tPub! })).then("CKR_OK");
      given(steps(objects, relog), opts).when("C_DestroyObject", (h) => ({ hSession: h.rw!, hObject: h.tPriv! })).then("CKR_OBJECT_HANDLE_INVALID");
    }
  });
});

describe("C_GetAttributeValue", () => {
  const hello = create("o", false, false, "rw", [], "hello");
  const get = (template: { type: number; value: Uint8Array | null }[]) => (h: Record<string, number>) => ({ hSession: h.rw!, hObject: h.o!, template });
  it("two rules at once: not initialised wins over a NULL template", () =>
    given().when("C_GetAttributeValue", { hSession: 1, hObject: 1, template: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a NULL template wins over an invalid object handle (ObjectTests::testGetAttributeValue)", () =>
    given(steps(setups.token, openRO)).when("C_GetAttributeValue", (h) => ({ hSession: h.ro!, hObject: 0, template: null })).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: a NULL template wins over an invalid session", () =>
    given(setups.token).when("C_GetAttributeValue", { hSession: 99, hObject: 0, template: null }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: an invalid session wins over an invalid object", () =>
    given(setups.token).when("C_GetAttributeValue", { hSession: 99, hObject: 0, template: [] }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("checks the object handle", () =>
    given(setups.token).when("C_GetAttributeValue", (h) => ({ hSession: h.rw!, hObject: 5, template: [] })).then("CKR_OBJECT_HANDLE_INVALID", []));
  it("reads CKA_CLASS from an RO session (ObjectTests::testGetAttributeValue)", () => {
    const { out } = given(steps(setups.token, openRO, create("o", false, false, "ro")))
      .when("C_GetAttributeValue", (h) => ({ hSession: h.ro!, hObject: h.o!, template: [attr(CK.CKA_CLASS, new Uint8Array(8))] }))
      .then("CKR_OK", []);
    expect(out.attrs).toEqual([{ type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA), length: 8 }]);
  });
  it("fills every valid entry; an invalid type wins: LABEL(64), SIGN, CLASS(8) → TYPE_INVALID", () => {
    const { out } = given(steps(setups.token, hello))
      .when("C_GetAttributeValue", get([attr(CK.CKA_LABEL, new Uint8Array(64)), attr(CK.CKA_SIGN, new Uint8Array(8)), attr(CK.CKA_CLASS, new Uint8Array(8))]))
      .then("CKR_ATTRIBUTE_TYPE_INVALID", []);
    expect(out.attrs).toEqual([
      { type: CK.CKA_LABEL, value: bytes("hello"), length: 5 },
      { type: CK.CKA_SIGN, value: null, length: UNAVAILABLE },
      { type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA), length: 8 },
    ]);
  });
  it("two rules at once: TYPE_INVALID wins over BUFFER_TOO_SMALL: LABEL(1), SIGN, CLASS(8)", () => {
    const { out } = given(steps(setups.token, hello))
      .when("C_GetAttributeValue", get([attr(CK.CKA_LABEL, new Uint8Array(1)), attr(CK.CKA_SIGN, null), attr(CK.CKA_CLASS, new Uint8Array(8))]))
      .then("CKR_ATTRIBUTE_TYPE_INVALID", []);
    expect(out.attrs.map((a) => a.length)).toEqual([UNAVAILABLE, UNAVAILABLE, 8]);
  });
  it("a buffer too small: LABEL(1), CLASS(8) → BUFFER_TOO_SMALL, CLASS still filled", () => {
    const { out } = given(steps(setups.token, hello))
      .when("C_GetAttributeValue", get([attr(CK.CKA_LABEL, new Uint8Array(1)), attr(CK.CKA_CLASS, new Uint8Array(8))]))
      .then("CKR_BUFFER_TOO_SMALL", []);
    expect(out.attrs).toEqual([
      { type: CK.CKA_LABEL, value: null, length: UNAVAILABLE },
      { type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA), length: 8 },
    ]);
  });
  it("NULL values ask for lengths", () => {
    const { out } = given(steps(setups.token, hello))
      .when("C_GetAttributeValue", get([attr(CK.CKA_LABEL, null), attr(CK.CKA_CLASS, new Uint8Array(8)), attr(CK.CKA_VALUE, null)]))
      .then("CKR_OK", []);
    expect(out.attrs.map((a) => [a.value === null, a.length])).toEqual([
      [true, 5],
      [false, 8],
      [true, 0],
    ]);
  });
  it("a bool needs 1 byte, a ulong 8; larger buffers are fine", () => {
    given(steps(setups.token, hello)).when("C_GetAttributeValue", get([attr(CK.CKA_TOKEN, new Uint8Array(0))])).then("CKR_BUFFER_TOO_SMALL", []);
    given(steps(setups.token, hello)).when("C_GetAttributeValue", get([attr(CK.CKA_CLASS, new Uint8Array(4))])).then("CKR_BUFFER_TOO_SMALL", []);
    const { out } = given(steps(setups.token, hello))
      .when("C_GetAttributeValue", get([attr(CK.CKA_TOKEN, new Uint8Array(4)), attr(CK.CKA_CLASS, new Uint8Array(16))]))
      .then("CKR_OK", []);
    expect(out.attrs.map((a) => a.length)).toEqual([1, 8]);
  });
  it("an empty attribute into a 0-byte buffer, and an empty template, are OK", () => {
    const { out } = given(steps(setups.token, hello)).when("C_GetAttributeValue", get([attr(CK.CKA_VALUE, new Uint8Array(0))])).then("CKR_OK", []);
    expect(out.attrs).toEqual([{ type: CK.CKA_VALUE, value: new Uint8Array(0), length: 0 }]);
    given(steps(setups.token, hello)).when("C_GetAttributeValue", get([])).then("CKR_OK", []);
  });
  it("ObjectTests::testGetInvalidAttribute: CKA_SIGN on a data object", () =>
    given(steps(setups.token, loginUser, createWith("o", [DATA])))
      .when("C_GetAttributeValue", get([attr(CK.CKA_SIGN, new Uint8Array(1))]))
      .then("CKR_ATTRIBUTE_TYPE_INVALID", []));
  it("is not blocked by an active operation", () =>
    given(steps(setups.token, hello, findIn("rw"))).when("C_GetAttributeValue", get([attr(CK.CKA_LABEL, null)])).then("CKR_OK", []));

  describe("the read rule (§16), through a session on another slot (default, slots: 2)", () => {
    const read = (obj: string, template = [attr(CK.CKA_LABEL, null)]) => (h: Record<string, number>) => ({ hSession: h.s1!, hObject: h[obj]!, template });
    it.each(["RO public", "RW public", "RW SO"] as const)("%s: a private object answers CKR_GENERAL_ERROR", (state) => {
      given(crossSlot(state), TWO_SLOTS).when("C_GetAttributeValue", read("spriv")).then("CKR_GENERAL_ERROR", []);
      given(crossSlot(state), TWO_SLOTS).when("C_GetAttributeValue", read("tpriv")).then("CKR_GENERAL_ERROR", []);
    });
    it("two rules at once: the access check wins over an invalid attribute type", () =>
      given(crossSlot("RO public"), TWO_SLOTS).when("C_GetAttributeValue", read("tpriv", [attr(CK.CKA_SIGN, null)])).then("CKR_GENERAL_ERROR", []));
    it("a public object is readable from any state", () => {
      for (const state of ["RO public", "RW public", "RW SO", "RO user"] as const) {
        given(crossSlot(state), TWO_SLOTS).when("C_GetAttributeValue", read("tpub")).then("CKR_OK", []);
      }
    });
    it("the calling session's state decides: a user logged in on the other slot may read", () =>
      given(crossSlot("RO user"), TWO_SLOTS).when("C_GetAttributeValue", read("tpriv")).then("CKR_OK", []));
    it("softhsm2: the same through a second token initialised in the slot a size query added", () => {
      const slot1: Setup = (c, h) => {
        ok(c("C_GetSlotList", { tokenPresent: false, pSlotList: null }));
        ok(c("C_InitToken", { slotID: 1, pin: SO_PIN, label: "one" }));
        h.s1 = ok(c("C_OpenSession", { slotID: 1, flags: RO })).hSession;
      };
      given(steps(setups.token, loginUser, create("spriv", false, true), create("tpriv", true, true), slot1), SOFTHSM)
        .when("C_GetAttributeValue", read("tpriv"))
        .then("CKR_GENERAL_ERROR");
      given(steps(setups.token, loginUser, create("spriv", false, true), create("tpriv", true, true), slot1), SOFTHSM)
        .when("C_DestroyObject", (h) => ({ hSession: h.s1!, hObject: h.spriv! }))
        .then("CKR_USER_NOT_LOGGED_IN");
    });
    it("the usual answer after a logout is CKR_OBJECT_HANDLE_INVALID", () =>
      given(steps(setups.token, loginUser, create("tpriv", true, true), (c, h) => void ok(c("C_Logout", { hSession: h.rw! }))))
        .when("C_GetAttributeValue", (h) => ({ hSession: h.rw!, hObject: h.tpriv!, template: [attr(CK.CKA_LABEL, null)] }))
        .then("CKR_OBJECT_HANDLE_INVALID", []));
  });

  it.each(PROFILES)("%s: object handles belong to the application", (_, opts) =>
    void given(steps(setups.token, create("o", true, false), app2Session), opts)
      .when("C_GetAttributeValue", (h) => ({ hSession: h.s2!, hObject: h.o!, template: [] }), "app2")
      .then("CKR_OBJECT_HANDLE_INVALID"));
});

describe("C_SetAttributeValue", () => {
  const LABEL38 = "Label modified via C_SetAttributeValue";
  const setLabel = (session: string, obj: string, value = LABEL38) => (h: Record<string, number>) => ({
    hSession: h[session]!,
    hObject: h[obj]!,
    template: [attr(CK.CKA_LABEL, bytes(value))],
  });
  const set = (template: { type: number; value: Uint8Array | null }[], obj = "o") => (h: Record<string, number>) => ({ hSession: h.rw!, hObject: h[obj]!, template });
  const withObject = steps(setups.token, create("o", false, false));
  it("two rules at once: not initialised wins over a NULL template", () =>
    given().when("C_SetAttributeValue", { hSession: 1, hObject: 1, template: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a NULL template wins over an invalid session", () =>
    given(setups.token).when("C_SetAttributeValue", { hSession: 99, hObject: 1, template: null }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: an invalid session wins over an invalid object", () =>
    given(setups.token).when("C_SetAttributeValue", { hSession: 99, hObject: 0, template: [] }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("two rules at once: an invalid object wins over a read-only attribute", () =>
    given(setups.token).when("C_SetAttributeValue", (h) => ({ hSession: h.rw!, hObject: 0, template: [attr(CK.CKA_CLASS, ulong(0))] })).then("CKR_OBJECT_HANDLE_INVALID", []));
  it("two rules at once: an RO session wins over a non-modifiable token object", () =>
    given(steps(setups.token, openRO, create("o", true, false, "rw", [attr(CK.CKA_MODIFIABLE, F)])))
      .when("C_SetAttributeValue", setLabel("ro", "o"))
      .then("CKR_SESSION_READ_ONLY", []));
  it("two rules at once: a non-modifiable object wins over an invalid type (and an empty template gets the same answer)", () => {
    const nm = steps(setups.token, create("o", false, false, "rw", [attr(CK.CKA_MODIFIABLE, F)]));
    given(nm).when("C_SetAttributeValue", set([attr(CK.CKA_SIGN, T)])).then("CKR_ACTION_PROHIBITED", []);
    given(nm).when("C_SetAttributeValue", set([])).then("CKR_ACTION_PROHIBITED", []);
  });
  it("two rules at once: entries are checked in order, the first failure wins", () => {
    given(withObject).when("C_SetAttributeValue", set([attr(CK.CKA_SIGN, T), attr(CK.CKA_TOKEN, Uint8Array.of(1, 1))])).then("CKR_ATTRIBUTE_TYPE_INVALID", []);
    given(withObject).when("C_SetAttributeValue", set([attr(CK.CKA_TOKEN, Uint8Array.of(1, 1)), attr(CK.CKA_SIGN, T)])).then("CKR_ATTRIBUTE_VALUE_INVALID", []);
    given(withObject).when("C_SetAttributeValue", set([attr(CK.CKA_VALUE, bytes("v")), attr(CK.CKA_SIGN, T)])).then("CKR_ATTRIBUTE_READ_ONLY", []);
  });
  it("two rules at once: a wrong size wins over read-only (CKA_TOKEN, 2 bytes)", () =>
    given(withObject).when("C_SetAttributeValue", set([attr(CK.CKA_TOKEN, Uint8Array.of(1, 0))])).then("CKR_ATTRIBUTE_VALUE_INVALID", []));
  it("only CKA_LABEL may be set: every other data attribute is read-only, COPYABLE both ways", () => {
    for (const a of [
      DATA,
      attr(CK.CKA_TOKEN, F),
      attr(CK.CKA_PRIVATE, F),
      attr(CK.CKA_MODIFIABLE, T),
      attr(CK.CKA_DESTROYABLE, T),
      attr(CK.CKA_COPYABLE, T),
      attr(CK.CKA_COPYABLE, F),
      attr(CK.CKA_APPLICATION, bytes("a")),
      attr(CK.CKA_OBJECT_ID, bytes("o")),
      attr(CK.CKA_VALUE, bytes("v")),
    ]) {
      given(withObject).when("C_SetAttributeValue", set([a])).then("CKR_ATTRIBUTE_READ_ONLY", []);
    }
  });
  it("sets the label", () => {
    const app = capture();
    const { h } = given(steps(withObject, app.setup)).when("C_SetAttributeValue", setLabel("rw", "o")).then("CKR_OK", ["AttributesChanged"]);
    expect(getLabel(app.get(), h.rw!, h.o!)).toBe(LABEL38);
  });
  it("an empty template is OK and changes nothing", () => given(withObject).when("C_SetAttributeValue", set([])).then("CKR_OK", []));
  it("is not blocked by an active operation", () =>
    given(steps(withObject, digestIn("rw"))).when("C_SetAttributeValue", setLabel("rw", "o")).then("CKR_OK", ["AttributesChanged"]));
  it("(default, slots: 2) a private object from a public session on another slot is USER_NOT_LOGGED_IN", () =>
    given(crossSlot("RW public"), TWO_SLOTS).when("C_SetAttributeValue", setLabel("s1", "spriv")).then("CKR_USER_NOT_LOGGED_IN", []));

  describe("atomicity (notes §3)", () => {
    const l3 = [attr(CK.CKA_LABEL, bytes("L3")), attr(CK.CKA_SIGN, T)];
    it("default: a failed set changes nothing", () => {
      const app = capture();
      const { h } = given(steps(withObject, app.setup)).when("C_SetAttributeValue", set(l3)).then("CKR_ATTRIBUTE_TYPE_INVALID", []);
      expect(getLabel(app.get(), h.rw!, h.o!)).toBe("o");
    });
    it("softhsm2: a session object keeps the entries applied before the failure", () => {
      const app = capture();
      const { h } = given(steps(withObject, app.setup), SOFTHSM).when("C_SetAttributeValue", set(l3)).then("CKR_ATTRIBUTE_TYPE_INVALID", ["AttributesChanged"]);
      expect(getLabel(app.get(), h.rw!, h.o!)).toBe("L3");
    });
    it("softhsm2: a token object is atomic", () => {
      const app = capture();
      const { h } = given(steps(setups.token, create("o", true, false), app.setup), SOFTHSM).when("C_SetAttributeValue", set(l3)).then("CKR_ATTRIBUTE_TYPE_INVALID");
      expect(getLabel(app.get(), h.rw!, h.o!)).toBe("o");
    });
  });


  it("replays ObjectTests::testSetAttributeValue", () => {
    for (const [, opts] of PROFILES) {
      const objects = steps(fourKinds, create("nm", false, false, "ro", [attr(CK.CKA_MODIFIABLE, F)]));
      given(objects, opts).when("C_SetAttributeValue", setLabel("ro", "sPub")).then("CKR_OK");
      given(objects, opts).when("C_SetAttributeValue", setLabel("ro", "sPriv")).then("CKR_OK");
      given(objects, opts).when("C_SetAttributeValue", setLabel("ro", "tPub")).then("CKR_SESSION_READ_ONLY");
      given(objects, opts).when("C_SetAttributeValue", setLabel("rw", "tPub")).then("CKR_OK");
      given(objects, opts).when("C_SetAttributeValue", setLabel("ro", "tPriv")).then("CKR_SESSION_READ_ONLY");
      given(objects, opts).when("C_SetAttributeValue", setLabel("rw", "tPriv")).then("CKR_OK");
      given(objects, opts).when("C_SetAttributeValue", setLabel("ro", "nm")).then("CKR_ACTION_PROHIBITED");
      const relabelled = (c: Call, h: Record<string, number>) => void ok(c("C_SetAttributeValue", setLabel("ro", "sPub")(h)));
      const q = given(steps(objects, relabelled), opts)
        .when("C_GetAttributeValue", (h) => ({ hSession: h.ro!, hObject: h.sPub!, template: [attr(CK.CKA_LABEL, null)] }))
        .then("CKR_OK");
      expect(q.out.attrs[0]!.length).toBe(38);
      const r = given(steps(objects, relabelled), opts)
        .when("C_GetAttributeValue", (h) => ({ hSession: h.ro!, hObject: h.sPub!, template: [attr(CK.CKA_LABEL, new Uint8Array(64))] }))
        .then("CKR_OK");
      expect(r.out.attrs[0]).toEqual({ type: CK.CKA_LABEL, value: bytes(LABEL38), length: 38 });
    }
  });
});

describe("C_FindObjectsInit", () => {
  it("two rules at once: not initialised wins over a NULL template", () =>
    given().when("C_FindObjectsInit", { hSession: 1, template: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a NULL template wins over an invalid session", () =>
    given(setups.token).when("C_FindObjectsInit", { hSession: 99, template: null }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: a NULL template wins over an active find", () =>
    given(steps(setups.token, findIn("rw"))).when("C_FindObjectsInit", (h) => ({ hSession: h.rw!, template: null })).then("CKR_ARGUMENTS_BAD", []));
  it("checks the session", () => given(setups.token).when("C_FindObjectsInit", { hSession: 99, template: [] }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("one operation per session: a second find, or a find during a digest, is CKR_OPERATION_ACTIVE", () => {
    given(steps(setups.token, findIn("rw"))).when("C_FindObjectsInit", (h) => ({ hSession: h.rw!, template: [] })).then("CKR_OPERATION_ACTIVE", []);
    given(steps(setups.token, digestIn("rw"))).when("C_FindObjectsInit", (h) => ({ hSession: h.rw!, template: [] })).then("CKR_OPERATION_ACTIVE", []);
  });
  it("other sessions are independent", () =>
    given(steps(setups.token, openRW2, digestIn("rw"))).when("C_FindObjectsInit", (h) => ({ hSession: h.rw2!, template: [] })).then("CKR_OK", ["FindStarted"]));
  it("starts a find over the objects already held", () =>
    given(steps(setups.token, create("o", false, false))).when("C_FindObjectsInit", (h) => ({ hSession: h.rw!, template: [] })).then("CKR_OK", ["FindStarted"]));
  it.each(PROFILES)("%s: after the last session closed, a find issues a new handle", (_, opts) => {
    const reopen: Setup = (c, h) => {
      ok(c("C_CloseSession", { hSession: h.rw! }));
      h.rw = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession;
    };
    const { sim, h } = given(steps(setups.token, create("t", true, false), reopen), opts)
      .when("C_FindObjectsInit", (h) => ({ hSession: h.rw!, template: [] }))
      .then("CKR_OK");
    const facts = [...sim.store.read(sim.lastSeq)][0]!.facts;
    const issued = facts.filter((f) => f.type === "ObjectHandleIssued");
    expect(issued).toHaveLength(1);
    expect((issued[0] as { handle: number }).handle).not.toBe(h.t);
  });

  describe("matching (notes §5)", () => {
    const objs = steps(
      setups.token,
      create("s", false, false, "rw", [], "same"),
      create("t", true, false, "rw", [], "same"),
      createWith("e", PUBLIC_SESSION),
    );
    const found = (template: { type: number; value: Uint8Array | null }[], opts = {}) => {
      const app = capture();
      const { h } = given(steps(objs, app.setup), opts).when("C_FindObjectsInit", (h) => ({ hSession: h.rw!, template })).then("CKR_OK");
      const names = Object.fromEntries(["s", "t", "e"].map((n) => [h[n]!, n]));
      return ok(app.get()("C_FindObjects", { hSession: h.rw!, maxCount: 10 })).handles.map((x) => names[x] ?? x);
    };
    it("an empty template matches everything the session may see", () => expect(found([])).toEqual(["s", "t", "e"]));
    it("bytes match exactly; a prefix does not", () => {
      expect(found([attr(CK.CKA_LABEL, bytes("same"))])).toEqual(["s", "t"]);
      expect(found([attr(CK.CKA_LABEL, bytes("sam"))])).toEqual([]);
    });
    it("a length-0 entry matches empty values", () => {
      expect(found([attr(CK.CKA_LABEL, null)])).toEqual(["e"]);
      expect(found([attr(CK.CKA_LABEL, new Uint8Array(0))])).toEqual(["e"]);
    });
    it("an attribute the object does not have matches nothing, and is no error", () => {
      expect(found([attr(CK.CKA_SIGN, T)])).toEqual([]);
      expect(found([attr(0x12345, T)])).toEqual([]);
    });
    it("a bool byte 0x02 counts as false in a find", () => expect(found([attr(CK.CKA_TOKEN, Uint8Array.of(2))])).toEqual(["s", "e"]));
    it("a bool of the wrong size matches nothing", () => expect(found([attr(CK.CKA_TOKEN, Uint8Array.of(1, 0))])).toEqual([]));
    it("a 4-byte CKA_CLASS matches nothing", () => expect(found([attr(CK.CKA_CLASS, new Uint8Array(4))])).toEqual([]));
    it("an attribute twice with different values matches nothing; with the same value it matches", () => {
      expect(found([attr(CK.CKA_TOKEN, T), attr(CK.CKA_TOKEN, F)])).toEqual([]);
      expect(found([attr(CK.CKA_TOKEN, T), attr(CK.CKA_TOKEN, T)])).toEqual(["t"]);
    });
    it("results come in ascending handle order, not in creation order", () => {
      const app = capture();
      const reopen: Setup = (c, h) => {
        ok(c("C_CloseSession", { hSession: h.rw! }));
        h.rw = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession;
      };
      // The token object is created first, but is re-found (new handle) after a session object got its handle.
      const { h } = given(steps(setups.token, create("t", true, false), reopen, create("s", false, false), app.setup))
        .when("C_FindObjectsInit", (h) => ({ hSession: h.rw!, template: [] }))
        .then("CKR_OK");
      const handles = ok(app.get()("C_FindObjects", { hSession: h.rw!, maxCount: 10 })).handles;
      expect(handles).toHaveLength(2);
      expect(handles[0]).toBe(h.s);
      expect(handles[1]).toBeGreaterThan(h.s!);
    });
  });

  describe("visibility", () => {
    const foundBy = (setup: Setup, session: string, opts = {}, via: "app" | "app2" = "app") => {
      const calls = { app: capture(), app2: undefined as unknown as Call };
      const grab: Setup = (c, _h, m) => {
        calls.app.setup(c, _h, m);
        calls.app2 = m.app2;
      };
      const { h } = given(steps(setup, grab), opts).when("C_FindObjectsInit", (h) => ({ hSession: h[session]!, template: [] }), via).then("CKR_OK");
      const c = via === "app" ? calls.app.get() : calls.app2;
      return { handles: ok(c("C_FindObjects", { hSession: h[session]!, maxCount: 10 })).handles, h };
    };
    const four = steps(setups.token, loginUser, create("sPub", false, false), create("sPriv", false, true), create("tPub", true, false), create("tPriv", true, true));
    it("private objects are hidden from public sessions", () => {
      const { handles, h } = foundBy(steps(four, (c, h) => void ok(c("C_Logout", { hSession: h.rw! }))), "rw");
      expect(handles).toEqual([h.sPub, h.tPub]);
    });
    it("the SO counts as public: it finds only public objects", () => {
      const { handles, h } = foundBy(steps(four, (c, h) => void ok(c("C_Logout", { hSession: h.rw! })), loginSO), "rw");
      expect(handles).toEqual([h.sPub, h.tPub]);
    });
    it("a user session sees all four", () => {
      const { handles, h } = foundBy(four, "rw");
      expect(handles).toEqual([h.sPub, h.sPriv, h.tPub, h.tPriv]);
    });
    it("session objects are seen from every session of the application on the slot", () => {
      const { handles, h } = foundBy(steps(setups.token, openRO, create("o", false, false)), "ro");
      expect(handles).toEqual([h.o]);
    });
    it("a session on another slot does not find them (default, slots: 2)", () => {
      const slot1: Setup = (c, h) => {
        ok(c("C_InitToken", { slotID: 1, pin: SO_PIN, label: "one" }));
        h.s1 = ok(c("C_OpenSession", { slotID: 1, flags: RO })).hSession;
      };
      expect(foundBy(steps(setups.token, create("o", false, false), create("t", true, false), slot1), "s1", TWO_SLOTS).handles).toEqual([]);
    });
    it.each(PROFILES)("%s: another application finds the token's objects, not this application's session objects", (_, opts) => {
      const { handles } = foundBy(steps(setups.token, create("s", false, false), create("t", true, false), app2Session), "s2", opts, "app2");
      expect(handles).toHaveLength(1);
    });
    it("default: another application started earlier sees a token object created later", () => {
      const { handles } = foundBy(steps(setups.token, app2Session, create("t", true, false)), "s2", {}, "app2");
      expect(handles).toEqual([1]);
    });
  });
});

describe("C_FindObjects", () => {
  const three = steps(setups.token, create("a", false, false), create("b", false, false), create("c", false, false));
  it("two rules at once: not initialised wins over a NULL phObject", () =>
    given().when("C_FindObjects", { hSession: 1, maxCount: 1, phObject: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a NULL phObject wins over an invalid session", () =>
    given(setups.token).when("C_FindObjects", { hSession: 99, maxCount: 1, phObject: null }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: an invalid session wins over no find", () =>
    given(setups.token).when("C_FindObjects", { hSession: 99, maxCount: 1 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("without a find: CKR_OPERATION_NOT_INITIALIZED; during a digest too", () => {
    given(setups.token).when("C_FindObjects", (h) => ({ hSession: h.rw!, maxCount: 1 })).then("CKR_OPERATION_NOT_INITIALIZED", []);
    given(steps(setups.token, digestIn("rw"))).when("C_FindObjects", (h) => ({ hSession: h.rw!, maxCount: 1 })).then("CKR_OPERATION_NOT_INITIALIZED", []);
  });
  it("pages through the snapshot, then answers nothing", () => {
    const page1 = given(steps(three, findIn("rw"))).when("C_FindObjects", (h) => ({ hSession: h.rw!, maxCount: 2 })).then("CKR_OK", ["FindAdvanced"]);
    expect(page1.out.handles).toEqual([page1.h.a, page1.h.b]);
    const next: Setup = (c, h) => void ok(c("C_FindObjects", { hSession: h.rw!, maxCount: 2 }));
    const page2 = given(steps(three, findIn("rw"), next)).when("C_FindObjects", (h) => ({ hSession: h.rw!, maxCount: 2 })).then("CKR_OK", ["FindAdvanced"]);
    expect(page2.out.handles).toEqual([page2.h.c]);
    const page3 = given(steps(three, findIn("rw"), next, next)).when("C_FindObjects", (h) => ({ hSession: h.rw!, maxCount: 2 })).then("CKR_OK", []);
    expect(page3.out.handles).toEqual([]);
  });
  it("maxCount 0 answers nothing and keeps the find", () => {
    const { out } = given(steps(three, findIn("rw"))).when("C_FindObjects", (h) => ({ hSession: h.rw!, maxCount: 0 })).then("CKR_OK", []);
    expect(out.handles).toEqual([]);
  });
  it("an object created during the find is not in it", () => {
    const { out, h } = given(steps(setups.token, create("a", false, false), findIn("rw"), create("late", false, false)))
      .when("C_FindObjects", (h) => ({ hSession: h.rw!, maxCount: 10 }))
      .then("CKR_OK", ["FindAdvanced"]);
    expect(out.handles).toEqual([h.a]);
  });
  it.each(PROFILES)("%s: a find is a snapshot: after a logout it still returns the private handles found while logged in", (_, opts) => {
    const app = capture();
    const { out, h } = given(
      steps(setups.token, loginUser, create("tpriv", true, true), create("tpub", true, false), findIn("rw"), (c, h) => void ok(c("C_Logout", { hSession: h.rw! })), app.setup),
      opts,
    )
      .when("C_FindObjects", (h) => ({ hSession: h.rw!, maxCount: 10 }))
      .then("CKR_OK");
    expect(out.handles).toEqual([h.tpriv, h.tpub]);
    expect(app.get()("C_GetAttributeValue", { hSession: h.rw!, hObject: h.tpriv!, template: [] }).rv).toBe("CKR_OBJECT_HANDLE_INVALID");
  });
  it("returns the same handle for an object already held", () => {
    const { out, h } = given(steps(setups.token, create("t", true, false), findIn("rw"))).when("C_FindObjects", (h) => ({ hSession: h.rw!, maxCount: 10 })).then("CKR_OK", ["FindAdvanced"]);
    expect(out.handles).toEqual([h.t]);
  });
  it("replays ObjectTests::testFindObjects", () => {
    for (const [, opts] of PROFILES) {
      const lbl = [attr(CK.CKA_LABEL, bytes("find me"))];
      const relabel = (session: string, obj: string): Setup => (c, h) => void ok(c("C_SetAttributeValue", { hSession: h[session]!, hObject: h[obj]!, template: lbl }));
      const objects = steps(
        fourKinds,
        relabel("ro", "sPub"),
        relabel("ro", "sPriv"),
        relabel("rw", "tPub"),
        relabel("rw", "tPriv"),
      );
      const count = (setup: Setup, session: string) =>
        given(steps(setup, findIn(session, lbl)), opts).when("C_FindObjects", (h) => ({ hSession: h[session]!, maxCount: 16 })).then("CKR_OK").out.handles.length;
      const logout: Setup = (c, h) => void ok(c("C_Logout", { hSession: h.ro! }));
      const closeRO: Setup = (c, h) => void ok(c("C_CloseSession", { hSession: h.ro! }));
      const loginRW: Setup = (c, h) => void ok(c("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN }));
      expect(count(objects, "ro")).toBe(4);
      expect(count(steps(objects, logout), "ro")).toBe(2);
      expect(count(steps(objects, logout, closeRO), "rw")).toBe(1);
      expect(count(steps(objects, logout, closeRO, loginRW), "rw")).toBe(2);
    }
  });
});

describe("C_FindObjectsFinal", () => {
  it("two rules at once: not initialised wins over an invalid session", () =>
    given().when("C_FindObjectsFinal", { hSession: 99 }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: an invalid session wins over no find", () =>
    given(setups.token).when("C_FindObjectsFinal", { hSession: 99 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("ends the find", () => given(steps(setups.token, findIn("rw"))).when("C_FindObjectsFinal", (h) => ({ hSession: h.rw! })).then("CKR_OK", ["OperationEnded"]));
  it("a second Final, or a Final during a digest: CKR_OPERATION_NOT_INITIALIZED", () => {
    const final: Setup = (c, h) => void ok(c("C_FindObjectsFinal", { hSession: h.rw! }));
    given(steps(setups.token, findIn("rw"), final)).when("C_FindObjectsFinal", (h) => ({ hSession: h.rw! })).then("CKR_OPERATION_NOT_INITIALIZED", []);
    given(steps(setups.token, digestIn("rw"))).when("C_FindObjectsFinal", (h) => ({ hSession: h.rw! })).then("CKR_OPERATION_NOT_INITIALIZED", []);
  });
  it("after the Final a digest may start, and FindObjects is no longer initialised", () => {
    const final: Setup = (c, h) => void ok(c("C_FindObjectsFinal", { hSession: h.rw! }));
    given(steps(setups.token, findIn("rw"), final)).when("C_DigestInit", (h) => ({ hSession: h.rw!, mechanism: { mechanism: CK.CKM_SHA256 } })).then("CKR_OK", ["DigestStarted"]);
    given(steps(setups.token, findIn("rw"), final)).when("C_FindObjects", (h) => ({ hSession: h.rw!, maxCount: 1 })).then("CKR_OPERATION_NOT_INITIALIZED", []);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// X.509 certificates and the key/certificate attributes of the table (docs/notes/softhsm-keys.md §4)

const cert = (more: { type: number; value: Uint8Array | null }[] = []) => [
  attr(CK.CKA_CLASS, ulong(CK.CKO_CERTIFICATE)),
  attr(CK.CKA_CERTIFICATE_TYPE, ulong(CK.CKC_X_509)),
  attr(CK.CKA_SUBJECT, bytes("CN=test")),
  attr(CK.CKA_VALUE, bytes("Test2")),
  ...more,
];
const readAttr = (c: Call, hSession: number, hObject: number, type: number) =>
  Buffer.from(ok(c("C_GetAttributeValue", { hSession, hObject, template: [attr(type, new Uint8Array(64))] })).attrs[0]!.value!).toString("hex");

describe.each(PROFILES)("CKO_CERTIFICATE (%s)", (_name, opts) => {
  it("public by default: created in an RW public session; CHECK_VALUE = SHA-1(value)[0..3] (2b84f6), NAME_HASH_ALGORITHM SHA-1, CATEGORY 0", () => {
    const cap = capture();
    const r = given(steps(setups.token, cap.setup), opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: cert() })).then("CKR_OK", ["ObjectCreated"]);
    const c = cap.get();
    const rd = (t: number) => readAttr(c, r.h.rw!, r.out.hObject, t);
    expect([rd(CK.CKA_PRIVATE), rd(CK.CKA_CHECK_VALUE), rd(CK.CKA_NAME_HASH_ALGORITHM), rd(CK.CKA_CERTIFICATE_CATEGORY), rd(CK.CKA_TRUSTED)]).toEqual([
      "00",
      "2b84f6",
      Buffer.from(ulong(CK.CKM_SHA_1)).toString("hex"),
      Buffer.from(ulong(0)).toString("hex"),
      "00",
    ]);
    // A certificate's value is never sensitive: it reads back, and it is not sealed in the log.
    expect(rd(CK.CKA_VALUE)).toBe(Buffer.from("Test2").toString("hex"));
  });
  it("SUBJECT and VALUE are required (CKR_TEMPLATE_INCOMPLETE); both may be empty; nothing is parsed (a truncated DER is fine)", () => {
    given(setups.token, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: cert().filter((a) => a.type !== CK.CKA_SUBJECT) })).then("CKR_TEMPLATE_INCOMPLETE");
    given(setups.token, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: cert().filter((a) => a.type !== CK.CKA_VALUE) })).then("CKR_TEMPLATE_INCOMPLETE");
    given(setups.token, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: [...cert(), attr(CK.CKA_SUBJECT, new Uint8Array(0)), attr(CK.CKA_VALUE, Uint8Array.of(0x30, 0x82, 0xff, 0xff))] })).then("CKR_OK");
  });
  it("a missing CERTIFICATE_TYPE is TEMPLATE_INCOMPLETE before the access check; another type VALUE_INVALID after it", () => {
    given(steps(setups.token, openRO), opts).when("C_CreateObject", (h) => ({ hSession: h.ro!, template: cert([attr(CK.CKA_TOKEN, T)]).filter((a) => a.type !== CK.CKA_CERTIFICATE_TYPE) })).then("CKR_TEMPLATE_INCOMPLETE", []);
    given(steps(setups.token, openRO), opts).when("C_CreateObject", (h) => ({ hSession: h.ro!, template: cert([attr(CK.CKA_TOKEN, T), attr(CK.CKA_CERTIFICATE_TYPE, ulong(CK.CKC_X_509_ATTR_CERT))]) })).then("CKR_SESSION_READ_ONLY", []);
    given(setups.token, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: cert([attr(CK.CKA_CERTIFICATE_TYPE, ulong(CK.CKC_X_509_ATTR_CERT))]) })).then("CKR_ATTRIBUTE_VALUE_INVALID", []);
  });
  it("key attributes are not certificate attributes: CKA_KEY_TYPE, CKA_SENSITIVE, CKA_VALUE_LEN are CKR_ATTRIBUTE_TYPE_INVALID", () => {
    for (const [t, v] of [[CK.CKA_SENSITIVE, T], [CK.CKA_VALUE_LEN, ulong(1)], [CK.CKA_KEY_TYPE, ulong(CK.CKK_AES)]] as const) {
      given(setups.token, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: cert([attr(t, v)]) })).then("CKR_ATTRIBUTE_TYPE_INVALID");
    }
  });
  it("a CHECK_VALUE entry: empty clears it; any other value, even the right one, is CKR_GENERAL_ERROR (SoftHSM's writer)", () => {
    const cap = capture();
    const r = given(steps(setups.token, cap.setup), opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: cert([attr(CK.CKA_CHECK_VALUE, new Uint8Array(0))]) })).then("CKR_OK");
    expect(readAttr(cap.get(), r.h.rw!, r.out.hObject, CK.CKA_CHECK_VALUE)).toBe("");
    given(setups.token, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: cert([attr(CK.CKA_CHECK_VALUE, Uint8Array.of(0x2b, 0x84, 0xf6))]) })).then("CKR_GENERAL_ERROR");
  });
  it("C_SetAttributeValue: ISSUER, SERIAL_NUMBER, ID, LABEL settable; dates, SUBJECT, VALUE, URL, TRUSTED read-only", () => {
    const cap = capture();
    const r = given(steps(setups.token, cap.setup), opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: cert() })).then("CKR_OK");
    const c = cap.get();
    const s = (t: number, v: Uint8Array) => c("C_SetAttributeValue", { hSession: r.h.rw!, hObject: r.out.hObject, template: [attr(t, v)] }).rv;
    for (const t of [CK.CKA_ISSUER, CK.CKA_SERIAL_NUMBER, CK.CKA_ID, CK.CKA_LABEL]) expect(s(t, bytes("x")), `0x${t.toString(16)}`).toBe("CKR_OK");
    for (const t of [CK.CKA_START_DATE, CK.CKA_SUBJECT, CK.CKA_VALUE, CK.CKA_URL]) expect(s(t, bytes("20261126")), `0x${t.toString(16)}`).toBe("CKR_ATTRIBUTE_READ_ONLY");
    expect(s(CK.CKA_TRUSTED, F)).toBe("CKR_ATTRIBUTE_READ_ONLY");
  });
  it("TRUSTED=true only for the SO; a trusted certificate then takes no change at all (set or copy), an empty template still works", () => {
    given(setups.token, opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: cert([attr(CK.CKA_TRUSTED, T)]) })).then("CKR_ATTRIBUTE_READ_ONLY");
    const cap = capture();
    const r = given(steps(setups.token, loginSO, cap.setup), opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: cert([attr(CK.CKA_TRUSTED, T), attr(CK.CKA_LABEL, bytes("later entries still apply"))]) })).then("CKR_OK");
    const c = cap.get();
    const h = { hSession: r.h.rw!, hObject: r.out.hObject };
    expect(c("C_SetAttributeValue", { ...h, template: [attr(CK.CKA_LABEL, bytes("x"))] }).rv).toBe("CKR_ATTRIBUTE_READ_ONLY");
    expect(c("C_SetAttributeValue", { ...h, template: [] }).rv).toBe("CKR_OK");
    expect(c("C_CopyObject", { ...h, template: [attr(CK.CKA_TOKEN, F)] }).rv).toBe("CKR_ATTRIBUTE_READ_ONLY");
    const copy = ok(c("C_CopyObject", { ...h, template: [] })).hObject;
    expect(readAttr(c, r.h.rw!, copy, CK.CKA_TRUSTED)).toBe("01");
  });
  it("C_GetObjectSize of a key or a certificate is CK_UNAVAILABLE_INFORMATION", () => {
    const cap = capture();
    const r = given(steps(setups.token, cap.setup), opts).when("C_CreateObject", (h) => ({ hSession: h.rw!, template: cert() })).then("CKR_OK");
    expect(ok(cap.get()("C_GetObjectSize", { hSession: r.h.rw!, hObject: r.out.hObject })).size).toBe(UNAVAILABLE);
  });
});
