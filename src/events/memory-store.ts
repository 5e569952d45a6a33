/**
 * The in-memory event store: the embedded default. It keeps each record as a value, in order; encoding one is only
 * needed when bytes are wanted (`raw()`, exports, and the stores that write files or messages), so the hot path pays
 * for an array push (encoding or deep-freezing every record costs ~1.5 µs here, a tenth of a call).
 *
 * Records are immutable by construction: the dispatcher builds args, outputs and facts fresh for each call, freezes
 * the outputs it hands to callers, and nothing changes a fact once decided. `{ freeze: true }` deep-freezes every
 * record as it is appended, so that a mutation anywhere would throw; the test simulators run that way.
 */
import { encodeRecord, freezeRecord } from "./codec.js";
import type { EventStore } from "./store.js";
import type { CallRecord } from "./types.js";

export class MemoryEventStore implements EventStore {
  private readonly records: CallRecord[] = [];
  private readonly freeze: boolean;

  constructor(opts: { freeze?: boolean } = {}) {
    this.freeze = opts.freeze ?? false;
  }

  append(record: CallRecord): void {
    if (record.seq !== this.records.length + 1) {
      throw new RangeError(`"record.seq" expected ${this.records.length + 1}, got ${record.seq}`);
    }
    this.records.push(this.freeze ? freezeRecord(record) : record);
  }

  *read(from = 1): Iterable<CallRecord> {
    for (let i = Math.max(0, from - 1); i < this.records.length; i++) yield this.records[i]!;
  }

  get lastSeq(): number {
    return this.records.length;
  }

  /** The encoded log, one record per line: the bytes a file store holds. */
  raw(): string {
    return this.records.map(encodeRecord).join("\n");
  }
}
