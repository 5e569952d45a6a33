/**
 * Snapshots written in the background (issue 5; src/events/snapshot-writer.ts, file-store.ts "Snapshots"): the append
 * that finds one due only posts a marker, and a worker thread's replica of the simulator writes it while the calls go
 * on. On real files and a real worker thread:
 *   - every snapshot the writer leaves, seen as it lands while further calls change the live state, opens to exactly
 *     the state of its own sequence: the picture taken of the live state right after that record
 *     (model/snapshot.ts), and field by field the state a replay of the log up to it rebuilds (property, both
 *     profiles, random call sequences, random intervals);
 *   - close with snapshots in flight waits for them: the newest is on disk, whole, when close returns, the store
 *     reopens from it without a warning; with a closing snapshot too, both are there;
 *   - a writer thread that ends (as a crash would) is a warning, and the store writes its snapshots inline from then on;
 *   - a process that exits without closing the store (process.exit right after a marker) still leaves that snapshot,
 *     whole (the kill -9 case: snapshot-kill9.int.spec.ts).
 * How long the calling append is held up is a benchmark's business (bench/store.js snapshot), never asserted here.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Simulator } from "../../src/actors/simulator.js";
import { FileEventStore, type FileStoreOptions } from "../../src/events/file-store.js";
import { MemoryEventStore } from "../../src/events/memory-store.js";
import { openSnapshot } from "../../src/events/snapshot.js";
import { stopWriterThread } from "../../src/events/snapshot-writer.js";
import { deriveKeys } from "../../src/crypto/keys.js";
import { snapshotState } from "../../src/model/snapshot.js";
import { CK } from "../../src/pkcs11/constants.js";
import type { ProfileName } from "../../src/pkcs11/profiles.js";
import { runSteps, stepsArb } from "../support/arbitraries.js";
import { bytes, snapshot, testSimulator, TEST_KEY, userSession } from "../support/sim.js";
import { tempDir } from "../support/file-store-helpers.js";
import { firstDifference, readsOf } from "../support/snapshot-helpers.js";

const HEADER = /^hsmsim-snapshot-file 1 (\d+) ([0-9a-f]{64}) (\d+)\n/;
const snaps = (dir: string) => readdirSync(dir).filter((n) => /\.snap(\.tmp)?$/.test(n)).sort();

/** A snapshot file's sequence, chain head and sealed body. */
function readSnap(path: string): { seq: number; head: string; body: Uint8Array } {
  const b = readFileSync(path);
  const h = HEADER.exec(b.toString("latin1", 0, 200))!;
  return { seq: Number(h[1]), head: h[2]!, body: new Uint8Array(b.subarray(h[0].length)) };
}

const ulong = (n: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
};

/** A file store whose simulator has a token, a logged-in user and `objects` token objects. */
function bigStore(dir: string, objects: number, opts: FileStoreOptions) {
  const warnings: string[] = [];
  const store = new FileEventStore(dir, { durability: "group", checkpointEvery: 0, ...opts, onWarning: (m) => warnings.push(m) });
  const sim = testSimulator({ store });
  const a = sim.application();
  const h = userSession(a, "background");
  const made: number[] = [];
  const create = (i: number) => {
    const template = [
      { type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA) },
      { type: CK.CKA_TOKEN, value: Uint8Array.of(1) },
      { type: CK.CKA_LABEL, value: bytes(`object ${i}`) },
      { type: CK.CKA_VALUE, value: new Uint8Array(256).fill(i & 0xff) },
    ];
    const r = a.call({ fn: "C_CreateObject", args: { hSession: h, template } });
    expect(r.rv).toBe(CK.CKR_OK);
    made.push(r.out!.hObject);
  };
  for (let i = 0; i < objects; i++) create(i);
  return { store, sim, a, h, made, create, warnings };
}

/** Reopen `dir`: where its simulator started reading, the warnings, and whether it holds a full replay's state. */
function reopen(dir: string) {
  const warnings: string[] = [];
  const { store, froms } = readsOf(new FileEventStore(dir, { durability: "none", snapshotOnClose: false, onWarning: (m) => warnings.push(m) }));
  const sim = testSimulator({ store });
  const full = Simulator.replay([...store.read()], { simulatorKey: TEST_KEY, store: new MemoryEventStore() });
  const same = firstDifference({ state: sim.state, read: sim.read }, { state: full.state, read: full.read }, "sim", new Set());
  store.close();
  return { from: froms[0]!, warnings, same };
}

