/**
 * Subjects per token (issue 4, item 1; docs/notes/nats-design.md §11) on a real nats-server: a simulator's records
 * go to `<prefix>.<sim>.events.tok.<token>` when they change that token's persistent state or their call acted on it,
 * and to `.events.sim` otherwise; one sequence and one hash chain run through them in stream order; one token replays alone from its own
 * subject (`replayToken`) into exactly the token part of the full rebuild; one fence (stream-wide
 * expect.lastSequence) covers all of a simulator's subjects, so a stale second writer cannot append to another
 * token's subject, while other simulators sharing the stream do not stop it; logs of the single-subject layout are
 * refused clearly.
 */
import { describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { FenceLostError, JetStreamEventStore, LegacyLayoutError, readSubject, StreamCorruptError } from "../../src/events/jetstream-store.js";
import { replayToken } from "../../src/events/token-replay.js";
import { recordToken } from "../../src/events/token-subjects.js";
import { encodeEntry, GENESIS } from "../../src/events/chain.js";
import type { CallRecord, Fact } from "../../src/events/types.js";
import { tokenPicture } from "../../src/model/snapshot.js";
import { subjects } from "../../src/remote/protocol.js";
import type { ProfileName } from "../../src/pkcs11/profiles.js";
import { CK } from "../../src/pkcs11/constants.js";
import { natsPerFile } from "../support/nats-server.js";
import { record } from "../support/file-store-helpers.js";
import { dataTemplate } from "../support/gwt.js";
import { main } from "../../src/cli/main.js";
import { SimulatorService } from "../../src/service/service.js";
import { Simulator } from "../../src/actors/simulator.js";
import { connect as connectSim } from "../../src/remote/client.js";
import { rvName } from "../../src/pkcs11/constants.js";
import { bytes, caller, snapshot, SO_PIN, testSimulator, TEST_KEY, USER_PIN } from "../support/sim.js";

const nats = natsPerFile("K");
const fresh = nats.fresh;

const RW = CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION;

/** Every record under `filter`, in stream order, with the subject of the message that holds it. */
async function readAll(stream: string, filter: string): Promise<{ seq: number; subject: string; record: CallRecord }[]> {
  const out: { seq: number; subject: string; record: CallRecord }[] = [];
  const c = await jetstream(nats.nc).consumers.get(stream, { filter_subjects: filter });
  for await (const m of await c.consume({ max_messages: 1000 })) {
    for (const line of new TextDecoder().decode(m.data).split("\n")) {
      const e = JSON.parse(line) as { seq: number; record: CallRecord };
      out.push({ seq: e.seq, subject: m.subject, record: e.record });
    }
    if (m.info.pending === 0) break;
  }
  await c.delete().catch(() => undefined);
  return out;
}

/**
 * Two applications working on two tokens at once: initialisation, PINs, wrong PINs (counters), token objects created,
 * changed and destroyed, session objects, sessions and logins left open, one application finalized.
 */
function workload(sim: ReturnType<typeof testSimulator>): void {
  const a = caller(sim.application());
  const b = caller(sim.application());
  a("C_Initialize", {});
  // Initialise two tokens (softhsm2: a new uninitialised slot appears at the size query after each C_InitToken).
  const slots: number[] = [];
  for (let i = 0; i < 2; i++) {
    a("C_GetSlotList", { tokenPresent: false, pSlotList: null });
    const list = a("C_GetSlotList", { tokenPresent: false, pSlotList: 8 }).out!.slots;
    const slotID = list.find((s) => !slots.includes(s))!;
    expect(a("C_InitToken", { slotID, pin: SO_PIN, label: `token${i}` }).rv).toBe("CKR_OK");
    slots.push(slotID);
  }
  const aSessions = slots.map((slotID) => {
    const h = a("C_OpenSession", { slotID, flags: RW }).out!.hSession;
    a("C_Login", { hSession: h, userType: CK.CKU_SO, pin: SO_PIN });
    a("C_InitPIN", { hSession: h, pin: USER_PIN });
    a("C_Logout", { hSession: h });
    return h;
  });
  // The other application starts after the PINs are set (softhsm2: it reads them at C_Initialize), and has its own
  // slot IDs (softhsm2 numbers the tokens it found at C_Initialize by their serial).
  b("C_Initialize", {});
  const bSlots = slots.map((_, i) => {
    const list = b("C_GetSlotList", { tokenPresent: true, pSlotList: 8 }).out!.slots;
    return list.find((id) => b("C_GetTokenInfo", { slotID: id }).out!.label.startsWith(`token${i} `))!;
  });
  for (const [i, h] of aSessions.entries()) {
    expect(a("C_Login", { hSession: h, userType: CK.CKU_USER, pin: "wrong" }).rv).toBe("CKR_PIN_INCORRECT");
    if (i === 0) expect(a("C_Login", { hSession: h, userType: CK.CKU_USER, pin: "wrong" }).rv).toBe("CKR_PIN_INCORRECT");
    const hb = b("C_OpenSession", { slotID: bSlots[i]!, flags: RW }).out!.hSession;
    if (i === 0) expect(b("C_Login", { hSession: hb, userType: CK.CKU_USER, pin: USER_PIN }).rv).toBe("CKR_OK");
    for (let k = 0; k < 3; k++) {
      const o = b("C_CreateObject", { hSession: hb, template: dataTemplate(true, i === 0, `obj${k}`) });
      expect(o.rv).toBe("CKR_OK");
      if (k === 1) expect(b("C_SetAttributeValue", { hSession: hb, hObject: o.out!.hObject, template: [{ type: CK.CKA_LABEL, value: bytes("changed") }] }).rv).toBe("CKR_OK");
      if (k === 2) expect(b("C_DestroyObject", { hSession: hb, hObject: o.out!.hObject }).rv).toBe("CKR_OK");
    }
    b("C_CreateObject", { hSession: hb, template: dataTemplate(false, false, "session object") });
  }
  a("C_Finalize", {});
}

describe.each<ProfileName>(["default", "softhsm2"])("subjects per token (profile %s)", (profile) => {
  const simOpts = profile === "default" ? { profile, slots: 3 } : { profile };

  it("puts each token's records and calls on its subject and the rest on .sim, one chain in stream order", async () => {
    const o = fresh();
    const store = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    const sim = testSimulator({ store, ...simOpts });
    workload(sim);
    await store.flush(sim.lastSeq);
    const s = subjects("a", o.prefix);

    // Which subjects the stream holds: .sim and one per initialised token, nothing else.
    const jsm = await jetstreamManager(nats.nc);
    const info = await jsm.streams.info(o.stream, { subjects_filter: s.events });
    const tokens = [...sim.state.tokens.values()].filter((t) => t.initialized).map((t) => t.id);
    expect(tokens.length).toBe(2);
    expect(Object.keys(info.state.subjects ?? {}).sort()).toEqual([s.eventsSim, ...tokens.map((t) => s.eventsToken(t))].sort());

    // Every record is on the subject of its token (or .sim), and the whole log reads back 1..N in stream order.
    const seen = await readAll(o.stream, s.events);
    expect(seen.map((x) => x.seq)).toEqual(Array.from({ length: sim.lastSeq }, (_, i) => i + 1));
    // Rule 1: a record that changes a token's persistent state is on that token's subject. Rule 2: calls on a token's
    // session or slot are on its subject too; calls on no token on .sim.
    const sessionTokens = new Map<string, string>(); // `${app}/${handle}` -> token, from the SessionOpened facts
    for (const x of seen) {
      const t = recordToken(x.record);
      if (t !== undefined) expect(x.subject).toBe(s.eventsToken(t));
      for (const f of x.record.facts) if (f.type === "SessionOpened") sessionTokens.set(`${f.app}/${f.handle}`, f.token);
      const h = (x.record.args as { hSession?: number }).hSession;
      if (t === undefined && h !== undefined && x.record.rv === 0) expect(x.subject).toBe(s.eventsToken(sessionTokens.get(`${x.record.app}/${h}`)!));
      if (["C_Initialize", "C_Finalize", "C_GetSlotList", "C_GetInfo"].includes(x.record.fn)) expect(x.subject).toBe(s.eventsSim);
    }
    const bySubject = (fn: string) => seen.filter((x) => x.record.fn === fn).map((x) => x.subject !== s.eventsSim);
    expect(bySubject("C_Logout").every(Boolean)).toBe(true);
    expect(bySubject("C_OpenSession").every(Boolean)).toBe(true);
    expect(seen.filter((x) => x.subject === s.eventsSim).length).toBeGreaterThan(3);

    // The full rebuild reads all subjects (chain verified) and gets the live state.
    const rebuilt = testSimulator({ store: await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o }), ...simOpts });
    expect(rebuilt.lastSeq).toBe(sim.lastSeq);
    expect(snapshot(rebuilt)).toEqual(snapshot(sim));
    // Rule 2 is recomputed from the whole log: replaying the records into another simulator's store routes them alike.
    const copy = await JetStreamEventStore.open({ nc: nats.nc, sim: "copy", ...o });
    Simulator.replay(sim.store.read(), { ...simOpts, simulatorKey: TEST_KEY, store: copy });
    await copy.flush(sim.lastSeq);
    const copied = await readAll(o.stream, subjects("copy", o.prefix).events);
    expect(copied.map((x) => x.subject.replace(".copy.", ".a."))).toEqual(seen.map((x) => x.subject));
  });

  it("replays one token alone from its subject: its part of the full rebuild", async () => {
    const o = fresh();
    const store = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    const sim = testSimulator({ store, ...simOpts });
    workload(sim);
    await store.flush(sim.lastSeq);
    const full = testSimulator({ store: await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o }), ...simOpts });
    let folded = 0;
    for (const [id, t] of full.state.tokens) {
      const alone = await replayToken({ nc: nats.nc, sim: "a", token: id, ...o, processCaches: full.profile.processCaches, simulatorKey: TEST_KEY });
      expect(tokenPicture(alone.token), `token ${id}`).toEqual(tokenPicture(t));
      folded += alone.records;
      if (t.initialized) {
        // The token's own records only: fewer messages than the whole log, and at least its initialisation.
        expect(alone.records).toBeGreaterThan(5);
        expect(alone.token.objects.size).toBe(2);
        expect(alone.token.failures.user).toBe(t.failures.user);
        // Secret values open with the simulator key; labels as changed.
        expect([...alone.token.objects.values()].map((x) => new TextDecoder().decode(x.attrs.get(CK.CKA_LABEL))).sort()).toEqual(["changed", "obj0"]);
      } else expect(alone.records).toBe(0);
    }
    // The wrong-PIN counters differ per token (two failures then a right PIN on the first, one on the second).
    const init = [...full.state.tokens.values()].filter((t) => t.initialized).sort((x, y) => (x.label < y.label ? -1 : 1));
    expect(init.map((t) => t.failures.user)).toEqual([0, 1]);
    expect(folded).toBeLessThan(sim.lastSeq);
  });
});

