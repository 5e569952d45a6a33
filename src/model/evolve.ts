/**
 * evolve: apply one fact to the write model. Deterministic: it reads only the state, the fact and `env` (the keyed,
 * deterministic helpers that turn a recorded sealed value back into bytes). No clock, no randomness, no I/O, so the
 * same facts always rebuild the same state (test/property/replay.property.spec.ts).
 *
 * It mutates in place: copying a 100k-session state per fact would break the O(1) budget. Consequences SoftHSM
 * attaches to a fact are applied here, in the fact sheet's order (e.g. a closing session takes the session objects it
 * created with it, §10); consequences that depend on more than the fact (last session closed → log out) are separate
 * facts, decided by the deciders.
 */
import type { Fact, StoredAttribute } from "../events/types.js";
import { SEALED_VALUE } from "./key-material.js";
import { hexToBytes } from "../crypto/encoding.js";
import { SlotActor } from "../actors/slot-actor.js";
import { feedDigest, restoreOperation, startCrypto, startDigest, updateCrypto } from "./operations.js";
import {
  cacheOf,
  newToken,
  type AppSlotState,
  type AppState,
  type ObjectState,
  type SessionState,
  type SimState,
} from "./state.js";

export interface EvolveEnv {
  /** Open a value sealed under the simulator key (data fed to a digest). */
  unseal(sealed: string): Uint8Array;
  /**
   * Recorded facts (a replay): a digest's state is computed when it is first read, not step by step
   * (model/operations.ts startDigest). The dispatcher's own facts are applied eagerly: their inputs are at hand.
   */
  deferDigests?: boolean;
  /**
   * Recorded facts (a replay): an object's attribute map is built from its recorded values when it is first read
   * (`RecordedObject`), so an object created and destroyed within the log never has it built.
   */
  lazyAttributes?: boolean;
}

function newSlot(state: SimState, slotID: number, token: string | null): AppSlotState {
  return {
    slotID,
    token,
    actor: new SlotActor(state.profile.logoutRequiresLogin),
    epochAll: 0,
    epochPrivate: 0,
    sessions: new Set(),
    roSessions: 0,
  };
}

function app(state: SimState, id: number): AppState {
  const a = state.apps.get(id);
  if (!a) throw new Error(`fact for unknown application ${id}`);
  return a;
}

function slot(a: AppState, slotID: number): AppSlotState {
  const s = a.slots.get(slotID);
  if (!s) throw new Error(`fact for unknown slot ${slotID} of application ${a.id}`);
  return s;
}

function token(state: SimState, id: string) {
  const t = state.tokens.get(id);
  if (!t) throw new Error(`fact for unknown token ${id}`);
  return t;
}

/**
 * softhsm2: an application wrote the token's settings after refreshing them, so its copy now equals the token's.
 * (C_InitPIN's first write is the exception, recorded as TokenSettingsRestored.)
 */
function settingsWritten(state: SimState, appId: number, tokenId: string): void {
  const c = state.apps.get(appId)?.caches.get(tokenId);
  const t = state.tokens.get(tokenId);
  if (c && t) c.settings = { label: t.label, soPin: t.soPin, failures: { ...t.failures } };
}

/** softhsm2: SoftHSM's Generation::commit: the writer adopts disk + 1 without indexing what others added. */
function bump(state: SimState, appId: number, tokenId: string, object?: { add?: string; remove?: string }): void {
  const t = state.tokens.get(tokenId)!;
  t.generation++;
  const c = state.apps.get(appId)?.caches.get(tokenId);
  if (!c) return;
  c.gen = t.generation;
  if (object?.add) c.known.add(object.add);
  if (object?.remove) c.known.delete(object.remove);
}

function advance(a: AppState, handle: number, kind: "session" | "object", shared: boolean): void {
  if (shared || kind === "session") a.nextHandle = Math.max(a.nextHandle, handle + 1);
  else a.nextObjectHandle = Math.max(a.nextObjectHandle, handle + 1);
}

