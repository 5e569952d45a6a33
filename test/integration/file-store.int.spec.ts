/**
 * The file event store (src/events/file-store.ts) on real files in temporary directories: the log and its hash
 * chain, reopening, the one-writer lock (in this process and against another process), stale locks, a torn last
 * record cut with a warning, corruption before it refused with the first bad sequence named, a simulator closed and
 * reopened in exactly the same state, and the pkcs11js drop-in's `load("file:<dir>")`. The kill -9 test is
 * file-store-kill9.int.spec.ts.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync, appendFileSync, truncateSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { pathToFileURL } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FileEventStore, StoreCorruptError, StoreLockedError, StoreWriteError, type Durability } from "../../src/events/file-store.js";
import { canonicalJson, encodeEntry, entryHash, entryProblem, GENESIS } from "../../src/events/chain.js";
import type { ProfileName } from "../../src/pkcs11/profiles.js";
import { CKA_CLASS, CKA_LABEL, CKA_TOKEN, CKA_VALUE, CKF_RW_SESSION, CKF_SERIAL_SESSION, CKO_DATA, CKU_SO, CKU_USER, PKCS11 } from "../../src/pkcs11/pkcs11js.js";
import { runSteps, Seen, stepsArb } from "../support/arbitraries.js";
import { seededRandom, snapshot, SO_PIN, testSimulator, TEST_KEY, USER_PIN } from "../support/sim.js";
import { Simulator } from "../../src/actors/simulator.js";
import { exited, logLines, record, startChild, tempDir } from "../support/file-store-helpers.js";

/** What `f` throws (undefined when it returns). */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

/**
 * Open a store collecting its warnings. Without signed checkpoints: these tests cut logs to play a writer that crashed,
 * and a checkpoint signed at close would (rightly) make such a cut tampering. Checkpoints: checkpoint.int.spec.ts.
 */
function open(dir: string, durability: Durability = "none") {
  const warnings: string[] = [];
  const store = new FileEventStore(dir, { durability, onWarning: (m) => warnings.push(m), checkpointEvery: 0 });
  return { store, warnings };
}

/** A store in a new directory holding records 1..n, closed. */
function storeWith(n: number): string {
  const dir = tempDir();
  const { store } = open(dir);
  for (let i = 1; i <= n; i++) store.append(record(i));
  store.close();
  return dir;
}

describe("canonical JSON and the chain", () => {
  it("sorts keys at every depth, drops undefined members, and is idempotent", () => {
    const v = { b: 1, a: { d: [3, { z: null, y: "é\n" }], c: true }, u: undefined, "": -0 };
    const c = canonicalJson(v);
    expect(c).toBe('{"":0,"a":{"c":true,"d":[3,{"y":"é\\n","z":null}]},"b":1}');
    expect(canonicalJson(JSON.parse(c))).toBe(c);
  });

  it("refuses values that are not JSON rather than encoding them differently", () => {
    expect(() => canonicalJson({ a: new Uint8Array(2) })).toThrow(TypeError);
    expect(() => canonicalJson({ n: NaN })).toThrow(/"n" is NaN/);
    expect(() => canonicalJson({ n: 1n })).toThrow(TypeError);
    expect(() => canonicalJson(new Map())).toThrow(TypeError);
  });

  it("hashes SHA-256 over the canonical (prev, record, seq), as any verifier can recompute", () => {
    const r = record(1);
    const { line, hash } = encodeEntry(GENESIS, r);
    const expected = createHash("sha256")
      .update(`{"prev":"${GENESIS}","record":${canonicalJson(r)},"seq":1}`)
      .digest("hex");
    expect(hash).toBe(expected);
    expect(entryHash(1, GENESIS, canonicalJson(r))).toBe(expected);
    expect(JSON.parse(line)).toEqual({ seq: 1, prev: GENESIS, hash: expected, record: r });
    expect(entryProblem(JSON.parse(line), 1, GENESIS)).toBeUndefined();
    expect(entryProblem(JSON.parse(line), 2, GENESIS)).toMatch(/seq is 1, expected 2/);
  });
});

