/**
 * State snapshots on the file store (src/events/snapshot.ts, file-store.ts "Snapshots"), on real files: what a
 * snapshot file holds (sealed: nothing of the state readable), and every way one can be unusable, each of which must
 * fall back, with a warning, to an older snapshot or to a full replay and never to a wrong state: a damaged body, a
 * damaged header, another store's snapshot, a snapshot past a log cut short, another simulator key, other profile
 * settings, a value the codec cannot carry. Fields added to the state by other code are carried without an edit.
 * The store opened from a snapshot still reads every record from any sequence, and still refuses damage after it.
 * Property test: test/property/snapshot.property.spec.ts; kill -9 during snapshot writes: snapshot-kill9.int.spec.ts.
 */
import { copyFileSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Simulator } from "../../src/actors/simulator.js";
import { FileEventStore, StoreCorruptError, type FileStoreOptions } from "../../src/events/file-store.js";
import { MemoryEventStore } from "../../src/events/memory-store.js";
import { openSnapshot } from "../../src/events/snapshot.js";
import { deriveKeys } from "../../src/crypto/keys.js";
import { CK } from "../../src/pkcs11/constants.js";
import type { SimulatorOptions } from "../../src/actors/simulator.js";
import { bytes, snapshot, SO_PIN, testSimulator, TEST_KEY, USER_PIN } from "../support/sim.js";
import { logLines, tempDir } from "../support/file-store-helpers.js";
import { expectSameState, readsOf } from "../support/snapshot-helpers.js";

const BASE: FileStoreOptions = { durability: "none", checkpointEvery: 0, snapshotEvery: 10, snapshotOnClose: false };

/** A store with a token, a logged-in user, objects and a find in progress: `calls` calls, snapshots every 10. */
function storeWith(calls: number, opts: FileStoreOptions = {}, sim: SimulatorOptions = {}): { dir: string; warnings: string[] } {
  const dir = tempDir("hsmsim-snapshot-");
  const warnings: string[] = [];
  const s = testSimulator({ ...sim, store: new FileEventStore(dir, { ...BASE, ...opts, onWarning: (m) => warnings.push(m) }) });
  const a = s.application();
  const r = [
    a.call({ fn: "C_Initialize", args: {} }),
    a.call({ fn: "C_InitToken", args: { slotID: 0, pin: SO_PIN, label: "snapshots" } }),
    a.call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION } }),
    a.call({ fn: "C_Login", args: { hSession: 1, userType: CK.CKU_SO, pin: SO_PIN } }),
    a.call({ fn: "C_InitPIN", args: { hSession: 1, pin: USER_PIN } }),
    a.call({ fn: "C_Logout", args: { hSession: 1 } }),
    a.call({ fn: "C_Login", args: { hSession: 1, userType: CK.CKU_USER, pin: USER_PIN } }),
  ];
  expect(r.map((x) => x.rv)).toEqual(r.map(() => CK.CKR_OK));
  for (let i = s.lastSeq; i < calls; i++) {
    const label = bytes(`object ${i}`);
    if (i % 3 === 0) a.call({ fn: "C_CreateObject", args: { hSession: 1, template: [{ type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA) }, { type: CK.CKA_LABEL, value: label }] } });
    else a.call({ fn: "C_GetSessionInfo", args: { hSession: 1 } });
  }
  a.call({ fn: "C_FindObjectsInit", args: { hSession: 1, template: [] } });
  (s.store as FileEventStore).close();
  return { dir, warnings };
}

const ulong = (n: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
};

/** Reopen `dir` with a simulator: its warnings, where it started reading, and a full replay of the log to compare with. */
function reopen(dir: string, sim: SimulatorOptions = {}, opts: FileStoreOptions = {}) {
  const warnings: string[] = [];
  const { store, froms } = readsOf(new FileEventStore(dir, { ...BASE, ...opts, onWarning: (m) => warnings.push(m) }));
  const reopened = testSimulator({ ...sim, store });
  const full = Simulator.replay([...store.read()], { simulatorKey: TEST_KEY, ...sim, store: new MemoryEventStore() });
  return { reopened, full, store, warnings, from: froms[0]! };
}

const snaps = (dir: string) => readdirSync(dir).filter((n) => n.endsWith(".snap")).sort();

function flipByte(file: string, at: (size: number) => number): void {
  const b = readFileSync(file);
  b[at(b.length)] ^= 0x40;
  writeFileSync(file, b);
}

