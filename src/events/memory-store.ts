/**
 * The in-memory event store: the embedded default. It keeps each record encoded, exactly as a file or stream store
 * would hold it, so the log costs ~one short string per call and the raw-bytes secret scan sees what is really kept.
 */
import { decodeRecord, encodeRecord } from "./codec.js";
import type { EventStore } from "./store.js";
import type { CallRecord } from "./types.js";

export class MemoryEventStore implements EventStore {
  private readonly lines: string[] = [];

  append(record: CallRecord): void {
    if (record.seq !== this.lines.length + 1) {
      throw new RangeError(`"record.seq" expected ${this.lines.length + 1}, got ${record.seq}`);
    }
    this.lines.push(encodeRecord(record));
  }

  *read(from = 1): Iterable<CallRecord> {
    for (let i = Math.max(0, from - 1); i < this.lines.length; i++) yield decodeRecord(this.lines[i]!);
  }

  get lastSeq(): number {
    return this.lines.length;
  }

  /** The raw encoded log, one record per line (for audits and the secret scan). */
  raw(): string {
    return this.lines.join("\n");
  }
}