describe("hsmsim serve on subjects per token", () => {
  it("a served simulator's calls on a token go to its subject, and the token replays alone as the service holds it", async () => {
    const service = await SimulatorService.start({ nc: nats.nc, sim: "served", simulatorKey: TEST_KEY, config: { profile: { profile: "default" }, slots: 2 }, log: () => undefined });
    const remote = await connectSim(`${nats.server.url}/served`, { timeoutMs: 5000 });
    try {
      const app = remote.application();
      const call = async (fn: string, args: object) => {
        const r = await app.call({ fn, args } as never);
        return { rv: rvName(r.rv), out: r.out as Record<string, number> | undefined };
      };
      expect((await call("C_Initialize", {})).rv).toBe("CKR_OK");
      for (const slotID of [0, 1]) expect((await call("C_InitToken", { slotID, pin: SO_PIN, label: `served${slotID}` })).rv).toBe("CKR_OK");
      const h = (await call("C_OpenSession", { slotID: 1, flags: RW })).out!.hSession!;
      await call("C_Login", { hSession: h, userType: CK.CKU_SO, pin: SO_PIN });
      await call("C_InitPIN", { hSession: h, pin: USER_PIN });
      await call("C_Logout", { hSession: h });
      expect((await call("C_Login", { hSession: h, userType: CK.CKU_USER, pin: "bad" })).rv).toBe("CKR_PIN_INCORRECT");
      expect((await call("C_Login", { hSession: h, userType: CK.CKU_USER, pin: USER_PIN })).rv).toBe("CKR_OK");
      expect((await call("C_CreateObject", { hSession: h, template: dataTemplate(true, true, "served object") })).rv).toBe("CKR_OK");
      expect((await call("C_CloseSession", { hSession: h })).rv).toBe("CKR_OK");
      await call("C_Finalize", {});
      const live = service.simulator.state.tokens;
      for (const id of ["slot0", "slot1"]) {
        const alone = await replayToken({ nc: nats.nc, sim: "served", token: id, processCaches: false, simulatorKey: TEST_KEY });
        expect(tokenPicture(alone.token), id).toEqual(tokenPicture(live.get(id)!));
      }
      // The session's calls (open, logout, close) went to slot1's subject by the dispatcher's hint.
      const fns: string[] = [];
      await readSubject(jetstream(nats.nc), "HSMSIM", subjects("served").eventsToken("slot1"), (m) => {
        for (const line of new TextDecoder().decode(m.data).split("\n")) fns.push((JSON.parse(line) as { record: CallRecord }).record.fn);
      });
      expect(fns).toEqual(["C_InitToken", "C_OpenSession", "C_Login", "C_InitPIN", "C_Logout", "C_Login", "C_Login", "C_CreateObject", "C_CloseSession"]);
    } finally {
      await remote.close();
      await service.stop();
    }
  });
});

