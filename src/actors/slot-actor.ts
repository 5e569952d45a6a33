/**
 * The slot actor: a live XState actor running the slot chart for one (application, slot), and the supervisor of that
 * slot's session actors.
 *
 * Session actors are owned here, in a plain Map, not in the slot chart's snapshot: XState copies a parent's children
 * record on every spawn and stop (~4.5 ms at 10k children here), which would make C_OpenSession cost grow with the
 * number of open sessions. A session's actor is its chart's current snapshot, stepped by XState's pure `transition()`
 * and memoized (session-chart.ts says why that is exact for this chart): one Map entry, not an interpreter's ~3 KB.
 * It is started when the session first runs an operation and stopped when the session closes; until then the
 * session is its record (model/state.ts) and its chart is, by definition, idle.
 */
import type { Snapshot } from "xstate";
import { slotMachine, type SlotCommand, type SlotDecision, type SlotFactEvent } from "../machines/slot.js";
import { decideSlot, initialSlotSnapshot, restoreSlotSnapshot, slotAfterFact, type SlotSnapshot } from "./slot-chart-runtime.js";
import { operationRule, reauthPending, type SessionFactEvent, type SessionRequest } from "../machines/session.js";
import { chartStep, persistSession, restoreSession, SESSION_IDLE, type SessionSnapshot } from "./session-chart.js";
import type { CkrName } from "../pkcs11/constants.js";
import type { Login } from "../events/types.js";

/** A slot actor as data (the state snapshot, src/events/snapshot.ts): XState's persisted snapshots of its charts. */
export interface SlotActorImage {
  slot: Snapshot<unknown>;
  sessions: [number, Snapshot<unknown>][];
}

export class SlotActor {
  /** The slot chart's state (slot-chart-runtime.ts runs it: facts memoised, commands on a shared live actor). */
  private slot: SlotSnapshot;
  /** The session actors: each one's current chart snapshot. */
  private readonly children = new Map<number, SessionSnapshot>();

  constructor(logoutRequiresLogin: boolean, image?: SlotActorImage) {
    this.slot = image ? restoreSlotSnapshot(image.slot, logoutRequiresLogin) : initialSlotSnapshot(logoutRequiresLogin);
    for (const [handle, snapshot] of image?.sessions ?? []) this.children.set(handle, restoreSession(snapshot));
  }

  /** The charts as data, for a state snapshot; `new SlotActor(logoutRequiresLogin, image)` restores them. */
  persist(): SlotActorImage {
    return {
      slot: slotMachine.getPersistedSnapshot(this.slot),
      sessions: [...this.children].map(([handle, child]) => [handle, persistSession(child)]),
    };
  }

  /** Ask the chart; it answers with a decision and changes nothing. */
  decide(cmd: SlotCommand): SlotDecision {
    return decideSlot(this.slot, cmd);
  }

  apply(fact: SlotFactEvent): void {
    this.slot = slotAfterFact(this.slot, fact);
  }

  get login(): Login {
    return this.slot.value as Login;
  }

  /** What a session's chart says to an operation request (a session without an actor is idle). */
  operation(handle: number, req: SessionRequest): CkrName {
    return operationRule(this.children.get(handle) ?? null, req);
  }

  /** Whether the session's operation awaits re-authentication (the session chart's `reauthPending` tag). */
  reauthPending(handle: number): boolean {
    return reauthPending(this.children.get(handle) ?? null);
  }

  applyToSession(handle: number, fact: SessionFactEvent): void {
    const child = this.children.get(handle);
    if (!child && fact.type !== "OperationStarted") return;
    this.children.set(handle, chartStep(child ?? SESSION_IDLE, fact));
  }

  /** The state of a session's chart ("idle" for a session with no actor yet). */
  sessionState(handle: number): string {
    return (this.children.get(handle)?.value as string | undefined) ?? "idle";
  }

  stopSession(handle: number): void {
    this.children.delete(handle);
  }

  /** Stop every session actor (C_CloseAllSessions); the slot actor runs on. */
  stopSessions(): void {
    this.children.clear();
  }

  stop(): void {
    this.stopSessions();
  }
}