describe("FileEventStore: the log", () => {
  it("round-trips records, from any sequence, across the read index", () => {
    const dir = tempDir();
    const { store } = open(dir);
    const records = Array.from({ length: 2600 }, (_, i) => record(i + 1, i % 3 ? {} : { facts: [{ type: "OperationEnded", app: 1, session: i }] }));
    for (const r of records) store.append(r);
    expect(store.lastSeq).toBe(2600);
    expect([...store.read()]).toEqual(records);
    for (const from of [1, 2, 1024, 1025, 1026, 2049, 2600]) expect([...store.read(from)]).toEqual(records.slice(from - 1));
    expect([...store.read(2601)]).toEqual([]);
    store.close();
  });

  it("writes one line per record, each chained to the one before", () => {
    const dir = storeWith(5);
    const lines = logLines(dir).map((l) => JSON.parse(l) as { seq: number; prev: string; hash: string });
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(lines[0]!.prev).toBe(GENESIS);
    for (let i = 1; i < 5; i++) expect(lines[i]!.prev).toBe(lines[i - 1]!.hash);
    lines.forEach((l, i) => expect(entryProblem(l, i + 1, i ? lines[i - 1]!.hash : GENESIS)).toBeUndefined());
  });

  it("reopens where it was and continues the chain", () => {
    const dir = storeWith(3);
    const head = (JSON.parse(logLines(dir)[2]!) as { hash: string }).hash;
    const { store, warnings } = open(dir);
    expect(store.lastSeq).toBe(3);
    expect(store.headHash).toBe(head);
    store.append(record(4));
    store.append(record(5));
    store.close();
    const again = open(dir);
    expect(again.store.lastSeq).toBe(5);
    expect([...again.store.read()]).toEqual([1, 2, 3, 4, 5].map((i) => record(i)));
    expect((JSON.parse(logLines(dir)[3]!) as { prev: string }).prev).toBe(head);
    again.store.close();
    expect(warnings).toEqual([]);
    expect(again.warnings).toEqual([]);
  });

  it.each<Durability>(["fsync", "group", "none"])("durability %s: appends are readable at once and after reopening", (durability) => {
    const dir = tempDir();
    const { store } = open(dir, durability);
    expect(store.durability).toBe(durability);
    for (let i = 1; i <= 20; i++) store.append(record(i));
    expect([...store.read(20)]).toEqual([record(20)]);
    store.sync();
    store.close();
    expect(open(dir).store.lastSeq).toBe(20);
  });

  it("refuses an out-of-order record, bad options, and appends after close", () => {
    const dir = tempDir();
    const { store } = open(dir);
    expect(() => store.append(record(2))).toThrow(/"record.seq" expected 1, got 2/);
    store.append(record(1));
    store.close();
    store.close(); // idempotent
    expect(() => store.append(record(2))).toThrow(StoreWriteError);
    expect(() => new FileEventStore(tempDir(), { durability: "sometimes" as Durability })).toThrow(RangeError);
    expect(() => new FileEventStore(tempDir(), { groupWindowMs: -1 })).toThrow(RangeError);
    expect(() => new FileEventStore("")).toThrow(TypeError);
  });
});

