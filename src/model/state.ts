/**
 * The write model: what the deciders consult and `evolve` changes. Tokens (label, serial, PIN verifiers, failure
 * counters, token objects) are shared by every application of one simulator; everything else belongs to one
 * application (one C_Initialize…C_Finalize lifetime): its slot list, handles, sessions and session objects.
 *
 * Cost rules (non-negotiable 5: no call may cost more as sessions or objects grow):
 * - every index is a flat Map keyed by handle or id;
 * - handle invalidation is lazy: an object handle remembers the slot's epochs when it was issued, and C_Logout or
 *   closing the last session bumps an epoch instead of walking the handles;
 * - private session objects die at logout the same way: they remember the slot's private epoch at creation.
 */
import type { PinVerifier, Role } from "../events/types.js";
import type { Profile } from "../pkcs11/profiles.js";
import type { SlotActor } from "../actors/slot-actor.js";

export interface TokenState {
  id: string;
  initialized: boolean;
  serial: string;
  /** The 32 label bytes as given to C_InitToken (latin1 string, not trimmed). */
  label: string;
  soPin: PinVerifier | null;
  userPin: PinVerifier | null;
  /** Consecutive failures since the last success (drives COUNT_LOW / FINAL_TRY / LOCKED). */
  failures: Record<Role, number>;
  objects: Map<string, ObjectState>;
  nextObject: number;
  /** Open sessions on this token, all applications together. */
  sessions: number;
  rwSessions: number;
  /** SoftHSM's on-disk generation counter: +1 per token-object create, destroy and re-initialisation. */
  generation: number;
}

/** An application's view of a token in the softhsm2 profile (SoftHSM's per-process caches). */
export interface TokenCache {
  /** The generation this application last indexed at, or adopted when it wrote. */
  gen: number;
  /** The token objects this application knows of (a look lists them all; its own creates add to it). */
  known: Set<string>;
  /** The PINs the application checks against (SoftHSM's SecureDataManager copy). */
  soPin: PinVerifier | null;
  userPin: PinVerifier | null;
  /** Its copy of the token settings, as of its last refresh (what C_InitPIN writes back). */
  settings: { label: string; soPin: PinVerifier | null; failures: Record<Role, number> };
}

export interface ObjectState {
  id: string;
  token: boolean;
  private: boolean;
  slotID: number;
  /** For session objects: the creating application and session, and the slot's private epoch at creation. */
  app?: number;
  creator?: number;
  privateEpoch?: number;
  /** See ObjectSnapshot.clearStorage: non-empty byte strings of this private object are unreadable (SoftHSM). */
  clearStorage?: true;
  /** Attribute type -> raw bytes, in insertion order (SoftHSM returns templates in the caller's order anyway). */
  attrs: Map<number, Uint8Array>;
  /**
   * Key material as the facts carry it: attribute type -> the sealed value (model/key-material.ts). Its attrs entry
   * holds the plaintext, or SEALED_VALUE when the simulator key could not open it.
   */
  sealed?: Map<number, string>;
}

export interface ObjectHandleEntry {
  object: string;
  slotID: number;
  private: boolean;
  epochAll: number;
  epochPrivate: number;
}

/**
 * A session's one operation, as plain data (JSON-able: numbers, strings, arrays, plain objects), so it can be
 * compared, snapshotted, saved by C_GetOperationState and rebuilt by replay. The mechanism states are the registry's
 * (src/crypto/mechanisms): a digest's chaining words and partial block, a cipher's IV / pending bytes / counter, an
 * HMAC's inner context. They are secret (pending plaintext, key-derived contexts): whatever persists them seals them.
 */
export type OperationState = FindOp | DigestOp | CryptoOp;

export interface FindOp {
  kind: "find";
  handles: number[];
  pos: number;
  /** SoftHSM's find operation without results (its C_FindObjectsInit failed half-way): C_FindObjects fails. */
  broken?: true;
}

export interface DigestOp {
  kind: "digest";
  mechanism: number;
  /** The registry's DigestState ({ h, buffer, length }); null when rebuilt without the simulator key. */
  state: unknown;
  /** Data has been fed (C_DigestUpdate / C_DigestKey): single-part C_Digest can no longer take the fast path. */
  updated: boolean;
}

/** Operations with a key: encrypt / decrypt (cipher mechanisms), sign / verify (MAC mechanisms). */
export type CryptoKind = "encrypt" | "decrypt" | "sign" | "verify";

export interface CryptoOp {
  kind: CryptoKind;
  mechanism: number;
  /** The key object's id at init (SoftHSM copies the key into the operation: destroying the object does not stop it). */
  object: string;
  /** The key's value sealed under the simulator key (the object's own sealed CKA_VALUE, as CryptoStarted names it). */
  sealed: string;
  /** The mechanism parameters as plain data (IV, counter block, GCM IV/AAD/tag bits, MAC length), hex strings. */
  params: unknown;
  /** The registry's stream state (CbcState, CtrState, GcmState, HmacState, …); null when rebuilt without its key. */
  state: unknown;
  /** An update step has run (SoftHSM then refuses single-part C_Sign / C_Verify, and C_Encrypt continues the stream). */
  updated: boolean;
}

