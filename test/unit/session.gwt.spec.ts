/**
 * Session management and login (fact sheet §8-§15, §18 SessionTests / UserTests): C_OpenSession, C_CloseSession,
 * C_CloseAllSessions, C_GetSessionInfo, C_GetOperationState, C_SetOperationState, C_Login, C_Logout. Both profiles
 * where PROFILE_DIFFERENCES says they differ: handle counters, session limits, PIN lockout, C_Logout with nobody
 * logged in. Login state belongs to the application; the token is shared.
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
  CK,
  RO,
  RW,
  SO_PIN,
  USER_PIN,
  type Call,
  type Setup,
  SOFTHSM,
  PROFILES,
  INVALID_SLOT,
  SHA256,
} from "../support/gwt.js";


const ok = <T>(r: { rv: string; out: T }): T => {
  expect(r.rv, "setup step").toBe("CKR_OK");
  return r.out;
};
/** Keeps the setup's caller so a test can look at the state after its `when`. */
function capture() {
  const app = { call: undefined as unknown as Call };
  const setup: Setup = (c) => void (app.call = c);
  return { setup, get: (): Call => app.call };
}
const times = (n: number, s: Setup): Setup => steps(...Array.from({ length: n }, () => s));
const bareToken: Setup = (c) => {
  ok(c("C_Initialize", {}));
  ok(c("C_InitToken", { slotID: 0, pin: SO_PIN, label: "t" }));
};
const openRW2: Setup = (c, h) => void (h.rw2 = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession);
const closeRW: Setup = (c, h) => void ok(c("C_CloseSession", { hSession: h.rw! }));
const wrongUser: Setup = (c, h) => void c("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: "0000" });
const wrongSO: Setup = (c, h) => void c("C_Login", { hSession: h.rw!, userType: CK.CKU_SO, pin: "00000000" });
const firstSlot = (c: Call) => ok(c("C_GetSlotList", { tokenPresent: true, pSlotList: 16 })).slots[0]!;
/** app2 starts after the token exists and opens a session on it (h.s2, on its slot h.slot2). */
const app2Opens =
  (flags: number): Setup =>
  (_c, h, { app2 }) => {
    ok(app2("C_Initialize", {}));
    h.slot2 = firstSlot(app2);
    h.s2 = ok(app2("C_OpenSession", { slotID: h.slot2, flags })).hSession;
  };
const app2Session = app2Opens(RW);
/** Objects created through h.rw (logged in as user first where the object is private). */
const create =
  (name: string, token: boolean, priv: boolean, session = "rw"): Setup =>
  (c, h) =>
    void (h[name] = ok(c("C_CreateObject", { hSession: h[session]!, template: dataTemplate(token, priv, name) })).hObject);
const digestIn =
  (session: string): Setup =>
  (c, h) =>
    void ok(c("C_DigestInit", { hSession: h[session]!, mechanism: SHA256 }));
const findAll = (c: Call, hSession: number): number[] => {
  ok(c("C_FindObjectsInit", { hSession, template: [] }));
  const { handles } = ok(c("C_FindObjects", { hSession, maxCount: 100 }));
  ok(c("C_FindObjectsFinal", { hSession }));
  return handles;
};
const label = (c: Call, hSession: number, hObject: number) =>
  c("C_GetAttributeValue", { hSession, hObject, template: [{ type: CK.CKA_LABEL, value: null }] }).rv;

describe("C_OpenSession", () => {
  it("two rules at once: not initialised wins over a NULL phSession", () =>
    given().when("C_OpenSession", { slotID: 0, flags: RW, phSession: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a NULL phSession wins over an invalid slot", () =>
    given(setups.token).when("C_OpenSession", { slotID: INVALID_SLOT, flags: RW, phSession: null }).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: an invalid slot wins over flags without CKF_SERIAL_SESSION", () =>
    given(setups.token).when("C_OpenSession", { slotID: INVALID_SLOT, flags: 0 }).then("CKR_SLOT_ID_INVALID", []));
  it.each(PROFILES)("%s, two rules at once: flags 0 wins over an uninitialised token", (_, opts) =>
    void given(setups.initialized, opts).when("C_OpenSession", { slotID: 0, flags: 0 }).then("CKR_SESSION_PARALLEL_NOT_SUPPORTED", []));
  it.each(PROFILES)("%s: an uninitialised token is CKR_TOKEN_NOT_RECOGNIZED", (_, opts) =>
    void given(setups.initialized, opts).when("C_OpenSession", { slotID: 0, flags: RW }).then("CKR_TOKEN_NOT_RECOGNIZED", []));
  it("softhsm2: the uninitialised slot added by a size query is not recognised either", () => {
    const sized: Setup = (c) => void ok(c("C_GetSlotList", { tokenPresent: false, pSlotList: null }));
    given(steps(setups.token, sized), SOFTHSM).when("C_OpenSession", { slotID: 1, flags: RO }).then("CKR_TOKEN_NOT_RECOGNIZED", []);
  });
  it("opens a session on a token initialised in this application, at once", () => {
    const { out } = given(bareToken).when("C_OpenSession", { slotID: 0, flags: RO }).then("CKR_OK", ["SessionOpened"]);
    expect(out).toEqual({ hSession: 1 });
  });
  it("ignores unknown flag bits", () => {
    const app = capture();
    const { out } = given(steps(bareToken, app.setup)).when("C_OpenSession", { slotID: 0, flags: RO | 0x100 }).then("CKR_OK", ["SessionOpened"]);
    expect(ok(app.get()("C_GetSessionInfo", { hSession: out.hSession })).flags).toBe(CK.CKF_SERIAL_SESSION);
  });
  it("two rules at once: an RO session while the SO is logged in is refused, whatever else", () =>
    given(steps(setups.token, loginSO), { maxSessions: 1 }).when("C_OpenSession", { slotID: 0, flags: RO }).then("CKR_SESSION_READ_WRITE_SO_EXISTS", []));
  it("an RW session while the SO is logged in starts in CKS_RW_SO_FUNCTIONS", () => {
    const app = capture();
    const { out } = given(steps(setups.token, loginSO, app.setup)).when("C_OpenSession", { slotID: 0, flags: RW }).then("CKR_OK", ["SessionOpened"]);
    expect(ok(app.get()("C_GetSessionInfo", { hSession: out.hSession })).state).toBe(CK.CKS_RW_SO_FUNCTIONS);
  });
  it("a session opened while the user is logged in starts logged in", () => {
    const app = capture();
    const { out } = given(steps(setups.token, loginUser, app.setup)).when("C_OpenSession", { slotID: 0, flags: RO }).then("CKR_OK", ["SessionOpened"]);
    expect(ok(app.get()("C_GetSessionInfo", { hSession: out.hSession })).state).toBe(CK.CKS_RO_USER_FUNCTIONS);
  });
  it.each(PROFILES)("%s: another application's SO login does not block an RO session", (_, opts) =>
    void given(steps(setups.token, loginSO, (_c, h, { app2 }) => {
      ok(app2("C_Initialize", {}));
      h.slot2 = firstSlot(app2);
    }), opts)
      .when("C_OpenSession", (h) => ({ slotID: h.slot2!, flags: RO }), "app2")
      .then("CKR_OK"));

  describe("handles (§8)", () => {
    const withObject = steps(setups.token, create("o", false, false));
    it("softhsm2: one counter: session 1, object 2, next session 3", () => {
      const { out, h } = given(withObject, SOFTHSM).when("C_OpenSession", { slotID: 0, flags: RW }).then("CKR_OK");
      expect([h.rw, h.o, out.hSession]).toEqual([1, 2, 3]);
    });
    it("default: sessions and objects counted separately, each from 1", () => {
      const { out, h } = given(withObject).when("C_OpenSession", { slotID: 0, flags: RW }).then("CKR_OK", ["SessionOpened"]);
      expect([h.rw, h.o, out.hSession]).toEqual([1, 1, 2]);
    });
    it.each(PROFILES)("%s: a closed session's handle is not reused", (_, opts) => {
      const { out } = given(steps(setups.token, closeRW), opts).when("C_OpenSession", { slotID: 0, flags: RW }).then("CKR_OK");
      expect(out.hSession).toBe(2);
    });
  });

  describe("session limits", () => {
    it("default (maxSessions 2): the third session on the token is CKR_SESSION_COUNT", () =>
      given(steps(setups.token, openRO), { maxSessions: 2 }).when("C_OpenSession", { slotID: 0, flags: RO }).then("CKR_SESSION_COUNT", []));
    it("default (maxSessions 2): other applications' sessions count", () =>
      given(steps(setups.token, app2Session), { maxSessions: 2 }).when("C_OpenSession", { slotID: 0, flags: RO }).then("CKR_SESSION_COUNT", []));
    it("default (maxSessions 2): a closed session frees its place", () => {
      const closeRO: Setup = (c, h) => void ok(c("C_CloseSession", { hSession: h.ro! }));
      given(steps(setups.token, openRO, closeRO), { maxSessions: 2 }).when("C_OpenSession", { slotID: 0, flags: RO }).then("CKR_OK", ["SessionOpened"]);
    });
    it("default (maxRwSessions 1): a second RW session is refused, an RO one is not", () => {
      given(setups.token, { maxSessions: 3, maxRwSessions: 1 }).when("C_OpenSession", { slotID: 0, flags: RW }).then("CKR_SESSION_COUNT", []);
      given(setups.token, { maxSessions: 3, maxRwSessions: 1 }).when("C_OpenSession", { slotID: 0, flags: RO }).then("CKR_OK", ["SessionOpened"]);
    });
    it("softhsm2: no limit", () => {
      const many: Setup = times(300, (c) => void ok(c("C_OpenSession", { slotID: 0, flags: RO })));
      const { out } = given(steps(setups.token, many), SOFTHSM).when("C_OpenSession", { slotID: 0, flags: RW }).then("CKR_OK");
      expect(out.hSession).toBe(302);
    });
  });

  it("replays SessionTests::testOpenSession", () => {
    for (const [, opts] of PROFILES) {
      given(undefined, opts).when("C_OpenSession", { slotID: 0, flags: RO }).then("CKR_CRYPTOKI_NOT_INITIALIZED");
      given(bareToken, opts).when("C_OpenSession", { slotID: 0, flags: RO, phSession: null }).then("CKR_ARGUMENTS_BAD");
      given(bareToken, opts).when("C_OpenSession", { slotID: INVALID_SLOT, flags: RO }).then("CKR_SLOT_ID_INVALID");
      given(bareToken, opts).when("C_OpenSession", { slotID: 0, flags: 0 }).then("CKR_SESSION_PARALLEL_NOT_SUPPORTED");
      given(bareToken, opts).when("C_OpenSession", { slotID: 0, flags: RO }).then("CKR_OK");
    }
    // notini: the default profile's second fixed slot, softhsm2's slot added by a size query.
    given(setups.initialized, { slots: 2 }).when("C_OpenSession", { slotID: 1, flags: RO }).then("CKR_TOKEN_NOT_RECOGNIZED");
    const sized: Setup = (c) => void ok(c("C_GetSlotList", { tokenPresent: false, pSlotList: null }));
    given(steps(bareToken, sized), SOFTHSM).when("C_OpenSession", { slotID: 1, flags: RO }).then("CKR_TOKEN_NOT_RECOGNIZED");
  });
});

describe("C_CloseSession", () => {
  it("two rules at once: not initialised wins over an invalid handle", () =>
    given().when("C_CloseSession", { hSession: 0 }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("checks the handle: 0, never issued", () => {
    given(setups.token).when("C_CloseSession", { hSession: 0 }).then("CKR_SESSION_HANDLE_INVALID", []);
    given(setups.token).when("C_CloseSession", { hSession: 2 }).then("CKR_SESSION_HANDLE_INVALID", []);
  });
  it("softhsm2: an object handle is not a session handle", () =>
    given(steps(setups.token, create("o", false, false)), SOFTHSM).when("C_CloseSession", (h) => ({ hSession: h.o! })).then("CKR_SESSION_HANDLE_INVALID", []));
  it("another application's session handle is not the caller's", () =>
    given(steps(setups.token, (_c, _h, { app2 }) => void ok(app2("C_Initialize", {}))))
      .when("C_CloseSession", (h) => ({ hSession: h.rw! }), "app2")
      .then("CKR_SESSION_HANDLE_INVALID", []));
  it("closing a session that is not the last: just the session", () =>
    given(steps(setups.token, openRO)).when("C_CloseSession", (h) => ({ hSession: h.ro! })).then("CKR_OK", ["SessionClosed"]));
  it("closing the last session, nobody logged in: the slot's object handles go too", () =>
    given(setups.token).when("C_CloseSession", (h) => ({ hSession: h.rw! })).then("CKR_OK", ["SessionClosed", "ObjectHandlesInvalidated"]));
  it("closing the last session logs the token out", () => {
    const app = capture();
    given(steps(setups.token, loginUser, app.setup))
      .when("C_CloseSession", (h) => ({ hSession: h.rw! }))
      .then("CKR_OK", ["SessionClosed", "ObjectHandlesInvalidated", "LoggedOut"]);
    const s = ok(app.get()("C_OpenSession", { slotID: 0, flags: RW })).hSession;
    expect(ok(app.get()("C_GetSessionInfo", { hSession: s })).state).toBe(CK.CKS_RW_PUBLIC_SESSION);
  });
  it("closing the SO's last session logs the SO out: an RO session may open again", () => {
    const app = capture();
    given(steps(setups.token, loginSO, app.setup)).when("C_CloseSession", (h) => ({ hSession: h.rw! })).then("CKR_OK");
    expect(app.get()("C_OpenSession", { slotID: 0, flags: RO }).rv).toBe("CKR_OK");
  });
  it("closing a session that is not the last keeps the login", () => {
    const app = capture();
    const { h } = given(steps(setups.token, openRO, loginUser, app.setup)).when("C_CloseSession", (h) => ({ hSession: h.ro! })).then("CKR_OK", ["SessionClosed"]);
    expect(ok(app.get()("C_GetSessionInfo", { hSession: h.rw! })).state).toBe(CK.CKS_RW_USER_FUNCTIONS);
  });

  describe.each(PROFILES)("%s: lifetime of objects", (_, opts) => {
    const two = steps(setups.token, openRW2, create("o1", false, false, "rw"), create("o2", false, false, "rw2"), closeRW);
    it("the closed session's session objects are destroyed", () =>
      given(two, opts)
        .when("C_GetAttributeValue", (h) => ({ hSession: h.rw2!, hObject: h.o1!, template: [{ type: CK.CKA_LABEL, value: null }] }))
        .then("CKR_OBJECT_HANDLE_INVALID"));
    it("another session's session objects survive", () =>
      given(two, opts)
        .when("C_GetAttributeValue", (h) => ({ hSession: h.rw2!, hObject: h.o2!, template: [{ type: CK.CKA_LABEL, value: null }] }))
        .then("CKR_OK"));
    it("a find no longer sees the closed session's objects", () => {
      const app = capture();
      const { h } = given(steps(two, app.setup), opts).when("C_FindObjectsInit", (h) => ({ hSession: h.rw2!, template: [] })).then("CKR_OK");
      expect(ok(app.get()("C_FindObjects", { hSession: h.rw2!, maxCount: 10 })).handles).toEqual([h.o2]);
    });
    it("after the last session closes, a token object handle is CKR_OBJECT_HANDLE_INVALID", () =>
      given(steps(setups.token, create("t", true, false), closeRW, openRW2), opts)
        .when("C_GetAttributeValue", (h) => ({ hSession: h.rw2!, hObject: h.t!, template: [{ type: CK.CKA_LABEL, value: null }] }))
        .then("CKR_OBJECT_HANDLE_INVALID"));
    it("after the last session closes, a re-find gives the token object a NEW handle", () => {
      const app = capture();
      const { h } = given(steps(setups.token, create("t", true, false), closeRW, openRW2, app.setup), opts)
        .when("C_FindObjectsInit", (h) => ({ hSession: h.rw2!, template: [] }))
        .then("CKR_OK");
      const found = ok(app.get()("C_FindObjects", { hSession: h.rw2!, maxCount: 10 })).handles;
      expect(found).toHaveLength(1);
      expect(found[0]).not.toBe(h.t);
      expect(label(app.get(), h.rw2!, found[0]!)).toBe("CKR_OK");
    });
    it("closing a session that is not the last keeps token object handles", () =>
      given(steps(setups.token, openRW2, create("t", true, false), closeRW), opts)
        .when("C_GetAttributeValue", (h) => ({ hSession: h.rw2!, hObject: h.t!, template: [{ type: CK.CKA_LABEL, value: null }] }))
        .then("CKR_OK"));
  });

  it("closing a session ends its operation, not other sessions' operations", () => {
    const { snapshot } = given(steps(setups.token, openRW2, digestIn("rw"), digestIn("rw2")))
      .when("C_CloseSession", (h) => ({ hSession: h.rw! }))
      .then("CKR_OK", ["SessionClosed"]);
    const sessions = snapshot().apps[0]!.sessions;
    expect(sessions.map((s) => [s.handle, s.op?.kind ?? null, s.chart])).toEqual([[2, "digest", "digesting"]]);
  });
  it("the other session's digest still finishes", () =>
    given(steps(setups.token, openRW2, digestIn("rw"), digestIn("rw2"), closeRW))
      .when("C_DigestFinal", (h) => ({ hSession: h.rw2!, outLen: 32 }))
      .then("CKR_OK", ["OperationEnded"]));
  it.each(PROFILES)("%s: closing an application's last session does not log another application out", (_, opts) => {
    const app2Login: Setup = (_c, h, { app2 }) => void ok(app2("C_Login", { hSession: h.s2!, userType: CK.CKU_USER, pin: USER_PIN }));
    const { out } = given(steps(setups.token, app2Session, app2Login, closeRW), opts)
      .when("C_GetSessionInfo", (h) => ({ hSession: h.s2! }), "app2")
      .then("CKR_OK");
    expect(out.state).toBe(CK.CKS_RW_USER_FUNCTIONS);
  });
  it("replays SessionTests::testCloseSession", () => {
    for (const [, opts] of PROFILES) {
      const ro: Setup = (c, h) => void (h.ro = ok(c("C_OpenSession", { slotID: 0, flags: RO })).hSession);
      const closeRO: Setup = (c, h) => void ok(c("C_CloseSession", { hSession: h.ro! }));
      given(undefined, opts).when("C_CloseSession", { hSession: 0 }).then("CKR_CRYPTOKI_NOT_INITIALIZED");
      given(steps(bareToken, ro), opts).when("C_CloseSession", { hSession: 0 }).then("CKR_SESSION_HANDLE_INVALID");
      given(steps(bareToken, ro), opts).when("C_CloseSession", (h) => ({ hSession: h.ro! + 1 })).then("CKR_SESSION_HANDLE_INVALID");
      given(steps(bareToken, ro), opts).when("C_CloseSession", (h) => ({ hSession: h.ro! })).then("CKR_OK");
      given(steps(bareToken, ro, closeRO), opts).when("C_CloseSession", (h) => ({ hSession: h.ro! })).then("CKR_SESSION_HANDLE_INVALID");
    }
  });
});

describe("C_CloseAllSessions", () => {
  it("two rules at once: not initialised wins over an invalid slot", () =>
    given().when("C_CloseAllSessions", { slotID: INVALID_SLOT }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("checks the slot", () => given(setups.token).when("C_CloseAllSessions", { slotID: INVALID_SLOT }).then("CKR_SLOT_ID_INVALID", []));
  it("closes every session of the application on the slot, and logs out", () => {
    const app = capture();
    const { h } = given(steps(setups.token, openRO, loginUser, app.setup))
      .when("C_CloseAllSessions", { slotID: 0 })
      .then("CKR_OK", ["AllSessionsClosed", "ObjectHandlesInvalidated", "LoggedOut"]);
    expect(app.get()("C_GetSessionInfo", { hSession: h.rw! }).rv).toBe("CKR_SESSION_HANDLE_INVALID");
    expect(app.get()("C_GetSessionInfo", { hSession: h.ro! }).rv).toBe("CKR_SESSION_HANDLE_INVALID");
    const s = ok(app.get()("C_OpenSession", { slotID: 0, flags: RW })).hSession;
    expect(ok(app.get()("C_GetSessionInfo", { hSession: s })).state).toBe(CK.CKS_RW_PUBLIC_SESSION);
    // Nobody is logged in now: the default profile's C_Logout says so.
    expect(app.get()("C_Logout", { hSession: s }).rv).toBe("CKR_USER_NOT_LOGGED_IN");
  });
  it.each(PROFILES)("%s: is OK on a slot with no sessions, and still drops the slot's handles", (_, opts) =>
    void given(steps(setups.token, closeRW), opts).when("C_CloseAllSessions", { slotID: 0 }).then("CKR_OK", ["AllSessionsClosed", "ObjectHandlesInvalidated"]));
  it.each(PROFILES)("%s: destroys the session objects of every session on the slot", (_, opts) => {
    const app = capture();
    given(steps(setups.token, openRW2, create("o1", false, false, "rw"), create("o2", false, false, "rw2"), app.setup), opts)
      .when("C_CloseAllSessions", { slotID: 0 })
      .then("CKR_OK");
    const s = ok(app.get()("C_OpenSession", { slotID: 0, flags: RW })).hSession;
    expect(findAll(app.get(), s)).toEqual([]);
  });
  it("leaves other slots alone (default, slots: 2)", () => {
    const app = capture();
    const slot1: Setup = (c, h) => {
      ok(c("C_InitToken", { slotID: 1, pin: SO_PIN, label: "one" }));
      h.s1 = ok(c("C_OpenSession", { slotID: 1, flags: RW })).hSession;
      ok(c("C_Login", { hSession: h.s1, userType: CK.CKU_SO, pin: SO_PIN }));
    };
    const { h } = given(steps(setups.token, slot1, app.setup), { slots: 2 }).when("C_CloseAllSessions", { slotID: 0 }).then("CKR_OK");
    expect(ok(app.get()("C_GetSessionInfo", { hSession: h.s1! })).state).toBe(CK.CKS_RW_SO_FUNCTIONS);
  });
  it.each(PROFILES)("%s: leaves other applications' sessions alone", (_, opts) => {
    const { sim } = given(steps(setups.token, app2Session), opts).when("C_CloseAllSessions", { slotID: 0 }).then("CKR_OK");
    expect(sim.read.sessions.get(2)!.size).toBe(1);
  });
  it("ends the operations of the sessions it closes (a re-initialised application starts idle)", () => {
    const app = capture();
    given(steps(setups.token, digestIn("rw"), app.setup)).when("C_CloseAllSessions", { slotID: 0 }).then("CKR_OK");
    ok(app.get()("C_Finalize", {}));
    ok(app.get()("C_Initialize", {}));
    const s = ok(app.get()("C_OpenSession", { slotID: 0, flags: RW })).hSession;
    expect(s).toBe(1);
    expect(app.get()("C_DigestUpdate", { hSession: s, data: Uint8Array.of(1) }).rv).toBe("CKR_OPERATION_NOT_INITIALIZED");
  });
  it("replays SessionTests::testCloseAllSessions", () => {
    const ro: Setup = (c, h) => void (h.ro = ok(c("C_OpenSession", { slotID: 0, flags: RO })).hSession);
    for (const [name, opts] of PROFILES) {
      // notini: the default profile's second fixed slot; softhsm2's slot added by a size query.
      const notini: Setup = (c, h) => {
        if (name === "softhsm2") ok(c("C_GetSlotList", { tokenPresent: false, pSlotList: null }));
        h.notini = 1;
      };
      const o = name === "default" ? { slots: 2 } : opts;
      given(undefined, o).when("C_CloseAllSessions", { slotID: 0 }).then("CKR_CRYPTOKI_NOT_INITIALIZED");
      given(steps(bareToken, ro, notini), o).when("C_CloseAllSessions", { slotID: INVALID_SLOT }).then("CKR_SLOT_ID_INVALID");
      given(steps(bareToken, ro, notini), o).when("C_CloseAllSessions", (h) => ({ slotID: h.notini! })).then("CKR_OK");
      const closeNotini: Setup = (c, h) => void ok(c("C_CloseAllSessions", { slotID: h.notini! }));
      given(steps(bareToken, ro, notini, closeNotini), o).when("C_GetSessionInfo", (h) => ({ hSession: h.ro! })).then("CKR_OK");
      given(steps(bareToken, ro, notini, closeNotini), o).when("C_CloseAllSessions", { slotID: 0 }).then("CKR_OK");
      const closeAll: Setup = (c) => void ok(c("C_CloseAllSessions", { slotID: 0 }));
      given(steps(bareToken, ro, notini, closeNotini, closeAll), o).when("C_CloseSession", (h) => ({ hSession: h.ro! })).then("CKR_SESSION_HANDLE_INVALID");
    }
  });
});

describe("C_GetSessionInfo", () => {
  it("two rules at once: not initialised wins over a NULL pInfo", () =>
    given().when("C_GetSessionInfo", { hSession: 1, pInfo: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: an invalid session wins over a NULL pInfo", () =>
    given(setups.token).when("C_GetSessionInfo", { hSession: 99, pInfo: null }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("checks pInfo", () => given(setups.token).when("C_GetSessionInfo", (h) => ({ hSession: h.rw!, pInfo: null })).then("CKR_ARGUMENTS_BAD", []));
  it.each([
    ["RO public", openRO, "ro", CK.CKS_RO_PUBLIC_SESSION, CK.CKF_SERIAL_SESSION],
    ["RW public", () => {}, "rw", CK.CKS_RW_PUBLIC_SESSION, RW],
    ["RO user", steps(openRO, loginUser), "ro", CK.CKS_RO_USER_FUNCTIONS, CK.CKF_SERIAL_SESSION],
    ["RW user", loginUser, "rw", CK.CKS_RW_USER_FUNCTIONS, RW],
    ["RW SO", loginSO, "rw", CK.CKS_RW_SO_FUNCTIONS, RW],
  ] as const)("%s: state and flags", (_, more, session, state, flags) => {
    const { out } = given(steps(setups.token, more as Setup)).when("C_GetSessionInfo", (h) => ({ hSession: h[session]! })).then("CKR_OK", []);
    expect(out).toEqual({ slotID: 0, state, flags, deviceError: 0 });
  });
  it("a login through one session changes the state of all the application's sessions on the slot", () => {
    const loginViaRO: Setup = (c, h) => void ok(c("C_Login", { hSession: h.ro!, userType: CK.CKU_USER, pin: USER_PIN }));
    const { out } = given(steps(setups.token, openRO, loginViaRO)).when("C_GetSessionInfo", (h) => ({ hSession: h.rw! })).then("CKR_OK", []);
    expect(out.state).toBe(CK.CKS_RW_USER_FUNCTIONS);
  });
  it.each(PROFILES)("%s: login state is per application: another application's session stays public", (_, opts) => {
    const { out } = given(steps(setups.token, app2Session, loginUser), opts).when("C_GetSessionInfo", (h) => ({ hSession: h.s2! }), "app2").then("CKR_OK");
    expect(out.state).toBe(CK.CKS_RW_PUBLIC_SESSION);
  });
  it("login state is per slot (default, slots: 2)", () => {
    const slot1: Setup = (c, h) => {
      ok(c("C_InitToken", { slotID: 1, pin: SO_PIN, label: "one" }));
      h.s1 = ok(c("C_OpenSession", { slotID: 1, flags: RO })).hSession;
    };
    const { out } = given(steps(setups.token, slot1, loginUser), { slots: 2 }).when("C_GetSessionInfo", (h) => ({ hSession: h.s1! })).then("CKR_OK", []);
    expect(out).toEqual({ slotID: 1, state: CK.CKS_RO_PUBLIC_SESSION, flags: CK.CKF_SERIAL_SESSION, deviceError: 0 });
  });
  it("softhsm2: reports the serial-derived slot ID after re-initialisation", () => {
    let serial = "";
    const reinit: Setup = (c, h) => {
      serial = ok(c("C_GetTokenInfo", { slotID: 0 })).serialNumber;
      ok(c("C_Finalize", {}));
      ok(c("C_Initialize", {}));
      h.s = ok(c("C_OpenSession", { slotID: firstSlot(c), flags: RO })).hSession;
    };
    const { out } = given(steps(bareToken, reinit), SOFTHSM).when("C_GetSessionInfo", (h) => ({ hSession: h.s! })).then("CKR_OK");
    expect(out.slotID).toBe(parseInt(serial.slice(-8), 16) & 0x7fffffff);
  });
  it("replays SessionTests::testGetSessionInfo", () => {
    const ro: Setup = (c, h) => void (h.ro = ok(c("C_OpenSession", { slotID: 0, flags: RO })).hSession);
    for (const [, opts] of PROFILES) {
      given(undefined, opts).when("C_GetSessionInfo", { hSession: 0 }).then("CKR_CRYPTOKI_NOT_INITIALIZED");
      given(steps(bareToken, ro), opts).when("C_GetSessionInfo", { hSession: 0 }).then("CKR_SESSION_HANDLE_INVALID");
      given(steps(bareToken, ro), opts).when("C_GetSessionInfo", (h) => ({ hSession: h.ro! + 1 })).then("CKR_SESSION_HANDLE_INVALID");
      given(steps(bareToken, ro), opts).when("C_GetSessionInfo", (h) => ({ hSession: h.ro!, pInfo: null })).then("CKR_ARGUMENTS_BAD");
      const { out } = given(steps(bareToken, ro), opts).when("C_GetSessionInfo", (h) => ({ hSession: h.ro! })).then("CKR_OK");
      expect([out.state, out.flags]).toEqual([CK.CKS_RO_PUBLIC_SESSION, CK.CKF_SERIAL_SESSION]);
      const close: Setup = (c, h) => void ok(c("C_CloseSession", { hSession: h.ro! }));
      given(steps(bareToken, ro, close), opts).when("C_GetSessionInfo", (h) => ({ hSession: h.ro! })).then("CKR_SESSION_HANDLE_INVALID");
    }
  });
});

describe("C_GetOperationState", () => {
  it("two rules at once: not initialised wins over an invalid session", () =>
    given().when("C_GetOperationState", { hSession: 99 }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("checks the session", () => given(setups.token).when("C_GetOperationState", { hSession: 99 }).then("CKR_SESSION_HANDLE_INVALID", []));
  // The default profile saves operations (test/unit/operation-state.gwt.spec.ts).
  it("softhsm2: is not supported, even with a digest running", () =>
    void given(steps(setups.token, digestIn("rw")), SOFTHSM).when("C_GetOperationState", (h) => ({ hSession: h.rw! })).then("CKR_FUNCTION_NOT_SUPPORTED", []));
});

describe("C_SetOperationState", () => {
  const args = (hSession: number, state: Uint8Array | null) => ({ hSession, state, hEncryptionKey: 0, hAuthenticationKey: 0 });
  it("two rules at once: not initialised wins over an invalid session", () =>
    given().when("C_SetOperationState", args(99, null)).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: an invalid session wins over a NULL state", () =>
    given(setups.token).when("C_SetOperationState", args(99, null)).then("CKR_SESSION_HANDLE_INVALID", []));
  it("softhsm2: is not supported, whatever the arguments (a NULL state included)", () => {
    given(setups.token, SOFTHSM).when("C_SetOperationState", (h) => args(h.rw!, null)).then("CKR_FUNCTION_NOT_SUPPORTED", []);
    given(setups.token, SOFTHSM).when("C_SetOperationState", (h) => args(h.rw!, Uint8Array.of(1, 2, 3))).then("CKR_FUNCTION_NOT_SUPPORTED", []);
  });
});

describe("C_Login", () => {
  it("two rules at once: not initialised wins over a bad session", () =>
    given().when("C_Login", { hSession: 0, userType: CK.CKU_USER, pin: USER_PIN }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a bad session wins over a NULL pin", () =>
    given(setups.token).when("C_Login", { hSession: 0, userType: CK.CKU_SO, pin: null }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("two rules at once: a NULL pin wins over user type 3", () =>
    given(setups.token).when("C_Login", (h) => ({ hSession: h.rw!, userType: 3, pin: null })).then("CKR_ARGUMENTS_BAD", []));
  it("checks the user type (3, 0x80000000)", () => {
    for (const userType of [3, 0x80000000]) {
      given(setups.token).when("C_Login", (h) => ({ hSession: h.rw!, userType, pin: USER_PIN })).then("CKR_USER_TYPE_INVALID", []);
    }
  });
  it("two rules at once: a wrong user type wins over a user already logged in", () =>
    given(steps(setups.token, loginUser)).when("C_Login", (h) => ({ hSession: h.rw!, userType: 3, pin: USER_PIN })).then("CKR_USER_TYPE_INVALID", []));

  describe("CKU_SO", () => {
    it("logs the SO in", () => given(setups.token).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_SO, pin: SO_PIN })).then("CKR_OK", ["LoggedIn"]));
    it("two rules at once: an RO session (another one) wins over a wrong PIN", () =>
      given(steps(setups.token, openRO)).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_SO, pin: "00000000" })).then("CKR_SESSION_READ_ONLY_EXISTS", []));
    it("two rules at once: the calling RO session wins over a wrong PIN", () =>
      given(steps(setups.token, openRO)).when("C_Login", (h) => ({ hSession: h.ro!, userType: CK.CKU_SO, pin: "00000000" })).then("CKR_SESSION_READ_ONLY_EXISTS", []));
    it("two rules at once: an RO session wins over a user already logged in", () =>
      given(steps(setups.token, openRO, loginUser)).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_SO, pin: SO_PIN })).then("CKR_SESSION_READ_ONLY_EXISTS", []));
    it("two rules at once: a user logged in wins over a wrong PIN", () =>
      given(steps(setups.token, loginUser)).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_SO, pin: "00000000" })).then("CKR_USER_ANOTHER_ALREADY_LOGGED_IN", []));
    it("two rules at once: the SO already logged in wins over a wrong PIN", () =>
      given(steps(setups.token, loginSO)).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_SO, pin: "00000000" })).then("CKR_USER_ALREADY_LOGGED_IN", []));
    it("a wrong PIN of any length (0 included) is CKR_PIN_INCORRECT, and is recorded", () => {
      for (const pin of ["", "1234567", "x".repeat(300)]) {
        given(setups.token).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_SO, pin })).then("CKR_PIN_INCORRECT", ["PinRejected"]);
      }
    });
    it("only RO sessions on the same slot count (default, slots: 2)", () => {
      const ro1: Setup = (c, h) => {
        ok(c("C_InitToken", { slotID: 1, pin: SO_PIN, label: "one" }));
        h.ro1 = ok(c("C_OpenSession", { slotID: 1, flags: RO })).hSession;
      };
      given(steps(setups.token, ro1), { slots: 2 }).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_SO, pin: SO_PIN })).then("CKR_OK", ["LoggedIn"]);
    });
    it.each(PROFILES)("%s: only the caller's RO sessions count", (_, opts) =>
      void given(steps(setups.token, app2Opens(RO)), opts).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_SO, pin: SO_PIN })).then("CKR_OK"));
    it.each(PROFILES)("%s: another application may log in as SO while this one has a user login and an RO session", (_, opts) =>
      void given(steps(setups.token, openRO, loginUser, app2Session), opts)
        .when("C_Login", (h) => ({ hSession: h.s2!, userType: CK.CKU_SO, pin: SO_PIN }), "app2")
        .then("CKR_OK"));
  });

  describe("CKU_USER", () => {
    it("logs the user in, from an RO session too", () => {
      given(setups.token).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN })).then("CKR_OK", ["LoggedIn"]);
      given(steps(setups.token, openRO)).when("C_Login", (h) => ({ hSession: h.ro!, userType: CK.CKU_USER, pin: USER_PIN })).then("CKR_OK", ["LoggedIn"]);
    });
    it("two rules at once: the SO logged in wins over a user PIN not initialised", () => {
      const so: Setup = (c, h) => {
        h.rw = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession;
        ok(c("C_Login", { hSession: h.rw, userType: CK.CKU_SO, pin: SO_PIN }));
      };
      given(steps(bareToken, so)).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN })).then("CKR_USER_ANOTHER_ALREADY_LOGGED_IN", []);
    });
    it("two rules at once: the user already logged in wins over a wrong PIN", () =>
      given(steps(setups.token, loginUser)).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_USER, pin: "0000" })).then("CKR_USER_ALREADY_LOGGED_IN", []));
    it("two rules at once: no user PIN wins over a wrong (empty) PIN", () => {
      const rw: Setup = (c, h) => void (h.rw = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession);
      given(steps(bareToken, rw)).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_USER, pin: "" })).then("CKR_USER_PIN_NOT_INITIALIZED", []);
    });
    it("a wrong PIN is CKR_PIN_INCORRECT, and is recorded", () =>
      given(setups.token).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_USER, pin: "123" })).then("CKR_PIN_INCORRECT", ["PinRejected"]));
    it("softhsm2: no lockout: 25 wrong PINs, then the right one works", () =>
      given(steps(setups.token, times(25, wrongUser)), SOFTHSM).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN })).then("CKR_OK"));
    it("default (pinRetries 3): the third failure is still PIN_INCORRECT", () =>
      given(steps(setups.token, times(2, wrongUser)), { pinRetries: 3 })
        .when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_USER, pin: "0000" }))
        .then("CKR_PIN_INCORRECT", ["PinRejected"]));
    it("default (pinRetries 3): after three failures even the right PIN is CKR_PIN_LOCKED", () =>
      given(steps(setups.token, times(3, wrongUser)), { pinRetries: 3 })
        .when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN }))
        .then("CKR_PIN_LOCKED", []));
    it("default (pinRetries 3), two rules at once: locked wins over a wrong PIN (no further failure recorded)", () =>
      given(steps(setups.token, times(3, wrongUser)), { pinRetries: 3 })
        .when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_USER, pin: "0000" }))
        .then("CKR_PIN_LOCKED", []));
    it("default (pinRetries 3), two rules at once: already logged in wins over locked (locked by another application)", () => {
      const app2Fails: Setup = (_c, h, { app2 }) => {
        for (let i = 0; i < 3; i++) app2("C_Login", { hSession: h.s2!, userType: CK.CKU_USER, pin: "0000" });
      };
      given(steps(setups.token, loginUser, app2Session, app2Fails), { pinRetries: 3 })
        .when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN }))
        .then("CKR_USER_ALREADY_LOGGED_IN", []);
    });
    it("default (pinRetries 3): a success resets the count", () =>
      given(steps(setups.token, times(2, wrongUser), loginUser, (c, h) => void ok(c("C_Logout", { hSession: h.rw! })), times(2, wrongUser)), { pinRetries: 3 })
        .when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN }))
        .then("CKR_OK", ["LoggedIn"]));
    it("default (pinRetries 3): the SO is locked out the same way", () =>
      given(steps(setups.token, times(3, wrongSO)), { pinRetries: 3 })
        .when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_SO, pin: SO_PIN }))
        .then("CKR_PIN_LOCKED", []));
  });

  describe("CKU_CONTEXT_SPECIFIC", () => {
    const cs = (h: Record<string, number>, pin = USER_PIN) => ({ hSession: h.rw!, userType: CK.CKU_CONTEXT_SPECIFIC, pin });
    it("without an operation awaiting re-authentication: CKR_OPERATION_NOT_INITIALIZED", () =>
      given(steps(setups.token, loginUser)).when("C_Login", (h) => cs(h)).then("CKR_OPERATION_NOT_INITIALIZED", []));
    it("nobody logged in: CKR_OPERATION_NOT_INITIALIZED", () =>
      given(setups.token).when("C_Login", (h) => cs(h)).then("CKR_OPERATION_NOT_INITIALIZED", []));
    it("two rules at once: no re-authentication pending wins over a wrong PIN (no failure recorded)", () => {
      const app = capture();
      given(steps(setups.token, loginUser, app.setup)).when("C_Login", (h) => cs(h, "0000")).then("CKR_OPERATION_NOT_INITIALIZED", []);
      expect(ok(app.get()("C_GetTokenInfo", { slotID: 0 })).flags & CK.CKF_USER_PIN_COUNT_LOW).toBe(0);
    });
    it("a digest is not an operation that needs re-authentication", () =>
      given(steps(setups.token, loginUser, digestIn("rw"))).when("C_Login", (h) => cs(h)).then("CKR_OPERATION_NOT_INITIALIZED", []));
    it("the SO has nothing to re-authenticate either", () =>
      given(steps(setups.token, loginSO)).when("C_Login", (h) => cs(h, SO_PIN)).then("CKR_OPERATION_NOT_INITIALIZED", []));
    it("two rules at once: a NULL pin wins over no re-authentication pending", () =>
      given(steps(setups.token, loginUser)).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_CONTEXT_SPECIFIC, pin: null })).then("CKR_ARGUMENTS_BAD", []));
  });

  it("login state is per slot (default, slots: 2): a user on slot 0 leaves slot 1 free for the SO", () => {
    const slot1: Setup = (c, h) => {
      ok(c("C_InitToken", { slotID: 1, pin: SO_PIN, label: "one" }));
      h.s1 = ok(c("C_OpenSession", { slotID: 1, flags: RW })).hSession;
    };
    given(steps(setups.token, loginUser, slot1), { slots: 2 }).when("C_Login", (h) => ({ hSession: h.s1!, userType: CK.CKU_SO, pin: SO_PIN })).then("CKR_OK", ["LoggedIn"]);
  });

  it("replays UserTests::testLogin", () => {
    for (const [, opts] of PROFILES) {
      const rw: Setup = (c, h) => void (h.rw = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession);
      const closeRO: Setup = (c, h) => void ok(c("C_CloseSession", { hSession: h.ro! }));
      const logout: Setup = (c, h) => void ok(c("C_Logout", { hSession: h.rw! }));
      const login = (h: Record<string, number>, userType: number, pin: string | null) => ({ hSession: h.rw!, userType, pin });
      given(steps(bareToken, rw), opts).when("C_Login", (h) => login(h, CK.CKU_USER, USER_PIN)).then("CKR_USER_PIN_NOT_INITIALIZED");
      given(steps(bareToken, rw), opts).when("C_Login", (h) => login(h, CK.CKU_SO, SO_PIN)).then("CKR_OK");
      given(steps(bareToken, rw, loginSO), opts).when("C_InitPIN", (h) => ({ hSession: h.rw!, pin: USER_PIN })).then("CKR_OK");
      // After C_Finalize / C_Initialize: the fixture's token with its user PIN.
      const base = steps(setups.token, (c) => {
        ok(c("C_Finalize", {}));
        ok(c("C_Initialize", {}));
      });
      const rwAt: Setup = (c, h) => void (h.rw = ok(c("C_OpenSession", { slotID: firstSlot(c), flags: RW })).hSession);
      const roAt: Setup = (c, h) => void (h.ro = ok(c("C_OpenSession", { slotID: firstSlot(c), flags: RO })).hSession);
      given(undefined, opts).when("C_Login", { hSession: 1, userType: CK.CKU_SO, pin: SO_PIN }).then("CKR_CRYPTOKI_NOT_INITIALIZED");
      given(steps(base, rwAt), opts).when("C_Login", { hSession: 0, userType: CK.CKU_SO, pin: SO_PIN }).then("CKR_SESSION_HANDLE_INVALID");
      given(steps(base, rwAt), opts).when("C_Login", (h) => login(h, CK.CKU_SO, null)).then("CKR_ARGUMENTS_BAD");
      given(steps(base, rwAt), opts).when("C_Login", (h) => login(h, CK.CKU_SO, "")).then("CKR_PIN_INCORRECT");
      given(steps(base, rwAt, roAt), opts).when("C_Login", (h) => login(h, CK.CKU_SO, SO_PIN)).then("CKR_SESSION_READ_ONLY_EXISTS");
      given(steps(base, rwAt, roAt, closeRO), opts).when("C_Login", (h) => login(h, CK.CKU_USER, USER_PIN)).then("CKR_OK");
      const user = steps(base, rwAt, roAt, closeRO, loginUser);
      given(user, opts).when("C_Login", (h) => login(h, CK.CKU_SO, SO_PIN)).then("CKR_USER_ANOTHER_ALREADY_LOGGED_IN");
      given(user, opts).when("C_Logout", (h) => ({ hSession: h.rw! })).then("CKR_OK");
      given(steps(user, logout), opts).when("C_Login", (h) => login(h, CK.CKU_SO, SO_PIN)).then("CKR_OK");
      const so = steps(user, logout, loginSO);
      given(so, opts).when("C_Login", (h) => login(h, CK.CKU_SO, SO_PIN)).then("CKR_USER_ALREADY_LOGGED_IN");
      given(so, opts).when("C_Login", (h) => login(h, CK.CKU_USER, USER_PIN)).then("CKR_USER_ANOTHER_ALREADY_LOGGED_IN");
      given(steps(so, logout), opts).when("C_Login", (h) => login(h, CK.CKU_USER, USER_PIN.slice(0, 3))).then("CKR_PIN_INCORRECT");
      given(steps(so, logout), opts).when("C_Login", (h) => login(h, CK.CKU_USER, USER_PIN)).then("CKR_OK");
      given(steps(so, logout, loginUser), opts).when("C_Login", (h) => login(h, CK.CKU_USER, USER_PIN)).then("CKR_USER_ALREADY_LOGGED_IN");
    }
  });
});