describe("hsmsim replay --nats … --token", () => {
  it("prints one token replayed alone (JSON and text); usage and a subject that does not replay are errors", async () => {
    const o = fresh();
    const store = await JetStreamEventStore.open({ nc: nats.nc, sim: "cli", ...o });
    const sim = testSimulator({ store, slots: 3 });
    workload(sim);
    await store.flush(sim.lastSeq);
    const run = async (...args: string[]) => {
      const lines: string[] = [];
      const code = await main(["replay", "--nats", nats.server.url, "--name", "cli", "--stream", o.stream, "--prefix", o.prefix, ...args], (l) => lines.push(l));
      return { code, text: lines.join("\n") };
    };
    const json = await run("--token", "slot0", "--profile", "default", "--json");
    expect(json.code).toBe(0);
    const v = JSON.parse(json.text) as { subject: string; label: string; pinFailures: { user: number }; flagNames: string[]; objects: { attrs: Record<string, unknown> }[]; records: number };
    const live = sim.state.tokens.get("slot0")!;
    expect(v.subject).toBe(subjects("cli", o.prefix).eventsToken("slot0"));
    expect(v.label).toBe(live.label.trim());
    expect(v.pinFailures.user).toBe(live.failures.user);
    expect(v.flagNames).toContain("CKF_USER_PIN_INITIALIZED");
    expect(v.objects.map((x) => x.attrs.CKA_LABEL).sort()).toEqual(["changed", "obj0"]);
    const text = await run("--token", "slot1", "--profile", "default");
    expect(text.code).toBe(0);
    expect(text.text).toMatch(/^token slot1 of simulator "cli", replayed alone from k\d+\.cli\.events\.tok\.slot1: \d+ records/);
    expect(text.text).toMatch(/PIN failures: SO 0, user 1/);
    expect((await run("--token", "slot2", "--profile", "default")).text).toMatch(/not initialised/);
    expect((await run("--profile", "default")).code).toBe(2);
    expect((await run("--token", "a.b")).code).toBe(2);
    // A token subject that does not replay: exit 1 naming the problem.
    await jetstream(nats.nc).publish(subjects("cli", o.prefix).eventsToken("slot2"), "{not json");
    const bad = await run("--token", "slot2", "--profile", "default");
    expect(bad.code).toBe(1);
  });
});