export interface SessionState {
  handle: number;
  app: number;
  slotID: number;
  token: string;
  rw: boolean;
  /** Session objects this session created (destroyed when it closes). Allocated on first create. */
  created: Set<string> | null;
  op: OperationState | null;
  /** Handles of other sessions' objects first issued through this session's finds (they die when it closes). */
  found?: Set<number>;
}

export interface AppSlotState {
  slotID: number;
  /** The token in the slot; null for SoftHSM's uninitialised slot until C_InitToken creates its token. */
  token: string | null;
  actor: SlotActor;
  epochAll: number;
  epochPrivate: number;
  sessions: Set<number>;
  /** How many of `sessions` are read-only (the SO login rule needs it). */
  roSessions: number;
}

export interface AppState {
  id: number;
  slots: Map<number, AppSlotState>;
  /** Slot IDs in C_GetSlotList order. */
  slotOrder: number[];
  nextHandle: number;
  nextObjectHandle: number;
  sessions: Map<number, SessionState>;
  objectHandles: Map<number, ObjectHandleEntry>;
  /** Object id -> its current handle in this application, so a re-find returns the same handle while valid. */
  handleOf: Map<string, number>;
  sessionObjects: Map<string, ObjectState>;
  nextSessionObject: number;
  /** softhsm2 only: per-token caches (empty otherwise). */
  caches: Map<string, TokenCache>;
}

export interface SimState {
  profile: Profile;
  tokens: Map<string, TokenState>;
  /** Token ids in creation order (SoftHSM numbering counts them). */
  tokenOrder: string[];
  /** Fixed numbering: the token of slot i. */
  fixedSlots: string[];
  apps: Map<number, AppState>;
  nextApp: number;
  /** Number of facts applied; replay must reach the same figure. */
  applied: number;
}

export function newToken(id: string): TokenState {
  return {
    id,
    initialized: false,
    serial: "",
    label: "",
    soPin: null,
    userPin: null,
    failures: { so: 0, user: 0 },
    objects: new Map(),
    nextObject: 1,
    sessions: 0,
    rwSessions: 0,
    generation: 1,
  };
}

/** A fresh cache: what SoftHSM reads at C_Initialize (and re-reads at the application's own re-initialisation). */
export function cacheOf(t: TokenState): TokenCache {
  return {
    gen: t.generation,
    known: new Set(t.objects.keys()),
    soPin: t.soPin,
    userPin: t.userPin,
    settings: { label: t.label, soPin: t.soPin, failures: { ...t.failures } },
  };
}

export function newSimState(profile: Profile, fixedSlotCount: number): SimState {
  const s: SimState = {
    profile,
    tokens: new Map(),
    tokenOrder: [],
    fixedSlots: [],
    apps: new Map(),
    nextApp: 1,
    applied: 0,
  };
  if (profile.slotNumbering === "fixed") {
    for (let i = 0; i < fixedSlotCount; i++) {
      const id = `slot${i}`;
      s.tokens.set(id, newToken(id));
      s.fixedSlots.push(id);
    }
  }
  return s;
}

/** Whether an object still exists for this application (lazy destruction of private session objects at logout). */
export function liveObject(state: SimState, app: AppState, id: string): ObjectState | undefined {
  const tokenObject = id.charCodeAt(0) === 116; /* 't' */
  if (tokenObject) {
    const slash = id.indexOf("/");
    return state.tokens.get(id.slice(1, slash))?.objects.get(id);
  }
  const o = app.sessionObjects.get(id);
  if (!o) return undefined;
  if (o.private && o.privateEpoch !== app.slots.get(o.slotID)?.epochPrivate) return undefined;
  return o;
}

/** An object handle the application still holds: issued, and not invalidated since (epochs current). */
export function heldHandle(app: AppState, handle: number): ObjectHandleEntry | undefined {
  const entry = app.objectHandles.get(handle);
  if (!entry) return undefined;
  const slot = app.slots.get(entry.slotID);
  if (!slot || entry.epochAll !== slot.epochAll || (entry.private && entry.epochPrivate !== slot.epochPrivate)) {
    return undefined;
  }
  return entry;
}

/** Resolve an object handle; undefined when unknown, invalidated (lazily, by epoch) or its object is gone. */
export function resolveObjectHandle(
  state: SimState,
  app: AppState,
  handle: number,
): { entry: ObjectHandleEntry; object: ObjectState } | undefined {
  const entry = heldHandle(app, handle);
  if (!entry) return undefined;
  const object = liveObject(state, app, entry.object);
  return object ? { entry, object } : undefined;
}

/** The valid handle this application holds for an object, if any. */
export function currentHandleOf(state: SimState, app: AppState, objectId: string): number | undefined {
  const h = app.handleOf.get(objectId);
  return h !== undefined && resolveObjectHandle(state, app, h) ? h : undefined;
}
