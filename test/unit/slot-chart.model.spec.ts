/**
 * The slot chart, exhaustively. xstate/graph walks every reachable login state through the fact events; in each
 * state every command variant (every PIN outcome, RO session count 0 or 2, RO/RW open, limit reached or not) is sent to
 * a live actor brought there by the path, and its decision is compared with an oracle written independently from the
 * fact sheet's tables (§9, §13, §15). The oracle is deliberately a separate, naive function: the chart must agree.
 */
import { describe, expect, it } from "vitest";
import { createActor, transition } from "xstate";
import { getShortestPaths } from "xstate/graph";
import { slotMachine, type SlotCommand, type PinCheck, type SlotDecision, type SlotFactEvent } from "../../src/machines/slot.js";
import { commandKey, decideSlot, initialSlotSnapshot, restoreSlotSnapshot, slotAfterFact } from "../../src/actors/slot-chart-runtime.js";

type Fact = { type: "LoggedIn"; role: "so" | "user" } | { type: "LoggedOut" };

const FACTS: Fact[] = [{ type: "LoggedIn", role: "so" }, { type: "LoggedIn", role: "user" }, { type: "LoggedOut" }];

const pins: PinCheck[] = [];
for (const initialized of [true, false]) for (const locked of [true, false]) for (const matches of [true, false]) pins.push({ initialized, locked, matches });

const COMMANDS: SlotCommand[] = [
  ...[0, 2].flatMap((ro) => pins.map((pin) => ({ type: "LoginSO" as const, pin, ro }))),
  ...pins.map((pin) => ({ type: "LoginUser" as const, pin })),
  ...[true, false].flatMap((reauthPending) => pins.map((p) => ({ type: "LoginContext" as const, reauthPending, so: p, user: p }))),
  { type: "Logout" },
  ...[true, false].flatMap((rw) => [true, false].map((limitReached) => ({ type: "OpenSession" as const, rw, limitReached }))),
];

/** The fact sheet's rules as a plain function: [rv, outcome kind]. */
function oracle(login: string, cmd: SlotCommand, logoutRequiresLogin: boolean): [string, string?] {
  switch (cmd.type) {
    case "LoginSO":
      // An RO session and an SO login never coexist, so in the SO state the RO count is 0 and "already" answers.
      if (login === "so") return ["CKR_USER_ALREADY_LOGGED_IN"];
      if (cmd.ro > 0) return ["CKR_SESSION_READ_ONLY_EXISTS"];
      if (login === "user") return ["CKR_USER_ANOTHER_ALREADY_LOGGED_IN"];
      if (login === "so") return ["CKR_USER_ALREADY_LOGGED_IN"];
      if (cmd.pin.locked) return ["CKR_PIN_LOCKED"];
      if (!cmd.pin.matches) return ["CKR_PIN_INCORRECT", "pinRejected"];
      return ["CKR_OK", "loggedIn"];
    case "LoginUser":
      if (login === "so") return ["CKR_USER_ANOTHER_ALREADY_LOGGED_IN"];
      if (login === "user") return ["CKR_USER_ALREADY_LOGGED_IN"];
      if (!cmd.pin.initialized) return ["CKR_USER_PIN_NOT_INITIALIZED"];
      if (cmd.pin.locked) return ["CKR_PIN_LOCKED"];
      if (!cmd.pin.matches) return ["CKR_PIN_INCORRECT", "pinRejected"];
      return ["CKR_OK", "loggedIn"];
    case "LoginContext": {
      if (login === "public" || !cmd.reauthPending) return ["CKR_OPERATION_NOT_INITIALIZED"];
      const p = login === "so" ? cmd.so : cmd.user;
      if (p.locked) return ["CKR_PIN_LOCKED"];
      if (!p.matches) return ["CKR_PIN_INCORRECT", "pinRejected"];
      return ["CKR_OK", "reauthenticated"];
    }
    case "Logout":
      if (login === "public") return [logoutRequiresLogin ? "CKR_USER_NOT_LOGGED_IN" : "CKR_OK"];
      return ["CKR_OK", "loggedOut"];
    case "OpenSession":
      if (login === "so" && !cmd.rw) return ["CKR_SESSION_READ_WRITE_SO_EXISTS"];
      if (cmd.limitReached) return ["CKR_SESSION_COUNT"];
      return ["CKR_OK", "sessionOpened"];
  }
}

describe.each([false, true])("slot chart (logoutRequiresLogin=%s)", (logoutRequiresLogin) => {
  const paths = getShortestPaths(slotMachine, {
    input: { logoutRequiresLogin },
    events: FACTS as never,
    // Only the facts the deciders can emit in that state: the chart is never fed an impossible history.
    filterEvents: (s, e) => ((e as Fact).type === "LoggedIn" ? s.value === "public" : s.value !== "public"),
    serializeState: (s) => JSON.stringify(s.value) as never,
  });

  it("reaches every login state", () => {
    expect(new Set(paths.map((p) => p.state.value))).toEqual(new Set(["public", "user", "so"]));
  });

  it("decides every command as the fact sheet does, in every state", () => {
    let checked = 0;
    for (const path of paths) {
      for (const cmd of COMMANDS) {
        const actor = createActor(slotMachine, { input: { logoutRequiresLogin } }).start();
        for (const step of path.steps) actor.send(step.event);
        const before = JSON.stringify(actor.getSnapshot().value) + JSON.stringify(actor.getSnapshot().context);
        let got: { rv: string; outcome?: { kind: string } } | undefined;
        actor.on("decision", (d) => (got = d));
        actor.send(cmd);
        const [rv, kind] = oracle(actor.getSnapshot().value as string, cmd, logoutRequiresLogin);
        expect({ state: before, cmd, rv: got?.rv, kind: got?.outcome?.kind }).toEqual({ state: before, cmd, rv, kind });
        // A command never changes the chart: only facts do.
        expect(JSON.stringify(actor.getSnapshot().value) + JSON.stringify(actor.getSnapshot().context)).toBe(before);
        checked++;
      }
    }
    expect(checked).toBe(paths.length * COMMANDS.length);
  });
});

