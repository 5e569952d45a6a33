/**
 * The event store interface. The simulator appends one record per call, in order, and a replay reads them back.
 * Implementations: MemoryEventStore (the embedded default); the file and JetStream stores come with their issues.
 */
import type { CallRecord } from "./types.js";

export interface EventStore {
  /** Append one record; `record.seq` is one more than the last. Returns once the record is held. */
  append(record: CallRecord): void;
  /** Records in order, from sequence `from` (1-based, inclusive). */
  read(from?: number): Iterable<CallRecord>;
  /** The last sequence held (0 when empty). */
  readonly lastSeq: number;
}
