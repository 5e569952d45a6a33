/**
 * The log's encoding: one call record per line of JSON. Records hold only JSON values (bytes are hex strings by the
 * time they reach a record), so encoding is plain JSON; every store that writes bytes writes these, and the secret
 * scan reads them. Records are immutable values: every store encodes one as it appends it, and the test stores also
 * deep-freeze it (`freezeRecord`), so code that changes a record after deciding it throws there.
 */
import type { CallRecord } from "./types.js";

export function encodeRecord(r: CallRecord): string {
  return JSON.stringify(r);
}

export function decodeRecord(line: string): CallRecord {
  return JSON.parse(line) as CallRecord;
}

/** Deep-freeze a record (it is a tree of plain JSON values, so a walk over own values reaches everything). */
export function freezeRecord<T>(v: T): T {
  if (v !== null && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) freezeRecord(x);
  }
  return v;
}
