/**
 * Signed checkpoints for a log on JetStream (issue 5's tamper evidence, on JetStream too): every `every` records
 * (default 1000), once the record that completes the interval is stored, the writer signs (sequence, chain head,
 * time) with its Ed25519 audit key (checkpoint.ts, the file store's format and domain) and puts the line in the KV
 * bucket AUDIT_BUCKET under `<prefix>.<sim>.<seq>`. The stream holds the records, the bucket their signatures: a log cut or
 * rewritten in the stream no longer reaches or matches a signed head, as a file store's events.log against its
 * checkpoints.log. `hsmsim audit verify --nats …` reads both (cli/nats-log.ts) and verifies them under the public
 * key given to it.
 *
 * Checkpoints trail the log: they are signed only for stored records, put asynchronously, one at a time, and a put
 * that fails is retried with the next one (a warning, never a failed call: checkpoints attest the log, they are not
 * part of it). The time is the writer's clock at signing, as in the file store.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import { AUDIT_BUCKET } from "../remote/protocol.js";
import { checkpointLine, signCheckpoint, type AuditKey } from "./checkpoint.js";
import type { CallRecord } from "./types.js";

/** What the checkpoints follow: a simulator's records as they are appended, and its JetStream store. */
export interface CheckpointedLog {
  subscribe(listener: (record: CallRecord) => void): () => void;
}
export interface CheckpointedStore {
  /** The chain hash of the last appended record. */
  readonly headHash: string;
  /** Resolves once every record up to `seq` is stored. */
  flush(seq: number): Promise<void>;
}

export interface JetStreamCheckpointsOptions {
  nc: NatsConnection;
  sim: string;
  /** The subject prefix the simulator's log is under (its checkpoints are keyed by it too). */
  prefix: string;
  key: AuditKey;
  /** Sign after every this many records. Default 1000. */
  every?: number;
  replicas?: number;
  onWarning?: (message: string) => void;
  /** The signing time (default: now, ISO). */
  clock?: () => string;
}

/** The KV key of a simulator's checkpoint at `seq` is this followed by `seq`. */
export function checkpointKeyBase(prefix: string, sim: string): string {
  return `${prefix}.${sim}.`;
}

export class JetStreamCheckpoints {
  private kv: KV | undefined;
  private readonly every: number;
  /** The last sequence signed (or being signed), and the newest stored record not yet signed. */
  private signed = 0;
  private due: { seq: number; head: string } | undefined;
  private busy: Promise<void> | undefined;
  private readonly warn: (m: string) => void;

  private constructor(private readonly o: JetStreamCheckpointsOptions) {
    this.every = o.every ?? 1000;
    if (!Number.isSafeInteger(this.every) || this.every < 1) throw new RangeError(`"every" expected a positive integer, got ${o.every}`);
    this.warn = o.onWarning ?? ((m) => console.warn(m));
  }

  /** Open (creating if needed) the bucket; `lastSigned` is where a restarted writer's series goes on from. */
  static async open(o: JetStreamCheckpointsOptions): Promise<JetStreamCheckpoints> {
    const c = new JetStreamCheckpoints(o);
    c.kv = await new Kvm(o.nc).create(AUDIT_BUCKET, { history: 1, replicas: o.replicas ?? 1 });
    const base = checkpointKeyBase(o.prefix, o.sim);
    for await (const k of await c.kv.keys(`${base}*`)) c.signed = Math.max(c.signed, Number(k.slice(base.length)) || 0);
    return c;
  }

  /**
   * Follow `log`'s records: the record that completes an interval is signed once `store` has stored it. The listener
   * runs right after the record's append, so the store's head is then that record's chain hash.
   */
  attach(log: CheckpointedLog, store: CheckpointedStore): () => void {
    let noted = this.signed;
    return log.subscribe((r) => {
      if (Math.floor(r.seq / this.every) <= Math.floor(noted / this.every)) return;
      noted = r.seq;
      const head = store.headHash;
      // A store that fails before storing it: no checkpoint for records that may not be in the stream.
      store.flush(r.seq).then(
        () => this.stored(r.seq, head),
        () => undefined,
      );
    });
  }

  /** The last sequence signed. */
  get lastSigned(): number {
    return this.signed;
  }

  /** Records up to `seq` (whose chain hash is `head`) are stored: sign when an interval is complete. */
  stored(seq: number, head: string): void {
    if (Math.floor(seq / this.every) <= Math.floor(this.signed / this.every)) return;
    this.due = { seq, head };
    this.kick();
  }

  /** Sign whatever is due now (a clean stop: the last stored record), and wait for the puts. */
  async close(last?: { seq: number; head: string }): Promise<void> {
    if (last && last.seq > this.signed) {
      this.due = last;
      this.kick();
    }
    while (this.busy) await this.busy;
  }

  /** One drain at a time; what became due while it ran is taken by the next. */
  private kick(): void {
    if (this.busy) return;
    this.busy = this.drain().finally(() => {
      this.busy = undefined;
      if (this.due) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.due) {
      const { seq, head } = this.due;
      this.due = undefined;
      if (seq <= this.signed) continue;
      const c = signCheckpoint(this.o.key, seq, head, (this.o.clock ?? (() => new Date().toISOString()))());
      try {
        await this.kv!.put(`${checkpointKeyBase(this.o.prefix, this.o.sim)}${seq}`, checkpointLine(c));
        this.signed = seq;
      } catch (e) {
        this.warn(`hsmsim: checkpoint at seq ${seq} of ${this.o.sim} not stored (${(e as Error).message}); the next one will cover it`);
      }
    }
  }
}