describe("FileEventStore: one writer", () => {
  it("a second opener in this process gets StoreLockedError naming the holder; close releases the lock", () => {
    const dir = tempDir();
    const first = new FileEventStore(dir);
    const err = thrown(() => new FileEventStore(dir));
    expect(err).toBeInstanceOf(StoreLockedError);
    const locked = err as StoreLockedError;
    expect(locked.name).toBe("StoreLockedError");
    expect(locked.holder?.pid).toBe(process.pid);
    expect(locked.message).toContain(`pid ${process.pid}`);
    expect(locked.message).toContain("hsmsim serve");
    first.close();
    expect(existsSync(join(dir, "events.lock"))).toBe(false);
    const { store, warnings } = open(dir);
    expect(warnings).toEqual([]);
    store.close();
  });

  it("another process holding the store: this one gets StoreLockedError naming its pid, until it lets go", async () => {
    const dir = tempDir();
    const { child, lines } = startChild("hold", dir);
    expect((await lines)[0]).toBe(`held ${child.pid}`);
    const err = thrown(() => new FileEventStore(dir));
    expect(err).toBeInstanceOf(StoreLockedError);
    expect((err as StoreLockedError).holder?.pid).toBe(child.pid);
    expect((err as StoreLockedError).message).toMatch(new RegExp(`in use by process ${child.pid} on ${hostname()} \\(started .*\\).*hsmsim serve`));
    child.stdin.end();
    await exited(child);
    const { store, warnings } = open(dir);
    expect(warnings).toEqual([]); // released, not taken over
    store.close();
  });

  it("this process holding the store: another process gets StoreLockedError naming this pid", async () => {
    const dir = tempDir();
    const { store } = open(dir);
    const { child, lines } = startChild("open", dir);
    const [first, message] = await lines;
    await exited(child);
    expect(first).toBe(`StoreLockedError ${process.pid}`);
    expect(message).toContain(`in use by process ${process.pid}`);
    expect(message).toContain("hsmsim serve");
    store.close();
  });

  it("a lock left by a process that is gone is taken over with a warning", () => {
    const dir = storeWith(2);
    const dead = spawnSync(process.execPath, ["-e", "0"]).pid!; // exited and reaped: its pid names no process
    const lock = { pid: dead, host: hostname(), started: "2026-01-01T00:00:00.000Z", acquired: "2026-01-01T00:00:01.000Z", id: "gone" };
    writeFileSync(join(dir, "events.lock"), JSON.stringify(lock));
    const { store, warnings } = open(dir);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`took over the lock .* left by process ${dead} .*no longer running`));
    expect(JSON.parse(readFileSync(join(dir, "events.lock"), "utf8")).pid).toBe(process.pid);
    expect(store.lastSeq).toBe(2);
    store.append(record(3));
    store.close();
  });

  it.runIf(existsSync("/proc/self/stat"))("a lock whose pid now belongs to a later process (pid reuse) is taken over", () => {
    const dir = tempDir();
    // This process's pid, but a different process start time: the process that wrote it is gone.
    const lock = { pid: process.pid, host: hostname(), started: "2026-01-01T00:00:00.000Z", acquired: "x", procStart: "1", id: "reused" };
    writeFileSync(join(dir, "events.lock"), JSON.stringify(lock));
    const { store, warnings } = open(dir);
    expect(warnings[0]).toMatch(/took over the lock/);
    store.close();
  });

  it("an empty lock file (its writer died between creating and writing it) is taken over after a short wait", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "events.lock"), "");
    const { store, warnings } = open(dir);
    expect(warnings).toEqual([expect.stringMatching(/took over an unreadable lock file/)]);
    store.close();
  });

  it("a lock held on another host cannot be checked, so it counts as held", () => {
    const dir = tempDir();
    const lock = { pid: 1, host: "elsewhere.example", started: "2026-01-01T00:00:00.000Z", acquired: "x", id: "remote" };
    writeFileSync(join(dir, "events.lock"), JSON.stringify(lock));
    expect(() => new FileEventStore(dir)).toThrow(/in use by process 1 on elsewhere\.example/);
  });
});

