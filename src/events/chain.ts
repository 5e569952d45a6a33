/**
 * The hash chain over a log of call records: tamper evidence for every store that writes bytes (the file store now,
 * JetStream later) and for `hsmsim audit verify`.
 *
 * Each entry is an envelope `{ seq, prev, hash, record }`:
 *   hash = hex(SHA-256(canonicalJson({ prev, record, seq })))
 *   prev = the previous entry's hash; the first entry's prev is GENESIS (64 zeros)
 * so changing, dropping, inserting or reordering any record breaks the chain at that record, and the head hash
 * commits to the whole log. A verifier needs nothing but the log: the hash is over the canonical encoding of the
 * parsed values, not over the line's bytes, so it can be recomputed in any language that can sort keys.
 *
 * Canonical JSON is JCS-like (RFC 8785): object keys sorted by UTF-16 code units, no whitespace, strings and numbers
 * as JSON.stringify writes them (which is what RFC 8785 prescribes for both), members whose value is undefined left
 * out, as JSON.stringify does. Records hold only JSON values by construction (codec.ts); anything else (a Uint8Array,
 * a Map, a bigint, NaN) is a bug upstream and a TypeError here, never a silently different encoding. Encoding is
 * idempotent: canonicalJson(JSON.parse(canonicalJson(v))) === canonicalJson(v), so a writer can hash what it writes
 * and a reader can recompute the same hash from what it parses.
 */
import { hash } from "node:crypto";
import type { CallRecord } from "./types.js";

/** The `prev` of the first entry. */
export const GENESIS = "0".repeat(64);

/** The canonical JSON text of a JSON value (see the module comment). Throws TypeError for a non-JSON value. */
export function canonicalJson(v: unknown): string {
  return canon(v, "value");
}

function canon(v: unknown, at: string): string {
  switch (typeof v) {
    case "string":
      return JSON.stringify(v);
    case "boolean":
      return v ? "true" : "false";
    case "number":
      if (!Number.isFinite(v)) throw new TypeError(`canonicalJson: "${at}" is ${v}, not a JSON number`);
      return JSON.stringify(v);
    case "object": {
      if (v === null) return "null";
      if (Array.isArray(v)) {
        let s = "[";
        for (let i = 0; i < v.length; i++) {
          if (i > 0) s += ",";
          // As JSON.stringify: an undefined array element is null.
          s += v[i] === undefined ? "null" : canon(v[i], at);
        }
        return s + "]";
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        throw new TypeError(`canonicalJson: "${at}" is a ${(v as object).constructor?.name ?? "non-plain object"}, not a JSON value`);
      }
      const o = v as Record<string, unknown>;
      const keys = sortedKeys(o);
      let s = "{";
      let first = true;
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        const x = o[k];
        if (x === undefined) continue;
        s += (first ? "" : ",") + quotedKey(k) + canon(x, k);
        first = false;
      }
      return s + "}";
    }
    default:
      throw new TypeError(`canonicalJson: "${at}" is a ${typeof v}, not a JSON value`);
  }
}

/**
 * Keys in UTF-16 code unit order (what `<` on strings and Array.prototype.sort compare). Records' objects have a
 * handful of keys: an insertion sort is twice as fast as sort() there, and the whole encoding about 2 µs a record.
 */
function sortedKeys(o: object): string[] {
  const keys = Object.keys(o);
  if (keys.length > 16) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    for (; j >= 0 && keys[j]! > k; j--) keys[j + 1] = keys[j]!;
    keys[j + 1] = k;
  }
  return keys;
}

/** `"key":`, cached: records reuse a small vocabulary of keys. */
const QUOTED = new Map<string, string>();
function quotedKey(k: string): string {
  let q = QUOTED.get(k);
  if (q === undefined) {
    q = JSON.stringify(k) + ":";
    if (QUOTED.size < 4096) QUOTED.set(k, q);
  }
  return q;
}

/**
 * The chain hash of an entry, given the canonical text of its record. (node:crypto's SHA-256 over the UTF-8 bytes: a
 * fifth of @noble/hashes' time on a 400-byte entry, which matters to verifying and opening a large log.)
 */
export function entryHash(seq: number, prev: string, canonicalRecord: string): string {
  // canonicalJson({ prev, record, seq }), written out: the keys are already in sorted order.
  // crypto.hash (one-shot, Node ≥ 20.12): half of createHash().update().digest()'s time on a short entry.
  return hash("sha256", `{"prev":"${prev}","record":${canonicalRecord},"seq":${seq}}`, "hex");
}

export interface Envelope {
  seq: number;
  prev: string;
  hash: string;
  record: CallRecord;
}

/** One log line (without its newline) for `record` chained after `prev`, and the entry's hash. */
export function encodeEntry(prev: string, record: CallRecord): { line: string; hash: string; body: string } {
  const body = canonicalJson(record);
  const hash = entryHash(record.seq, prev, body);
  return { line: `{"seq":${record.seq},"prev":"${prev}","hash":"${hash}","record":${body}}`, hash, body };
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Why a parsed entry does not belong at `seq` after `prev`, or undefined when it does. Checks, in order: the envelope's
 * shape, its sequence, its link to the previous entry, the record's own sequence, and the hash.
 *
 * `line`, the text `e` was parsed from (it must be: the fast path trusts it), makes the hash check cheaper: a line laid out as encodeEntry writes it holds
 * its record's canonical text verbatim, so that text is hashed as it stands rather than encoded again (the encoding
 * is half the cost of a check). Only when that hash differs is the record re-encoded, so a log written by another
 * canonical encoder (other spacing, escapes) still verifies, and any change to a record's bytes still breaks its hash.
 */
export function entryProblem(e: unknown, seq: number, prev: string, line?: string): string | undefined {
  if (e === null || typeof e !== "object" || Array.isArray(e)) return "not an envelope object";
  const { seq: s, prev: p, hash, record } = e as Record<string, unknown>;
  if (typeof s !== "number" || typeof p !== "string" || typeof hash !== "string" || record === null || typeof record !== "object") {
    return "envelope lacks seq, prev, hash or record";
  }
  if (s !== seq) return `envelope seq is ${s}, expected ${seq}`;
  if (p !== prev) return `prev does not match the hash of entry ${seq - 1}`;
  if ((record as { seq?: unknown }).seq !== seq) return `record.seq is ${(record as { seq?: unknown }).seq}, expected ${seq}`;
  if (!HEX64.test(hash)) return "hash is not 64 hex digits";
  if (line !== undefined) {
    const head = `{"seq":${seq},"prev":"${prev}","hash":"${hash}","record":`;
    if (line.length > head.length && line.startsWith(head) && line.charCodeAt(line.length - 1) === 125 /* } */) {
      if (entryHash(seq, prev, line.slice(head.length, -1)) === hash) return undefined;
    }
  }
  let body: string;
  try {
    body = canonicalJson(record);
  } catch (err) {
    return (err as Error).message;
  }
  if (entryHash(seq, prev, body) !== hash) return "hash does not match the entry's contents";
  return undefined;
}