function closeSession(state: SimState, a: AppState, handle: number): void {
  const s = a.sessions.get(handle);
  if (!s) throw new Error(`SessionClosed for unknown session ${handle}`);
  const sl = slot(a, s.slotID);
  a.sessions.delete(handle);
  sl.sessions.delete(handle);
  if (!s.rw) sl.roSessions--;
  sl.actor.stopSession(handle);
  const t = state.tokens.get(s.token);
  if (t) {
    t.sessions--;
    if (s.rw) t.rwSessions--;
  }
  // Handles its finds issued for other sessions' objects go with it (SoftHSM's HandleManager::sessionClosed).
  if (s.found) {
    for (const h of s.found) {
      const e = a.objectHandles.get(h);
      if (!e) continue;
      a.objectHandles.delete(h);
      if (a.handleOf.get(e.object) === h) a.handleOf.delete(e.object);
    }
  }
  // The session objects it created go with it (SoftHSM §10 step 3); those of other sessions stay.
  if (s.created) for (const id of s.created) dropSessionObject(a, id);
}

/** A session object gone with the session that created it. */
function dropSessionObject(a: AppState, id: string): void {
  a.sessionObjects.delete(id);
  a.handleOf.delete(id);
}

function insertObject(state: SimState, a: AppState, o: ObjectState): void {
  if (o.token) {
    const tokenId = o.id.slice(1, o.id.indexOf("/"));
    const t = token(state, tokenId);
    t.objects.set(o.id, o);
    const n = Number(o.id.slice(o.id.indexOf("/") + 1));
    t.nextObject = Math.max(t.nextObject, n + 1);
  } else {
    a.sessionObjects.set(o.id, o);
    const n = Number(o.id.slice(o.id.indexOf("/") + 1));
    a.nextSessionObject = Math.max(a.nextSessionObject, n + 1);
  }
}

function issueHandle(state: SimState, a: AppState, handle: number, object: string, slotID: number, priv: boolean) {
  const sl = slot(a, slotID);
  a.objectHandles.set(handle, {
    object,
    slotID,
    private: priv,
    epochAll: sl.epochAll,
    epochPrivate: sl.epochPrivate,
  });
  a.handleOf.set(object, handle);
  advance(a, handle, "object", state.profile.sharedHandleCounter);
}

const isPlainValue = (x: StoredAttribute): x is { type: number; value: string } => "value" in x;

/**
 * A replayed object whose attributes are all plain values (no key material), with its attribute map built when
 * something first reads `attrs`: the next live call on it, a snapshot, `replay --until`. Building the map (a
 * Uint8Array per attribute from its hex) was most of a replayed C_CreateObject (~4.5 µs of ~16 µs for the bench's
 * session cycle), and an object that a later record destroys is never read. The map built is the one `setStored`
 * builds eagerly, in the same order; once built it is an own data property, and the recorded values are let go.
 *
 * A class, with `attrs` an accessor on its prototype: an own accessor (defineProperty on a plain object) cost ~400 ns
 * an object here, a third of a replayed session cycle's ObjectCreated, where this costs ~25 ns. So `attrs` is not an
 * own member until it is built: the snapshot codec carries an instance as the plain object an eager replay builds
 * (`plain`, registered in events/snapshot.ts), and JSON does too (`toJSON`). A value that is not hex throws when the
 * map is built, not at the record: the log's chain is verified when the store opens, and its values were written by
 * the simulator.
 */
export class RecordedObject implements ObjectState {
  declare app?: number;
  declare creator?: number;
  declare privateEpoch?: number;
  declare clearStorage?: true;
  declare sealed?: Map<number, string>;
  id: string;
  token: boolean;
  private: boolean;
  slotID: number;
  #recorded: { type: number; value: string }[] | undefined;