describe("FileEventStore: crash recovery", () => {
  const bytesOf = (dir: string) => readFileSync(join(dir, "events.log"));

  it("cuts a torn last record (no newline: a write cut short) with a warning, and appends on from there", () => {
    const dir = storeWith(5);
    const whole = bytesOf(dir);
    const head = (JSON.parse(logLines(dir)[4]!) as { hash: string }).hash;
    const sixth = encodeEntry(head, record(6)).line;
    appendFileSync(join(dir, "events.log"), sixth.slice(0, 57));
    const { store, warnings } = open(dir);
    expect(warnings).toEqual([expect.stringMatching(/cut a torn record at the end of .*events\.log \(seq 6, 57 bytes at byte \d+, no newline/)]);
    expect(store.lastSeq).toBe(5);
    expect(bytesOf(dir)).toEqual(whole);
    store.append(record(6));
    store.close();
    const again = open(dir);
    expect(again.warnings).toEqual([]);
    expect([...again.store.read()].map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    again.store.close();
  });

  it("a whole record without its newline is torn too (its append never returned)", () => {
    const dir = storeWith(2);
    const head = (JSON.parse(logLines(dir)[1]!) as { hash: string }).hash;
    appendFileSync(join(dir, "events.log"), encodeEntry(head, record(3)).line);
    const { store, warnings } = open(dir);
    expect(warnings).toHaveLength(1);
    expect(store.lastSeq).toBe(2);
    store.close();
  });

  it("cuts a last line that is not JSON (garbage after a crash), and a log cut inside its last record", () => {
    const dir = storeWith(4);
    appendFileSync(join(dir, "events.log"), '{"seq":5,"prev":"00\u0000\u0000\n');
    const a = open(dir);
    expect(a.warnings).toEqual([expect.stringMatching(/seq 5, .* not JSON/)]);
    expect(a.store.lastSeq).toBe(4);
    a.store.close();
    truncateSync(join(dir, "events.log"), statSync(join(dir, "events.log")).size - 10);
    const b = open(dir);
    expect(b.warnings).toEqual([expect.stringMatching(/seq 4, /)]);
    expect(b.store.lastSeq).toBe(3);
    b.store.close();
  });

  it("a write torn at any byte of the last record: every prefix reopens to the records before it", () => {
    // A write cut short by a kill leaves a prefix of the line (kill -9 does cut large writes: write(2) stops at the
    // page where the signal is seen). Every possible prefix, tried on one copy of the log.
    const dir = storeWith(3);
    const file = join(dir, "events.log");
    const whole = readFileSync(file);
    const start = whole.lastIndexOf(10, whole.length - 2) + 1;
    for (let cut = start; cut <= whole.length; cut++) {
      writeFileSync(file, whole.subarray(0, cut));
      const { store, warnings } = open(dir);
      const expected = cut === whole.length ? 3 : 2;
      if (store.lastSeq !== expected || warnings.length !== (cut === start || cut === whole.length ? 0 : 1)) {
        throw new Error(`cut at ${cut}: lastSeq ${store.lastSeq}, warnings ${JSON.stringify(warnings)}`);
      }
      store.close();
      expect(statSync(file).size).toBe(cut === whole.length ? cut : start);
    }
  });

  it("a tail of NUL bytes (the size was extended but the data never reached the disk) is cut", () => {
    const dir = storeWith(3);
    appendFileSync(join(dir, "events.log"), Buffer.alloc(300));
    const a = open(dir);
    expect(a.warnings).toEqual([expect.stringMatching(/seq 4, 300 bytes/)]);
    expect(a.store.lastSeq).toBe(3);
    a.store.close();
  });

  it("a log that is nothing but a torn first record opens empty", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "events.log"), '{"seq":1,"prev":"0000');
    const { store, warnings } = open(dir);
    expect(warnings).toHaveLength(1);
    expect(store.lastSeq).toBe(0);
    expect(store.headHash).toBe(GENESIS);
    store.append(record(1));
    store.close();
  });

  /** Ways to damage a 5-record log before its last line, or its last line in a way no torn write can. */
  const damages: [string, number, (lines: string[]) => string[], RegExp][] = [
    ["a changed byte in a record", 3, (l) => l.map((x, i) => (i === 2 ? x.replace('"time":1800000000003', '"time":1800000000004') : x)), /hash does not match/],
    ["a line that is not JSON", 3, (l) => l.map((x, i) => (i === 2 ? x.slice(0, 30) : x)), /not JSON/],
    ["a dropped record", 3, (l) => l.filter((_, i) => i !== 2), /envelope seq is 4, expected 3/],
    ["two records swapped", 2, (l) => [l[0]!, l[2]!, l[1]!, l[3]!, l[4]!], /envelope seq is 3, expected 2/],
    ["a record inserted twice", 3, (l) => [l[0]!, l[1]!, l[1]!, l[2]!, l[3]!, l[4]!], /envelope seq is 2, expected 3/],
    ["an empty line", 4, (l) => [l[0]!, l[1]!, l[2]!, "", l[3]!, l[4]!], /not JSON/],
    ["a rewritten record with its hash recomputed (the chain breaks at the next)", 4, rewriteThird, /prev does not match/],
    ["a last record changed (whole, so not torn)", 5, (l) => l.map((x, i) => (i === 4 ? x.replace('"n":5', '"n":6') : x)), /hash does not match/],
  ];

  function rewriteThird(l: string[]): string[] {
    const prev = (JSON.parse(l[1]!) as { hash: string }).hash;
    return l.map((x, i) => (i === 2 ? encodeEntry(prev, record(3, { rv: 7 })).line : x));
  }

  it.each(damages)("%s: StoreCorruptError names seq %i, and the log is left as it was", (_, seq, damage, problem) => {
    const dir = storeWith(5);
    const damaged = damage(logLines(dir)).join("\n") + "\n";
    writeFileSync(join(dir, "events.log"), damaged);
    const err = thrown(() => open(dir));
    expect(err).toBeInstanceOf(StoreCorruptError);
    const corrupt = err as StoreCorruptError;
    expect(corrupt.name).toBe("StoreCorruptError");
    expect(corrupt.seq).toBe(seq);
    expect(corrupt.problem).toMatch(problem);
    expect(corrupt.message).toContain(`corrupt at seq ${seq} `);
    expect(corrupt.offset).toBe(Buffer.byteLength(damaged.split("\n").slice(0, seq - 1).join("\n")) + (seq > 1 ? 1 : 0));
    expect(readFileSync(join(dir, "events.log"), "utf8")).toBe(damaged);
    // The failed open released its lock.
    expect(existsSync(join(dir, "events.lock"))).toBe(false);
  });

  it("a line that is not JSON carries the parse error as its cause", () => {
    const dir = storeWith(3);
    const l = logLines(dir);
    writeFileSync(join(dir, "events.log"), [l[0], "{", l[2]].join("\n") + "\n");
    expect(() => open(dir)).toThrow(expect.objectContaining({ seq: 2, cause: expect.any(SyntaxError) }));
  });
});

