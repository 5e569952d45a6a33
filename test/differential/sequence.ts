/**
 * Seeded random generator of PKCS#11 call sequences for differential testing (SoftHSM 2.6.1 vs hsmsim).
 *
 * A sequence is pure data (JSON-serialisable): every handle-like argument is a symbolic reference that the runner
 * (run.ts) resolves at run time against what that application has seen, so one sequence can be replayed on two
 * implementations. The generator never looks at results; it keeps a rough guess of the state only to bias the
 * mix towards deep states (token initialised, user PIN set, logged in, objects, active find/digest).
 */

// ---------------------------------------------------------------------------------------------------------------
// Constants, from the project's one table.

import { CK } from "../../src/pkcs11/constants.js";
import { keyGenerators } from "./sequence-keys.js";
import { cryptoGenerators } from "./sequence-crypto.js";
export const {
  CKA_CLASS,
  CKA_TOKEN,
  CKA_PRIVATE,
  CKA_LABEL,
  CKA_APPLICATION,
  CKA_VALUE,
  CKA_SIGN,
  CKO_DATA,
  CKU_SO,
  CKU_USER,
  CKU_CONTEXT_SPECIFIC,
  CKF_RW_SESSION,
  CKF_SERIAL_SESSION,
  CKF_DONT_BLOCK,
  CKF_OS_LOCKING_OK,
  CKM_SHA256,
  CKM_VENDOR_DEFINED,
} = CK;
/** The invalid slot ID SoftHSM's own tests use (1<<31). */
export const INVALID_SLOT = 0x80000000;
/** A handle value that is never issued in a sequence. */
export const NEVER_HANDLE = 999_999;

/** Every object the generator creates carries CKA_APPLICATION = IDENTITY_PREFIX + <step index>: its identity. */
export const IDENTITY_PREFIX = "o";

// ---------------------------------------------------------------------------------------------------------------
// Sequence data model

/** A slot argument. */
export type SlotRef =
  | { index: number } // index (mod length) into the app's last slot list, in canonical order (see run.ts)
  | { id: number }; // a literal slot ID (e.g. INVALID_SLOT)

/** A session-handle argument. */
export type SessionRef =
  | { live: number } // k-th (mod n) session of this app the harness believes open (current C_Initialize lifetime); -1 = newest
  | { any: number } // k-th (mod n) session handle ever returned to this app in this sequence (may be stale)
  | { closed: true } // the session handle most recently closed by this app (NEVER_HANDLE if none)
  | { objectAsSession: number } // k-th (mod n, ascending) object handle this app knows (current lifetime)
  | { value: number }; // literal (0 = CK_INVALID_HANDLE, NEVER_HANDLE, ...)

/** An object-handle argument. */
export type ObjectRef =
  | { ident: number } // k-th (mod n) object identity this app holds a handle for, ordered by identity
  | { key: number } // the same among identities carried by CKA_ID (keys and certificates; sequence-keys.ts)
  | { lastCreated: true } // handle returned by this app's last successful C_CreateObject
  | { stale: number } // k-th (mod n, ascending) handle of this app known to be destroyed or superseded
  | { sessionAsObject: number } // k-th (mod n, ascending) session handle of this app (current lifetime)
  | { value: number }; // literal

export type AttrValue = boolean | number | string | { hex: string };
export interface TemplateAttr {
  type: number;
  /** Omitted = no value (used for C_GetAttributeValue). */
  value?: AttrValue;
}

export type SymArg =
  | { k: "slot"; ref: SlotRef }
  | { k: "session"; ref: SessionRef }
  | { k: "object"; ref: ObjectRef }
  | { k: "template"; attrs: TemplateAttr[] }
  | { k: "bytes"; hex: string } // input Buffer
  | { k: "alloc"; len: number } // output Buffer of this length (zero-filled)
  | { k: "mechanism"; mechanism: number; parameter?: string } // parameter: hex bytes
  | { k: "initArgs"; flags: number } // C_Initialize({ flags })
  | { k: "lit"; v: string | number | boolean };

export interface Step {
  app: number;
  fn: string;
  args: SymArg[];
}

export interface Sequence {
  seed: number;
  /** Number of applications (processes) used: 1 or 2. */
  apps: number;
  steps: Step[];
}

