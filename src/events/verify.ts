/**
 * Verifying a log: every entry must parse, carry the next sequence, link to its predecessor's hash, and hash to what
 * it says (SHA-256 over the canonical encoding, src/events/chain.ts). The verifier needs only the log file: no lock,
 * no simulator key. It names the first bad record; a range (`from`/`to`) is still chained from the first entry, since
 * entry N's link is the hash of N-1. Reads line by line, so memory does not grow with the log.
 */
import fs from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { entryProblem, GENESIS } from "./chain.js";

export interface VerifyOptions {
  from?: number;
  to?: number;
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
  const from = opts.from ?? 1;
  const to = opts.to ?? Number.POSITIVE_INFINITY;
  if (!Number.isSafeInteger(from) || from < 1) throw new RangeError(`"from" expected an integer >= 1, got ${opts.from}`);
  if (to !== Number.POSITIVE_INFINITY && (!Number.isSafeInteger(to) || to < from)) {
    throw new RangeError(`"to" expected an integer >= from, got ${opts.to}`);
  }
  const fd = fs.openSync(file, "r");
  const buf = Buffer.alloc(1 << 20);
  let carry = "";
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
  const decoder = new StringDecoder("utf8");
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const text = carry + decoder.write(buf.subarray(0, n));
      let start = 0;
      for (let nl = text.indexOf("\n", start); nl >= 0; nl = text.indexOf("\n", start)) {
        const line = text.slice(start, nl);
        start = nl + 1;
        const expect = seq + 1;
        if (expect > to) return result();
        let entry: unknown;
        try {
          entry = JSON.parse(line);
        } catch {
          return result({ seq: expect, problem: "not valid JSON (torn or altered)" });
        }
        const problem = entryProblem(entry, expect, prev);
        if (problem) return result({ seq: expect, problem });
        seq = expect;
        prev = (entry as { hash: string }).hash;
        if (seq >= from) checked++;
      }
      carry = text.slice(start);
    }
    carry += decoder.end();
    if (carry !== "" && seq + 1 <= to) return result({ seq: seq + 1, problem: "last line has no newline (torn write)" });
    return result();
  } finally {
    fs.closeSync(fd);
  }
}
