/**
 * Verifying a log: every entry must parse, carry the next sequence, link to its predecessor's hash, and hash to what
 * it says (SHA-256 over the canonical encoding, src/events/chain.ts). The verifier needs only the log file: no lock,
 * no simulator key. It names the first bad record; a range (`from`/`to`) is still chained from the first entry, since
 * entry N's link is the hash of N-1. Reads line by line, so memory does not grow with the log.
 *
 * `verifyStore` also checks the store's signed checkpoints (checkpoint.ts): each one's Ed25519 signature under the
 * audit public key, its sequence after the one before, and the log's chain hash at its sequence equal to the head it
 * signed; a log that ends before the last signed sequence was cut short. A log changed and then re-hashed from the
 * change on is a valid chain, but not the one a checkpoint at or after the change signed. What no checkpoint covers
 * (the records after the last one, and a log cut together with its last checkpoints) stays undetectable without a
 * copy of the checkpoints kept elsewhere; the result says how many records are unsigned.
 */
import fs from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { join } from "node:path";
import { entryProblem, GENESIS, type Envelope } from "./chain.js";
import type { CallRecord } from "./types.js";
import { AUDIT_PUB, CHECKPOINTS, checkpointSignatureValid, parsePublicKey, readCheckpoints, type Checkpoint } from "./checkpoint.js";
import { bytesToHex } from "../crypto/encoding.js";

export interface VerifyOptions {
  from?: number;
  to?: number;
  /** Told the sequence of each entry as it is checked (the CLI's progress bar). */
  onProgress?: (seq: number) => void;
}

export interface VerifyResult {
  ok: boolean;
  /** Entries checked in [from, to] (entries before `from` are chained but not counted). */
  checked: number;
  /** The last sequence of the log as read (the last good one when a bad entry stops the walk). */
  lastSeq: number;
  /** The hash of the last good entry: it commits to the whole log up to there. */
  head: string;
  firstBad?: { seq: number; problem: string };
}

export function verifyLogFile(file: string, opts: VerifyOptions = {}): VerifyResult {
  return walkLog(file, opts);
}

/**
 * Walk the log, checking every entry; `atEntry(seq, hash)` is asked about each good entry and may name a problem
 * there (a checkpoint that signed another head).
 */
function walkLog(file: string, opts: VerifyOptions, atEntry?: (seq: number, hash: string) => string | undefined): VerifyResult {
  const from = opts.from ?? 1;
  const to = opts.to ?? Number.POSITIVE_INFINITY;
  if (!Number.isSafeInteger(from) || from < 1) throw new RangeError(`"from" expected an integer >= 1, got ${opts.from}`);
  if (to !== Number.POSITIVE_INFINITY && (!Number.isSafeInteger(to) || to < from)) {
    throw new RangeError(`"to" expected an integer >= from, got ${opts.to}`);
  }
  let seq = 0;
  let prev = GENESIS;
  let checked = 0;
  const result = (firstBad?: { seq: number; problem: string }): VerifyResult => ({
    ok: !firstBad,
    checked,
    lastSeq: seq,
    head: prev,
    ...(firstBad ? { firstBad } : {}),
  });
  const lines = fileLines(file);
  try {
    for (let r = lines.next(); ; r = lines.next()) {
      if (r.done) {
        // What follows the last newline is a write cut short (or in progress).
        if (r.value !== "" && seq + 1 <= to) return result({ seq: seq + 1, problem: "last line has no newline (torn write)" });
        return result();
      }
      const expect = seq + 1;
      if (expect > to) return result();
      opts.onProgress?.(expect);
      let entry: unknown;
      try {
        entry = JSON.parse(r.value);
      } catch {
        return result({ seq: expect, problem: "not valid JSON (torn or altered)" });
      }
      const problem = entryProblem(entry, expect, prev, r.value);
      if (problem) return result({ seq: expect, problem });
      const at = atEntry?.(expect, (entry as { hash: string }).hash);
      if (at) return result({ seq: expect, problem: at });
      seq = expect;
      prev = (entry as { hash: string }).hash;
      if (seq >= from) checked++;
    }
  } finally {
    lines.return("");
  }
}

