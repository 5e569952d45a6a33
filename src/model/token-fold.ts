/**
 * One token rebuilt alone: the token's persistent state (initialised, serial, label, PIN verifiers, failure counters,
 * token objects, SoftHSM's generation counter) folded from the records of its own subject (events/token-subjects.ts
 * says which records those are). Deterministic, like evolve: no clock, randomness or I/O.
 *
 * What it leaves out, because it is not the token's: login state and sessions (they belong to applications, so the
 * `sessions` / `rwSessions` counts stay 0 here), handles, session objects, the softhsm2 per-application caches. For
 * the facts it folds it applies exactly what `evolve` (model/evolve.ts) applies to the token; the property
 * test/property/token-replay.property.spec.ts checks that the token part of a full rebuild equals this fold.
 */
import type { CallRecord, Fact } from "../events/types.js";
import { factToken } from "../events/token-subjects.js";
import { setStored, type EvolveEnv } from "./evolve.js";
import { newToken, type ObjectState, type TokenState } from "./state.js";
import { deriveKeys } from "../crypto/keys.js";
import { unseal } from "../crypto/seal.js";

/** The fold's way to open sealed values: under the simulator key, or without one (secret values then stay sealed). */
export function tokenEnv(simulatorKey?: Uint8Array): EvolveEnv {
  if (!simulatorKey) {
    return {
      unseal: () => {
        throw new Error("no simulator key");
      },
    };
  }
  const key = deriveKeys(simulatorKey).seal;
  return { unseal: (sealed) => unseal(key, sealed) };
}

export class TokenFold {
  readonly token: TokenState;
  /** Records folded, and the seq of the last one. */
  records = 0;
  lastSeq = 0;

  constructor(
    id: string,
    /** The profile's `processCaches` switch (softhsm2): token-object writes and re-initialisations move `generation`. */
    private readonly processCaches: boolean,
    private readonly env: EvolveEnv,
  ) {
    this.token = newToken(id);
  }

  /** Fold a record of the token's subject: its facts that change this token (the others are application state). */
  apply(r: CallRecord): void {
    if (r.seq <= this.lastSeq) throw new RangeError(`record ${r.seq} of token ${this.token.id} after record ${this.lastSeq}`);
    for (const f of r.facts) if (factToken(f) === this.token.id) this.fact(f);
    this.records++;
    this.lastSeq = r.seq;
  }

  private fact(f: Fact): void {
    const t = this.token;
    switch (f.type) {
      case "TokenInitialized": {
        const reinit = f.reinit || t.initialized;
        if (reinit) {
          // Re-initialisation keeps the SO PIN and serial, wipes the objects and the user PIN (fact sheet §7).
          if (f.destroyed) for (const id of f.destroyed) t.objects.delete(id);
          else t.objects.clear();
          t.userPin = null;
          t.failures.user = 0;
          if (this.processCaches) t.generation++;
        }
        t.initialized = true;
        t.serial = f.serial;
        t.label = f.label;
        t.soPin = f.soPin;
        t.failures.so = 0;
        return;
      }
      case "PinRejected":
        t.failures[f.role]++;
        return;
      case "PinAccepted":
      case "LoggedIn":
      case "Reauthenticated":
        t.failures[f.role] = 0;
        return;
      case "UserPinSet":
        t.userPin = f.pin;
        t.failures.user = 0;
        return;
      case "SoPinSet":
        t.soPin = f.pin;
        t.failures.so = 0;
        return;
      case "TokenSettingsRestored":
        t.label = f.label;
        t.soPin = f.soPin;
        t.failures = { ...f.failures };
        return;
      case "ObjectCreated": {
        const snap = f.object;
        const o: ObjectState = { id: snap.id, token: true, private: snap.private, slotID: snap.slotID, attrs: new Map() };
        for (const x of snap.attrs) setStored(o, x, this.env);
        if (snap.clearStorage) o.clearStorage = true;
        t.objects.set(o.id, o);
        t.nextObject = Math.max(t.nextObject, Number(o.id.slice(o.id.indexOf("/") + 1)) + 1);
        if (this.processCaches) t.generation++;
        return;
      }
      case "ObjectDestroyed":
        t.objects.delete(f.object);
        if (this.processCaches) t.generation++;
        return;
      case "AttributesChanged": {
        const o = t.objects.get(f.object);
        if (!o) throw new Error(`AttributesChanged for unknown object ${f.object} of token ${t.id}`);
        for (const x of f.attrs) setStored(o, x, this.env);
        return;
      }
      default:
        return;
    }
  }
}