  constructor(id: string, token: boolean, priv: boolean, slotID: number, recorded: { type: number; value: string }[]) {
    this.id = id;
    this.token = token;
    this.private = priv;
    this.slotID = slotID;
    this.#recorded = recorded;
  }

  get attrs(): Map<number, Uint8Array> {
    const m = new Map<number, Uint8Array>();
    for (const x of this.#recorded!) m.set(x.type, hexToBytes(x.value));
    this.attrs = m;
    return m;
  }

  /** The built map, as an own data property in the accessor's place (found before the prototype's from then on). */
  set attrs(m: Map<number, Uint8Array>) {
    Object.defineProperty(this, "attrs", { value: m, writable: true, enumerable: true, configurable: true });
    this.#recorded = undefined;
  }

  /** The plain object an eager replay builds for this one: the same members, in the same order. */
  plain(): ObjectState {
    const { id, token, private: priv, slotID, attrs, ...rest } = { ...this, attrs: this.attrs };
    return { id, token, private: priv, slotID, attrs, ...rest };
  }

  toJSON(): ObjectState {
    return this.plain();
  }
}

/**
 * One stored attribute into an object: raw bytes as they are; a sealed value opened under the simulator key, or, when
 * it does not open (a replay without the key), kept sealed with SEALED_VALUE in its place.
 */
export function setStored(o: ObjectState, x: StoredAttribute, env: EvolveEnv): void {
  if ("value" in x) {
    o.attrs.set(x.type, hexToBytes(x.value));
    o.sealed?.delete(x.type);
    return;
  }
  (o.sealed ??= new Map()).set(x.type, x.sealed);
  let plain = SEALED_VALUE;
  try {
    plain = env.unseal(x.sealed);
  } catch {
    // Not this simulator's key: the state rebuilds, the key stays sealed.
  }
  o.attrs.set(x.type, plain);
}

/** A sealed value opened, or undefined when it is not this simulator key's (a log replayed without its key). */
function tryUnseal(env: EvolveEnv, sealed: string): Uint8Array | undefined {
  try {
    return env.unseal(sealed);
  } catch {
    return undefined;
  }
}

export function evolve(state: SimState, fact: Fact, env: EvolveEnv): void {
  state.applied++;
  switch (fact.type) {
    case "ApplicationStarted": {
      const a: AppState = {
        id: fact.app,
        slots: new Map(),
        slotOrder: [],
        nextHandle: 1,
        nextObjectHandle: 1,
        sessions: new Map(),
        objectHandles: new Map(),
        handleOf: new Map(),
        sessionObjects: new Map(),
        nextSessionObject: 1,
        caches: new Map(),
      };
      for (const s of fact.slots) {
        a.slots.set(s.slotID, newSlot(state, s.slotID, s.token));
        a.slotOrder.push(s.slotID);
        const t = s.token === null ? undefined : state.tokens.get(s.token);
        if (state.profile.processCaches && t?.initialized) a.caches.set(t.id, cacheOf(t));
      }
      state.apps.set(fact.app, a);
      state.nextApp = Math.max(state.nextApp, fact.app + 1);
      return;
    }
    case "ApplicationFinalized": {
      const a = app(state, fact.app);
      // Everything of the application goes: sessions (and the token session counts), session objects, handles.
      for (const h of [...a.sessions.keys()]) closeSession(state, a, h);
      for (const s of a.slots.values()) s.actor.stop();
      state.apps.delete(fact.app);
      return;
    }
    case "SlotAdded": {
      const a = app(state, fact.app);
      a.slots.set(fact.slotID, newSlot(state, fact.slotID, null));
      a.slotOrder.push(fact.slotID);
      return;
    }
    case "TokenInitialized": {
      const a = app(state, fact.app);
      const sl = slot(a, fact.slotID);
      let t = state.tokens.get(fact.token);
      if (!t) {
        t = newToken(fact.token);
        state.tokens.set(fact.token, t);
        state.tokenOrder.push(fact.token);
      }
      const reinit = fact.reinit || t.initialized;
      if (reinit) {
        // Re-initialisation keeps the SO PIN and serial, wipes the objects and the user PIN (fact sheet §7). An
        // application that missed objects (softhsm2) destroys only those it knows of.
        if (fact.destroyed) for (const id of fact.destroyed) t.objects.delete(id);
        else t.objects.clear();
        t.userPin = null;
        t.failures.user = 0;
      }
      t.initialized = true;
      t.serial = fact.serial;
      t.label = fact.label;
      t.soPin = fact.soPin;
      t.failures.so = 0;
      sl.token = fact.token;
      if (state.profile.processCaches) {
        if (reinit) {
          const known = a.caches.get(t.id)?.known ?? new Set<string>();
          for (const id of fact.destroyed ?? []) known.delete(id);
          bump(state, fact.app, t.id);
          // SoftHSM re-reads the SO PIN from disk and drops the user PIN it had (rule P2).
          a.caches.set(t.id, { ...cacheOf(t), known, userPin: null });
        } else a.caches.set(t.id, cacheOf(t));
      }
      return;
    }
    case "PinRejected": {
      token(state, fact.token).failures[fact.role]++;
      settingsWritten(state, fact.app, fact.token);
      return;
    }
    case "PinAccepted": {
      token(state, fact.token).failures[fact.role] = 0;
      settingsWritten(state, fact.app, fact.token);
      return;
    }
    case "UserPinSet":
    case "SoPinSet": {
      const role = fact.type === "SoPinSet" ? "so" : "user";
      const key = role === "so" ? "soPin" : "userPin";
      const t = token(state, fact.token);
      t[key] = fact.pin;
      t.failures[role] = 0;
      // The writing application's own copy follows (softhsm2): its later checks use the PIN it set.
      const c = state.apps.get(fact.app)?.caches.get(fact.token);
      if (c) c[key] = fact.pin;
      settingsWritten(state, fact.app, fact.token);
      return;
    }
    case "TokenLooked": {
      const t = token(state, fact.token);
      const a = app(state, fact.app);
      let c = a.caches.get(fact.token);
      if (!c) a.caches.set(fact.token, (c = cacheOf(t)));
      if (c.gen !== t.generation) {
        c.gen = t.generation;
        c.known = new Set(t.objects.keys());
      }
      c.settings = { label: t.label, soPin: t.soPin, failures: { ...t.failures } };
      return;
    }
    case "TokenSettingsRestored": {
      const t = token(state, fact.token);
      t.label = fact.label;
      t.soPin = fact.soPin;
      t.failures = { ...fact.failures };
      return;
    }
    case "LoggedIn": {
      const a = app(state, fact.app);
      slot(a, fact.slotID).actor.apply({ type: "LoggedIn", role: fact.role });
      token(state, fact.token).failures[fact.role] = 0;
      settingsWritten(state, fact.app, fact.token);
      return;
    }
    case "LoggedOut": {
      const sl = slot(app(state, fact.app), fact.slotID);
      sl.actor.apply({ type: "LoggedOut" });
      // Private handles die for good and private session objects are destroyed (lazily: they hold the old epoch).
      sl.epochPrivate++;
      return;
    }
    case "SessionOpened": {
      const a = app(state, fact.app);
      const sl = slot(a, fact.slotID);
      a.sessions.set(fact.handle, {
        handle: fact.handle,
        app: fact.app,
        slotID: fact.slotID,
        token: fact.token,
        rw: fact.rw,
        created: null,
        op: null,
      });
      sl.sessions.add(fact.handle);
      if (!fact.rw) sl.roSessions++;
      const t = token(state, fact.token);
      t.sessions++;
      if (fact.rw) t.rwSessions++;
      advance(a, fact.handle, "session", state.profile.sharedHandleCounter);
      return;
    }
    case "SessionClosed": {
      closeSession(state, app(state, fact.app), fact.handle);
      return;
    }
    case "AllSessionsClosed": {
      // closeSession for each, in bulk: the slot and token are looked up once and the slot's sets replaced whole
      // (this is the one call whose work is proportional to the sessions it closes).
      const a = app(state, fact.app);
      const sl = slot(a, fact.slotID);
      // The slot's RW sessions: its sessions less the read-only ones it counts.
      const rw = sl.sessions.size - sl.roSessions;
      // The session objects of the sessions that go, with them. The sessions are walked for them only when the
      // application has any: this runs once per C_CloseAllSessions, mostly before the JIT has optimized it, and with
      // none every delete would find nothing (a session's `created` ids are session objects', which leave
      // `sessionObjects` and `handleOf` together).
      if (sl.sessions.size === a.sessions.size) {
        // Every session of the application is on this slot (the usual case): the map goes whole. Deleting 100k
        // entries one by one cost more than all the rest of the call (the hash table shrinks and rehashes as it goes).
        if (a.sessionObjects.size > 0) {
          for (const s of a.sessions.values()) {
            if (s.created) for (const id of s.created) dropSessionObject(a, id);
          }
        }
        a.sessions = new Map();
      } else {
        for (const h of sl.sessions) {
          const s = a.sessions.get(h)!;
          if (s.created) for (const id of s.created) dropSessionObject(a, id);
          a.sessions.delete(h);
        }
      }
      const t = sl.token === null ? undefined : state.tokens.get(sl.token);
      if (t) {
        t.sessions -= sl.sessions.size;
        t.rwSessions -= rw;
      }
      sl.sessions = new Set();
      sl.roSessions = 0;
      sl.actor.stopSessions();
      return;
    }
    case "ObjectHandlesInvalidated": {
      const a = app(state, fact.app);
      const sl = slot(a, fact.slotID);
      if (fact.scope === "all") {
        sl.epochAll++;
        // Session objects of the slot whose creators are gone are already destroyed; nothing else to walk.
      } else sl.epochPrivate++;
      return;
    }
    case "ObjectCreated": {
      const a = app(state, fact.app);
      const snap = fact.object;
      let o: ObjectState;
      if (env.lazyAttributes === true && snap.attrs.every(isPlainValue)) o = new RecordedObject(snap.id, snap.token, snap.private, snap.slotID, snap.attrs);
      else {
        o = { id: snap.id, token: snap.token, private: snap.private, slotID: snap.slotID, attrs: new Map() };
        for (const x of snap.attrs) setStored(o, x, env);
      }
      if (snap.clearStorage) o.clearStorage = true;
      if (!snap.token) {
        o.app = fact.app;
        o.creator = snap.creator;
        o.privateEpoch = slot(a, snap.slotID).epochPrivate;
        const creator = a.sessions.get(fact.session);
        if (creator) (creator.created ??= new Set()).add(snap.id);
      }
      insertObject(state, a, o);
      if (snap.token && state.profile.processCaches) bump(state, fact.app, snap.id.slice(1, snap.id.indexOf("/")), { add: snap.id });
      // Handle 0: SoftHSM's orphan of a failed create, stored but never handed out.
      if (fact.handle !== 0) issueHandle(state, a, fact.handle, snap.id, snap.slotID, snap.private);
      return;
    }
    case "ObjectDestroyed": {
      const a = app(state, fact.app);
      const id = fact.object;
      if (id.charCodeAt(0) === 116 /* 't' */) {
        const tokenId = id.slice(1, id.indexOf("/"));
        state.tokens.get(tokenId)?.objects.delete(id);
        if (state.profile.processCaches) bump(state, fact.app, tokenId, { remove: id });
      } else {
        const o = a.sessionObjects.get(id);
        a.sessionObjects.delete(id);
        if (o?.creator !== undefined) a.sessions.get(o.creator)?.created?.delete(id);
      }
      const h = a.handleOf.get(id);
      if (h !== undefined) {
        a.objectHandles.delete(h);
        a.handleOf.delete(id);
      }
      return;
    }
    case "AttributesChanged": {
      const id = fact.object;
      let o: ObjectState | undefined;
      if (id.charCodeAt(0) === 116) o = state.tokens.get(id.slice(1, id.indexOf("/")))?.objects.get(id);
      else for (const a of state.apps.values()) if ((o = a.sessionObjects.get(id))) break;
      if (!o) throw new Error(`AttributesChanged for unknown object ${id}`);
      for (const x of fact.attrs) setStored(o, x, env);
      return;
    }
    case "ObjectHandleIssued": {
      const a = app(state, fact.app);
      const o =
        fact.object.charCodeAt(0) === 116
          ? state.tokens.get(fact.object.slice(1, fact.object.indexOf("/")))?.objects.get(fact.object)
          : a.sessionObjects.get(fact.object);
      if (!o) throw new Error(`ObjectHandleIssued for unknown object ${fact.object}`);
      issueHandle(state, a, fact.handle, fact.object, fact.slotID, o.private);
      if (fact.via !== undefined) {
        const s = a.sessions.get(fact.via);
        if (s) (s.found ??= new Set()).add(fact.handle);
      }
      return;
    }
    case "FindStarted": {
      const a = app(state, fact.app);
      const s = a.sessions.get(fact.session)!;
      s.op = fact.broken ? { kind: "find", handles: [], pos: 0, broken: true } : { kind: "find", handles: fact.handles, pos: 0 };
      slot(a, s.slotID).actor.applyToSession(s.handle, { type: "OperationStarted", kind: "find" });
      return;
    }
    case "FindAdvanced": {
      const s = app(state, fact.app).sessions.get(fact.session)!;
      if (s.op?.kind === "find") s.op.pos += fact.count;
      return;
    }
    case "DigestStarted": {
      const a = app(state, fact.app);
      const s = a.sessions.get(fact.session)!;
      s.op = startDigest(fact.mechanism, env.deferDigests === true, env);
      slot(a, s.slotID).actor.applyToSession(s.handle, { type: "OperationStarted", kind: "digest" });
      return;
    }
    case "DigestUpdated": {
      const s = app(state, fact.app).sessions.get(fact.session)!;
      if (s.op?.kind === "digest") feedDigest(s.op, fact.sealed, env);
      return;
    }
    case "CryptoStarted": {
      const a = app(state, fact.app);
      const s = a.sessions.get(fact.session)!;
      s.op = startCrypto(state, a, fact, env);
      slot(a, s.slotID).actor.applyToSession(s.handle, { type: "OperationStarted", kind: fact.kind, reauth: fact.reauth === true });
      return;
    }
    case "Reauthenticated": {
      const a = app(state, fact.app);
      const s = a.sessions.get(fact.session)!;
      slot(a, s.slotID).actor.applyToSession(s.handle, { type: "Reauthenticated" });
      token(state, fact.token).failures[fact.role] = 0;
      return;
    }
    case "CryptoUpdated": {
      const s = app(state, fact.app).sessions.get(fact.session)!;
      if (s.op && s.op.kind !== "find" && s.op.kind !== "digest" && s.op.state !== null) {
        const data = tryUnseal(env, fact.sealed);
        if (data) updateCrypto(s.op, data, env);
        else s.op.state = null;
      }
      return;
    }
    case "OperationRestored": {
      const a = app(state, fact.app);
      const s = a.sessions.get(fact.session)!;
      s.op = restoreOperation(env.unseal(fact.sealed));
      slot(a, s.slotID).actor.applyToSession(s.handle, { type: "OperationStarted", kind: s.op.kind });
      return;
    }
    case "OperationEnded": {
      const a = app(state, fact.app);
      const s = a.sessions.get(fact.session);
      if (!s) return;
      s.op = null;
      slot(a, s.slotID).actor.applyToSession(s.handle, { type: "OperationEnded" });
      return;
    }
  }
}
