/**
 * What every decider gets, and the shared checks of fact sheet §4 ("every session-taking function starts the same").
 *
 * A decider is `(ctx, args) => Decision`: it reads the write model (or, for the read calls, the read model), asks
 * the slot and session charts, and returns an rv, outputs and facts. It changes nothing; the dispatcher applies the
 * facts. Randomness (salts, serials, nonces) and time reach it only through `ctx.shell` and `ctx.time`, and
 * whatever it draws lands in the facts, so replay never draws again.
 */
import type { Fact, PinVerifier } from "../events/types.js";
import type { CkrName } from "../pkcs11/constants.js";
import { CK } from "../pkcs11/constants.js";
import type { AppSlotState, AppState, SessionState, SimState, TokenState } from "../model/state.js";
import type { ReadModel } from "../projections/read-model.js";
import type { RsaComponents } from "../crypto/rsa.js";
import type { OperationKind } from "../machines/session.js";

export interface Decision {
  rv: CkrName;
  out?: unknown;
  facts: Fact[];
}

/** The effectful helpers a decider may use; the dispatcher provides them and nothing they return escapes unrecorded. */
export interface Shell {
  pinMatches(verifier: PinVerifier | null, pin: Uint8Array): boolean;
  newPinVerifier(pin: Uint8Array): PinVerifier;
  /** A new token serial: 16 lowercase hex characters (SoftHSM takes them from a random UUID). */
  newSerial(): string;
  /** Seal bytes under the simulator key with a fresh nonce. */
  seal(data: Uint8Array): string;
  /** Open what `seal` sealed (deterministic: replay may do it too). Throws on a value sealed under another key. */
  unseal(sealed: string): Uint8Array;
  /** A saved operation state for the application to hold (crypto/operation-blob.ts), sealed with the nonce given. */
  sealOperation(plain: Uint8Array, nonce: Uint8Array): Uint8Array;
  /** Open a blob `sealOperation` made: null when it is tampered with, foreign or not one at all. */
  openOperation(blob: Uint8Array): Uint8Array | null;
  /** `n` bytes from the simulator's injected random source (C_GenerateRandom's output). */
  randomBytes(n: number): Uint8Array;
  /**
   * A fresh RSA key pair (C_GenerateKeyPair, crypto/rsa.ts), or null where the generator refuses the size or exponent.
   * The decider records the components in its facts (the private ones sealed), so replay never generates again.
   */
  generateRsa(bits: number, exponent: Uint8Array): RsaComponents | null;
}

export interface DecideContext {
  state: SimState;
  read: ReadModel;
  /** The calling application's id, 0 when the caller has not called C_Initialize. */
  appId: number;
  app: AppState | undefined;
  time: number;
  shell: Shell;
}

export type Check = readonly [failed: boolean | (() => boolean), rv: CkrName];

/** The first failing check's rv, or undefined when all pass. Checks are written in the fact sheet's order. */
export function firstFailure(checks: readonly Check[]): CkrName | undefined {
  for (const [failed, rv] of checks) if (typeof failed === "function" ? failed() : failed) return rv;
  return undefined;
}

export function answer(rv: CkrName, out?: unknown, facts: Fact[] = []): Decision {
  return out === undefined ? { rv, facts } : { rv, out, facts };
}

export const reject = (rv: CkrName): Decision => ({ rv, facts: [] });

/** PIN limits SoftHSM is built with (configure.ac: MIN_PIN_LEN 4, MAX_PIN_LEN 255). */
export const MIN_PIN_LEN = 4;
export const MAX_PIN_LEN = 255;

export function pinLengthBad(pin: Uint8Array): boolean {
  return pin.length < MIN_PIN_LEN || pin.length > MAX_PIN_LEN;
}

export interface SessionRef {
  app: AppState;
  session: SessionState;
  slot: AppSlotState;
}

/** Look a session handle up: it must exist in this application and be a session handle (§4 step 3). */
export function findSession(ctx: DecideContext, hSession: number): SessionRef | undefined {
  const app = ctx.app;
  if (!app) return undefined;
  const session = app.sessions.get(hSession);
  if (!session) return undefined;
  return { app, session, slot: app.slots.get(session.slotID)! };
}

/** The slot's ID as SoftHSM derives it from a token serial: last 8 hex digits, masked to 31 bits (§5). */
export function slotIdFromSerial(serial: string): number {
  return parseInt(serial.slice(-8), 16) & 0x7fffffff;
}

/** The next handle for a new session or object, per the profile's counters (§8). */
export function nextHandle(ctx: DecideContext, kind: "session" | "object", offset = 0): number {
  const app = ctx.app!;
  if (ctx.state.profile.sharedHandleCounter || kind === "session") return app.nextHandle + offset;
  return app.nextObjectHandle + offset;
}

/**
 * softhsm2's per-process view (profile switch processCaches; docs/notes/softhsm-multiprocess.md). With the switch off
 * every application sees the live token, and these helpers say so.
 */
export function looks(ctx: DecideContext, tokenId: string): Fact[] {
  return ctx.state.profile.processCaches ? [{ type: "TokenLooked", app: ctx.appId, token: tokenId }] : [];
}

/** The PINs this application checks against: its copy (softhsm2) or the token's. */
export function pinsOf(ctx: DecideContext, t: TokenState): { so: PinVerifier | null; user: PinVerifier | null } {
  const c = ctx.state.profile.processCaches ? ctx.app?.caches.get(t.id) : undefined;
  return c ? { so: c.soPin, user: c.userPin } : { so: t.soPin, user: t.userPin };
}

/** The token objects this application will know of once it has looked (all of them, unless softhsm2 missed some). */
export function knownAfterLook(ctx: DecideContext, t: TokenState): Iterable<string> {
  const c = ctx.state.profile.processCaches ? ctx.app?.caches.get(t.id) : undefined;
  if (!c || c.gen !== t.generation) return t.objects.keys();
  return c.known;
}


export { CK };

export const isDecision = (x: SessionRef | Decision): x is Decision => "rv" in x;

/**
 * The opening every operation call shares (§4, then the session chart): initialised, its pointer arguments given, a
 * session of this application, and the chart letting `kind` start (an init) or step (an update or final). The
 * session, or the rejection.
 */
export function startOperation(
  ctx: DecideContext,
  hSession: number,
  nullArg: boolean,
  kind: OperationKind,
  type: "Start" | "Step" = "Start",
): SessionRef | Decision {
  const ref = ctx.appId === 0 ? undefined : findSession(ctx, hSession);
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [nullArg, "CKR_ARGUMENTS_BAD"],
    [!ref, "CKR_SESSION_HANDLE_INVALID"],
  ]);
  if (rv) return reject(rv);
  const started = ref!.slot.actor.operation(ref!.session.handle, { type, kind });
  return started === "CKR_OK" ? ref! : reject(started);
}