describe("one fence over all of a simulator's subjects", () => {
  const pinRejected = (token: string): Fact => ({ type: "PinRejected", app: 1, token, role: "user" });

  it("refuses a stale second writer appending to another token's subject (a per-subject fence would take it)", async () => {
    const o = fresh();
    const s = subjects("a", o.prefix);
    const first = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    first.append(record(1, { facts: [pinRejected("slot0")] }));
    await first.flush(1);
    const second = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    first.append(record(2, { facts: [pinRejected("slot0")] }));
    await first.flush(2);
    // The second writer's record 2 is for slot1, whose subject is still empty: only the stream-wide fence sees that
    // the simulator moved on.
    second.append(record(2, { facts: [pinRejected("slot1")] }));
    await expect(second.flush(2)).rejects.toThrow(/may not be stored/);
    expect(second.failure).toBeInstanceOf(FenceLostError);
    const jsm = await jetstreamManager(nats.nc);
    expect(await jsm.streams.getMessage(o.stream, { last_by_subj: s.eventsToken("slot1") })).toBeNull();
    // The log is not forked: one record 2, the first writer's, and the chain holds.
    const r = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    expect(r.lastSeq).toBe(2);
    expect(r.headHash).toBe(first.headHash);
    expect([...r.read()].map((x) => recordToken(x))).toEqual(["slot0", "slot0"]);
  });

  it("refuses a stale second writer on .sim after the first wrote a token's subject", async () => {
    const o = fresh();
    const first = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    const second = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    first.append(record(1, { facts: [pinRejected("slot0")] }));
    await first.flush(1);
    second.append(record(1));
    await expect(second.flush(1)).rejects.toThrow(/may not be stored/);
    expect(second.failure).toBeInstanceOf(FenceLostError);
    expect((await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o })).lastSeq).toBe(1);
  });

  it("lets simulators sharing the stream write at once: their messages move the stream, not each other's fence", async () => {
    const o = fresh();
    const stores = await Promise.all(["a", "b", "c"].map((sim) => JetStreamEventStore.open({ nc: nats.nc, sim, ...o })));
    const sims = stores.map((store) => testSimulator({ store, slots: 2 }));
    // Interleaved in one turn of the event loop, then each flushed: every commit races the other simulators'.
    for (let round = 0; round < 5; round++) {
      for (const sim of sims) workloadRound(sim, round);
      await Promise.all(stores.map((st, i) => st.flush(sims[i]!.lastSeq)));
    }
    expect(stores.reduce((k, st) => k + st.stats.conflicts, 0)).toBeGreaterThan(0);
    for (const [i, sim] of ["a", "b", "c"].entries()) {
      expect(stores[i]!.failure).toBeUndefined();
      const rebuilt = testSimulator({ store: await JetStreamEventStore.open({ nc: nats.nc, sim, ...o }), slots: 2 });
      expect(snapshot(rebuilt)).toEqual(snapshot(sims[i]!));
    }
  });
});

