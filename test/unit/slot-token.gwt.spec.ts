/**
 * Slot and token management (fact sheet §5, §6, §7, §15, §18 InfoTests / TokenTests / UserTests): C_GetSlotList,
 * C_GetSlotInfo, C_GetTokenInfo, C_InitToken, C_InitPIN, C_SetPIN. Both profiles where PROFILE_DIFFERENCES says they
 * differ: slot numbering, PIN lockout, live session counts, and whose sessions C_InitToken sees.
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
} from "../support/gwt.js";

const UNAVAILABLE = CK.CK_UNAVAILABLE_INFORMATION;

/** A setup step that must succeed: a failing setup must fail the test, not quietly change what it tests. */
const ok = <T>(r: { rv: string; out: T }): T => {
  expect(r.rv, "setup step").toBe("CKR_OK");
  return r.out;
};

/** Token flags (fact sheet §6). */
const UNINITIALIZED_FLAGS =
  CK.CKF_RNG | CK.CKF_LOGIN_REQUIRED | CK.CKF_RESTORE_KEY_NOT_NEEDED | CK.CKF_SO_PIN_LOCKED | CK.CKF_SO_PIN_TO_BE_CHANGED; // 0xC00025
const INITIALIZED_FLAGS = CK.CKF_RNG | CK.CKF_LOGIN_REQUIRED | CK.CKF_RESTORE_KEY_NOT_NEEDED | CK.CKF_TOKEN_INITIALIZED; // 0x425
const USER_PIN_FLAGS = INITIALIZED_FLAGS | CK.CKF_USER_PIN_INITIALIZED; // 0x42D
const USER_BITS = CK.CKF_USER_PIN_COUNT_LOW | CK.CKF_USER_PIN_FINAL_TRY | CK.CKF_USER_PIN_LOCKED;
const SO_BITS = CK.CKF_SO_PIN_COUNT_LOW | CK.CKF_SO_PIN_FINAL_TRY | CK.CKF_SO_PIN_LOCKED;

