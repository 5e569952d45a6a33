/**
 * The file store's facts cache (src/events/facts-cache.ts): replay reads the facts from it, not from the log's lines,
 * and only where it provably says what the log says. Each case compares the simulator rebuilt with the cache against
 * one rebuilt from the log's lines alone (`factsCache: false`) on a copy of the same store.
 */
import { createHash } from "node:crypto";
import { cpSync, existsSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Simulator, type SimulatorOptions } from "../../src/actors/simulator.js";
import { FileEventStore, type FileStoreOptions } from "../../src/events/file-store.js";
import { BLOCK_RECORDS, FACTS_CACHE_FILE } from "../../src/events/facts-cache.js";
import { CK } from "../../src/pkcs11/constants.js";
import { deriveKeys } from "../../src/crypto/keys.js";
import { bytes, snapshot, SO_PIN, testSimulator, TEST_KEY, USER_PIN } from "../support/sim.js";
import { tempDir } from "../support/file-store-helpers.js";
import { ulong } from "../support/gwt.js";

const QUIET: FileStoreOptions = { durability: "none", snapshotEvery: 0, snapshotOnClose: false, checkpointEvery: 0 };
const RW = CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION;
const cacheFile = (dir: string) => join(dir, FACTS_CACHE_FILE);

/**
 * Add `records` records to the store in `dir` (made if new): session cycles with logins, objects created and
 * destroyed, digests, reads; a session object, a token object and an unfinished digest are left at the end.
 */
function write(dir: string, records: number, opts: FileStoreOptions = {}, sim: SimulatorOptions = {}, label = "cache"): void {
  const s = testSimulator({ ...sim, store: new FileEventStore(dir, { ...QUIET, ...opts }) });
  const a = s.application();
  const call = (c: Parameters<typeof a.call>[0]) => {
    const r = a.call(c);
    if (r.rv !== CK.CKR_OK) throw new Error(`${c.fn}: ${r.rv}`);
    return r.out as Record<string, number>;
  };
  call({ fn: "C_Initialize", args: {} });
  if (s.lastSeq === 1) {
    call({ fn: "C_InitToken", args: { slotID: 0, pin: SO_PIN, label } });
    const so = call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).hSession!;
    call({ fn: "C_Login", args: { hSession: so, userType: CK.CKU_SO, pin: SO_PIN } });
    call({ fn: "C_InitPIN", args: { hSession: so, pin: USER_PIN } });
    call({ fn: "C_CloseSession", args: { hSession: so } });
  }
  const end = s.lastSeq + records;
  const template = (token: boolean, i: number) => [
    { type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA) },
    { type: CK.CKA_TOKEN, value: Uint8Array.of(token ? 1 : 0) },
    { type: CK.CKA_LABEL, value: bytes(`${label} ${i}`) },
    { type: CK.CKA_VALUE, value: new Uint8Array(32).fill(i & 0xff) },
  ];
  let h = 0;
  for (let i = 0; s.lastSeq < end - 12; i++) {
    h = call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).hSession!;
    call({ fn: "C_Login", args: { hSession: h, userType: CK.CKU_USER, pin: USER_PIN } });
    call({ fn: "C_GetSessionInfo", args: { hSession: h } });
    const o = call({ fn: "C_CreateObject", args: { hSession: h, template: template(false, i) } }).hObject!;
    call({ fn: "C_DigestInit", args: { hSession: h, mechanism: { mechanism: CK.CKM_SHA256 } } });
    call({ fn: "C_DigestUpdate", args: { hSession: h, data: bytes(`part ${i}`) } });
    call({ fn: "C_DigestFinal", args: { hSession: h, outLen: 32 } });
    call({ fn: "C_DestroyObject", args: { hSession: h, hObject: o } });
    call({ fn: "C_Logout", args: { hSession: h } });
    call({ fn: "C_CloseSession", args: { hSession: h } });
  }
  // What stays: a logged-in session with a session object, a token object, and a digest half done.
  h = call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).hSession!;
  call({ fn: "C_Login", args: { hSession: h, userType: CK.CKU_USER, pin: USER_PIN } });
  call({ fn: "C_CreateObject", args: { hSession: h, template: template(false, 1) } });
  call({ fn: "C_CreateObject", args: { hSession: h, template: template(true, 2) } });
  call({ fn: "C_DigestInit", args: { hSession: h, mechanism: { mechanism: CK.CKM_SHA256 } } });
  call({ fn: "C_DigestUpdate", args: { hSession: h, data: bytes("first half") } });
  (s.store as FileEventStore).close();
}