describe.each<ProfileName>(["default", "softhsm2"])("a simulator on a file store, closed and reopened (profile %s)", (profile) => {
  it("has exactly the same state and answers further calls alike", () => {
    fc.assert(
      fc.property(stepsArb(50), stepsArb(15), (steps, more) => {
        const dir = tempDir();
        // The simulator on the file store, and a twin on a memory store driven alike (same clock, seed and key).
        const onFile = testSimulator({ profile, store: new FileEventStore(dir, { durability: "none" }) });
        const twin = testSimulator({ profile });
        const seen = [new Seen(), new Seen()];
        const fileApps = [onFile.application(), onFile.application()];
        const twinApps = [twin.application(), twin.application()];
        runSteps(fileApps, steps, seen.map((s) => Object.assign(new Seen(), structuredClone(s))));
        runSteps(twinApps, steps, seen);
        expect(snapshot(onFile)).toEqual(snapshot(twin));
        (onFile.store as FileEventStore).close();

        const store = new FileEventStore(dir, { durability: "none" });
        const reopened = testSimulator({ profile, store });
        expect(snapshot(reopened)).toEqual(snapshot(twin));
        expect([...store.read()]).toEqual([...twin.store.read()]);

        // Further calls: the applications carry on under their ids. New draws (a token serial, PIN salts, generated
        // keys, a saved operation's nonce) come from each simulator's random source, so the reopened simulator is
        // compared with the twin's log replayed onto a simulator whose source starts where the reopened one's does.
        const rebuilt = Simulator.replay(twin.store.read(), { profile, simulatorKey: TEST_KEY, clock: () => 1_800_000_000_000, randomBytes: seededRandom(1) });
        const again = [reopened.application(), reopened.application()];
        const rebuiltApps = [rebuilt.application(), rebuilt.application()];
        twinApps.forEach((a, i) => (again[i]!.appId = rebuiltApps[i]!.appId = a.appId));
        const seenAgain = seen.map((x) => Object.assign(new Seen(), structuredClone(x)));
        expect(runSteps(again, more, seenAgain)).toEqual(runSteps(rebuiltApps, more, seen));
        expect(snapshot(reopened)).toEqual(snapshot(rebuilt));
        store.close();
      }),
      { numRuns: 30 },
    );
  });
});