/**
 * The lines of a file, read in 1 MiB chunks without loading it whole; the generator's return value is what follows
 * the last newline ("" when the file ends with one), i.e. a torn write.
 */
function* fileLines(file: string): Generator<string, string, undefined> {
  const fd = fs.openSync(file, "r");
  const buf = Buffer.alloc(1 << 20);
  const decoder = new StringDecoder("utf8");
  let carry = "";
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) return carry + decoder.end();
      const text = carry + decoder.write(buf.subarray(0, n));
      let start = 0;
      for (let nl = text.indexOf("\n", start); nl >= 0; nl = text.indexOf("\n", start)) {
        yield text.slice(start, nl);
        start = nl + 1;
      }
      carry = text.slice(start);
    }
  } finally {
    fs.closeSync(fd);
  }
}

export interface StoreVerifyOptions extends VerifyOptions {
  /** The audit public key (32 bytes). Default: the store's audit.pub (trust it only as far as the directory). */
  publicKey?: Uint8Array;
}

export interface StoreVerifyResult extends VerifyResult {
  firstBad?: { seq: number; problem: string; /** The checkpoints.log line at fault, when a checkpoint is. */ checkpointLine?: number };
  checkpoints: {
    /** Lines in checkpoints.log. */
    count: number;
    /** Checkpoints whose signature and head were checked against the log (within `to`). */
    verified: number;
    /** The last sequence a verified checkpoint signed (0: none). */
    lastSeq: number;
    /** The public key used, hex (absent when there were no checkpoints to check). */
    publicKey?: string;
    /** Where the key came from. */
    keySource?: "given" | "audit.pub";
  };
}

/** Thrown when checkpoints exist but no public key is given or found: the caller must say which key to trust. */
export class MissingPublicKeyError extends Error {
  override readonly name = "MissingPublicKeyError";
}