/** The store in `dir` reopened and replayed: its state, the warnings, and what its unfinished digest ends with. */
function reopen(dir: string, opts: FileStoreOptions = {}, sim: SimulatorOptions = {}) {
  const warnings: string[] = [];
  const store = new FileEventStore(dir, { ...QUIET, ...opts, onWarning: (m) => warnings.push(m) });
  try {
    const s = new Simulator({ simulatorKey: TEST_KEY, ...sim, store });
    return { state: snapshot(s), warnings, seq: s.lastSeq, store, sim: s };
  } finally {
    store.close();
  }
}

/** The state a replay from the log's lines alone rebuilds, on a copy of `dir`. */
function fromLines(dir: string, sim: SimulatorOptions = {}) {
  const copy = tempDir("hsmsim-facts-lines-");
  cpSync(dir, copy, { recursive: true });
  return reopen(copy, { factsCache: false }, sim).state;
}

describe("the facts cache", () => {
  it("is written beside the log, and replay reads the cached records, not their lines", () => {
    const dir = tempDir("hsmsim-facts-");
    write(dir, 2 * BLOCK_RECORDS + 500);
    expect(existsSync(cacheFile(dir))).toBe(true);
    const want = fromLines(dir);
    // The store opens (verifying the log), then every line's record is overwritten with bytes that are not JSON, its
    // sequence and hashes left: a replay that parsed a line would throw.
    const warnings: string[] = [];
    const store = new FileEventStore(dir, { ...QUIET, onWarning: (m) => warnings.push(m) });
    const log = readFileSync(join(dir, "events.log"));
    let start = 0;
    for (let end = log.indexOf(10); end >= 0; start = end + 1, end = log.indexOf(10, start)) {
      const recordAt = log.indexOf(',"record":', start);
      log.fill(0x78, recordAt, end);
    }
    writeFileSync(join(dir, "events.log"), log);
    try {
      const s = new Simulator({ simulatorKey: TEST_KEY, store });
      expect(snapshot(s)).toEqual(want);
      expect(warnings).toEqual([]);
      // The lazy parts of the rebuilt state (the unfinished digest, the objects' attributes) still serve calls.
      const a = s.application();
      expect(a.call({ fn: "C_Initialize", args: {} }).rv).toBe(CK.CKR_OK);
    } finally {
      store.close();
    }
  });

  it("a rebuilt simulator finishes the digest the log left half done, as one that never stopped", () => {
    const dir = tempDir("hsmsim-facts-");
    write(dir, BLOCK_RECORDS + 100);
    const again = reopen(dir);
    const lines = fromLines(dir);
    expect(again.state).toEqual(lines);
    const store = new FileEventStore(dir, QUIET);
    try {
      const s = new Simulator({ simulatorKey: TEST_KEY, store });
      // The first application's session (the only one left) is still logged in and mid-digest.
      const app = s.application();
      app.appId = 1;
      const sessions = [...s.state.apps.get(1)!.sessions.keys()];
      const h = sessions[sessions.length - 1]!;
      app.call({ fn: "C_DigestUpdate", args: { hSession: h, data: bytes(" second half") } });
      const r = app.call({ fn: "C_DigestFinal", args: { hSession: h, outLen: 32 } });
      expect(r.rv).toBe(CK.CKR_OK);
      expect(Buffer.from((r.out as { digest: Uint8Array }).digest).toString("hex")).toBe(createHash("sha256").update("first half second half").digest("hex"));
    } finally {
      store.close();
    }
  });

  it("a flipped byte anywhere in a block: those records come from the log, with a warning; the state is the log's", () => {
    const dir = tempDir("hsmsim-facts-");
    write(dir, 2 * BLOCK_RECORDS + 300);
    const want = fromLines(dir);
    const size = readFileSync(cacheFile(dir)).length;
    // In the first block's header (payload length, count, first seq, log offset, hash), its payload, its MAC, and in
    // the last block. A damaged header can also end the list of blocks there (a length or count that makes no sense
    // reads as a torn tail): those records come from the log too, quietly; any other damage warns.
    const header = [22, 26, 30, 40, 60];
    for (const at of [...header, 100, 5000, size - 40, size - 1]) {
      const copy = tempDir("hsmsim-facts-flip-");
      cpSync(dir, copy, { recursive: true });
      const b = readFileSync(cacheFile(copy));
      b[at]! ^= 0x10;
      writeFileSync(cacheFile(copy), b);
      const r = reopen(copy);
      expect(r.state, `byte ${at}`).toEqual(want);
      if (!header.includes(at) || r.warnings.length > 0) expect(r.warnings.join("\n"), `byte ${at}`).toMatch(/facts cache of .* (does not match the log|does not decode)/);
    }
  });

  it("a cache from another log under the same key is not used: its blocks are not bound to this log", () => {
    const a = tempDir("hsmsim-facts-a-");
    const b = tempDir("hsmsim-facts-b-");
    write(a, BLOCK_RECORDS + 50, {}, {}, "store a");
    write(b, BLOCK_RECORDS + 50, {}, {}, "store b");
    const want = fromLines(b);
    cpSync(cacheFile(a), cacheFile(b));
    const r = reopen(b);
    expect(r.state).toEqual(want);
    expect(r.warnings.join("\n")).toMatch(/does not match the log at seq 1-/);
    // Its writer then cut the foreign blocks (none checks): the next replay reads the log, quietly.
    const again = reopen(b);
    expect(again.state).toEqual(want);
    expect(again.warnings).toEqual([]);
  });

  it("another simulator key: the cache is not used, and is started again under the new key", () => {
    const dir = tempDir("hsmsim-facts-");
    write(dir, BLOCK_RECORDS + 50);
    const other = new Uint8Array(32).fill(9);
    const want = fromLines(dir, { simulatorKey: other });
    const r = reopen(dir, {}, { simulatorKey: other });
    expect(r.state).toEqual(want);
    expect(r.warnings.join("\n")).toMatch(/does not match the log/);
    // More records under the other key (sessions opened and closed: its PIN verifiers do not open under it), then
    // reopened under it: the new blocks are used, with no warning.
    const s = testSimulator({ simulatorKey: other, store: new FileEventStore(dir, QUIET) });
    const a = s.application();
    a.call({ fn: "C_Initialize", args: {} });
    while (s.lastSeq < 2 * BLOCK_RECORDS + 200) {
      const h = a.call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).out!.hSession;
      a.call({ fn: "C_CloseSession", args: { hSession: h } });
    }
    (s.store as FileEventStore).close();
    expect(reopen(dir, {}, { simulatorKey: other })).toMatchObject({ state: fromLines(dir, { simulatorKey: other }), warnings: [] });
  });

  it("a log cut short (its unsynced tail lost in a crash): blocks past its end are not used, and the writer cuts them", () => {
    const dir = tempDir("hsmsim-facts-");
    write(dir, 3 * BLOCK_RECORDS);
    const lines = readFileSync(join(dir, "events.log"), "utf8").split("\n");
    const keep = BLOCK_RECORDS + 1000;
    writeFileSync(join(dir, "events.log"), lines.slice(0, keep).join("\n") + "\n");
    const r = reopen(dir);
    expect(r.seq).toBe(keep);
    expect(r.state).toEqual(fromLines(dir));
    expect(r.warnings).toEqual([]);
    // New records with the cut ones' sequences, different facts: the replay is the new log's.
    write(dir, 2 * BLOCK_RECORDS, {}, {}, "after the cut");
    const again = reopen(dir);
    expect(again.state).toEqual(fromLines(dir));
    expect(again.warnings).toEqual([]);
  });

  it("a torn last block (a crash while writing it) is left out, then cut", () => {
    const dir = tempDir("hsmsim-facts-");
    write(dir, 2 * BLOCK_RECORDS + 100);
    const want = fromLines(dir);
    truncateSync(cacheFile(dir), readFileSync(cacheFile(dir)).length - 7);
    expect(reopen(dir)).toMatchObject({ state: want, warnings: [] });
    truncateSync(cacheFile(dir), 10); // inside the file's header line
    expect(reopen(dir)).toMatchObject({ state: want, warnings: [] });
    write(dir, 100);
    expect(reopen(dir)).toMatchObject({ state: fromLines(dir), warnings: [] });
  });

  it("a log written partly without it (factsCache: false): the cache where it has the records, the log's lines elsewhere", () => {
    const dir = tempDir("hsmsim-facts-");
    write(dir, 3000, { factsCache: false });
    expect(existsSync(cacheFile(dir))).toBe(false);
    write(dir, BLOCK_RECORDS + 10);
    write(dir, 2000, { factsCache: false });
    write(dir, 3000);
    const r = reopen(dir);
    expect(r.state).toEqual(fromLines(dir));
    expect(r.warnings).toEqual([]);
    // From any sequence (a snapshot's): the same facts as the lines give.
    const store = new FileEventStore(dir, QUIET);
    try {
      const viaLines = [...store.readFacts(1)].map((x) => JSON.stringify(x.facts));
      for (const from of [1, 2000, 3000, 3015, 3016, 3017, 7000, 7150, 9000, store.lastSeq]) {
        const got: string[] = [];
        let next = from;
        store.eachFacts(from, deriveKeys(TEST_KEY).factsCache, (seq, facts) => {
          expect(seq).toBe(next++);
          got.push(JSON.stringify(facts));
        });
        expect(got, `from ${from}`).toEqual(viaLines.slice(from - 1));
      }
    } finally {
      store.close();
    }
  });

  it("holds no PIN and no key byte (raw-byte scan)", () => {
    const dir = tempDir("hsmsim-facts-");
    const key = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);
    const s = testSimulator({ store: new FileEventStore(dir, QUIET) });
    const a = s.application();
    a.call({ fn: "C_Initialize", args: {} });
    a.call({ fn: "C_InitToken", args: { slotID: 0, pin: SO_PIN, label: "scan label" } });
    const so = a.call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).out!.hSession;
    a.call({ fn: "C_Login", args: { hSession: so, userType: CK.CKU_SO, pin: SO_PIN } });
    a.call({ fn: "C_InitPIN", args: { hSession: so, pin: USER_PIN } });
    a.call({ fn: "C_Logout", args: { hSession: so } });
    a.call({ fn: "C_Login", args: { hSession: so, userType: CK.CKU_USER, pin: USER_PIN } });
    const created = a.call({
      fn: "C_CreateObject",
      args: {
        hSession: so,
        template: [
          { type: CK.CKA_CLASS, value: ulong(CK.CKO_SECRET_KEY) },
          { type: CK.CKA_KEY_TYPE, value: ulong(CK.CKK_AES) },
          { type: CK.CKA_TOKEN, value: Uint8Array.of(1) },
          { type: CK.CKA_VALUE, value: key },
        ],
      },
    });
    expect(created.rv).toBe(CK.CKR_OK);
    (s.store as FileEventStore).close();
    const raw = readFileSync(cacheFile(dir));
    expect(raw.includes(Buffer.from("scan label"))).toBe(true); // the scan can see
    for (const pin of [SO_PIN, USER_PIN]) {
      for (const e of [pin, Buffer.from(pin).toString("hex"), Buffer.from(pin).toString("base64")]) expect(raw.includes(Buffer.from(e)), `${pin} as ${e}`).toBe(false);
    }
    const k = Buffer.from(key);
    for (const e of [k, Buffer.from(k.toString("hex")), Buffer.from(k.toString("hex").toUpperCase()), Buffer.from(k.toString("base64"))]) {
      expect(raw.includes(e)).toBe(false);
    }
    expect(raw.includes(k.subarray(0, 8))).toBe(false);
  });
});