describe.each<ProfileName>(["default", "softhsm2"])("background snapshots under further calls (profile %s)", (profile) => {
  it("every snapshot written while the calls go on opens to exactly the state of its own sequence", () => {
    const RUNS = 25;
    let checked = 0;
    let overtaken = 0;
    fc.assert(
      fc.property(stepsArb(80), fc.integer({ min: 1, max: 12 }), (steps, every) => {
        const dir = tempDir("hsmsim-snapshot-thread-");
        const warnings: string[] = [];
        const store = new FileEventStore(dir, { durability: "none", checkpointEvery: 0, snapshotEvery: every, snapshotOnClose: false, onWarning: (m) => warnings.push(m) });
        const live = testSimulator({ profile, store });
        // The live state's picture right after each record a snapshot may be of (the multiples of `every`), and every
        // snapshot file as it lands, with the sequence the live state had reached by then.
        const pictures = new Map<number, unknown>();
        const landed = new Map<number, { body: Uint8Array; head: string; liveSeq: number }>();
        const look = (liveSeq: number) => {
          for (const name of snaps(dir)) {
            if (!name.endsWith(".snap") || landed.has(Number(name.slice(9, 25)))) continue;
            try {
              const s = readSnap(join(dir, name));
              landed.set(s.seq, { body: s.body, head: s.head, liveSeq });
            } catch {
              // removed between the listing and the read (the writer keeps the two newest): it is not looked at
            }
          }
        };
        live.subscribe((r) => {
          if (r.seq % every === 0) pictures.set(r.seq, structuredClone(snapshot(live)));
          look(r.seq);
        });
        runSteps([live.application(), live.application()], steps);
        const records = [...store.read()];
        store.close(); // waits for the snapshots in flight
        look(live.lastSeq);
        expect(warnings).toEqual([]);
        expect(snaps(dir).filter((n) => n.endsWith(".tmp"))).toEqual([]);
        const key = deriveKeys(TEST_KEY).snapshot;
        for (const [seq, s] of landed) {
          const image = openSnapshot(key, s.body, seq, s.head);
          expect(snapshotState(image.state, image.read), `snapshot of seq ${seq}`).toEqual(pictures.get(seq));
          const replayed = Simulator.replay(records.slice(0, seq), { profile, simulatorKey: TEST_KEY, store: new MemoryEventStore() });
          expect(firstDifference({ state: image.state, read: image.read }, { state: replayed.state, read: replayed.read }, "sim", new Set()), `snapshot of seq ${seq}`).toBeUndefined();
          checked++;
          if (s.liveSeq > seq + 1) overtaken++;
        }
        // The newest snapshot due is on disk once close returned.
        const newest = live.lastSeq > every ? Math.floor((live.lastSeq - 1) / every) * every : 0;
        if (newest > 0) expect(landed.has(newest)).toBe(true);
      }),
      { numRuns: RUNS },
    );
    expect(checked).toBeGreaterThan(RUNS / 2);
    // How many landed only after later calls had changed the live state is chance (it depends on the threads'
    // timing); the property holds either way, and the count is printed.
    console.log(`background snapshots (${profile}): ${checked} checked, ${overtaken} landed after later calls had changed the state`);
  });
});

describe("background snapshots: close and exit", () => {
  it("close with a snapshot in flight waits for it: whole on disk, the store reopens from it", () => {
    const dir = tempDir("hsmsim-snapshot-thread-");
    const every = 1500;
    const s = bigStore(dir, every + 10, { snapshotEvery: every, snapshotOnClose: false });
    // Due at the append after record `every`: posted, and right after it the state changes under the writer.
    for (const o of s.made.splice(0, 50)) s.a.call({ fn: "C_DestroyObject", args: { hSession: s.h, hObject: o } });
    s.a.call({ fn: "C_Logout", args: { hSession: s.h } });
    s.store.close();
    expect(s.warnings).toEqual([]);
    expect(snaps(dir)).toEqual([`snapshot-${String(every).padStart(16, "0")}.snap`]);
    expect(readdirSync(dir)).not.toContain("events.lock");
    const r = reopen(dir);
    expect(r).toEqual({ from: every + 1, warnings: [], same: undefined });
  });

  it("close with a snapshot in flight and a closing snapshot: both, the closing one newest", () => {
    const dir = tempDir("hsmsim-snapshot-thread-");
    const every = 1500;
    const s = bigStore(dir, every + 10, { snapshotEvery: every, snapshotOnClose: true });
    s.create(-1);
    const last = s.sim.lastSeq;
    s.store.close();
    expect(s.warnings).toEqual([]);
    expect(snaps(dir)).toEqual([`snapshot-${String(every).padStart(16, "0")}.snap`, `snapshot-${String(last).padStart(16, "0")}.snap`]);
    const r = reopen(dir);
    expect(r).toEqual({ from: last + 1, warnings: [], same: undefined });
  });

  it("a writer thread that ends (a crash): a warning, and the snapshots due from then on are written inline", async () => {
    const dir = tempDir("hsmsim-snapshot-thread-");
    const s = bigStore(dir, 0, { snapshotEvery: 20, snapshotOnClose: false });
    for (let i = 0; i < 15; i++) s.create(i); // past half-way: the writer and its replica are started
    await stopWriterThread();
    for (let i = 15; i < 60; i++) s.create(i);
    // The marker posted at seq 21 (for 20) may have been written before the thread ended, or lost with it.
    expect(s.warnings.join("\n")).toMatch(/the background snapshot writer of .* ended: its snapshots are written inline from now on/);
    expect(s.store.snapshotStats.lastCatchUpMs).toBe(0); // the last one written inline
    const newest = Math.floor((s.sim.lastSeq - 1) / 20) * 20;
    s.store.close();
    expect(snaps(dir)).toContain(`snapshot-${String(newest).padStart(16, "0")}.snap`);
    expect(reopen(dir)).toEqual({ from: newest + 1, warnings: [], same: undefined });
  });

  it("a process that exits without closing the store still leaves the snapshot in flight, whole", () => {
    const dir = tempDir("hsmsim-snapshot-thread-");
    const child = fileURLToPath(new URL("../support/snapshot-exit-child.ts", import.meta.url));
    const r = spawnSync(process.execPath, ["--import", "tsx", child, dir, "1500"], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    const seq = Number(/posted (\d+)/.exec(r.stdout)?.[1]);
    expect(seq).toBe(1500);
    expect(snaps(dir)).toEqual([`snapshot-${String(seq).padStart(16, "0")}.snap`]);
    const again = reopen(dir);
    expect(again).toEqual({ from: seq + 1, warnings: [], same: undefined });
  });
});