/** Verify a store directory: its log's chain and its signed checkpoints (see the module comment). */
export function verifyStore(dir: string, opts: StoreVerifyOptions = {}): StoreVerifyResult {
  const file = join(dir, "events.log");
  const to = opts.to ?? Number.POSITIVE_INFINITY;
  const { lines, torn } = readCheckpoints(join(dir, CHECKPOINTS));
  const count = lines.length + (torn ? 1 : 0);
  if (count === 0) return { ...walkLog(file, opts), checkpoints: { count: 0, verified: 0, lastSeq: 0 } };

  let publicKey = opts.publicKey;
  let keySource: "given" | "audit.pub" = "given";
  if (!publicKey) {
    const pubFile = join(dir, AUDIT_PUB);
    if (!fs.existsSync(pubFile)) {
      throw new MissingPublicKeyError(`${dir} holds signed checkpoints but no ${AUDIT_PUB}: give the audit public key (--pubkey HEX or FILE)`);
    }
    publicKey = parsePublicKey(pubFile);
    keySource = "audit.pub";
  }
  const pub = publicKey;

  // Each checkpoint line, judged on its own, placed at the sequence it names (a line that names none: just after
  // the one before it). The walk of the log reports whatever comes first.
  interface Judged {
    line: number;
    checkpoint?: Checkpoint;
    problem?: string;
  }
  const bySeq = new Map<number, Judged>();
  const place = (seq: number, j: Judged) => {
    if (!bySeq.has(seq)) bySeq.set(seq, j);
  };
  let before = 0;
  for (const l of lines) {
    const c = l.checkpoint;
    if (!c) {
      place(before + 1, { line: l.line, problem: `line ${l.line} of ${CHECKPOINTS} is not a checkpoint (${l.problem})` });
      continue;
    }
    if (c.seq <= before) place(before + 1, { line: l.line, problem: `${CHECKPOINTS} line ${l.line} signs seq ${c.seq}, not after the checkpoint before it (seq ${before})` });
    else if (!checkpointSignatureValid(c, pub)) place(c.seq, { line: l.line, checkpoint: c, problem: `${CHECKPOINTS} line ${l.line} (seq ${c.seq}): the signature does not verify under the audit public key ${bytesToHex(pub).slice(0, 16)}…` });
    else place(c.seq, { line: l.line, checkpoint: c });
    before = Math.max(before, c.seq);
  }
  if (torn) place(before + 1, { line: lines.length + 1, problem: `the last line of ${CHECKPOINTS} (line ${lines.length + 1}) is torn: a checkpoint write that did not finish` });

  let verified = 0;
  let lastSeq = 0;
  let badLine: number | undefined;
  const r = walkLog(file, opts, (seq, hash) => {
    const j = bySeq.get(seq);
    if (!j) return undefined;
    if (j.problem) {
      badLine = j.line;
      return j.problem;
    }
    if (j.checkpoint!.head !== hash) {
      badLine = j.line;
      return (
        `the log up to seq ${seq} is not the one ${CHECKPOINTS} line ${j.line} signed (signed head ${j.checkpoint!.head.slice(0, 16)}…, ` +
        `the log's ${hash.slice(0, 16)}…): a record at or before seq ${seq} was changed and the chain re-hashed`
      );
    }
    verified++;
    lastSeq = seq;
    return undefined;
  });
  const result = (firstBad?: StoreVerifyResult["firstBad"]): StoreVerifyResult => {
    const out: StoreVerifyResult = { ...r, ok: !firstBad, checkpoints: { count, verified, lastSeq, publicKey: bytesToHex(pub), keySource } };
    if (firstBad) out.firstBad = firstBad;
    else delete out.firstBad;
    return out;
  };
  if (r.firstBad) return result({ ...r.firstBad, ...(badLine !== undefined ? { checkpointLine: badLine } : {}) });
  // The log ended (or reached `to`) cleanly: what checkpoints lie beyond its end?
  const beyond = [...bySeq].filter(([s]) => s > r.lastSeq && s <= to).sort(([a], [b]) => a - b);
  if (beyond.length > 0 && r.lastSeq < Math.min(to, Number.MAX_SAFE_INTEGER)) {
    const [seq, j] = beyond[0]!;
    if (j.problem) return result({ seq, problem: j.problem, checkpointLine: j.line });
    const last = beyond.at(-1)!;
    return result({
      seq: r.lastSeq + 1,
      problem:
        `the log ends at seq ${r.lastSeq} but ${CHECKPOINTS} line ${last[1].line} signed seq ${last[0]}: ` +
        `records ${r.lastSeq + 1}..${last[0]} were removed from its end`,
      checkpointLine: last[1].line,
    });
  }
  return result();
}

/** A log entry that does not chain, met while reading (`readLog`). */
export class LogReadError extends Error {
  override readonly name = "LogReadError";
  constructor(
    readonly file: string,
    readonly seq: number,
    readonly problem: string,
  ) {
    super(`hsmsim: ${file} is bad at seq ${seq}: ${problem} (run "hsmsim audit verify" on the store)`);
  }
}

/**
 * The records of a log file, read without a lock (a store another process is writing can be read), each entry's chain
 * checked as it comes: a bad entry throws LogReadError naming it. A torn last line (a write in progress, or left by a
 * crash) ends the records without an error.
 */
export function* readLog(file: string): Generator<CallRecord> {
  let seq = 0;
  let prev = GENESIS;
  for (const line of fileLines(file)) {
    let entry: unknown;
    try {
      entry = JSON.parse(line);
    } catch {
      throw new LogReadError(file, seq + 1, "not valid JSON");
    }
    const problem = entryProblem(entry, seq + 1, prev);
    if (problem) throw new LogReadError(file, seq + 1, problem);
    seq++;
    prev = (entry as Envelope).hash;
    yield (entry as Envelope).record;
  }
}