describe("state snapshots on the file store", () => {
  it("are written every N records, the two newest kept, sealed: no byte of the state is readable", () => {
    const { dir, warnings } = storeWith(45);
    expect(warnings).toEqual([]);
    expect(snaps(dir)).toEqual(["snapshot-0000000000000030.snap", "snapshot-0000000000000040.snap"]);
    const file = readFileSync(join(dir, snaps(dir)[1]!));
    expect(file.subarray(0, 200).toString("latin1")).toMatch(/^hsmsim-snapshot-file 1 40 [0-9a-f]{64} \d+\n/);
    // The state holds the label, object labels, PIN verifiers: none of it shows in the file.
    for (const s of ["snapshots", "object 9", "tokens", "SlotActor", USER_PIN]) expect(file.includes(Buffer.from(s))).toBe(false);
    // Under the key it opens, to the state as of seq 40.
    const header = /^hsmsim-snapshot-file 1 (\d+) ([0-9a-f]{64}) /.exec(file.toString("latin1", 0, 100))!;
    const body = file.subarray(file.indexOf(10) + 1);
    const image = openSnapshot(deriveKeys(TEST_KEY).snapshot, body, 40, header[2]!);
    expect(image.read.position).toBe(40);
    expect(() => openSnapshot(deriveKeys(new Uint8Array(32)).snapshot, body, 40, header[2]!)).toThrow(/does not open under this simulator key/);
    expect(() => openSnapshot(deriveKeys(TEST_KEY).snapshot, body, 39, header[2]!)).toThrow(/does not open/);
  });

  it("opening restores the newest and replays only the records after it", () => {
    const { dir } = storeWith(45);
    const { reopened, full, warnings, from, store } = reopen(dir);
    expect(warnings).toEqual([]);
    expect(from).toBe(41);
    expect(snapshot(reopened)).toEqual(snapshot(full));
    expectSameState(reopened, full);
    store.close();
  });

  it("a damaged newest snapshot: the one before it, with a warning", () => {
    const { dir } = storeWith(45);
    flipByte(join(dir, snaps(dir)[1]!), (n) => n - 30);
    const { reopened, full, warnings, from, store } = reopen(dir);
    expect(from).toBe(31);
    expect(warnings.join("\n")).toMatch(/snapshot-0+40\.snap \(seq 40\) is not usable: it does not open/);
    expect(warnings.join("\n")).toMatch(/restored the older snapshot snapshot-0+30\.snap/);
    expectSameState(reopened, full);
    store.close();
  });

  it("both damaged (one body, one header): a full replay, with warnings", () => {
    const { dir } = storeWith(45);
    flipByte(join(dir, snaps(dir)[1]!), (n) => n - 1);
    flipByte(join(dir, snaps(dir)[0]!), () => 25);
    const { reopened, full, warnings, from, store } = reopen(dir);
    expect(from).toBe(1);
    expect(warnings.join("\n")).toMatch(/snapshot-0+30\.snap is stale or foreign, passed over: its header is missing or damaged/);
    expect(warnings.join("\n")).toMatch(/no usable snapshot: replaying the log from its first record/);
    expect(snapshot(reopened)).toEqual(snapshot(full));
    expectSameState(reopened, full);
    store.close();
  });

  it("another store's snapshot, or one past a log cut short, is passed over", () => {
    const a = storeWith(45).dir;
    const b = storeWith(45).dir;
    // c: the same calls at other times, so another log; its snapshots, copied over a's, have a's names.
    const c = storeWith(45, {}, { clock: () => 1_900_000_000_000 }).dir;
    for (const n of snaps(c)) copyFileSync(join(c, n), join(a, n));
    let r = reopen(a);
    expect(r.from).toBe(1);
    expect(r.warnings.join("\n")).toMatch(/snapshot-0+40\.snap is stale or foreign, passed over: the log's record 40 is not the one it was taken at/);
    expectSameState(r.reopened, r.full);
    r.store.close();
    // b cut to 35 records (as by hand: no checkpoints to object): its seq-40 snapshot is past the end, seq 30 serves.
    const lines = logLines(b);
    truncateSync(join(b, "events.log"), Buffer.byteLength(lines.slice(0, 35).join("\n") + "\n"));
    r = reopen(b);
    expect(r.from).toBe(31);
    expect(r.warnings.join("\n")).toMatch(/snapshot-0+40\.snap is stale or foreign, passed over: the log ends at seq 35/);
    expectSameState(r.reopened, r.full);
    r.store.close();
  });

  it("snapshots past a log cut short are removed by the next snapshot written, not kept as the newest", () => {
    const { dir } = storeWith(45);
    truncateSync(join(dir, "events.log"), Buffer.byteLength(logLines(dir).slice(0, 25).join("\n") + "\n"));
    const r = reopen(dir);
    expect(r.from).toBe(1); // 30 and 40 are past the end; 20 was pruned long ago
    const a = r.reopened.application();
    a.call({ fn: "C_Initialize", args: {} });
    a.call({ fn: "C_GetInfo", args: {} });
    r.store.close();
    expect(snaps(dir)).toEqual(["snapshot-0000000000000025.snap"]);
    const again = reopen(dir);
    expect(again.warnings).toEqual([]);
    expect(again.from).toBe(26);
    expectSameState(again.reopened, again.full);
    again.store.close();
  });

  it("another simulator key, or other profile settings: a full replay, with a warning", () => {
    const { dir } = storeWith(45);
    const other = new Uint8Array(32).fill(1);
    let r = reopen(dir, { simulatorKey: other });
    expect(r.from).toBe(1);
    expect(r.warnings.join("\n")).toMatch(/does not open under this simulator key/);
    r.store.close();
    r = reopen(dir, { pinRetries: 3 });
    expect(r.from).toBe(1);
    expect(r.warnings.join("\n")).toMatch(/written under other profile settings/);
    expectSameState(r.reopened, r.full);
    r.store.close();
  });

  it("carries fields other code adds to the state, of any shape, with no edit to the codec", () => {
    const dir = tempDir("hsmsim-snapshot-");
    const live = testSimulator({ store: new FileEventStore(dir, { ...BASE, snapshotOnClose: true }) });
    const a = live.application();
    a.call({ fn: "C_Initialize", args: {} });
    a.call({ fn: "C_InitToken", args: { slotID: 0, pin: SO_PIN, label: "fields" } });
    const shared = { kind: "aes", bits: 256 };
    Object.assign(live.state as object, {
      keys: new Map<string, unknown>([
        ["k1", { material: Uint8Array.of(1, 2, 3), usage: new Set(["encrypt", "wrap"]), spec: shared, big: 12n, gone: undefined }],
        ["k2", { material: new Uint8Array(0), spec: shared, edge: [-0, NaN, Infinity, null] }],
      ]),
    });
    Object.assign(live.state.tokens.get("slot0")!, { extra: Object.freeze({ x: [1, "two"] }) });
    (live.store as FileEventStore).close();
    const store = new FileEventStore(dir, BASE);
    const reopened = testSimulator({ store });
    expectSameState(reopened, live);
    const keys = (reopened.state as unknown as { keys: Map<string, { spec: unknown }> }).keys;
    expect(keys.get("k1")!.spec).toBe(keys.get("k2")!.spec); // shared stays shared
    store.close();
  });

  it("a value it cannot carry: no snapshot (a warning naming where), and the next open replays in full", () => {
    const dir = tempDir("hsmsim-snapshot-");
    const warnings: string[] = [];
    const live = testSimulator({ store: new FileEventStore(dir, { ...BASE, snapshotOnClose: true, onWarning: (m) => warnings.push(m) }) });
    const a = live.application();
    a.call({ fn: "C_Initialize", args: {} });
    class Opaque {
      secret = 1;
    }
    Object.assign(live.state.tokens.get("slot0")!, { handle: new Opaque() });
    (live.store as FileEventStore).close();
    expect(warnings.join("\n")).toMatch(/could not write a state snapshot of seq 1 .*cannot snapshot snapshot\.state\.tokens\.get\(slot0\)\.handle: an instance of Opaque/);
    expect(snaps(dir)).toEqual([]);
    const r = reopen(dir);
    expect(r.from).toBe(1);
    r.store.close();
  });

  it("a store opened from a snapshot reads every record from any sequence, and refuses damage after the snapshot", () => {
    const { dir } = storeWith(2600, { snapshotEvery: 2500 });
    const all = logLines(dir).map((l) => (JSON.parse(l) as { record: unknown }).record);
    const r = reopen(dir);
    expect(r.from).toBe(2501);
    for (const from of [1, 2, 1024, 1025, 1026, 2048, 2049, 2500, 2501, 2600, 2601]) expect([...r.store.read(from)]).toEqual(all.slice(from - 1));
    r.store.close();
    // A changed byte after the snapshot is found at open as before; one before it is `hsmsim audit verify`'s to find.
    const lines = logLines(dir);
    lines[2550] = lines[2550]!.replace('"rv":0', '"rv":1');
    writeFileSync(join(dir, "events.log"), lines.join("\n") + "\n");
    expect(() => new FileEventStore(dir, BASE)).toThrow(StoreCorruptError);
  });

  it("a temporary file left by a crash mid-write is removed at open", () => {
    const { dir } = storeWith(25);
    writeFileSync(join(dir, "snapshot-0000000000000025.snap.tmp"), "half a snap");
    const r = reopen(dir);
    expect(r.from).toBe(21);
    expect(readdirSync(dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
    r.store.close();
  });
});