describe("C_Logout", () => {
  it("two rules at once: not initialised wins over an invalid session", () =>
    given().when("C_Logout", { hSession: 0 }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it.each(PROFILES)("%s, two rules at once: an invalid session wins over nobody logged in", (_, opts) =>
    void given(setups.token, opts).when("C_Logout", { hSession: 99 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("logs out whoever is logged in", () => {
    given(steps(setups.token, loginUser)).when("C_Logout", (h) => ({ hSession: h.rw! })).then("CKR_OK", ["LoggedOut"]);
    given(steps(setups.token, loginSO)).when("C_Logout", (h) => ({ hSession: h.rw! })).then("CKR_OK", ["LoggedOut"]);
  });
  it("any session of the slot may log it out", () => {
    const app = capture();
    const { h } = given(steps(setups.token, openRO, loginUser, app.setup)).when("C_Logout", (h) => ({ hSession: h.ro! })).then("CKR_OK", ["LoggedOut"]);
    expect(ok(app.get()("C_GetSessionInfo", { hSession: h.rw! })).state).toBe(CK.CKS_RW_PUBLIC_SESSION);
  });
  it("softhsm2: nobody logged in is CKR_OK (twice, too)", () => {
    given(setups.token, SOFTHSM).when("C_Logout", (h) => ({ hSession: h.rw! })).then("CKR_OK", []);
    given(steps(setups.token, loginUser, (c, h) => void ok(c("C_Logout", { hSession: h.rw! }))), SOFTHSM)
      .when("C_Logout", (h) => ({ hSession: h.rw! }))
      .then("CKR_OK", []);
  });
  it("default: nobody logged in is CKR_USER_NOT_LOGGED_IN", () =>
    given(setups.token).when("C_Logout", (h) => ({ hSession: h.rw! })).then("CKR_USER_NOT_LOGGED_IN", []));
  it.each(PROFILES)("%s: another application's logout does not log this one out", (_, opts) => {
    const app2LoginLogout: Setup = (_c, h, { app2 }) => {
      ok(app2("C_Login", { hSession: h.s2!, userType: CK.CKU_USER, pin: USER_PIN }));
      ok(app2("C_Logout", { hSession: h.s2! }));
    };
    const { out } = given(steps(setups.token, loginUser, app2Session, app2LoginLogout), opts)
      .when("C_GetSessionInfo", (h) => ({ hSession: h.rw! }))
      .then("CKR_OK");
    expect(out.state).toBe(CK.CKS_RW_USER_FUNCTIONS);
  });

  describe.each(PROFILES)("%s: what a logout destroys", (_, opts) => {
    const objects = steps(
      setups.token,
      openRW2,
      loginUser,
      create("priv1", false, true, "rw"),
      create("priv2", false, true, "rw2"),
      create("pub", false, false, "rw2"),
      create("tpriv", true, true, "rw"),
      create("tpub", true, false, "rw"),
    );
    const logout: Setup = (c, h) => void ok(c("C_Logout", { hSession: h.rw2! }));
    const relogin: Setup = (c, h) => void ok(c("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN }));
    it("private session objects of every session are destroyed, public ones and token objects survive", () => {
      const app = capture();
      const { h } = given(steps(objects, app.setup), opts).when("C_Logout", (h) => ({ hSession: h.rw2! })).then("CKR_OK");
      const c = app.get();
      expect([h.priv1, h.priv2, h.pub, h.tpriv, h.tpub].map((o) => label(c, h.rw!, o!))).toEqual([
        "CKR_OBJECT_HANDLE_INVALID",
        "CKR_OBJECT_HANDLE_INVALID",
        "CKR_OK",
        "CKR_OBJECT_HANDLE_INVALID",
        "CKR_OK",
      ]);
    });
    it("private handles stay invalid after a new login", () =>
      given(steps(objects, logout, relogin), opts)
        .when("C_GetAttributeValue", (h) => ({ hSession: h.rw!, hObject: h.tpriv!, template: [{ type: CK.CKA_LABEL, value: null }] }))
        .then("CKR_OBJECT_HANDLE_INVALID"));
    it("the private session objects are gone, and the private token object is re-found under a new handle", () => {
      const app = capture();
      const { h } = given(steps(objects, logout, relogin, app.setup), opts).when("C_FindObjectsInit", (h) => ({ hSession: h.rw!, template: [] })).then("CKR_OK");
      const found = ok(app.get()("C_FindObjects", { hSession: h.rw!, maxCount: 10 })).handles;
      expect(found).toHaveLength(3);
      expect(found).toContain(h.pub);
      expect(found).toContain(h.tpub);
      const fresh = found.filter((x) => x !== h.pub && x !== h.tpub);
      expect(fresh).toHaveLength(1);
      expect([h.priv1, h.priv2, h.tpriv]).not.toContain(fresh[0]);
    });
    it("a logout does not end an operation: a digest started before it finishes", () =>
      given(steps(setups.token, loginUser, digestIn("rw"), (c, h) => void ok(c("C_Logout", { hSession: h.rw! }))), opts)
        .when("C_DigestFinal", (h) => ({ hSession: h.rw!, outLen: 32 }))
        .then("CKR_OK"));
  });

  it("replays UserTests::testLogout", () => {
    for (const [name, opts] of PROFILES) {
      const rw: Setup = (c, h) => void (h.rw = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession);
      const logout: Setup = (c, h) => void ok(c("C_Logout", { hSession: h.rw! }));
      given(undefined, opts).when("C_Logout", { hSession: 0 }).then("CKR_CRYPTOKI_NOT_INITIALIZED");
      given(steps(bareToken, rw, loginSO), opts).when("C_Logout", { hSession: 0 }).then("CKR_SESSION_HANDLE_INVALID");
      given(steps(bareToken, rw, loginSO), opts).when("C_Logout", (h) => ({ hSession: h.rw! })).then("CKR_OK");
      // SoftHSM: OK again; the default profile (PKCS#11 §5.6): nobody is logged in.
      given(steps(bareToken, rw, loginSO, logout), opts)
        .when("C_Logout", (h) => ({ hSession: h.rw! }))
        .then(name === "softhsm2" ? "CKR_OK" : "CKR_USER_NOT_LOGGED_IN");
    }
  });
});
