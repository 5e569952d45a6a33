/**
 * The log's encoding: one call record per line of JSON. Records hold only JSON values (bytes are hex strings by the
 * time they reach a record), so encoding is plain JSON; the codec exists so that every store writes the same bytes
 * and a test can scan exactly what a store holds.
 */
import type { CallRecord } from "./types.js";

export function encodeRecord(r: CallRecord): string {
  return JSON.stringify(r);
}

export function decodeRecord(line: string): CallRecord {
  return JSON.parse(line) as CallRecord;
}
