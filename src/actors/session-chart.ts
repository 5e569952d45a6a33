/**
 * Session actors: each open session that runs an operation is a child actor of its slot, running the session chart
 * (src/machines/session.ts). They are run here through XState's pure `transition()`, not `createActor`, and their
 * steps are memoized.
 *
 * Why: operation calls are the hottest path (C_DigestInit + C_Digest is two facts, OperationStarted and
 * OperationEnded, on the session's chart), and an interpreted actor's `send` costs ~4.5 µs here plus the garbage of
 * a fresh snapshot per step: 45 % of a 64-byte digest's time and a fifth of its GC (bench `digest`, cpu profile).
 * The session chart has no context, no actions and no delayed or invoked children, and its guards read only the
 * event's `type`, `kind` and `reauth`. So its next state is a function of (state, those three fields): each distinct
 * step is computed once by XState's own `transition()` and kept, and the snapshots are interned per state value, so
 * there are exactly as many snapshot objects as the chart has states. A session's actor is then one reference to
 * its current snapshot. `chartStep` refuses (throws) a transition that yields actions or a context, so the
 * memoization cannot silently drop behaviour if the chart grows some: such a chart would have to be run by a real
 * interpreter again.
 */
import { initialTransition, transition, type SnapshotFrom, type Snapshot } from "xstate";
import { sessionMachine, type SessionFactEvent } from "../machines/session.js";

export type SessionSnapshot = SnapshotFrom<typeof sessionMachine>;

/** The interned snapshot of each state value. */
const BY_STATE = new Map<string, SessionSnapshot>();
/** state value → step key → next snapshot. */
const NEXT = new Map<string, Map<string, SessionSnapshot>>();

function intern(s: SessionSnapshot): SessionSnapshot {
  if (s.context !== undefined && Object.keys(s.context as object).length > 0) throw new Error("session chart: a context cannot be memoized");
  const key = s.value as string;
  const known = BY_STATE.get(key);
  if (known) return known;
  BY_STATE.set(key, s);
  return s;
}

/** The chart's initial (idle) snapshot. */
export const SESSION_IDLE: SessionSnapshot = intern(initialTransition(sessionMachine)[0]);

/**
 * Everything the chart's guards read of an event: its memo key. The keys of OperationStarted are built once per
 * (kind, reauth) and looked up after that: a template string per step was a fifth of a replayed C_DigestInit.
 */
const STARTED_KEYS = new Map<string, [string, string]>();
function stepKey(e: SessionFactEvent): string {
  if (e.type !== "OperationStarted") return e.type;
  let keys = STARTED_KEYS.get(e.kind);
  if (!keys) STARTED_KEYS.set(e.kind, (keys = [`${e.type}:${e.kind}:false`, `${e.type}:${e.kind}:true`]));
  return keys[e.reauth === true ? 1 : 0];
}

/** The session chart's next snapshot after `event` (XState's `transition()`, computed once per state and key). */
export function chartStep(from: SessionSnapshot, event: SessionFactEvent): SessionSnapshot {
  const state = from.value as string;
  let row = NEXT.get(state);
  if (!row) NEXT.set(state, (row = new Map()));
  const key = stepKey(event);
  let next = row.get(key);
  if (!next) {
    const [computed, actions] = transition(sessionMachine, from, event);
    if (actions.length > 0) throw new Error(`session chart: ${state} + ${key} has actions, which a memoized step would drop`);
    next = intern(computed);
    row.set(key, next);
  }
  return next;
}

/** A session actor's snapshot as data (the same shape an interpreted actor's getPersistedSnapshot() gives). */
export function persistSession(s: SessionSnapshot): Snapshot<unknown> {
  return sessionMachine.getPersistedSnapshot(s);
}

/** The snapshot a persisted session snapshot stands for. */
export function restoreSession(persisted: Snapshot<unknown>): SessionSnapshot {
  const value = (persisted as { value?: unknown }).value;
  if (typeof value !== "string") throw new Error("session chart: a persisted snapshot without a state value");
  const known = BY_STATE.get(value);
  if (known) return known;
  return intern(sessionMachine.resolveState({ value, context: undefined as never }));
}
