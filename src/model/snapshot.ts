/**
 * A canonical, JSON-ready picture of a simulator's whole state: the write model (tokens, applications, slots with
 * their chart states and epochs, sessions with their operations and session-chart states, handles, objects) and the
 * read model. Two simulators are in the same state exactly when their snapshots are deep-equal; the replay and
 * "a rejected call changes nothing" properties compare these. Handles and objects are listed in key order, so the
 * picture does not depend on Map insertion order.
 */
import { bytesToHex } from "../crypto/encoding.js";
import type { ReadModel } from "../projections/read-model.js";
import type { ObjectState, SimState, TokenState } from "./state.js";

const sorted = <K extends string | number, V>(m: Map<K, V>) =>
  [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

function object(o: ObjectState) {
  return {
    id: o.id,
    token: o.token,
    private: o.private,
    slotID: o.slotID,
    creator: o.creator ?? null,
    privateEpoch: o.privateEpoch ?? null,
    clearStorage: o.clearStorage ?? false,
    // Key material as its sealed form: a snapshot (printed by the CLI, compared by the tests) never holds it in clear.
    attrs: sorted(o.attrs).map(([t, v]) => {
      const sealed = o.sealed?.get(t);
      return sealed === undefined ? [t, bytesToHex(v)] : [t, { sealed }];
    }),
  };
}

/**
 * One token's picture. Without `sessions`, its persistent state only (what a token replayed alone from its subject
 * rebuilds, model/token-fold.ts): the open-session counts belong to applications.
 */
export function tokenPicture(t: TokenState, sessions = false) {
  return {
    id: t.id,
    initialized: t.initialized,
    serial: t.serial,
    label: t.label,
    soPin: t.soPin,
    userPin: t.userPin,
    failures: t.failures,
    nextObject: t.nextObject,
    generation: t.generation,
    ...(sessions ? { sessions: t.sessions, rwSessions: t.rwSessions } : {}),
    objects: sorted(t.objects).map(([, o]) => object(o)),
  };
}

export function snapshotState(state: SimState, read: ReadModel) {
  return {
    applied: state.applied,
    nextApp: state.nextApp,
    tokenOrder: state.tokenOrder,
    tokens: sorted(state.tokens).map(([, t]) => tokenPicture(t, true)),
    apps: sorted(state.apps).map(([, a]) => ({
      id: a.id,
      slotOrder: a.slotOrder,
      nextHandle: a.nextHandle,
      nextObjectHandle: a.nextObjectHandle,
      nextSessionObject: a.nextSessionObject,
      slots: sorted(a.slots).map(([, s]) => ({
        slotID: s.slotID,
        token: s.token,
        login: s.actor.login,
        ro: s.roSessions,
        epochAll: s.epochAll,
        epochPrivate: s.epochPrivate,
        open: [...s.sessions].sort((x, y) => x - y),
      })),
      sessions: sorted(a.sessions).map(([, s]) => ({
        handle: s.handle,
        slotID: s.slotID,
        token: s.token,
        rw: s.rw,
        created: s.created ? [...s.created].sort() : null,
        found: s.found ? [...s.found].sort((x, y) => x - y) : null,
        chart: a.slots.get(s.slotID)!.actor.sessionState(s.handle),
        // Operations are plain data (model/state.ts): the picture holds them as they are.
        op: s.op === null ? null : JSON.parse(JSON.stringify(s.op)),
      })),
      objectHandles: sorted(a.objectHandles).map(([h, e]) => [h, e]),
      handleOf: sorted(a.handleOf),
      sessionObjects: sorted(a.sessionObjects).map(([, o]) => object(o)),
      caches: sorted(a.caches).map(([id, c]) => ({ id, gen: c.gen, known: [...c.known].sort(), soPin: c.soPin, userPin: c.userPin, settings: c.settings })),
    })),
    read: {
      position: read.position,
      tokens: sorted(read.tokens).map(([, t]) => t),
      counts: sorted(read.counts).map(([id, c]) => [id, { ...c }]),
      apps: sorted(read.apps).map(([, a]) => a),
      sessions: sorted(read.sessions).map(([app, m]) => [app, sorted(m).map(([, v]) => v)]),
    },
  };
}
