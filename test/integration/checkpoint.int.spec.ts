/**
 * Signed checkpoints (src/events/checkpoint.ts) written by the file store and checked by `verifyStore`: every N
 * records and at close, the audit key made on first use (mode 0600) or given, its public key in audit.pub, a store
 * cut below a checkpoint refused on open and reported by the verifier, forged checkpoints named.
 */
import { readFileSync, statSync, writeFileSync, existsSync, truncateSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { FileEventStore, StoreCorruptError } from "../../src/events/file-store.js";
import { checkpointSignatureValid, parsePublicKey, signCheckpoint, auditKeyFrom, type Checkpoint } from "../../src/events/checkpoint.js";
import { MissingPublicKeyError, verifyLogFile, verifyStore } from "../../src/events/verify.js";
import { bytesToHex, hexToBytes } from "../../src/crypto/encoding.js";
import { encodeEntry } from "../../src/events/chain.js";
import { record, tempDir } from "../support/file-store-helpers.js";

function write(dir: string, n: number, opts: ConstructorParameters<typeof FileEventStore>[1] = {}): FileEventStore {
  const store = new FileEventStore(dir, { durability: "none", onWarning: () => {}, ...opts });
  for (let i = 1; i <= n; i++) store.append(record(i));
  return store;
}
const checkpoints = (dir: string): Checkpoint[] =>
  readFileSync(join(dir, "checkpoints.log"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Checkpoint);

describe("the file store signs checkpoints", () => {
  it("every N records and at close, over the chain head at that sequence, with a key made on first use", () => {
    const dir = tempDir();
    const store = write(dir, 25, { checkpointEvery: 10 });
    expect(checkpoints(dir).map((c) => c.seq)).toEqual([10, 20]);
    store.close();
    const cps = checkpoints(dir);
    expect(cps.map((c) => c.seq)).toEqual([10, 20, 25]);
    expect(cps.at(-1)!.head).toBe(verifyLogFile(store.file).head);
    expect(statSync(join(dir, "audit-key.json")).mode & 0o777).toBe(0o600);
    const pub = parsePublicKey(join(dir, "audit.pub"));
    const secret = hexToBytes((JSON.parse(readFileSync(join(dir, "audit-key.json"), "utf8")) as { secretKey: string }).secretKey);
    expect(bytesToHex(ed25519.getPublicKey(secret))).toBe(bytesToHex(pub));
    expect(cps.every((c) => checkpointSignatureValid(c, pub))).toBe(true);
    expect(new Date(cps[0]!.time).getTime()).toBeGreaterThan(Date.now() - 60_000);
    // Reopened: the same key, no new checkpoint until more records come.
    const again = new FileEventStore(dir, { durability: "none" });
    expect(again.lastCheckpoint).toBe(25);
    again.close();
    expect(checkpoints(dir)).toHaveLength(3);
    const v = verifyStore(dir);
    expect(v).toMatchObject({ ok: true, checked: 25, checkpoints: { count: 3, verified: 3, lastSeq: 25, keySource: "audit.pub" } });
  });

  it("uses a given audit key (never written to the store), and refuses one that does not match audit.pub", () => {
    const dir = tempDir();
    const secret = ed25519.utils.randomSecretKey();
    write(dir, 3, { auditKey: bytesToHex(secret) }).close();
    expect(existsSync(join(dir, "audit-key.json"))).toBe(false);
    expect(readFileSync(join(dir, "audit.pub"), "utf8").trim()).toBe(bytesToHex(ed25519.getPublicKey(secret)));
    // Refused at open, the lock released.
    expect(() => new FileEventStore(dir, { durability: "none", auditKey: ed25519.utils.randomSecretKey() })).toThrow(/does not match .*audit\.pub/);
    const same = new FileEventStore(dir, { durability: "none", auditKey: secret });
    same.append(record(4));
    same.close();
    expect(checkpoints(dir).map((c) => c.seq)).toEqual([3, 4]);
    // A checkpoint torn by a crash is cut on open, with a warning.
    writeFileSync(join(dir, "checkpoints.log"), readFileSync(join(dir, "checkpoints.log"), "utf8") + '{"seq":5,"he');
    const warnings: string[] = [];
    new FileEventStore(dir, { durability: "none", auditKey: secret, onWarning: (m) => warnings.push(m) }).close();
    expect(warnings).toEqual([expect.stringMatching(/cut a torn checkpoint/)]);
    expect(checkpoints(dir).map((c) => c.seq)).toEqual([3, 4]);
    expect(() => new FileEventStore(dir, { checkpointEvery: -1 })).toThrow(RangeError);
  });

  it("checkpointEvery 0 writes none", () => {
    const dir = tempDir();
    write(dir, 5, { checkpointEvery: 0 }).close();
    expect(existsSync(join(dir, "checkpoints.log"))).toBe(false);
    expect(verifyStore(dir)).toMatchObject({ ok: true, checkpoints: { count: 0 } });
  });
});

describe("verifyStore", () => {
  it("detects a log cut below its last checkpoint, which the chain alone cannot; the store refuses to open it", () => {
    const dir = tempDir();
    const store = write(dir, 12, { checkpointEvery: 5 });
    store.close();
    const lines = readFileSync(store.file, "utf8").split("\n");
    writeFileSync(store.file, lines.slice(0, 11).join("\n") + "\n");
    expect(verifyLogFile(store.file).ok).toBe(true);
    const v = verifyStore(dir);
    expect(v.ok).toBe(false);
    expect(v.firstBad).toMatchObject({ seq: 12, checkpointLine: 3 });
    expect(v.firstBad!.problem).toMatch(/ends at seq 11 .* signed seq 12: records 12\.\.12 were removed/);
    expect(() => new FileEventStore(dir, { durability: "none" })).toThrow(StoreCorruptError);
    // Cut below an earlier checkpoint too.
    writeFileSync(store.file, lines.slice(0, 3).join("\n") + "\n");
    expect(verifyStore(dir).firstBad).toMatchObject({ seq: 4 });
    // Within a range that ends before the cut, nothing is missing.
    expect(verifyStore(dir, { to: 3 }).ok).toBe(true);
  });

  it("names a forged checkpoint: a bad signature, another head signed with the right key, a foreign key", () => {
    const dir = tempDir();
    const store = write(dir, 12, { checkpointEvery: 5 });
    store.close();
    const file = join(dir, "checkpoints.log");
    const orig = readFileSync(file, "utf8");
    const cps = checkpoints(dir);
    const secret = hexToBytes((JSON.parse(readFileSync(join(dir, "audit-key.json"), "utf8")) as { secretKey: string }).secretKey);
    const put = (i: number, c: Checkpoint) => {
      const l = orig.split("\n");
      l[i] = JSON.stringify(c);
      writeFileSync(file, l.join("\n"));
    };
    put(1, { ...cps[1]!, sig: cps[1]!.sig.replace(/^./, (d) => (d === "0" ? "1" : "0")) });
    expect(verifyStore(dir).firstBad).toMatchObject({ seq: 10, checkpointLine: 2, problem: expect.stringMatching(/signature does not verify/) });
    put(1, signCheckpoint(auditKeyFrom(secret), 10, cps[0]!.head, cps[1]!.time));
    expect(verifyStore(dir).firstBad).toMatchObject({ seq: 10, checkpointLine: 2, problem: expect.stringMatching(/not the one .* signed/) });
    put(1, signCheckpoint(auditKeyFrom(ed25519.utils.randomSecretKey()), 10, cps[1]!.head, cps[1]!.time));
    expect(verifyStore(dir).firstBad).toMatchObject({ seq: 10, checkpointLine: 2 });
    put(0, { ...cps[0]!, seq: 11 });
    expect(verifyStore(dir).firstBad).toMatchObject({ seq: 11, checkpointLine: 1 });
    writeFileSync(file, orig + "garbage\n");
    expect(verifyStore(dir).firstBad).toMatchObject({ seq: 13, checkpointLine: 4, problem: expect.stringMatching(/not a checkpoint/) });
    writeFileSync(file, orig);
    // The key given by the auditor wins over audit.pub: a directory whose audit.pub was swapped fails.
    expect(verifyStore(dir, { publicKey: ed25519.getPublicKey(ed25519.utils.randomSecretKey()) }).firstBad?.seq).toBe(5);
    expect(verifyStore(dir, { publicKey: ed25519.getPublicKey(secret) }).ok).toBe(true);
  });

  it("a log re-hashed after a change is a valid chain, but not the one a checkpoint signed", () => {
    const dir = tempDir();
    const store = write(dir, 12, { checkpointEvery: 5 });
    store.close();
    const lines = readFileSync(store.file, "utf8").split("\n").filter(Boolean);
    // Rewrite record 7 and re-chain everything after it, as someone without the audit key could.
    let prev = (JSON.parse(lines[5]!) as { hash: string }).hash;
    for (let i = 6; i < lines.length; i++) {
      const rec = (JSON.parse(lines[i]!) as { record: ReturnType<typeof record> }).record;
      if (i === 6) rec.rv = 5;
      const e = encodeEntry(prev, rec);
      lines[i] = e.line;
      prev = e.hash;
    }
    writeFileSync(store.file, lines.join("\n") + "\n");
    expect(verifyLogFile(store.file).ok).toBe(true);
    expect(verifyStore(dir).firstBad).toMatchObject({ seq: 10, checkpointLine: 2 });
  });

  it("asks for a key when checkpoints exist and audit.pub does not", () => {
    const dir = tempDir();
    write(dir, 2).close();
    truncateSync(join(dir, "audit.pub"), 0);
    expect(() => verifyStore(dir)).toThrow(RangeError);
    unlinkSync(join(dir, "audit.pub"));
    expect(() => verifyStore(dir)).toThrow(MissingPublicKeyError);
  });
});