// ---------------------------------------------------------------------------------------------------------------
// Seeded PRNG (sfc32 seeded through splitmix32): stable across Node versions and platforms

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t >>> 0;
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from empty list");
    return items[this.int(items.length)] as T;
  }

  /** Weighted choice: entries are [weight, value]. */
  weighted<T>(entries: ReadonlyArray<readonly [number, T]>): T {
    let total = 0;
    for (const [w] of entries) total += w;
    let x = this.float() * total;
    for (const [w, v] of entries) {
      x -= w;
      if (x < 0) return v;
    }
    return (entries[entries.length - 1] as readonly [number, T])[1];
  }

  hex(bytes: number): string {
    let s = "";
    for (let i = 0; i < bytes; i++) s += this.int(256).toString(16).padStart(2, "0");
    return s;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Argument vocabularies

export const SO_PINS = ["12345678", "87654321"] as const;
export const USER_PINS = ["1234", "4321"] as const;
const WRONG_PIN = "00000000";
const PIN_LEN_3 = "123";
const PIN_LEN_256 = "5".repeat(256);

/**
 * Token labels are always >= 31 characters: pkcs11js passes the JS string as a NUL-terminated buffer of its own
 * length and SoftHSM reads exactly 32 bytes, so a shorter label makes SoftHSM read past the buffer (undefined bytes).
 */
export const TOKEN_LABELS = [
  "token-A".padEnd(32, " "),
  "token-B".padEnd(32, " "),
  "a-label-that-is-longer-than-32-bytes-x", // SoftHSM keeps the first 32 bytes
] as const;

const OBJECT_LABELS = ["red", "blue", ""] as const;

// ---------------------------------------------------------------------------------------------------------------
// Generator

export interface GenerateOptions {
  /** Minimum number of steps (default 60). */
  minSteps?: number;
  /** Maximum number of steps (default 100). */
  maxSteps?: number;
  /** Force the number of applications (default: 1 or 2 at random, 2 in ~60% of sequences). */
  apps?: 1 | 2;
}

/** Rough, result-blind guess of an application's state, used only to bias the mix. */
interface AppGuess {
  booted: boolean;
  sessions: number;
  login: "none" | "so" | "user";
  op: "none" | "find" | "digest";
}

interface Guess {
  apps: AppGuess[];
  tokenInit: boolean;
  userPinSet: boolean;
  soPin: string;
  userPin: string;
  objects: number;
}

const lit = (v: string | number | boolean): SymArg => ({ k: "lit", v });
const slotIdx = (index: number): SymArg => ({ k: "slot", ref: { index } });
const slotId = (id: number): SymArg => ({ k: "slot", ref: { id } });
const sess = (ref: SessionRef): SymArg => ({ k: "session", ref });
const obj = (ref: ObjectRef): SymArg => ({ k: "object", ref });
const tmpl = (attrs: TemplateAttr[]): SymArg => ({ k: "template", attrs });

export function generateSequence(seed: number, opts: GenerateOptions = {}): Sequence {
  const rng = new Rng(seed);
  const minSteps = opts.minSteps ?? 60;
  const maxSteps = opts.maxSteps ?? 100;
  const target = rng.range(minSteps, Math.max(minSteps, maxSteps));
  const nApps = opts.apps ?? (rng.chance(0.6) ? 2 : 1);
  const steps: Step[] = [];
  const g: Guess = {
    apps: Array.from({ length: nApps }, () => ({ booted: false, sessions: 0, login: "none", op: "none" })),
    tokenInit: false,
    userPinSet: false,
    soPin: SO_PINS[0],
    userPin: USER_PINS[0],
    objects: 0,
  };

  const emit = (app: number, fn: string, ...args: SymArg[]): void => {
    steps.push({ app, fn, args });
  };
  const appGuess = (a: number): AppGuess => g.apps[a] as AppGuess;

  // --- argument pickers -------------------------------------------------------------------------------------
  const pickSlot = (): SymArg =>
    rng.weighted<SymArg>([
      [70, slotIdx(0)],
      [20, slotIdx(rng.range(1, 3))],
      [6, slotId(INVALID_SLOT)],
      [4, slotId(rng.pick([0, 1, 2]))],
    ]);
  const pickSession = (a: number): SymArg => {
    const live = appGuess(a).sessions > 0;
    return sess(
      rng.weighted<SessionRef>([
        [live ? 82 : 40, { live: rng.int(3) }],
        [6, { any: rng.int(6) }],
        [4, { closed: true }],
        [3, { value: 0 }],
        [3, { objectAsSession: rng.int(3) }],
        [2, { value: NEVER_HANDLE }],
      ]),
    );
  };
  const pickObject = (): SymArg =>
    obj(
      rng.weighted<ObjectRef>([
        [52, { ident: rng.int(4) }],
        [28, { lastCreated: true }],
        [8, { stale: rng.int(3) }],
        [4, { value: 0 }],
        [4, { sessionAsObject: rng.int(2) }],
        [4, { value: NEVER_HANDLE }],
      ]),
    );
  const pickSoPin = (): string =>
    rng.weighted<string>([
      [78, g.soPin],
      [6, rng.pick(SO_PINS)],
      [8, WRONG_PIN],
      [4, ""],
      [4, rng.pick(USER_PINS)],
    ]);
  const pickUserPin = (): string =>
    rng.weighted<string>([
      [78, g.userPin],
      [6, rng.pick(USER_PINS)],
      [8, "9999"],
      [4, ""],
      [4, rng.pick(SO_PINS)],
    ]);
  const pickNewPin = (kind: "so" | "user"): string =>
    rng.weighted<string>([
      [85, rng.pick(kind === "so" ? SO_PINS : USER_PINS)],
      [8, PIN_LEN_3],
      [7, PIN_LEN_256],
    ]);
  const pickLabel = (): string => rng.pick(TOKEN_LABELS);

  const createTemplate = (): TemplateAttr[] => {
    const attrs: TemplateAttr[] = [];
    if (!rng.chance(0.04)) attrs.push({ type: CKA_CLASS, value: CKO_DATA });
    const tok = rng.weighted<boolean | undefined>([
      [45, true],
      [40, false],
      [15, undefined],
    ]);
    if (tok !== undefined) attrs.push({ type: CKA_TOKEN, value: tok });
    // Private objects are only creatable when logged in as user: bias accordingly
    const priv = rng.weighted<boolean | undefined>([
      [30, true],
      [55, false],
      [15, undefined],
    ]);
    if (priv !== undefined) attrs.push({ type: CKA_PRIVATE, value: priv });
    if (rng.chance(0.8)) attrs.push({ type: CKA_LABEL, value: rng.pick(OBJECT_LABELS) });
    if (rng.chance(0.5)) attrs.push({ type: CKA_VALUE, value: { hex: rng.hex(rng.range(1, 12)) } });
    attrs.push({ type: CKA_APPLICATION, value: `${IDENTITY_PREFIX}${steps.length}` });
    // shuffle lightly: attribute order is irrelevant to PKCS#11 but exercises the template parser
    if (rng.chance(0.3)) attrs.reverse();
    return attrs;
  };
  const getTemplate = (): TemplateAttr[] =>
    rng.weighted<TemplateAttr[]>([
      [20, [{ type: CKA_LABEL }]],
      [10, [{ type: CKA_CLASS }]],
      [15, [{ type: CKA_TOKEN }, { type: CKA_PRIVATE }]],
      [10, [{ type: CKA_VALUE }]],
      [15, [{ type: CKA_CLASS }, { type: CKA_LABEL }, { type: CKA_TOKEN }, { type: CKA_PRIVATE }, { type: CKA_VALUE }]],
      [8, [{ type: CKA_SIGN }]],
      [6, [{ type: CKA_LABEL }, { type: CKA_SIGN }]],
      [6, [{ type: CKA_APPLICATION }]],
      [2, []],
    ]);
  const setTemplate = (): TemplateAttr[] =>
    rng.weighted<TemplateAttr[]>([
      [55, [{ type: CKA_LABEL, value: rng.pick(["red", "blue", "green", ""]) }]],
      [15, [{ type: CKA_PRIVATE, value: rng.chance(0.5) }]],
      [10, [{ type: CKA_VALUE, value: { hex: rng.hex(4) } }]],
      [10, [{ type: CKA_LABEL, value: "green" }, { type: CKA_TOKEN, value: true }]],
      [5, [{ type: CKA_CLASS, value: CKO_DATA }]],
      [5, []],
    ]);
  const findTemplate = (): TemplateAttr[] =>
    rng.weighted<TemplateAttr[]>([
      [35, []],
      [20, [{ type: CKA_LABEL, value: rng.pick(["red", "blue", "green"]) }]],
      [15, [{ type: CKA_TOKEN, value: true }]],
      [10, [{ type: CKA_TOKEN, value: false }]],
      [10, [{ type: CKA_CLASS, value: CKO_DATA }, { type: CKA_PRIVATE, value: true }]],
      [5, [{ type: CKA_PRIVATE, value: false }]],
      [5, [{ type: CKA_LABEL, value: "" }]],
    ]);
  const findCount = (): number =>
    rng.weighted<number>([
      [30, 1],
      [25, 2],
      [35, 10],
      [7, 100],
      [3, 0],
    ]);
  const digestInput = (): SymArg =>
    rng.chance(0.04) ? { k: "bytes", hex: "" } : { k: "bytes", hex: rng.hex(rng.range(1, 40)) };
  const digestOutput = (): SymArg => ({
    k: "alloc",
    len: rng.weighted<number>([
      [80, 32],
      [10, 64],
      [10, 16],
    ]),
  });
  const openFlags = (): number =>
    rng.weighted<number>([
      [58, CKF_SERIAL_SESSION | CKF_RW_SESSION],
      [27, CKF_SERIAL_SESSION],
      [5, 0],
      [3, CKF_RW_SESSION],
      [4, CKF_SERIAL_SESSION | 0x100],
      [3, CKF_SERIAL_SESSION | CKF_RW_SESSION | 0x1000],
    ]);

  // --- single calls --------------------------------------------------------------------------------------------
  const single: Record<string, (a: number) => void> = {
    C_Initialize: (a) => {
      if (rng.chance(0.15)) emit(a, "C_Initialize", { k: "initArgs", flags: CKF_OS_LOCKING_OK });
      else emit(a, "C_Initialize");
      appGuess(a).booted = true;
    },
    C_Finalize: (a) => {
      emit(a, "C_Finalize");
      Object.assign(appGuess(a), { booted: false, sessions: 0, login: "none", op: "none" });
    },
    C_GetInfo: (a) => emit(a, "C_GetInfo"),
    C_GetSlotList: (a) => emit(a, "C_GetSlotList", lit(rng.chance(0.5))),
    C_GetSlotInfo: (a) => emit(a, "C_GetSlotInfo", pickSlot()),
    C_GetTokenInfo: (a) => emit(a, "C_GetTokenInfo", pickSlot()),
    C_InitToken: (a) => {
      const pin = rng.weighted<string>([
        [75, g.soPin],
        [10, WRONG_PIN],
        [6, PIN_LEN_3],
        [5, PIN_LEN_256],
        [4, rng.pick(SO_PINS)],
      ]);
      emit(a, "C_InitToken", rng.chance(0.9) ? slotIdx(rng.weighted([[60, 0], [40, rng.range(1, 2)]])) : pickSlot(), lit(pin), lit(pickLabel()));
      g.tokenInit = true;
    },
    C_InitPIN: (a) => {
      const pin = rng.weighted<string>([
        [80, rng.chance(0.85) ? g.userPin : rng.pick(USER_PINS)],
        [8, PIN_LEN_3],
        [6, PIN_LEN_256],
        [6, ""],
      ]);
      emit(a, "C_InitPIN", pickSession(a), lit(pin));
      if (appGuess(a).login === "so" && pin.length >= 4 && pin.length <= 255) {
        g.userPinSet = true;
        g.userPin = pin;
      }
    },
    C_SetPIN: (a) => {
      const kind = appGuess(a).login === "so" ? "so" : "user";
      const oldPin = kind === "so" ? pickSoPin() : pickUserPin();
      const newPin = pickNewPin(kind);
      emit(a, "C_SetPIN", pickSession(a), lit(oldPin), lit(newPin));
      if (newPin.length >= 4 && newPin.length <= 255 && rng.chance(0.5)) {
        if (kind === "so") g.soPin = newPin;
        else g.userPin = newPin;
      }
    },
    C_OpenSession: (a) => {
      const flags = openFlags();
      emit(a, "C_OpenSession", rng.chance(0.93) ? slotIdx(rng.weighted([[85, 0], [15, rng.range(1, 2)]])) : pickSlot(), lit(flags));
      appGuess(a).sessions++;
    },
    C_CloseSession: (a) => {
      emit(a, "C_CloseSession", pickSession(a));
      const ag = appGuess(a);
      ag.sessions = Math.max(0, ag.sessions - 1);
      if (ag.sessions === 0) ag.login = "none";
      ag.op = "none";
    },
    C_CloseAllSessions: (a) => {
      emit(a, "C_CloseAllSessions", pickSlot());
      Object.assign(appGuess(a), { sessions: 0, login: "none", op: "none" });
    },
    C_GetSessionInfo: (a) => emit(a, "C_GetSessionInfo", pickSession(a)),
    C_Login: (a) => {
      const type = rng.weighted<number>([
        [35, CKU_SO],
        [50, CKU_USER],
        [8, CKU_CONTEXT_SPECIFIC],
        [7, 3],
      ]);
      const pin = type === CKU_SO ? pickSoPin() : pickUserPin();
      emit(a, "C_Login", pickSession(a), lit(type), lit(pin));
      const ag = appGuess(a);
      if (ag.login === "none" && (type === CKU_SO || type === CKU_USER)) ag.login = type === CKU_SO ? "so" : "user";
    },
    C_Logout: (a) => {
      emit(a, "C_Logout", pickSession(a));
      appGuess(a).login = "none";
    },
    C_CreateObject: (a) => {
      emit(a, "C_CreateObject", pickSession(a), tmpl(rng.chance(0.02) ? [] : createTemplate()));
      g.objects++;
    },
    C_DestroyObject: (a) => emit(a, "C_DestroyObject", pickSession(a), pickObject()),
    C_GetAttributeValue: (a) => emit(a, "C_GetAttributeValue", pickSession(a), pickObject(), tmpl(getTemplate())),
    C_SetAttributeValue: (a) => emit(a, "C_SetAttributeValue", pickSession(a), pickObject(), tmpl(setTemplate())),
    C_FindObjectsInit: (a) => {
      emit(a, "C_FindObjectsInit", pickSession(a), tmpl(findTemplate()));
      appGuess(a).op = "find";
    },
    C_FindObjects: (a) => emit(a, "C_FindObjects", pickSession(a), lit(findCount())),
    C_FindObjectsFinal: (a) => {
      emit(a, "C_FindObjectsFinal", pickSession(a));
      appGuess(a).op = "none";
    },
    C_DigestInit: (a) => {
      emit(a, "C_DigestInit", pickSession(a), {
        k: "mechanism",
        mechanism: rng.chance(0.95) ? CKM_SHA256 : CKM_VENDOR_DEFINED | 0x1234,
      });
      appGuess(a).op = "digest";
    },
    C_Digest: (a) => emit(a, "C_Digest", pickSession(a), digestInput(), digestOutput()),
    C_DigestUpdate: (a) => emit(a, "C_DigestUpdate", pickSession(a), digestInput()),
    C_DigestFinal: (a) => emit(a, "C_DigestFinal", pickSession(a), digestOutput()),
    C_WaitForSlotEvent: (a) => emit(a, "C_WaitForSlotEvent", lit(rng.chance(0.85) ? CKF_DONT_BLOCK : 0)),
  };

  const singleWeights: Array<[number, string]> = [
    [1, "C_Initialize"],
    [1, "C_Finalize"],
    [2, "C_GetInfo"],
    [4, "C_GetSlotList"],
    [3, "C_GetSlotInfo"],
    [5, "C_GetTokenInfo"],
    [3, "C_InitToken"],
    [3, "C_InitPIN"],
    [4, "C_SetPIN"],
    [7, "C_OpenSession"],
    [4, "C_CloseSession"],
    [2, "C_CloseAllSessions"],
    [5, "C_GetSessionInfo"],
    [8, "C_Login"],
    [4, "C_Logout"],
    [9, "C_CreateObject"],
    [3, "C_DestroyObject"],
    [7, "C_GetAttributeValue"],
    [4, "C_SetAttributeValue"],
    [5, "C_FindObjectsInit"],
    [6, "C_FindObjects"],
    [4, "C_FindObjectsFinal"],
    [4, "C_DigestInit"],
    [3, "C_Digest"],
    [3, "C_DigestUpdate"],
    [3, "C_DigestFinal"],
    [2, "C_WaitForSlotEvent"],
  ];
  const needsSession = new Set([
    "C_InitPIN",
    "C_SetPIN",
    "C_CloseSession",
    "C_GetSessionInfo",
    "C_Login",
    "C_Logout",
    "C_CreateObject",
    "C_DestroyObject",
    "C_GetAttributeValue",
    "C_SetAttributeValue",
    "C_FindObjectsInit",
    "C_FindObjects",
    "C_FindObjectsFinal",
    "C_DigestInit",
    "C_Digest",
    "C_DigestUpdate",
    "C_DigestFinal",
  ]);
  // Secret keys and certificates (sequence-keys.ts): their calls join the mix, each opening a session first.
  const kg = keyGenerators({
    rng,
    emit,
    pickSession,
    pickObject,
    pickKey: () =>
      rng.chance(0.85)
        ? obj(rng.weighted<ObjectRef>([[70, { key: rng.int(4) }], [30, { lastCreated: true }]]))
        : pickObject(),
    identity: () => `${IDENTITY_PREFIX}${steps.length}`,
    loggedIn: (a) => appGuess(a).login,
  });
  Object.assign(single, kg.single);
  singleWeights.push(...kg.weights);
  for (const [, fn] of kg.weights) needsSession.add(fn);
  const cg = cryptoMix();
  /** The cryptographic operations (sequence-crypto.ts): singles and a macro, on the key part's context. */
  function cryptoMix() {
    const gen = cryptoGenerators({
      rng,
      emit,
      pickSession,
      pickObject,
      pickKey: () =>
        rng.chance(0.85) ? obj(rng.weighted<ObjectRef>([[70, { key: rng.int(4) }], [30, { lastCreated: true }]])) : pickObject(),
      identity: () => `${IDENTITY_PREFIX}${steps.length}`,
      loggedIn: (a) => appGuess(a).login,
    });
    Object.assign(single, gen.single);
    singleWeights.push(...gen.weights);
    for (const [, fn] of gen.weights) needsSession.add(fn);
    return gen;
  }
  const call = (a: number, fn: string): void => {
    const f = single[fn];
    if (!f) throw new Error(`no generator for ${fn}`);
    const ag = appGuess(a);
    // A real application opens a session before using one (most of the time)
    if (needsSession.has(fn) && ag.booted && ag.sessions === 0 && rng.chance(0.75)) {
      emit(a, "C_OpenSession", slotIdx(0), lit(rng.chance(0.7) ? CKF_SERIAL_SESSION | CKF_RW_SESSION : CKF_SERIAL_SESSION));
      ag.sessions++;
    }
    f(a);
  };

  // --- macros (realistic snippets that reach deep states) ---------------------------------------------------
  const macros: Record<string, (a: number) => void> = {
    boot: (a) => {
      call(a, "C_Initialize");
      emit(a, "C_GetSlotList", lit(rng.chance(0.5)));
    },
    initToken: (a) => {
      emit(a, "C_GetSlotList", lit(false));
      const idx = rng.weighted<number>([
        [70, 0],
        [30, rng.range(1, 2)],
      ]);
      emit(a, "C_InitToken", slotIdx(idx), lit(rng.chance(0.9) ? g.soPin : WRONG_PIN), lit(pickLabel()));
      if (rng.chance(0.6)) emit(a, "C_GetTokenInfo", slotIdx(idx));
      g.tokenInit = true;
    },
    soSetup: (a) => {
      // SO login needs no RO session of this process on the slot (else CKR_SESSION_READ_ONLY_EXISTS)
      if (appGuess(a).sessions > 0 && rng.chance(0.5)) {
        emit(a, "C_CloseAllSessions", slotIdx(0));
        Object.assign(appGuess(a), { sessions: 0, login: "none", op: "none" });
      }
      emit(a, "C_OpenSession", slotIdx(0), lit(CKF_SERIAL_SESSION | CKF_RW_SESSION));
      appGuess(a).sessions++;
      emit(a, "C_Login", sess({ live: rng.chance(0.7) ? -1 : rng.int(3) }), lit(CKU_SO), lit(rng.chance(0.9) ? g.soPin : pickSoPin()));
      appGuess(a).login = "so";
      call(a, "C_InitPIN");
      if (rng.chance(0.3)) emit(a, "C_GetTokenInfo", slotIdx(0));
      if (rng.chance(0.7)) {
        emit(a, "C_Logout", pickSession(a));
        appGuess(a).login = "none";
      }
    },
    userLogin: (a) => {
      let s = pickSession(a);
      if (appGuess(a).sessions === 0 || rng.chance(0.3)) {
        call(a, "C_OpenSession");
        if (rng.chance(0.7)) s = sess({ live: -1 });
      }
      emit(a, "C_Login", s, lit(CKU_USER), lit(pickUserPin()));
      appGuess(a).login = "user";
      if (rng.chance(0.4)) emit(a, "C_GetSessionInfo", pickSession(a));
    },
    objects: (a) => {
      const n = rng.range(1, 4);
      for (let i = 0; i < n; i++) call(a, "C_CreateObject");
      if (rng.chance(0.5)) call(a, "C_GetAttributeValue");
    },
    find: (a) => {
      const s = pickSession(a);
      emit(a, "C_FindObjectsInit", s, tmpl(findTemplate()));
      const n = rng.range(1, 3);
      for (let i = 0; i < n; i++) emit(a, "C_FindObjects", s, lit(findCount()));
      if (rng.chance(0.4)) call(a, rng.pick(["C_GetAttributeValue", "C_DigestInit", "C_FindObjectsInit", "C_SetAttributeValue"]));
      if (rng.chance(0.75)) emit(a, "C_FindObjectsFinal", s);
      else appGuess(a).op = "find";
    },
    digest: (a) => {
      const s = pickSession(a);
      emit(a, "C_DigestInit", s, { k: "mechanism", mechanism: CKM_SHA256 });
      if (rng.chance(0.5)) {
        emit(a, "C_Digest", s, digestInput(), digestOutput());
      } else {
        const n = rng.range(0, 3);
        for (let i = 0; i < n; i++) emit(a, "C_DigestUpdate", s, digestInput());
        if (rng.chance(0.3)) call(a, rng.pick(["C_FindObjectsInit", "C_DigestInit", "C_Digest"]));
        if (rng.chance(0.8)) emit(a, "C_DigestFinal", s, digestOutput());
      }
    },
    restart: (a) => {
      call(a, "C_Finalize");
      macros.boot?.(a);
    },
    sessions: (a) => {
      const n = rng.range(1, 3);
      for (let i = 0; i < n; i++) call(a, "C_OpenSession");
      if (rng.chance(0.5)) call(a, rng.pick(["C_CloseSession", "C_CloseAllSessions", "C_GetSessionInfo"]));
    },
    rediscover: (a) => {
      // lose the handles (close all / logout / restart), then find the token objects again
      const how = rng.weighted<string>([
        [35, "closeAll"],
        [25, "logout"],
        [25, "restart"],
        [15, "closeOne"],
      ]);
      if (how === "closeAll") call(a, "C_CloseAllSessions");
      else if (how === "logout") call(a, "C_Logout");
      else if (how === "restart") macros.restart?.(a);
      else call(a, "C_CloseSession");
      emit(a, "C_OpenSession", slotIdx(0), lit(rng.chance(0.7) ? CKF_SERIAL_SESSION | CKF_RW_SESSION : CKF_SERIAL_SESSION));
      appGuess(a).sessions++;
      if (g.userPinSet && rng.chance(0.6)) {
        emit(a, "C_Login", sess({ live: -1 }), lit(CKU_USER), lit(pickUserPin()));
        appGuess(a).login = "user";
      }
      const s = sess({ live: -1 });
      emit(a, "C_FindObjectsInit", s, tmpl(findTemplate()));
      emit(a, "C_FindObjects", s, lit(rng.pick([2, 10, 10, 100])));
      if (rng.chance(0.5)) call(a, rng.pick(["C_GetAttributeValue", "C_SetAttributeValue", "C_DestroyObject"]));
      if (rng.chance(0.5)) emit(a, "C_FindObjects", s, lit(10));
      emit(a, "C_FindObjectsFinal", s);
      if (rng.chance(0.6)) call(a, rng.pick(["C_GetAttributeValue", "C_GetAttributeValue", "C_SetAttributeValue", "C_DestroyObject"]));
    },
    keys: (a) => {
      if (appGuess(a).sessions === 0) call(a, "C_OpenSession");
      kg.macros.keys(a);
      g.objects++;
    },
    findKeys: (a) => kg.macros.findKeys(a),
    crypto: (a) => {
      if (appGuess(a).sessions === 0) call(a, "C_OpenSession");
      cg.macros.cryptoRun(a);
      g.objects++;
    },
    soTroubles: (a) => {
      // RO session + SO login (SESSION_READ_ONLY_EXISTS), InitToken with sessions open (SESSION_EXISTS), ...
      emit(a, "C_OpenSession", slotIdx(0), lit(CKF_SERIAL_SESSION));
      appGuess(a).sessions++;
      emit(a, "C_Login", pickSession(a), lit(CKU_SO), lit(g.soPin));
      emit(a, "C_InitToken", slotIdx(0), lit(g.soPin), lit(pickLabel()));
      if (rng.chance(0.5)) call(a, "C_CloseAllSessions");
    },
  };

  const pickMacro = (a: number): string => {
    const ag = appGuess(a);
    if (!ag.booted) return "boot";
    return rng.weighted<string>([
      [g.tokenInit ? 2 : 30, "initToken"],
      [g.userPinSet ? 4 : 20, "soSetup"],
      [g.userPinSet ? (ag.login === "user" ? 6 : 22) : 3, "userLogin"],
      [ag.sessions > 0 ? 16 : 4, "objects"],
      [ag.sessions > 0 ? 12 : 3, "find"],
      [ag.sessions > 0 ? 8 : 2, "digest"],
      [2, "restart"],
      [ag.sessions > 0 ? 4 : 10, "sessions"],
      [3, "soTroubles"],
      [g.objects > 0 ? 8 : 1, "rediscover"],
      [ag.sessions > 0 ? 10 : 2, "keys"],
      [g.objects > 0 ? 3 : 0, "findKeys"],
      [ag.sessions > 0 ? 10 : 2, "crypto"],
    ]);
  };

  // --- main loop ---------------------------------------------------------------------------------------------
  // Most sequences start the way a real application does; a few start with calls before C_Initialize.
  if (rng.chance(0.1)) call(0, rng.pick(["C_GetInfo", "C_GetSlotList", "C_OpenSession", "C_WaitForSlotEvent", "C_Finalize"]));
  if (rng.chance(0.95)) macros.boot?.(0);
  if (rng.chance(0.85)) macros.initToken?.(0);
  // The second application usually starts after the token exists (it builds its slot list at C_Initialize)
  const app1StartAt = nApps > 1 ? rng.range(steps.length, steps.length + 25) : Infinity;
  let app1Started = false;

  while (steps.length < target) {
    let a = 0;
    if (nApps > 1 && steps.length >= app1StartAt) {
      if (!app1Started) {
        macros.boot?.(1);
        app1Started = true;
        continue;
      }
      a = rng.chance(0.4) ? 1 : 0;
    }
    if (rng.chance(0.45)) {
      const m = pickMacro(a);
      const f = macros[m];
      if (!f) throw new Error(`no macro ${m}`);
      f(a);
    } else {
      call(a, rng.weighted(singleWeights));
    }
  }
  return { seed, apps: nApps, steps };
}

/** Seeds 0..count-1 derived from a base seed (kept simple and printable). */
export function sequenceSeeds(base: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => (base + i * 7919) >>> 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Pretty-printing for reports

export function formatArg(a: SymArg): string {
  switch (a.k) {
    case "slot":
      return "index" in a.ref ? `slot[${a.ref.index}]` : `slotId(0x${a.ref.id.toString(16)})`;
    case "session": {
      const r = a.ref;
      if ("live" in r) return `session.live[${r.live}]`;
      if ("any" in r) return `session.any[${r.any}]`;
      if ("closed" in r) return "session.closed";
      if ("objectAsSession" in r) return `objectAsSession[${r.objectAsSession}]`;
      return `handle(${r.value})`;
    }
    case "object": {
      const r = a.ref;
      if ("ident" in r) return `object.ident[${r.ident}]`;
      if ("key" in r) return `object.key[${r.key}]`;
      if ("lastCreated" in r) return "object.lastCreated";
      if ("stale" in r) return `object.stale[${r.stale}]`;
      if ("sessionAsObject" in r) return `sessionAsObject[${r.sessionAsObject}]`;
      return `handle(${r.value})`;
    }
    case "template":
      return `[${a.attrs
        .map((t) => {
          const v = t.value;
          const vs =
            v === undefined ? "" : typeof v === "object" ? `=0x${v.hex}` : typeof v === "string" ? `=${JSON.stringify(v.length > 40 ? `${v.slice(0, 12)}…(${v.length})` : v)}` : `=${String(v)}`;
          return `0x${t.type.toString(16)}${vs}`;
        })
        .join(", ")}]`;
    case "bytes":
      return `bytes(${a.hex.length / 2})`;
    case "alloc":
      return `outbuf(${a.len})`;
    case "mechanism":
      return `{mechanism: 0x${a.mechanism.toString(16)}${a.parameter === undefined ? "" : `, parameter: ${a.parameter.length / 2} bytes`}}`;
    case "initArgs":
      return `{flags: ${a.flags}}`;
    case "lit":
      return typeof a.v === "string" ? JSON.stringify(a.v.length > 40 ? `${a.v.slice(0, 12)}…(${a.v.length} chars)` : a.v) : String(a.v);
  }
}

export function formatStep(s: Step): string {
  return `app${s.app} ${s.fn}(${s.args.map(formatArg).join(", ")})`;
}