// ---- the runtime (src/actors/slot-chart-runtime.ts) ----------------------------------------------------------------
// Fact transitions memoised on (snapshot, fact), commands answered by a shared live actor per state: both must be what
// a live actor of the chart does, for every reachable state, every fact and every command variant, in both contexts.

/** A live actor of the chart brought to a state by `path` (facts), with its emitted decisions recorded. */
function liveActor(logoutRequiresLogin: boolean, path: SlotFactEvent[]) {
  const decisions: SlotDecision[] = [];
  const actor = createActor(slotMachine, { input: { logoutRequiresLogin } });
  actor.on("decision", (d) => void decisions.push(d));
  actor.start();
  for (const f of path) actor.send(f);
  return { actor, decisions };
}

/** Every fact path of length up to 3: reaches every state, from every state, by every fact. */
const PATHS: SlotFactEvent[][] = [[]];
for (let n = 0; n < 3; n++) for (const p of PATHS.filter((x) => x.length === n)) for (const f of FACTS) PATHS.push([...p, f]);

describe.each([true, false])("slot chart runtime (logoutRequiresLogin %s)", (logoutRequiresLogin) => {
  it("fact transitions are pure (no actions, context unchanged) and memoised to what a live actor reaches", () => {
    for (const path of PATHS) {
      let s = initialSlotSnapshot(logoutRequiresLogin);
      for (const f of path) {
        const [n, actions] = transition(slotMachine, s, f);
        expect(actions).toEqual([]);
        expect(n.context).toEqual(s.context);
        s = slotAfterFact(s, f);
        expect(s.value).toBe(n.value);
      }
      const live = liveActor(logoutRequiresLogin, path);
      expect(s.value).toBe(live.actor.getSnapshot().value);
      expect(slotMachine.getPersistedSnapshot(s)).toEqual(live.actor.getPersistedSnapshot());
      expect(live.decisions).toEqual([]);
    }
  });

  it("commands get the live actor's decision and change no state", () => {
    for (const path of PATHS.filter((p) => p.length <= 2)) {
      let s = initialSlotSnapshot(logoutRequiresLogin);
      for (const f of path) s = slotAfterFact(s, f);
      for (const cmd of COMMANDS) {
        const live = liveActor(logoutRequiresLogin, path);
        live.actor.send(cmd);
        expect(decideSlot(s, cmd)).toEqual(live.decisions[0]);
        expect(decideSlot(s, { ...cmd })).toEqual(live.decisions[0]); // the kept decision, for an equal command
        expect(live.decisions).toHaveLength(1);
        expect(live.actor.getSnapshot().value).toBe(s.value);
      }
    }
  });

  it("a command's key holds every field it carries: changing any one changes the key (decisions are kept by it)", () => {
    /** Every command with one leaf changed (a boolean flipped, a number plus one). */
    const changed = (v: unknown): unknown[] => {
      if (typeof v === "boolean") return [!v];
      if (typeof v === "number") return [v + 1];
      if (v === null || typeof v !== "object") return [];
      const o = v as Record<string, unknown>;
      return Object.keys(o).flatMap((k) => (k === "type" ? [] : changed(o[k]).map((x) => ({ ...o, [k]: x }))));
    };
    let variants = 0;
    for (const cmd of COMMANDS) {
      for (const other of changed(cmd) as SlotCommand[]) {
        expect(commandKey(other)).not.toBe(commandKey(cmd));
        variants++;
      }
    }
    expect(variants).toBeGreaterThan(COMMANDS.length);
    const context = COMMANDS.find((c) => c.type === "LoginContext")!;
    const keys = new Set(COMMANDS.map(commandKey));
    expect(keys.size).toBe(new Set(COMMANDS.map((c) => JSON.stringify(c))).size);
    expect(commandKey({ ...context, so: { initialized: true, locked: false, matches: true }, user: { initialized: true, locked: false, matches: false } } as SlotCommand)).not.toBe(
      commandKey({ ...context, so: { initialized: true, locked: false, matches: false }, user: { initialized: true, locked: false, matches: true } } as SlotCommand),
    );
  });

  it("a persisted snapshot restores to the same state", () => {
    for (const path of PATHS) {
      let s = initialSlotSnapshot(logoutRequiresLogin);
      for (const f of path) s = slotAfterFact(s, f);
      const r = restoreSlotSnapshot(JSON.parse(JSON.stringify(slotMachine.getPersistedSnapshot(s))), logoutRequiresLogin);
      expect(r.value).toBe(s.value);
      expect(r.context).toEqual(s.context);
      expect(slotAfterFact(r, { type: "LoggedOut" }).value).toBe("public");
    }
  });
});