describe("pkcs11js drop-in: load(\"file:<dir>\")", () => {
  const RW = CKF_SERIAL_SESSION | CKF_RW_SESSION;

  it("persists tokens, PINs and token objects across instances, and locks the store while loaded", () => {
    const dir = tempDir();
    const p = new PKCS11();
    p.load("file:" + dir);
    p.C_Initialize();
    const [slot] = p.C_GetSlotList();
    p.C_InitToken(slot!, SO_PIN, "file");
    const s = p.C_OpenSession(slot!, RW);
    p.C_Login(s, CKU_SO, SO_PIN);
    p.C_InitPIN(s, USER_PIN);
    p.C_Logout(s);
    p.C_Login(s, CKU_USER, USER_PIN);
    p.C_CreateObject(s, [
      { type: CKA_CLASS, value: CKO_DATA },
      { type: CKA_TOKEN, value: true },
      { type: CKA_LABEL, value: "kept" },
      { type: CKA_VALUE, value: Buffer.from("hello") },
    ]);
    expect(() => new PKCS11().load("file:" + dir)).toThrow(StoreLockedError);
    p.close();

    const q = new PKCS11();
    q.load(pathToFileURL(dir).href); // the file URL form names the same store
    q.C_Initialize();
    const [again] = q.C_GetSlotList(true);
    expect(q.C_GetTokenInfo(again!).label.trim()).toBe("file");
    const t = q.C_OpenSession(again!, RW);
    // The PIN verifiers are keyed with the simulator key kept in the store's settings: the PIN still works.
    expect(() => q.C_Login(t, CKU_USER, "0000")).toThrow(/CKR_PIN_INCORRECT/);
    q.C_Login(t, CKU_USER, USER_PIN);
    q.C_FindObjectsInit(t, [{ type: CKA_LABEL, value: "kept" }]);
    const found = q.C_FindObjects(t, 10);
    q.C_FindObjectsFinal(t);
    expect(found).toHaveLength(1);
    expect(q.C_GetAttributeValue(t, found[0]!, [{ type: CKA_VALUE }])[0]!.value.toString()).toBe("hello");
    q.close();
    expect(existsSync(join(dir, "events.lock"))).toBe(false);
    // The key file is private to its owner.
    expect(statSync(join(dir, "simulator.json")).mode & 0o777).toBe(0o600);
  });

  it("takes the memory: query options, stores them with the store, and refuses a different value later", () => {
    const dir = tempDir();
    const p = new PKCS11();
    p.load(`file:${dir}?profile=softhsm2&durability=fsync`);
    p.C_Initialize();
    const [slot] = p.C_GetSlotList();
    p.C_InitToken(slot!, SO_PIN, "soft");
    // softhsm2: session counts are CK_UNAVAILABLE_INFORMATION.
    expect(p.C_GetTokenInfo(p.C_GetSlotList(true)[0]!).sessionCount).toBe(0xffffffff);
    p.close();

    const q = new PKCS11();
    q.load("file:" + dir); // no options: the stored ones
    q.C_Initialize();
    expect(q.C_GetTokenInfo(q.C_GetSlotList(true)[0]!).sessionCount).toBe(0xffffffff);
    q.close();
    expect(() => new PKCS11().load(`file:${dir}?profile=default`)).toThrow(/created with profile=softhsm2, not profile=default/);
    expect(() => new PKCS11().load(`file:${dir}?profile=softhsm2`)).not.toThrow();
    expect(() => new PKCS11().load(`file:${tempDir()}?durability=sometimes`)).toThrow(/"durability" expected fsync, group or none/);
    expect(() => new PKCS11().load(`file:${tempDir()}?colour=blue`)).toThrow(/unknown option "colour"/);
    expect(() => new PKCS11().load("file:")).toThrow(/names no directory/);
  });

  it("a new store written in code (no settings file) is not guessed at", () => {
    const dir = storeWith(1);
    expect(() => new PKCS11().load("file:" + dir)).toThrow(/holds 1 records but no simulator\.json/);
    expect(existsSync(join(dir, "events.lock"))).toBe(false);
  });
});
