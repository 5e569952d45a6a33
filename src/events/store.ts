/**
 * The event store interface. The simulator appends one record per call, in order, and a replay reads them back.
 * Implementations: MemoryEventStore (the embedded default), FileEventStore, and JetStreamEventStore (deferred: see
 * DeferredEventStore below).
 */
import type { CallRecord, Fact } from "./types.js";

/** What a replay needs of a record: its sequence and its facts (evolve and the read model use nothing else). */
export interface ReplayItem {
  readonly seq: number;
  readonly facts: readonly Fact[];
}

export interface EventStore {
  /**
   * Append one record; `record.seq` is one more than the last. Returns once the record is held, as it is now: a store
   * keeps its encoding (or a copy), never the objects, which the caller may still change (the dispatcher hands the
   * recorded output to its caller unfrozen). `token`: the token the call acted on (events/token-subjects.ts
   * `tokenOfCall`), a routing hint for a store with subjects per token (JetStream); the others ignore it.
   */
  append(record: CallRecord, token?: string): void;
  /** Records in order, from sequence `from` (1-based, inclusive). */
  read(from?: number): Iterable<CallRecord>;
  /**
   * Optional: the records from `from` as replay needs them, faster than `read` (the file store decodes only the facts
   * of each line). A store without it is replayed through `read`.
   */
  readFacts?(from?: number): Iterable<ReplayItem>;
  /**
   * Optional: the records from `from` as replay needs them, handed to `apply`, with the store's binary copy of the facts
   * used where it has one keyed by `factsKey` (the file store's facts cache). Preferred to `readFacts` by replay.
   */
  eachFacts?(from: number, factsKey: Uint8Array, apply: (seq: number, facts: readonly Fact[]) => void): void;
  /**
   * Optional: keep that binary copy, keyed by `factsKey`, from now on. The simulator calls it once it has replayed
   * the store.
   */
  cacheFacts?(factsKey: Uint8Array): void;
  /** The last sequence held (0 when empty). */
  readonly lastSeq: number;
  /**
   * Optional: state snapshots, so that a simulator on a reopened store restores the newest one and replays only the
   * records after it (the file store; src/events/snapshot.ts seals and opens them). A store without it is replayed
   * from its first record.
   */
  readonly snapshots?: SnapshotHost;
}

/** A stored snapshot whose sequence and chain head match the log. */
export interface SnapshotCandidate {
  seq: number;
  /** The chain hash of record `seq`. */
  head: string;
  /** Where it is (for warnings). */
  name: string;
  /** Its sealed body (throws when it cannot be read). */
  body(): Uint8Array;
}

/**
 * How to build a replica of the attached simulator (a store that writes snapshots from a worker thread rebuilds the
 * state there from its log, src/events/snapshot-writer.ts): its options other than the shell's (profile, slots; plain
 * data), its simulator key, and the sequence of the snapshot it was restored from (0: replayed from the first record).
 */
export interface ReplicaSpec {
  options: Record<string, unknown>;
  simulatorKey: Uint8Array;
  restored: number;
}

export interface SnapshotHost {
  /** The snapshots that match the log, newest first (a stale or damaged one is left out with a warning). */
  candidates(): Iterable<SnapshotCandidate>;
  /**
   * Give the store the function that seals the simulator's state as of `seq`, the chain head `head`; it answers the
   * sealed body, or undefined when the state is not that of `seq` (the snapshot is then skipped). The store calls it
   * when a snapshot is due, at the start of an append and at close: the dispatcher appends a record before it
   * evolves the state, so the state then is that of the last record held.
   */
  attach(capture: (seq: number, head: string) => Uint8Array | undefined, replica?: ReplicaSpec): void;
  warn(message: string): void;
}

/**
 * A store whose appends become durable later (JetStream: group commit). `append` still takes the record at once and
 * synchronously, so the record sequence stays the decision order; a face that must answer only once the record is
 * stored (`hsmsim serve`) awaits `flush(seq)`. The memory and file stores do not implement it: their append is
 * durable (in their sense) when it returns.
 */
export interface DeferredEventStore extends EventStore {
  /** The highest sequence known stored, with every earlier one. */
  readonly durableSeq: number;
  /** Resolves once every record up to `seq` is stored; rejects if the store failed before that. */
  flush(seq: number): Promise<void>;
  /** Set once a commit failed for good: `append` throws from then on (the simulator answers CKR_DEVICE_ERROR). */
  readonly failure: Error | undefined;
  close(): Promise<void>;
}
