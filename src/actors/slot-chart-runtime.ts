/**
 * How a slot actor runs the slot chart (src/machines/slot.ts) without a live XState actor per (application, slot).
 *
 * The chart's state is a snapshot value held by the slot actor. The two kinds of events take two paths:
 * - Facts (`LoggedIn`, `LoggedOut`) are the chart's only transitions, and they are pure: no action, no context
 *   change, a guard on the event's `role` only. So the next snapshot is a function of (context, state, event type,
 *   role): XState's `transition()` computes it once per snapshot and fact, and the result, an immutable snapshot
 *   (one per context and state), is shared
 *   (test/unit/slot-chart-runtime.spec.ts checks every state and fact against a live actor). A replay applies a
 *   login and a logout per session cycle: a Map lookup each, where a live actor's `send` costs ~5-9 µs here.
 * - Commands (`LoginSO`, `LoginUser`, `LoginContext`, `Logout`, `OpenSession`) change nothing and answer with the
 *   decision the chart `emit`s. The first time a snapshot meets a command it is sent to a live actor kept per
 *   (context, state) and shared by every slot actor in that state: a command never moves it (checked on every send).
 *   XState's pure `transition()` would do too, but it builds an inert actor scope per call (~80 µs here), a live
 *   actor's send ~7 µs. The decision is then kept per (snapshot, command) (`decideSlot`): a Map lookup.
 */
import { createActor, initialTransition, transition, type Actor, type SnapshotFrom } from "xstate";
import { slotMachine, type PinCheck, type SlotCommand, type SlotDecision, type SlotFactEvent } from "../machines/slot.js";

export type SlotSnapshot = SnapshotFrom<typeof slotMachine>;

const INITIAL = new Map<boolean, SlotSnapshot>();
/** snapshot -> fact ("so" / "user": LoggedIn with that role; "out": LoggedOut) -> the snapshot after it. */
const AFTER_FACT = new WeakMap<SlotSnapshot, Map<string, SlotSnapshot>>();
const DECIDERS = new Map<string, { actor: Actor<typeof slotMachine>; last: SlotDecision | undefined }>();

/** The chart's initial snapshot for a profile (shared: snapshots are immutable). */
export function initialSlotSnapshot(logoutRequiresLogin: boolean): SlotSnapshot {
  let s = INITIAL.get(logoutRequiresLogin);
  if (!s) INITIAL.set(logoutRequiresLogin, (s = initialTransition(slotMachine, { logoutRequiresLogin })[0]));
  return s;
}

/** A persisted snapshot (a state snapshot's slot image) made a snapshot again. */
export function restoreSlotSnapshot(persisted: unknown, logoutRequiresLogin: boolean): SlotSnapshot {
  return createActor(slotMachine, { snapshot: persisted as SlotSnapshot, input: { logoutRequiresLogin } }).getSnapshot();
}

const keyOf = (s: SlotSnapshot) => `${s.context.logoutRequiresLogin ? 1 : 0}|${String(s.value)}`;

/** The snapshot after a fact (memoised; see the module comment). */
export function slotAfterFact(s: SlotSnapshot, fact: SlotFactEvent): SlotSnapshot {
  // Keyed by the snapshot object itself: the memoised snapshots are shared, so after the first few facts every slot
  // actor holds one of a handful of them (one per state and profile), and a lookup is two Map probes.
  const key = fact.type === "LoggedIn" ? fact.role : "out";
  let byFact = AFTER_FACT.get(s);
  if (!byFact) AFTER_FACT.set(s, (byFact = new Map()));
  let next = byFact.get(key);
  if (!next) {
    const [n, actions] = transition(slotMachine, s, fact);
    if (actions.length > 0) throw new Error(`slot chart: fact ${fact.type} runs actions; its transition cannot be memoised`);
    // The same state and context as a snapshot met before: that one, so that the memo stays small.
    next = CANONICAL.get(keyOf(n)) ?? n;
    CANONICAL.set(keyOf(next), next);
    byFact.set(key, next);
  }
  return next;
}

/** One snapshot per (context, state) reached by a fact: what slot actors share. */
const CANONICAL = new Map<string, SlotSnapshot>();

/** snapshot -> command (commandKey) -> the chart's decision: what `decideSlot` answered before. */
const DECIDED = new WeakMap<SlotSnapshot, Map<string, SlotDecision>>();
/** Entries per snapshot at most: LoginSO's key holds the count of RO sessions, so the keys are not a fixed few. */
const DECIDED_MAX = 512;

const pinKey = (p: PinCheck): string => `${p.initialized ? 1 : 0}${p.locked ? 1 : 0}${p.matches ? 1 : 0}`;

/**
 * Everything a command carries, as a string: two commands with the same key are the same event to the chart. Every
 * field of every command type must be in it (test/unit/slot-chart.model.spec.ts sends every variant both ways).
 */
export function commandKey(cmd: SlotCommand): string {
  switch (cmd.type) {
    case "OpenSession":
      return `O${cmd.rw ? 1 : 0}${cmd.limitReached ? 1 : 0}`;
    case "Logout":
      return "L";
    case "LoginUser":
      return `U${pinKey(cmd.pin)}`;
    case "LoginSO":
      return `S${pinKey(cmd.pin)}${cmd.ro}`;
    case "LoginContext":
      return `C${cmd.reauthPending ? 1 : 0}${pinKey(cmd.so)}${pinKey(cmd.user)}`;
  }
}

/**
 * The chart's decision on a command in snapshot `s` (which the command does not change). A command's decision is a
 * function of the snapshot (state and context) and the command alone (it runs no action but the `emit` of its
 * decision, and changes nothing), so it is asked of the chart once per (snapshot, command) and kept: a live actor's
 * send was a quarter of a C_OpenSession + C_CloseSession pair.
 */
export function decideSlot(s: SlotSnapshot, cmd: SlotCommand): SlotDecision {
  const ck = commandKey(cmd);
  let known = DECIDED.get(s);
  if (!known) DECIDED.set(s, (known = new Map()));
  const hit = known.get(ck);
  if (hit) return hit;
  const d = decideLive(s, cmd);
  if (known.size >= DECIDED_MAX) known.clear();
  known.set(ck, d);
  return d;
}

/** The decision of the live actor kept for `s`'s (context, state). */
function decideLive(s: SlotSnapshot, cmd: SlotCommand): SlotDecision {
  const key = keyOf(s);
  let d = DECIDERS.get(key);
  if (!d) {
    const decider = { actor: createActor(slotMachine, { snapshot: slotMachine.getPersistedSnapshot(s), input: { logoutRequiresLogin: s.context.logoutRequiresLogin } }), last: undefined as SlotDecision | undefined };
    decider.actor.on("decision", (x) => {
      decider.last = x;
    });
    decider.actor.start();
    DECIDERS.set(key, (d = decider));
  }
  d.last = undefined;
  d.actor.send(cmd);
  if (d.actor.getSnapshot().value !== s.value) throw new Error(`slot chart: command ${cmd.type} changed the state`);
  if (!d.last) throw new Error(`slot chart gave no decision for ${cmd.type}`);
  return d.last;
}