/** A few calls on both tokens of a two-slot simulator (round 0 initialises them). */
function workloadRound(sim: ReturnType<typeof testSimulator>, round: number): void {
  const app = caller(sim.application());
  app("C_Initialize", {});
  for (const slotID of [0, 1]) {
    if (round === 0) app("C_InitToken", { slotID, pin: SO_PIN, label: `t${slotID}` });
    const h = app("C_OpenSession", { slotID, flags: RW }).out!.hSession;
    app("C_Login", { hSession: h, userType: CK.CKU_SO, pin: round % 2 ? SO_PIN : "wrong-pin" });
    app("C_CloseSession", { hSession: h });
  }
  app("C_Finalize", {});
}

describe("checks and the single-subject layout", () => {
  it("refuses a token subject holding a record with a broken hash or another token's record", async () => {
    const o = fresh();
    const s = subjects("a", o.prefix);
    const js = jetstream(nats.nc);
    const good = encodeEntry(GENESIS, record(1, { facts: [{ type: "PinRejected", app: 1, token: "slot0", role: "so" }] }));
    await JetStreamEventStore.open({ nc: nats.nc, sim: "b", ...o }); // creates the stream
    await js.publish(s.eventsToken("slot0"), good.line.replace('"role":"so"', '"role":"user"'));
    await expect(replayToken({ nc: nats.nc, sim: "a", token: "slot0", ...o, processCaches: false })).rejects.toThrow(/hash does not match/);

    const o2 = fresh();
    await JetStreamEventStore.open({ nc: nats.nc, sim: "b", ...o2 });
    const s2 = subjects("a", o2.prefix);
    await js.publish(s2.eventsToken("slot1"), good.line);
    const err = await replayToken({ nc: nats.nc, sim: "a", token: "slot1", ...o2, processCaches: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StreamCorruptError);
    expect((err as Error).message).toMatch(/the record changes token slot0/);
    expect((await replayToken({ nc: nats.nc, sim: "a", token: "slot0", ...o2, processCaches: false })).records).toBe(0);
  });

  it("adds the new subjects to a single-subject stream and refuses a simulator whose log is in that layout", async () => {
    const o = fresh();
    const jsm = await jetstreamManager(nats.nc);
    // A stream as the single-subject version created it, with one simulator's log on `<prefix>.old.events`.
    await jsm.streams.add({ name: o.stream, subjects: [`${o.prefix}.*.events`], deny_delete: true, deny_purge: true, allow_direct: true });
    await jetstream(nats.nc).publish(subjects("old", o.prefix).eventsLegacy, encodeEntry(GENESIS, record(1)).line);
    const warnings: string[] = [];
    const err = await JetStreamEventStore.open({ nc: nats.nc, sim: "old", ...o, onWarning: (m) => warnings.push(m) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LegacyLayoutError);
    expect((err as Error).message).toMatch(new RegExp(`${o.prefix}\\.old\\.events .*single-subject layout.*another name or on another stream`));
    expect(warnings.join("\n")).toMatch(/had the single-subject layout/);
    expect((await jsm.streams.info(o.stream)).config.subjects).toEqual([`${o.prefix}.*.events`, `${o.prefix}.*.events.>`]);
    await expect(replayToken({ nc: nats.nc, sim: "old", token: "slot0", ...o, processCaches: false })).rejects.toBeInstanceOf(LegacyLayoutError);
    // Another simulator on the same stream works in the new layout.
    const store = await JetStreamEventStore.open({ nc: nats.nc, sim: "new", ...o });
    const sim = testSimulator({ store, slots: 2 });
    workloadRound(sim, 0);
    await store.flush(sim.lastSeq);
    const again = testSimulator({ store: await JetStreamEventStore.open({ nc: nats.nc, sim: "new", ...o }), slots: 2 });
    expect(snapshot(again)).toEqual(snapshot(sim));
    // The legacy log is still there, untouched.
    let legacy = 0;
    await readSubject(jetstream(nats.nc), o.stream, subjects("old", o.prefix).eventsLegacy, () => legacy++);
    expect(legacy).toBe(1);
  });
});
