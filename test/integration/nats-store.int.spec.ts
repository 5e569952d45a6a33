/**
 * The JetStream event store (src/events/jetstream-store.ts) on a real nats-server (test/support/nats-server.ts):
 * append and read back, the hash chain through the stream, group commit of concurrent appends, de-duplication by
 * message ID, simulators sharing a stream each on their own subjects (one replays alone; subjects per token within a
 * simulator: nats-token-subjects.int.spec.ts), a second writer refused by the fence (FenceLostError, the log not forked), the store's failure answered CKR_DEVICE_ERROR with nothing applied, and a
 * simulator rebuilt from the stream in the state it had.
 */
import { describe, expect, it } from "vitest";
import { headers } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { FenceLostError, JetStreamEventStore, readSubject, StreamCorruptError } from "../../src/events/jetstream-store.js";
import { encodeEntry, entryProblem, GENESIS } from "../../src/events/chain.js";
import { StoreWriteError } from "../../src/events/file-store.js";
import { subjects } from "../../src/remote/protocol.js";
import { CK } from "../../src/pkcs11/constants.js";
import { natsPerFile } from "../support/nats-server.js";
import { record } from "../support/file-store-helpers.js";
import { caller, snapshot, SO_PIN, testSimulator, USER_PIN } from "../support/sim.js";
import { stopWriterThread } from "../../src/events/snapshot-writer.js";

const nats = natsPerFile("T");
const fresh = nats.fresh;

/** A store of simulator "a" holding one record, a JetStream client and the subject that record is on. */
async function oneRecordStored() {
  const o = fresh();
  const s = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
  s.append(record(1));
  await s.flush(1);
  return { o, s, js: jetstream(nats.nc), subject: subjects("a", o.prefix).eventsSim };
}