/** An initialised token in slot 0 with an SO PIN only (no user PIN), no session open. */
const bareToken: Setup = (c) => {
  ok(c("C_Initialize", {}));
  ok(c("C_InitToken", { slotID: 0, pin: SO_PIN, label: "t" }));
};
/** setups.token, then its RW session closed: no session of the application is open. */
const tokenNoSession: Setup = steps(setups.token, (c, h) => void ok(c("C_CloseSession", { hSession: h.rw! })));
const wrongUser: Setup = (c, h) => void c("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: "0000" });
const wrongSO: Setup = (c, h) => void c("C_Login", { hSession: h.rw!, userType: CK.CKU_SO, pin: "00000000" });
const times = (n: number, s: Setup): Setup => steps(...Array.from({ length: n }, () => s));
/** The first (initialised) slot an application lists: 0 in the default profile, serial-derived in softhsm2. */
const firstSlot = (c: Call) => ok(c("C_GetSlotList", { tokenPresent: true, pSlotList: 16 })).slots[0]!;
/** app2 starts after the token exists, and opens an RW session on it (h.s2). */
const app2Session: Setup = (_c, h, { app2 }) => {
  ok(app2("C_Initialize", {}));
  h.slot2 = firstSlot(app2);
  h.s2 = ok(app2("C_OpenSession", { slotID: h.slot2, flags: RW })).hSession;
};
const slotFromSerial = (serial: string) => parseInt(serial.slice(-8), 16) & 0x7fffffff;

describe("C_GetSlotList", () => {
  it("needs C_Initialize", () =>
    given().when("C_GetSlotList", { tokenPresent: false, pSlotList: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: not initialised wins over a NULL pulCount", () =>
    given().when("C_GetSlotList", { tokenPresent: false, pSlotList: null, pulCount: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a NULL pulCount wins over a buffer that is too small", () =>
    given(setups.initialized, { slots: 2 })
      .when("C_GetSlotList", { tokenPresent: false, pSlotList: 0, pulCount: null })
      .then("CKR_ARGUMENTS_BAD", []));
  it("answers a size query", () => {
    const { out } = given(setups.initialized, { slots: 3 }).when("C_GetSlotList", { tokenPresent: false, pSlotList: null }).then("CKR_OK", []);
    expect(out.count).toBe(3);
  });
  it("answers CKR_BUFFER_TOO_SMALL with the count", () => {
    const { out } = given(setups.initialized, { slots: 2 }).when("C_GetSlotList", { tokenPresent: false, pSlotList: 1 }).then("CKR_BUFFER_TOO_SMALL", []);
    expect(out.count).toBe(2);
  });
  it("default: fixed slots 0..n-1, whatever tokenPresent says", () => {
    for (const tokenPresent of [false, true]) {
      const { out } = given(setups.initialized, { slots: 3 }).when("C_GetSlotList", { tokenPresent, pSlotList: 3 }).then("CKR_OK", []);
      expect(out).toEqual({ slots: [0, 1, 2], count: 3 });
    }
  });
  it("default: a size query after C_InitToken adds no slot", () => {
    const { out } = given(bareToken).when("C_GetSlotList", { tokenPresent: true, pSlotList: null }).then("CKR_OK", []);
    expect(out.count).toBe(1);
  });
  it("default: slot IDs are stable across C_Finalize / C_Initialize", () => {
    const reinit: Setup = (c) => {
      ok(c("C_Finalize", {}));
      ok(c("C_Initialize", {}));
    };
    const { out } = given(steps(bareToken, reinit), { slots: 2 }).when("C_GetSlotList", { tokenPresent: true, pSlotList: 8 }).then("CKR_OK", []);
    expect(out.slots).toEqual([0, 1]);
  });

  describe("softhsm2 numbering (§5, §20.1-2)", () => {
    it("an empty store has one uninitialised slot, numbered 0", () => {
      const { out } = given(setups.initialized, SOFTHSM).when("C_GetSlotList", { tokenPresent: false, pSlotList: 8 }).then("CKR_OK", []);
      expect(out.slots).toEqual([0]);
    });
    it("a size query with the uninitialised slot present adds nothing", () => {
      const { out } = given(setups.initialized, SOFTHSM).when("C_GetSlotList", { tokenPresent: false, pSlotList: null }).then("CKR_OK", []);
      expect(out.count).toBe(1);
    });
    it("after C_InitToken a call with a buffer adds no slot", () => {
      const { out } = given(bareToken, SOFTHSM).when("C_GetSlotList", { tokenPresent: false, pSlotList: 8 }).then("CKR_OK", []);
      expect(out.slots).toEqual([0]);
    });
    it("after C_InitToken only a size query adds the new uninitialised slot, numbered by the token count", () => {
      const { out } = given(bareToken, SOFTHSM).when("C_GetSlotList", { tokenPresent: false, pSlotList: null }).then("CKR_OK", ["SlotAdded"]);
      expect(out.count).toBe(2);
    });
    it("the slot added is listed last, the token keeps its small number", () => {
      const sized: Setup = (c) => void ok(c("C_GetSlotList", { tokenPresent: false, pSlotList: null }));
      const { out } = given(steps(bareToken, sized), SOFTHSM).when("C_GetSlotList", { tokenPresent: false, pSlotList: 8 }).then("CKR_OK", []);
      expect(out.slots).toEqual([0, 1]);
    });
    it("a second size query adds no second slot", () => {
      const sized: Setup = (c) => void ok(c("C_GetSlotList", { tokenPresent: false, pSlotList: null }));
      const { out } = given(steps(bareToken, sized), SOFTHSM).when("C_GetSlotList", { tokenPresent: false, pSlotList: null }).then("CKR_OK", []);
      expect(out.count).toBe(2);
    });
    it("the future slot is invalid before the size query", () => {
      given(bareToken, SOFTHSM).when("C_GetSlotInfo", { slotID: 1 }).then("CKR_SLOT_ID_INVALID", []);
      given(bareToken, SOFTHSM).when("C_InitToken", { slotID: 1, pin: SO_PIN, label: "u" }).then("CKR_SLOT_ID_INVALID", []);
    });
    it("after C_Finalize / C_Initialize the token has its serial-derived ID, the uninitialised slot is last", () => {
      let serial = "";
      const reinit: Setup = (c) => {
        serial = ok(c("C_GetTokenInfo", { slotID: 0 })).serialNumber;
        ok(c("C_Finalize", {}));
        ok(c("C_Initialize", {}));
      };
      const { out } = given(steps(bareToken, reinit), SOFTHSM).when("C_GetSlotList", { tokenPresent: false, pSlotList: 8 }).then("CKR_OK", []);
      expect(serial).toMatch(/^[0-9a-f]{16}$/);
      expect(out.slots).toEqual([slotFromSerial(serial), 1]);
    });
    it("after C_Finalize / C_Initialize the small number the token had is gone", () => {
      const reinit: Setup = (c) => {
        ok(c("C_Finalize", {}));
        ok(c("C_Initialize", {}));
      };
      given(steps(bareToken, reinit), SOFTHSM).when("C_GetSlotInfo", { slotID: 0 }).then("CKR_SLOT_ID_INVALID", []);
    });
    it("a slot initialised in place sorts first by its small number, before serial-derived IDs", () => {
      let serial = "";
      const more: Setup = (c) => {
        serial = ok(c("C_GetTokenInfo", { slotID: 0 })).serialNumber;
        ok(c("C_Finalize", {}));
        ok(c("C_Initialize", {}));
        ok(c("C_InitToken", { slotID: 1, pin: SO_PIN, label: "second" }));
        ok(c("C_GetSlotList", { tokenPresent: false, pSlotList: null }));
      };
      const { out } = given(steps(bareToken, more), SOFTHSM).when("C_GetSlotList", { tokenPresent: false, pSlotList: 8 }).then("CKR_OK", []);
      expect(out.slots).toEqual([1, slotFromSerial(serial), 2]);
    });
  });

  it("replays InfoTests::testGetSlotList (both profiles)", () => {
    for (const [, opts] of PROFILES) {
      given(undefined, opts).when("C_GetSlotList", { tokenPresent: false, pSlotList: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED");
      given(setups.initialized, opts).when("C_GetSlotList", { tokenPresent: false, pSlotList: null, pulCount: null }).then("CKR_ARGUMENTS_BAD");
      given(bareToken, opts).when("C_GetSlotList", { tokenPresent: false, pSlotList: null }).then("CKR_OK");
      const sized: Setup = (c) => void ok(c("C_GetSlotList", { tokenPresent: false, pSlotList: null }));
      given(steps(bareToken, sized), opts).when("C_GetSlotList", { tokenPresent: false, pSlotList: 0 }).then("CKR_BUFFER_TOO_SMALL");
      given(steps(bareToken, sized), opts).when("C_GetSlotList", { tokenPresent: false, pSlotList: 8 }).then("CKR_OK");
      given(bareToken, opts).when("C_GetSlotList", { tokenPresent: true, pSlotList: null }).then("CKR_OK");
      given(steps(bareToken, sized), opts).when("C_GetSlotList", { tokenPresent: true, pSlotList: 0 }).then("CKR_BUFFER_TOO_SMALL");
      given(steps(bareToken, sized), opts).when("C_GetSlotList", { tokenPresent: true, pSlotList: 8 }).then("CKR_OK");
    }
  });
});

describe("C_GetSlotInfo", () => {
  it("two rules at once: not initialised wins over an invalid slot and a NULL pInfo", () =>
    given().when("C_GetSlotInfo", { slotID: INVALID_SLOT, pInfo: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: an invalid slot wins over a NULL pInfo", () =>
    given(setups.initialized).when("C_GetSlotInfo", { slotID: INVALID_SLOT, pInfo: null }).then("CKR_SLOT_ID_INVALID", []));
  it("checks pInfo", () => given(setups.initialized).when("C_GetSlotInfo", { slotID: 0, pInfo: null }).then("CKR_ARGUMENTS_BAD", []));
  it("knows the slots there are (default, slots: 2)", () => {
    given(setups.initialized, { slots: 2 }).when("C_GetSlotInfo", { slotID: 1 }).then("CKR_OK", []);
    given(setups.initialized, { slots: 2 }).when("C_GetSlotInfo", { slotID: 2 }).then("CKR_SLOT_ID_INVALID", []);
  });
  it("describes the slot as SoftHSM does: token present, not removable, not a hardware slot", () => {
    const { out } = given(setups.initialized).when("C_GetSlotInfo", { slotID: 0 }).then("CKR_OK", []);
    expect(out).toEqual({
      slotDescription: "SoftHSM slot ID 0x0".padEnd(64),
      manufacturerID: "SoftHSM project".padEnd(32),
      flags: CK.CKF_TOKEN_PRESENT,
      hardwareVersion: { major: 2, minor: 6 },
      firmwareVersion: { major: 2, minor: 6 },
    });
  });
  it("softhsm2: the description carries the serial-derived ID in lowercase hex", () => {
    let slot = 0;
    const reinit: Setup = (c) => {
      const serial = ok(c("C_GetTokenInfo", { slotID: 0 })).serialNumber;
      slot = slotFromSerial(serial);
      ok(c("C_Finalize", {}));
      ok(c("C_Initialize", {}));
    };
    const { out } = given(steps(bareToken, reinit), SOFTHSM).when("C_GetSlotInfo", () => ({ slotID: slot })).then("CKR_OK", []);
    expect(out.slotDescription).toBe(`SoftHSM slot ID 0x${slot.toString(16)}`.padEnd(64));
  });
  it("replays InfoTests::testGetSlotInfo", () => {
    for (const [, opts] of PROFILES) {
      given(undefined, opts).when("C_GetSlotInfo", { slotID: 0 }).then("CKR_CRYPTOKI_NOT_INITIALIZED");
      given(setups.initialized, opts).when("C_GetSlotInfo", { slotID: 0, pInfo: null }).then("CKR_ARGUMENTS_BAD");
      given(setups.initialized, opts).when("C_GetSlotInfo", { slotID: INVALID_SLOT }).then("CKR_SLOT_ID_INVALID");
      const { out } = given(setups.initialized, opts).when("C_GetSlotInfo", { slotID: 0 }).then("CKR_OK");
      expect(out.flags & CK.CKF_TOKEN_PRESENT).toBe(CK.CKF_TOKEN_PRESENT);
      expect(out.flags & CK.CKF_REMOVABLE_DEVICE).toBe(0);
    }
  });
});

describe("C_GetTokenInfo", () => {
  it("two rules at once: not initialised wins over an invalid slot", () =>
    given().when("C_GetTokenInfo", { slotID: INVALID_SLOT, pInfo: null }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: an invalid slot wins over a NULL pInfo", () =>
    given(setups.initialized).when("C_GetTokenInfo", { slotID: INVALID_SLOT, pInfo: null }).then("CKR_SLOT_ID_INVALID", []));
  it("checks pInfo", () => given(setups.initialized).when("C_GetTokenInfo", { slotID: 0, pInfo: null }).then("CKR_ARGUMENTS_BAD", []));

  it.each(PROFILES)("%s: an uninitialised token: flags 0xC00025, blank label and serial", (_, opts) => {
    const { out } = given(setups.initialized, opts).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK");
    expect(out.flags).toBe(0xc00025);
    expect(out.flags).toBe(UNINITIALIZED_FLAGS);
    expect(out.label).toBe(" ".repeat(32));
    expect(out.serialNumber).toBe(" ".repeat(16));
  });
  it.each(PROFILES)("%s: an initialised token: flags 0x425, the label as given, a 16-hex-digit serial", (_, opts) => {
    const { out } = given(bareToken, opts).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK");
    expect(out.flags).toBe(0x425);
    expect(out.label).toBe("t".padEnd(32));
    expect(out.serialNumber).toMatch(/^[0-9a-f]{16}$/);
  });
  it("softhsm2: the uninitialised slot added by a size query has an uninitialised token", () => {
    const sized: Setup = (c) => void ok(c("C_GetSlotList", { tokenPresent: false, pSlotList: null }));
    const { out } = given(steps(bareToken, sized), SOFTHSM).when("C_GetTokenInfo", { slotID: 1 }).then("CKR_OK", []);
    expect([out.flags, out.label, out.serialNumber]).toEqual([UNINITIALIZED_FLAGS, " ".repeat(32), " ".repeat(16)]);
  });
  it("with a user PIN: flags 0x42D", () => {
    const { out } = given(setups.token).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK", []);
    expect(out.flags).toBe(0x42d);
    expect(out.flags).toBe(USER_PIN_FLAGS);
  });
  it("fixed fields: model, PIN limits, memory unknown, versions 2.6, the UTC time of the call", () => {
    const { out } = given(setups.token).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK", []);
    expect(out).toMatchObject({
      manufacturerID: "SoftHSM project".padEnd(32),
      model: "SoftHSM v2".padEnd(16),
      maxPinLen: 255,
      minPinLen: 4,
      totalPublicMemory: UNAVAILABLE,
      freePublicMemory: UNAVAILABLE,
      totalPrivateMemory: UNAVAILABLE,
      freePrivateMemory: UNAVAILABLE,
      hardwareVersion: { major: 2, minor: 6 },
      firmwareVersion: { major: 2, minor: 6 },
      // The test clock is 1_800_000_000_000 ms = 2027-01-15T08:00:00Z.
      utcTime: "2027011508000000",
    });
  });
  it("softhsm2: no limits, and session counts are CK_UNAVAILABLE_INFORMATION even with sessions open", () => {
    const { out } = given(steps(setups.token, openRO), SOFTHSM).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK");
    expect(out).toMatchObject({ maxSessionCount: 0, maxRwSessionCount: 0, sessionCount: UNAVAILABLE, rwSessionCount: UNAVAILABLE });
  });
  it("default: live session counts over all applications, and the configured limits", () => {
    const { out } = given(steps(setups.token, openRO, app2Session), { maxSessions: 5 }).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK", []);
    // setups.token's RW session, an RO session, and app2's RW session.
    expect(out).toMatchObject({ maxSessionCount: 5, maxRwSessionCount: 5, sessionCount: 3, rwSessionCount: 2 });
  });
  it("default: a closed session leaves the count", () => {
    const close: Setup = (c, h) => void ok(c("C_CloseSession", { hSession: h.ro! }));
    const { out } = given(steps(setups.token, openRO, close)).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK", []);
    expect(out).toMatchObject({ sessionCount: 1, rwSessionCount: 1 });
  });
  it("token flags are shared: another application sees the failure flag", () => {
    for (const [, opts] of PROFILES) {
      const { out } = given(steps(setups.token, wrongUser, app2Session), opts).when("C_GetTokenInfo", (h) => ({ slotID: h.slot2! }), "app2").then("CKR_OK");
      expect(out.flags).toBe(USER_PIN_FLAGS | CK.CKF_USER_PIN_COUNT_LOW);
    }
  });

  describe("PIN failure flags", () => {
    it("softhsm2: a wrong user PIN sets USER_PIN_COUNT_LOW only, however many times", () => {
      const { out } = given(steps(setups.token, times(12, wrongUser)), SOFTHSM).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK");
      expect(out.flags).toBe(0x1042d);
    });
    it("softhsm2: a wrong SO PIN sets SO_PIN_COUNT_LOW only", () => {
      const { out } = given(steps(setups.token, times(12, wrongSO)), SOFTHSM).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK");
      expect(out.flags).toBe(0x10042d);
    });
    it("a successful login clears COUNT_LOW (both profiles)", () => {
      for (const [, opts] of PROFILES) {
        const { out } = given(steps(setups.token, wrongUser, loginUser), opts).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK");
        expect(out.flags).toBe(USER_PIN_FLAGS);
      }
    });
    const locked = { pinRetries: 3 };
    it("default (pinRetries 3): one failure → COUNT_LOW", () => {
      const { out } = given(steps(setups.token, times(1, wrongUser)), locked).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK", []);
      expect(out.flags & USER_BITS).toBe(CK.CKF_USER_PIN_COUNT_LOW);
    });
    it("default (pinRetries 3): two failures → FINAL_TRY", () => {
      const { out } = given(steps(setups.token, times(2, wrongUser)), locked).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK", []);
      expect(out.flags & USER_BITS).toBe(CK.CKF_USER_PIN_COUNT_LOW | CK.CKF_USER_PIN_FINAL_TRY);
    });
    it("default (pinRetries 3): three failures → LOCKED", () => {
      const { out } = given(steps(setups.token, times(3, wrongUser)), locked).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK", []);
      expect(out.flags & USER_BITS).toBe(CK.CKF_USER_PIN_COUNT_LOW | CK.CKF_USER_PIN_LOCKED);
      expect(out.flags & SO_BITS).toBe(0);
    });
    it("default (pinRetries 3): the SO flags follow the same steps", () => {
      const flags = (n: number) =>
        given(steps(setups.token, times(n, wrongSO)), locked).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK", []).out.flags & SO_BITS;
      expect([flags(1), flags(2), flags(3)]).toEqual([
        CK.CKF_SO_PIN_COUNT_LOW,
        CK.CKF_SO_PIN_COUNT_LOW | CK.CKF_SO_PIN_FINAL_TRY,
        CK.CKF_SO_PIN_COUNT_LOW | CK.CKF_SO_PIN_LOCKED,
      ]);
    });
  });

  it("replays InfoTests::testGetTokenInfo", () => {
    for (const [, opts] of PROFILES) {
      given(undefined, opts).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_CRYPTOKI_NOT_INITIALIZED");
      given(setups.initialized, opts).when("C_GetTokenInfo", { slotID: 0, pInfo: null }).then("CKR_ARGUMENTS_BAD");
      given(setups.initialized, opts).when("C_GetTokenInfo", { slotID: INVALID_SLOT }).then("CKR_SLOT_ID_INVALID");
      expect(given(setups.initialized, opts).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK").out.flags & CK.CKF_TOKEN_INITIALIZED).toBe(0);
      expect(given(bareToken, opts).when("C_GetTokenInfo", { slotID: 0 }).then("CKR_OK").out.flags & CK.CKF_TOKEN_INITIALIZED).toBe(
        CK.CKF_TOKEN_INITIALIZED,
      );
    }
  });
});

describe("C_InitToken", () => {
  it("two rules at once: not initialised wins over a NULL pin", () =>
    given().when("C_InitToken", { slotID: 0, pin: null, label: "t" }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: an invalid slot wins over a NULL pin", () =>
    given(setups.initialized).when("C_InitToken", { slotID: INVALID_SLOT, pin: null, label: "t" }).then("CKR_SLOT_ID_INVALID", []));
  it("two rules at once: a session open wins over a NULL pin", () =>
    given(setups.token).when("C_InitToken", { slotID: 0, pin: null, label: "t" }).then("CKR_SESSION_EXISTS", []));
  it("two rules at once: a bad PIN length wins over a NULL label", () =>
    given(setups.initialized).when("C_InitToken", { slotID: 0, pin: "123", label: null }).then("CKR_PIN_INCORRECT", []));
  it("two rules at once: a wrong SO PIN length on an initialised token is PIN_INCORRECT, and no PIN is compared", () =>
    given(bareToken).when("C_InitToken", { slotID: 0, pin: "123", label: "t" }).then("CKR_PIN_INCORRECT", []));
  it("a bad SO PIN length is CKR_PIN_INCORRECT, not PIN_LEN_RANGE (0, 3, 256 bytes)", () => {
    for (const pin of ["", "123", "x".repeat(256)]) {
      given(setups.initialized).when("C_InitToken", { slotID: 0, pin, label: "t" }).then("CKR_PIN_INCORRECT", []);
    }
    given(setups.initialized).when("C_InitToken", { slotID: 0, pin: "x".repeat(255), label: "t" }).then("CKR_OK", ["TokenInitialized"]);
  });
  it("checks the label pointer", () =>
    given(setups.initialized).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: null }).then("CKR_ARGUMENTS_BAD", []));
  it("initialises a token", () => {
    const { out, snapshot } = given(setups.initialized).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "my token" }).then("CKR_OK", ["TokenInitialized"]);
    expect(out).toBeUndefined();
    expect(snapshot().read.tokens[0]).toMatchObject({ initialized: true, label: "my token".padEnd(32) });
  });
  it("re-initialisation needs the current SO PIN: a wrong one is rejected and sets SO_PIN_COUNT_LOW", () => {
    const { sim } = given(bareToken).when("C_InitToken", { slotID: 0, pin: "1234567", label: "t" }).then("CKR_PIN_INCORRECT", ["PinRejected"]);
    expect(sim.read.tokens.get("slot0")!.failures.so).toBe(1);
  });
  it.each(PROFILES)("%s: re-initialisation keeps the serial and the SO PIN, replaces the label, wipes objects and the user PIN", (_, opts) => {
    let serial = "";
    let app!: Call;
    const withObject: Setup = (c, h) => {
      app = c;
      serial = ok(c("C_GetTokenInfo", { slotID: 0 })).serialNumber;
      ok(c("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN }));
      ok(c("C_CreateObject", { hSession: h.rw!, template: dataTemplate(true, false, "kept?") }));
      ok(c("C_CloseSession", { hSession: h.rw! }));
    };
    given(steps(setups.token, withObject), opts).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "relabelled" }).then("CKR_OK");
    const info = ok(app("C_GetTokenInfo", { slotID: 0 }));
    expect(info).toMatchObject({ serialNumber: serial, label: "relabelled".padEnd(32), flags: INITIALIZED_FLAGS });
    const s = ok(app("C_OpenSession", { slotID: 0, flags: RW })).hSession;
    expect(app("C_Login", { hSession: s, userType: CK.CKU_USER, pin: USER_PIN }).rv).toBe("CKR_USER_PIN_NOT_INITIALIZED");
    ok(app("C_FindObjectsInit", { hSession: s, template: [] }));
    expect(ok(app("C_FindObjects", { hSession: s, maxCount: 10 })).handles).toEqual([]);
    expect(app("C_Login", { hSession: s, userType: CK.CKU_SO, pin: SO_PIN }).rv).toBe("CKR_OK");
  });
  it.each(PROFILES)("%s: a successful re-initialisation clears the SO and user failure flags", (_, opts) => {
    const app = { c: undefined as unknown as Call };
    given(steps(setups.token, wrongUser, wrongSO, (c) => void (app.c = c), (c, h) => void ok(c("C_CloseSession", { hSession: h.rw! }))), opts)
      .when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "t" })
      .then("CKR_OK");
    expect(ok(app.c("C_GetTokenInfo", { slotID: 0 })).flags).toBe(INITIALIZED_FLAGS);
  });
  it("the label is exactly 32 bytes: a longer one is cut, a shorter one padded with spaces", () => {
    const app = { c: undefined as unknown as Call };
    given(steps(setups.initialized, (c) => void (app.c = c))).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "x".repeat(30) + "yz0123" }).then("CKR_OK", ["TokenInitialized"]);
    expect(ok(app.c("C_GetTokenInfo", { slotID: 0 })).label).toBe("x".repeat(30) + "yz");
  });
  it("a session on another slot does not matter (default, slots: 2)", () => {
    const other: Setup = (c, h) => {
      ok(c("C_InitToken", { slotID: 1, pin: SO_PIN, label: "other" }));
      h.s1 = ok(c("C_OpenSession", { slotID: 1, flags: RO })).hSession;
    };
    given(steps(setups.initialized, other), { slots: 2 }).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "t" }).then("CKR_OK", ["TokenInitialized"]);
  });
  it("softhsm2: a session on another token's slot does not matter", () => {
    const second: Setup = (c, h) => {
      ok(c("C_GetSlotList", { tokenPresent: false, pSlotList: null }));
      ok(c("C_InitToken", { slotID: 1, pin: SO_PIN, label: "one" }));
      h.s1 = ok(c("C_OpenSession", { slotID: 1, flags: RO })).hSession;
    };
    given(steps(tokenNoSession, second), SOFTHSM).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "t" }).then("CKR_OK");
  });
  it("an RO public session is a session too", () =>
    given(steps(tokenNoSession, openRO)).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "t" }).then("CKR_SESSION_EXISTS", []));
  describe("another application's session", () => {
    it("default: counts (CKR_SESSION_EXISTS)", () =>
      given(steps(tokenNoSession, app2Session)).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "t" }).then("CKR_SESSION_EXISTS", []));
    it("default, two rules at once: another application's session wins over a NULL pin", () =>
      given(steps(tokenNoSession, app2Session)).when("C_InitToken", { slotID: 0, pin: null, label: "t" }).then("CKR_SESSION_EXISTS", []));
    it("softhsm2: does not count, only the caller's own sessions do", () =>
      given(steps(tokenNoSession, app2Session), SOFTHSM).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "t" }).then("CKR_OK"));
    it("softhsm2: the other application's own C_InitToken is refused by its own session", () =>
      given(steps(tokenNoSession, app2Session), SOFTHSM)
        .when("C_InitToken", (h) => ({ slotID: h.slot2!, pin: SO_PIN, label: "t" }), "app2")
        .then("CKR_SESSION_EXISTS", []));
  });
  it("default (pinRetries 3): a locked SO cannot re-initialise, even with the right PIN", () =>
    given(steps(setups.token, times(3, wrongSO), (c, h) => void ok(c("C_CloseSession", { hSession: h.rw! }))), { pinRetries: 3 })
      .when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "t" })
      .then("CKR_PIN_LOCKED", []));
  it("replays TokenTests::testInitToken", () => {
    for (const [, opts] of PROFILES) {
      given(undefined, opts).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "token1" }).then("CKR_CRYPTOKI_NOT_INITIALIZED");
      given(setups.initialized, opts).when("C_InitToken", { slotID: 0, pin: null, label: "token1" }).then("CKR_ARGUMENTS_BAD");
      given(setups.initialized, opts).when("C_InitToken", { slotID: INVALID_SLOT, pin: SO_PIN, label: "token1" }).then("CKR_SLOT_ID_INVALID");
      given(setups.initialized, opts).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "token1" }).then("CKR_OK");
      given(bareToken, opts).when("C_InitToken", { slotID: 0, pin: SO_PIN.slice(0, 7), label: "token1" }).then("CKR_PIN_INCORRECT");
      given(steps(bareToken, openRO), opts).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "token1" }).then("CKR_SESSION_EXISTS");
      let serial = "";
      let app!: Call;
      const openClose: Setup = (c, h) => {
        app = c;
        serial = ok(c("C_GetTokenInfo", { slotID: 0 })).serialNumber;
        h.ro = ok(c("C_OpenSession", { slotID: 0, flags: RO })).hSession;
        ok(c("C_CloseSession", { hSession: h.ro }));
      };
      given(steps(bareToken, openClose), opts).when("C_InitToken", { slotID: 0, pin: SO_PIN, label: "token1" }).then("CKR_OK");
      expect(ok(app("C_GetTokenInfo", { slotID: 0 })).serialNumber).toBe(serial);
    }
  });
});

