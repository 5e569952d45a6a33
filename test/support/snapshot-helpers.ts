/**
 * Helpers for the snapshot tests: a structural comparison of two simulators' whole in-memory state that does not go
 * through the snapshot codec (so a field the codec dropped or changed shows up), and a store wrapper that records
 * where the simulator started reading its log (so a test knows a snapshot was used, not a full replay).
 */
import { expect } from "vitest";
import { SlotActor } from "../../src/actors/slot-actor.js";
import type { Simulator } from "../../src/actors/simulator.js";
import type { EventStore } from "../../src/events/store.js";
import { RecordedObject } from "../../src/model/evolve.js";
import { DeferredDigest } from "../../src/model/operations.js";

/**
 * Every own field of the write model and the read model, compared by walking both: Maps and Sets in insertion order,
 * Uint8Arrays byte by byte, class instances by prototype and own fields, frozenness too; slot actors by XState's
 * persisted snapshots of their charts; a replay's lazy values (RecordedObject, DeferredDigest) as the plain objects
 * they stand for (`plain()`: what a snapshot holds and an eager replay builds). Fails naming the first path that
 * differs.
 */
export function expectSameState(a: Simulator, b: Simulator): void {
  const diff = firstDifference({ state: a.state, read: a.read }, { state: b.state, read: b.read }, "sim", new Set());
  expect(diff).toBeUndefined();
}

const eager = (v: unknown): unknown => (v instanceof RecordedObject || v instanceof DeferredDigest ? v.plain() : v);

export function firstDifference(a: unknown, b: unknown, path: string, seen: Set<unknown>): string | undefined {
  if (Object.is(a, b)) return undefined;
  a = eager(a);
  b = eager(b);
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return `${path}: ${String(a)} vs ${String(b)}`;
  if (seen.has(a)) return undefined;
  seen.add(a);
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return `${path}: a ${a.constructor?.name} vs a ${b.constructor?.name}`;
  if (Object.isFrozen(a) !== Object.isFrozen(b)) return `${path}: frozen ${Object.isFrozen(a)} vs ${Object.isFrozen(b)}`;
  if (a instanceof SlotActor) {
    const [x, y] = [JSON.stringify(a.persist()), JSON.stringify((b as SlotActor).persist())];
    return x === y ? undefined : `${path}: slot charts ${x} vs ${y}`;
  }
  if (a instanceof Uint8Array) return Buffer.compare(a, b as Uint8Array) === 0 ? undefined : `${path}: bytes differ`;
  if (a instanceof Map || a instanceof Set) {
    const [x, y] = [[...a.entries()], [...(b as Map<unknown, unknown>).entries()]];
    if (x.length !== y.length) return `${path}: ${x.length} vs ${y.length} entries`;
    for (let i = 0; i < x.length; i++) {
      const d = firstDifference(x[i]![0], y[i]![0], `${path} key #${i}`, seen) ?? firstDifference(x[i]![1], y[i]![1], `${path}.get(${String(x[i]![0])})`, seen);
      if (d) return d;
    }
    return undefined;
  }
  const [ka, kb] = [Object.keys(a).sort(), Object.keys(b).sort()];
  if (ka.join() !== kb.join()) return `${path}: fields ${ka.join()} vs ${kb.join()}`;
  for (const k of ka) {
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`, seen);
    if (d) return d;
  }
  return undefined;
}

/** `store`, recording the `from` of every read (a simulator restored from a snapshot at seq N reads from N + 1). */
export function readsOf<S extends EventStore>(store: S): { store: S; froms: number[] } {
  const froms: number[] = [];
  const proxy = new Proxy(store, {
    get(target, key) {
      // Replay reads through `eachFacts` or `readFacts` where the store has them, else through `read`: any of them
      // is where it started.
      if (key === "read") return (from = 1) => (froms.push(from), target.read(from));
      if (key === "readFacts" && target.readFacts) return (from = 1) => (froms.push(from), target.readFacts!(from));
      if (key === "eachFacts" && target.eachFacts) {
        return (from: number, factsKey: Uint8Array, apply: Parameters<NonNullable<EventStore["eachFacts"]>>[2]) => (froms.push(from), target.eachFacts!(from, factsKey, apply));
      }
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { store: proxy, froms };
}