describe("JetStream event store", () => {
  it("appends, answers flush once stored, and a reopened store reads the same records with an intact chain", async () => {
    const o = fresh();
    const s = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    expect(s.lastSeq).toBe(0);
    for (let i = 1; i <= 50; i++) s.append(record(i));
    expect(s.lastSeq).toBe(50);
    expect(s.durableSeq).toBeLessThan(50); // nothing acked synchronously
    await s.flush(50);
    expect(s.durableSeq).toBe(50);
    // Group commit: 50 appends of one turn went out in far fewer messages.
    expect(s.stats.publishes).toBeLessThan(5);
    const head = s.headHash;
    await s.close();

    const r = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    expect(r.lastSeq).toBe(50);
    expect(r.headHash).toBe(head);
    expect([...r.read()].map((x) => x.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect([...r.read(49)].map((x) => x.seq)).toEqual([49, 50]);
    // The messages hold chain envelopes: verify them independently of the store.
    let prev = GENESIS;
    let seq = 0;
    await readSubject(jetstream(nats.nc), o.stream, subjects("a", o.prefix).events, (m) => {
      for (const e of m.envelopes) {
        expect(entryProblem(e, ++seq, prev)).toBeUndefined();
        prev = e.hash;
      }
    });
    expect(seq).toBe(50);
    expect(prev).toBe(head);
    await r.close();
  });

  it("pipelines publishes on many subjects: with another simulator writing to the stream and acks timing out, every record is stored once, in record order", async () => {
    const o = fresh();
    const warn = () => undefined;
    // Tiny ack timeouts make publishes ambiguous (retried; a pipelined one then goes again as the window's head), and
    // a second simulator on the same stream moves its end under the predicted expectations.
    const opts = { nc: nats.nc, ...o, maxInflight: 16, publishTimeoutMs: 15, onWarning: warn };
    const a = await JetStreamEventStore.open({ sim: "a", ...opts });
    const b = await JetStreamEventStore.open({ sim: "b", ...opts });
    const N = 1500;
    const load = async (s: JetStreamEventStore, callers: number) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: callers }, async (_, c) => {
          while (next < N) {
            const seq = ++next;
            s.append(record(seq), `slot${c % 8}`); // each caller on a token subject of its own (8 subjects)
            await s.flush(seq);
          }
        }),
      );
    };
    await Promise.all([load(a, 16), load(b, 16)]);
    expect([a.durableSeq, b.durableSeq]).toEqual([N, N]);
    expect(a.stats.pipelined + b.stats.pipelined).toBeGreaterThan(0);
    console.log(`pipelined publishes: a ${JSON.stringify(a.stats)}, b ${JSON.stringify(b.stats)}`);
    const heads = [a.headHash, b.headHash];
    await a.close();
    await b.close();
    // Reopened from the stream: every record once, the chain intact in stream order (open verifies it).
    for (const [k, sim] of ["a", "b"].entries()) {
      const r = await JetStreamEventStore.open({ sim, ...opts });
      expect(r.lastSeq).toBe(N);
      expect(r.headHash).toBe(heads[k]);
      expect([...r.read()].map((x) => x.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      await r.close();
    }
  });

  it("a message that expects a predecessor (by msgID) which is not the stream's last is refused: what pipelining rests on", async () => {
    const { o, s, js, subject } = await oneRecordStored();
    const h = headers();
    h.set("Nats-Msg-Id", "a/other/2");
    h.set("Nats-Expected-Last-Sequence", String(s.streamSeq));
    h.set("Nats-Expected-Last-Msg-Id", "a/nobody/1");
    await expect(js.publish(subject, new Uint8Array(1), { headers: h })).rejects.toThrow(/wrong last msg ID/);
    await s.close();
  });

  it("keeps each simulator on its own subjects: one replays alone", async () => {
    const o = fresh();
    const a = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    const b = await JetStreamEventStore.open({ nc: nats.nc, sim: "b", ...o });
    for (let i = 1; i <= 10; i++) {
      a.append(record(i));
      if (i <= 3) b.append(record(i));
      await Promise.all([a.flush(i), b.flush(Math.min(i, 3))]);
    }
    const a2 = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    const b2 = await JetStreamEventStore.open({ nc: nats.nc, sim: "b", ...o });
    expect(a2.lastSeq).toBe(10);
    expect(b2.lastSeq).toBe(3);
    expect(a2.stats.loadedMessages).toBe(10);
    expect(b2.stats.loadedMessages).toBe(3);
  });

  it("de-duplicates a message published again with the same ID", async () => {
    const { o, s, js, subject } = await oneRecordStored();
    const body = encodeEntry(GENESIS, record(1)).line;
    const msgID = `a/${s.writerId}/1`;
    const ack = await js.publish(subject, body, { msgID });
    expect(ack.duplicate).toBe(true);
    const jsm = await jetstreamManager(nats.nc);
    expect((await jsm.streams.info(o.stream)).state.messages).toBe(1);
  });

  it("refuses a second writer for the same simulator (FenceLostError) and never forks the log", async () => {
    const o = fresh();
    const first = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    first.append(record(1));
    await first.flush(1);
    // The second writer opens on the same log (seq 1), then the first moves on: the second's view is stale.
    const second = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    first.append(record(2));
    await first.flush(2);
    second.append(record(2));
    const err = await second.flush(2).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreWriteError);
    expect(second.failure).toBeInstanceOf(FenceLostError);
    expect(second.failure!.message).toMatch(/another writer appended to t\d+\.a\.events\.>/);
    // It takes nothing more.
    expect(() => second.append(record(3))).toThrow(StoreWriteError);
    // The first writer keeps going; the log holds its records only, chained.
    first.append(record(3));
    await first.flush(3);
    const r = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    expect(r.lastSeq).toBe(3);
    expect(r.headHash).toBe(first.headHash);
  });

  it("a simulator on the store answers CKR_DEVICE_ERROR once the store failed, and applies nothing", async () => {
    const o = fresh();
    const first = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    const second = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    const sim = testSimulator({ store: second });
    const app = caller(sim.application());
    // The other writer moves the subject first: the simulator's first commit is refused.
    first.append(record(1));
    await first.flush(1);
    expect(app("C_Initialize", {}).rv).toBe("CKR_OK");
    await expect(second.flush(1)).rejects.toBeInstanceOf(StoreWriteError);
    const before = snapshot(sim);
    const seq = sim.lastSeq;
    expect(app("C_GetSlotList", { tokenPresent: false, pSlotList: null }).rv).toBe("CKR_DEVICE_ERROR");
    expect(sim.lastSeq).toBe(seq);
    expect(snapshot(sim)).toEqual(before);
  });

  it("refuses a stream whose content does not chain", async () => {
    const o = fresh();
    const s = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    s.append(record(1));
    await s.flush(1);
    // A foreign writer appends a line that claims seq 2 but links to the wrong previous hash.
    await jetstream(nats.nc).publish(subjects("a", o.prefix).eventsSim, encodeEntry(GENESIS, record(2)).line);
    await expect(JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o })).rejects.toBeInstanceOf(StreamCorruptError);
    // An edited record under its old hash, on another simulator's subject.
    const line = encodeEntry(GENESIS, record(1)).line.replace('"rv":0', '"rv":5');
    expect(line).toContain('"rv":5');
    await jetstream(nats.nc).publish(subjects("b", o.prefix).eventsSim, line);
    await expect(JetStreamEventStore.open({ nc: nats.nc, sim: "b", ...o })).rejects.toThrow(/corrupt at record seq 1 .*hash does not match/);
  });

  // Periodic snapshots sealed by the background writer's replica (the default) or inside the append (snapshotThread).
  it.each([true, false])("restores a snapshot and replays only the tail after it; the state is the full replay's (snapshotThread %s)", async (snapshotThread) => {
    const o = fresh();
    const open = (extra: object = {}) => JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o, snapshots: true, snapshotEvery: 20, snapshotThread, ...extra });
    const store = await open();
    const sim = testSimulator({ store });
    const app = caller(sim.application());
    app("C_Initialize", {});
    app("C_InitToken", { slotID: 0, pin: SO_PIN, label: "snap" });
    for (let i = 0; i < 30; i++) {
      const h = app("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION }).out!.hSession;
      if (i % 3 !== 0) app("C_CloseSession", { hSession: h });
      await store.flush(sim.lastSeq); // one message per call: the snapshot's record sits inside the stream
    }
    // A periodic snapshot (not at the end): restoring it replays the tail from inside the message that holds it.
    while (store.stats.snapshotsWritten < 1) await new Promise((r) => setTimeout(r, 10));
    const mid = await open();
    expect(mid.stats.restoredFrom).toBeGreaterThan(0);
    expect(mid.stats.restoredFrom).toBeLessThan(sim.lastSeq);
    expect(mid.stats.loadedRecords).toBe(sim.lastSeq - mid.stats.restoredFrom);
    expect(snapshot(testSimulator({ store: mid }))).toEqual(snapshot(sim));
    await store.close(); // a last snapshot at close
    expect(store.stats.snapshotsWritten).toBeGreaterThanOrEqual(2);
    const reopened = await open();
    expect(reopened.stats.restoredFrom).toBe(sim.lastSeq);
    expect(reopened.stats.loadedRecords).toBe(0);
    const restored = testSimulator({ store: reopened });
    expect(snapshot(restored)).toEqual(snapshot(sim));
    // It goes on from there: new calls append after the snapshot, and a full replay agrees.
    const app2 = caller(restored.application());
    app2("C_Initialize", {});
    app2("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION });
    await reopened.flush(restored.lastSeq);
    const full = testSimulator({ store: await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o }) });
    expect(full.lastSeq).toBe(restored.lastSeq);
    expect(snapshot(full)).toEqual(snapshot(restored));
  });

  it("a snapshot sealed in the background names the message that holds its record, not the newest acknowledged", async () => {
    // A cold writer thread: the first body comes back long after its record's message was acknowledged, while
    // every call below is a message of its own.
    await stopWriterThread();
    const o = fresh();
    const open = () => JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o, snapshots: true, snapshotEvery: 25 });
    const store = await open();
    const sim = testSimulator({ store });
    const app = caller(sim.application());
    app("C_Initialize", {});
    app("C_InitToken", { slotID: 0, pin: SO_PIN, label: "late" });
    // A burst without waiting (markers posted while their records are in flight), then one message per call.
    for (let i = 0; i < 40; i++) app("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION });
    for (let i = 0; store.stats.snapshotsWritten < 1; i++) {
      app(i % 2 ? "C_CloseAllSessions" : "C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION });
      await store.flush(sim.lastSeq);
    }
    const mid = await open();
    expect(mid.stats.restoredFrom).toBeGreaterThan(0);
    expect(mid.stats.restoredFrom).toBeLessThan(sim.lastSeq);
    expect(mid.stats.loadedRecords).toBe(sim.lastSeq - mid.stats.restoredFrom);
    expect(snapshot(testSimulator({ store: mid }))).toEqual(snapshot(sim));
    await store.close();
  });

  it("rebuilds a simulator from the stream in the state it had", async () => {
    const o = fresh();
    const store = await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o });
    const sim = testSimulator({ store });
    const app = caller(sim.application());
    app("C_Initialize", {});
    app("C_InitToken", { slotID: 0, pin: SO_PIN, label: "nats" });
    const h = app("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION }).out!.hSession;
    app("C_Login", { hSession: h, userType: CK.CKU_SO, pin: SO_PIN });
    app("C_InitPIN", { hSession: h, pin: USER_PIN });
    await store.flush(sim.lastSeq);
    const rebuilt = testSimulator({ store: await JetStreamEventStore.open({ nc: nats.nc, sim: "a", ...o }) });
    expect(rebuilt.lastSeq).toBe(sim.lastSeq);
    expect(snapshot(rebuilt)).toEqual(snapshot(sim));
  });
});