describe("C_InitPIN", () => {
  it("two rules at once: not initialised wins over a bad session", () =>
    given().when("C_InitPIN", { hSession: 0, pin: USER_PIN }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a bad session wins over a NULL pin", () =>
    given(setups.token).when("C_InitPIN", { hSession: 99, pin: null }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("two rules at once: a public session wins over a NULL pin (CKR_USER_NOT_LOGGED_IN)", () =>
    given(setups.token).when("C_InitPIN", (h) => ({ hSession: h.rw!, pin: null })).then("CKR_USER_NOT_LOGGED_IN", []));
  it("two rules at once: an RO public session is USER_NOT_LOGGED_IN, never SESSION_READ_ONLY, even with a short pin", () =>
    given(steps(setups.token, openRO)).when("C_InitPIN", (h) => ({ hSession: h.ro!, pin: "12" })).then("CKR_USER_NOT_LOGGED_IN", []));
  it("a user session may not", () =>
    given(steps(setups.token, loginUser)).when("C_InitPIN", (h) => ({ hSession: h.rw!, pin: "5678" })).then("CKR_USER_NOT_LOGGED_IN", []));
  it("in an SO session, a NULL pin is CKR_ARGUMENTS_BAD", () =>
    given(steps(setups.token, loginSO)).when("C_InitPIN", (h) => ({ hSession: h.rw!, pin: null })).then("CKR_ARGUMENTS_BAD", []));
  it("checks the PIN length: 0, 3 and 256 bytes are CKR_PIN_LEN_RANGE", () => {
    for (const pin of ["", "123", "x".repeat(256)]) {
      given(steps(setups.token, loginSO)).when("C_InitPIN", (h) => ({ hSession: h.rw!, pin })).then("CKR_PIN_LEN_RANGE", []);
    }
  });
  it("sets the user PIN: flags 0x42D, the user can log in", () => {
    let app!: Call;
    const so: Setup = (c, h) => {
      app = c;
      h.rw = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession;
      ok(c("C_Login", { hSession: h.rw, userType: CK.CKU_SO, pin: SO_PIN }));
    };
    const { h } = given(steps(bareToken, so)).when("C_InitPIN", (h) => ({ hSession: h.rw!, pin: USER_PIN })).then("CKR_OK", ["UserPinSet"]);
    expect(ok(app("C_GetTokenInfo", { slotID: 0 })).flags).toBe(USER_PIN_FLAGS);
    ok(app("C_Logout", { hSession: h.rw! }));
    expect(app("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN }).rv).toBe("CKR_OK");
  });
  it.each(PROFILES)("%s: overwrites an existing user PIN: the old one is refused, the new one works", (_, opts) => {
    let app!: Call;
    const { h } = given(steps(setups.token, loginSO, (c) => void (app = c)), opts)
      .when("C_InitPIN", (h) => ({ hSession: h.rw!, pin: "5678" }))
      .then("CKR_OK");
    ok(app("C_Logout", { hSession: h.rw! }));
    expect(app("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN }).rv).toBe("CKR_PIN_INCORRECT");
    expect(app("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: "5678" }).rv).toBe("CKR_OK");
  });
  it("any RW session in SO state may be used, not only the one that logged in", () => {
    const second: Setup = (c, h) => void (h.rw2 = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession);
    given(steps(setups.token, loginSO, second)).when("C_InitPIN", (h) => ({ hSession: h.rw2!, pin: "5678" })).then("CKR_OK", ["UserPinSet"]);
  });
  it("clears USER_PIN_COUNT_LOW", () => {
    let app!: Call;
    given(steps(setups.token, wrongUser, loginSO, (c) => void (app = c)))
      .when("C_InitPIN", (h) => ({ hSession: h.rw!, pin: USER_PIN }))
      .then("CKR_OK", ["UserPinSet"]);
    expect(ok(app("C_GetTokenInfo", { slotID: 0 })).flags).toBe(USER_PIN_FLAGS);
  });
  it("default (pinRetries 3): unlocks a locked user", () => {
    let app!: Call;
    const { h } = given(steps(setups.token, times(3, wrongUser), loginSO, (c) => void (app = c)), { pinRetries: 3 })
      .when("C_InitPIN", (h) => ({ hSession: h.rw!, pin: USER_PIN }))
      .then("CKR_OK", ["UserPinSet"]);
    expect(ok(app("C_GetTokenInfo", { slotID: 0 })).flags & USER_BITS).toBe(0);
    ok(app("C_Logout", { hSession: h.rw! }));
    expect(app("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN }).rv).toBe("CKR_OK");
  });
  it("replays UserTests::testInitPIN", () => {
    for (const [, opts] of PROFILES) {
      const rw: Setup = (c, h) => void (h.rw = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession);
      given(undefined, opts).when("C_InitPIN", { hSession: 0, pin: USER_PIN }).then("CKR_CRYPTOKI_NOT_INITIALIZED");
      given(steps(bareToken, rw), opts).when("C_InitPIN", (h) => ({ hSession: h.rw!, pin: USER_PIN })).then("CKR_USER_NOT_LOGGED_IN");
      given(steps(bareToken, rw, loginSO), opts).when("C_InitPIN", { hSession: 0, pin: USER_PIN }).then("CKR_SESSION_HANDLE_INVALID");
      given(steps(bareToken, rw, loginSO), opts).when("C_InitPIN", (h) => ({ hSession: h.rw!, pin: "" })).then("CKR_PIN_LEN_RANGE");
      given(steps(bareToken, rw, loginSO), opts).when("C_InitPIN", (h) => ({ hSession: h.rw!, pin: USER_PIN })).then("CKR_OK");
    }
  });
});

describe("C_SetPIN", () => {
  const PIN2 = "12345";
  const SO2 = "123456789";
  it("two rules at once: not initialised wins over a bad session", () =>
    given().when("C_SetPIN", { hSession: 1, oldPin: USER_PIN, newPin: PIN2 }).then("CKR_CRYPTOKI_NOT_INITIALIZED", []));
  it("two rules at once: a bad session wins over a NULL old PIN", () =>
    given(setups.token).when("C_SetPIN", { hSession: 99, oldPin: null, newPin: PIN2 }).then("CKR_SESSION_HANDLE_INVALID", []));
  it("two rules at once: a NULL old PIN wins over a short new PIN", () =>
    given(setups.token).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: null, newPin: "123" })).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: a NULL new PIN wins over an RO session", () =>
    given(steps(setups.token, openRO)).when("C_SetPIN", (h) => ({ hSession: h.ro!, oldPin: USER_PIN, newPin: null })).then("CKR_ARGUMENTS_BAD", []));
  it("two rules at once: a 3-byte new PIN wins over an RO session", () =>
    given(steps(setups.token, openRO)).when("C_SetPIN", (h) => ({ hSession: h.ro!, oldPin: USER_PIN, newPin: "123" })).then("CKR_PIN_LEN_RANGE", []));
  it("two rules at once: an RO session wins over a wrong old PIN (no failure recorded)", () =>
    given(steps(setups.token, openRO)).when("C_SetPIN", (h) => ({ hSession: h.ro!, oldPin: "9999", newPin: PIN2 })).then("CKR_SESSION_READ_ONLY", []));
  it("an RO user session is read-only too", () =>
    given(steps(setups.token, openRO, loginUser)).when("C_SetPIN", (h) => ({ hSession: h.ro!, oldPin: USER_PIN, newPin: PIN2 })).then("CKR_SESSION_READ_ONLY", []));
  it("checks the new PIN length (0 and 256 bytes); the old PIN's length is not checked", () => {
    for (const newPin of ["", "x".repeat(256)]) {
      given(setups.token).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: USER_PIN, newPin })).then("CKR_PIN_LEN_RANGE", []);
    }
    given(setups.token).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: "", newPin: PIN2 })).then("CKR_PIN_INCORRECT", ["PinRejected"]);
  });
  it("an RW public session changes the user PIN without logging in, and stays public", () => {
    let app!: Call;
    const { h } = given(steps(setups.token, (c) => void (app = c)))
      .when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: USER_PIN, newPin: PIN2 }))
      .then("CKR_OK", ["UserPinSet"]);
    expect(ok(app("C_GetSessionInfo", { hSession: h.rw! })).state).toBe(CK.CKS_RW_PUBLIC_SESSION);
    expect(app("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: USER_PIN }).rv).toBe("CKR_PIN_INCORRECT");
    expect(app("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: PIN2 }).rv).toBe("CKR_OK");
  });
  it("a logged-in user stays logged in after changing the PIN", () => {
    let app!: Call;
    const { h } = given(steps(setups.token, loginUser, (c) => void (app = c)))
      .when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: USER_PIN, newPin: PIN2 }))
      .then("CKR_OK", ["UserPinSet"]);
    expect(ok(app("C_GetSessionInfo", { hSession: h.rw! })).state).toBe(CK.CKS_RW_USER_FUNCTIONS);
  });
  it("a wrong old user PIN is rejected and sets USER_PIN_COUNT_LOW", () => {
    let app!: Call;
    given(steps(setups.token, (c) => void (app = c)))
      .when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: "9999", newPin: PIN2 }))
      .then("CKR_PIN_INCORRECT", ["PinRejected"]);
    expect(ok(app("C_GetTokenInfo", { slotID: 0 })).flags).toBe(USER_PIN_FLAGS | CK.CKF_USER_PIN_COUNT_LOW);
  });
  it("with no user PIN at all, a public RW session is PIN_INCORRECT and sets USER_PIN_COUNT_LOW (0x425 → 0x10425)", () => {
    let app!: Call;
    const rw: Setup = (c, h) => {
      app = c;
      h.rw = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession;
    };
    given(steps(bareToken, rw)).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: USER_PIN, newPin: PIN2 })).then("CKR_PIN_INCORRECT", ["PinRejected"]);
    expect(ok(app("C_GetTokenInfo", { slotID: 0 })).flags).toBe(0x10425);
  });
  it("an SO session changes the SO PIN", () => {
    let app!: Call;
    const { h } = given(steps(setups.token, loginSO, (c) => void (app = c)))
      .when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: SO_PIN, newPin: SO2 }))
      .then("CKR_OK", ["SoPinSet"]);
    ok(app("C_Logout", { hSession: h.rw! }));
    expect(app("C_Login", { hSession: h.rw!, userType: CK.CKU_SO, pin: SO_PIN }).rv).toBe("CKR_PIN_INCORRECT");
    expect(app("C_Login", { hSession: h.rw!, userType: CK.CKU_SO, pin: SO2 }).rv).toBe("CKR_OK");
  });
  it("the SO cannot change the user PIN with C_SetPIN: the old PIN is compared with the SO PIN", () => {
    let app!: Call;
    given(steps(setups.token, loginSO, (c) => void (app = c)))
      .when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: USER_PIN, newPin: PIN2 }))
      .then("CKR_PIN_INCORRECT", ["PinRejected"]);
    expect(ok(app("C_GetTokenInfo", { slotID: 0 })).flags).toBe(USER_PIN_FLAGS | CK.CKF_SO_PIN_COUNT_LOW);
  });
  it("a success clears the role's COUNT_LOW", () => {
    let app!: Call;
    given(steps(setups.token, wrongUser, (c) => void (app = c)))
      .when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: USER_PIN, newPin: PIN2 }))
      .then("CKR_OK", ["UserPinSet"]);
    expect(ok(app("C_GetTokenInfo", { slotID: 0 })).flags).toBe(USER_PIN_FLAGS);
  });
  it("default (pinRetries 3), two rules at once: a locked user wins over a wrong old PIN (no new failure)", () =>
    given(steps(setups.token, times(3, wrongUser)), { pinRetries: 3 })
      .when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: "9999", newPin: PIN2 }))
      .then("CKR_PIN_LOCKED", []));
  it("replays UserTests::testSetPIN", () => {
    for (const [, opts] of PROFILES) {
      const rw: Setup = (c, h) => void (h.rw = ok(c("C_OpenSession", { slotID: 0, flags: RW })).hSession);
      const ro: Setup = (c, h) => void (h.ro = ok(c("C_OpenSession", { slotID: 0, flags: RO })).hSession);
      const token = steps(setups.token, (c, h) => void ok(c("C_CloseSession", { hSession: h.rw! })));
      given(undefined, opts).when("C_SetPIN", { hSession: 1, oldPin: USER_PIN, newPin: PIN2 }).then("CKR_CRYPTOKI_NOT_INITIALIZED");
      given(steps(token, ro), opts).when("C_SetPIN", { hSession: 0, oldPin: USER_PIN, newPin: PIN2 }).then("CKR_SESSION_HANDLE_INVALID");
      given(steps(token, ro), opts).when("C_SetPIN", (h) => ({ hSession: h.ro!, oldPin: USER_PIN, newPin: PIN2 })).then("CKR_SESSION_READ_ONLY");
      given(steps(token, rw), opts).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: null, newPin: PIN2 })).then("CKR_ARGUMENTS_BAD");
      given(steps(token, rw), opts).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: USER_PIN, newPin: null })).then("CKR_ARGUMENTS_BAD");
      given(steps(token, rw), opts).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: USER_PIN, newPin: "" })).then("CKR_PIN_LEN_RANGE");
      given(steps(token, rw), opts).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: PIN2, newPin: PIN2 })).then("CKR_PIN_INCORRECT");
      // The rest of the sequence, one step per given: each setup replays what came before.
      const changed: Setup = (c, h) => void ok(c("C_SetPIN", { hSession: h.rw!, oldPin: USER_PIN, newPin: PIN2 }));
      given(steps(token, rw), opts).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: USER_PIN, newPin: PIN2 })).then("CKR_OK");
      const login2: Setup = (c, h) => void ok(c("C_Login", { hSession: h.rw!, userType: CK.CKU_USER, pin: PIN2 }));
      given(steps(token, rw, changed), opts).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_USER, pin: PIN2 })).then("CKR_OK");
      given(steps(token, rw, changed, login2), opts).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: USER_PIN, newPin: PIN2 })).then("CKR_PIN_INCORRECT");
      given(steps(token, rw, changed, login2), opts).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: PIN2, newPin: USER_PIN })).then("CKR_OK");
      given(steps(token, rw, changed, login2), opts).when("C_Login", (h) => ({ hSession: h.rw!, userType: CK.CKU_SO, pin: SO_PIN })).then("CKR_USER_ANOTHER_ALREADY_LOGGED_IN");
      const so: Setup = (c, h) => {
        ok(c("C_Logout", { hSession: h.rw! }));
        ok(c("C_Login", { hSession: h.rw!, userType: CK.CKU_SO, pin: SO_PIN }));
      };
      given(steps(token, rw, changed, login2, so), opts).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: SO2, newPin: SO2 })).then("CKR_PIN_INCORRECT");
      given(steps(token, rw, changed, login2, so), opts).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: SO_PIN, newPin: SO2 })).then("CKR_OK");
      const so2: Setup = (c, h) => void ok(c("C_SetPIN", { hSession: h.rw!, oldPin: SO_PIN, newPin: SO2 }));
      given(steps(token, rw, changed, login2, so, so2), opts).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: SO_PIN, newPin: SO_PIN })).then("CKR_PIN_INCORRECT");
      given(steps(token, rw, changed, login2, so, so2), opts).when("C_SetPIN", (h) => ({ hSession: h.rw!, oldPin: SO2, newPin: SO_PIN })).then("CKR_OK");
    }
  });
});
