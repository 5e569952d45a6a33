/**
 * The writer lease of `hsmsim serve`: KV bucket `hsmsim-writers`, key `sim.<sim>`, holding who serves the simulator.
 * It exists for a clear refusal at start ("simulator demo is served by pid 123 on host h since …"); correctness
 * comes from the event store's fence (expected last subject sequence), which also stops a paused writer whose lease
 * expired. Design: docs/notes/nats-design.md §5 and §7.3.
 *
 * The bucket's TTL (2.9: the whole bucket's max_age) is the lease time; the holder renews by compare-and-swap every
 * third of it. Renewal tells definite failures from ambiguous ones: a timeout or "no responders" is retried at the
 * next tick; a 10071 (the revision moved) means an earlier "failed" renewal of ours landed (adopt it), or the key
 * expired (create it again: the fence still guards the log), or another writer holds it (lost: stop serving). Only
 * another writer's entry, read back, counts as lost: a KV read may come from a stale replica after a failover (seen
 * in a three-node cluster: the key read as gone, the create then refused), so anything else is retried.
 */
import { hostname } from "node:os";
import type { NatsConnection } from "@nats-io/transport-node";
import { JetStreamApiError } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { LEASE_BUCKET, type LeaseHolder } from "../remote/protocol.js";

/** Another live writer holds the simulator. */
export class LeaseHeldError extends Error {
  override readonly name = "LeaseHeldError";
  constructor(
    readonly sim: string,
    readonly holder: LeaseHolder | undefined,
    options?: { cause?: unknown },
  ) {
    const who = holder ? `writer ${holder.writer} (pid ${holder.pid} on ${holder.host}, since ${holder.since})` : "another writer";
    super(`hsmsim: simulator "${sim}" is already served by ${who}: a simulator has one writer. Stop it first, or serve another --name.`, options);
  }
}

export interface LeaseOptions {
  nc: NatsConnection;
  sim: string;
  key: string;
  writer: string;
  ttlMs?: number;
  /** Wait this long for a held lease to expire (a restart after a kill -9). Default 0: refuse at once. */
  waitMs?: number;
  replicas?: number;
  /** Called once if the lease is lost to another writer. */
  onLost: (e: Error) => void;
}

export class Lease {
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;
  private constructor(
    private readonly kv: KV,
    private readonly key: string,
    private readonly holder: LeaseHolder,
    private rev: number,
    private readonly onLost: (e: Error) => void,
    private readonly sim: string,
  ) {}

  static async acquire(o: LeaseOptions): Promise<Lease> {
    const ttlMs = o.ttlMs ?? 3000;
    const kv = await new Kvm(o.nc).create(LEASE_BUCKET, { ttl: ttlMs, history: 1, replicas: o.replicas ?? 1 });
    const holder: LeaseHolder = { writer: o.writer, pid: process.pid, host: hostname(), since: new Date().toISOString() };
    const until = Date.now() + (o.waitMs ?? 0);
    for (;;) {
      try {
        const rev = await kv.create(o.key, JSON.stringify(holder));
        const lease = new Lease(kv, o.key, holder, rev, o.onLost, o.sim);
        lease.timer = setInterval(() => void lease.renew(), Math.max(100, Math.floor(ttlMs / 3)));
        lease.timer.unref();
        return lease;
      } catch (e) {
        if (!(e instanceof JetStreamApiError) || e.code !== 10071) throw e;
        if (Date.now() < until) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        const cur = await kv.get(o.key).catch(() => null);
        let h: LeaseHolder | undefined;
        try {
          h = cur ? (JSON.parse(cur.string()) as LeaseHolder) : undefined;
        } catch {
          h = undefined;
        }
        throw new LeaseHeldError(o.sim, h, { cause: e });
      }
    }
  }

  private async renew(): Promise<void> {
    if (this.renewing || !this.timer) return;
    this.renewing = true;
    try {
      this.rev = await this.kv.update(this.key, JSON.stringify(this.holder), this.rev);
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === 10071) {
        const cur = await this.kv.get(this.key).catch(() => undefined);
        if (cur === undefined) return; // ambiguous: next tick
        if (cur && cur.operation === "PUT") {
          let w: string | undefined;
          try {
            w = (JSON.parse(cur.string()) as LeaseHolder).writer;
          } catch {
            w = undefined;
          }
          if (w === this.holder.writer) this.rev = cur.revision;
          else this.lose(new LeaseHeldError(this.sim, JSON.parse(cur.string()) as LeaseHolder));
          return;
        }
        // Gone (expired during an outage longer than the TTL): take it again. If that fails, the read may have been
        // stale (KV reads are served by any replica): try the whole round again at the next tick. Only another
        // writer's entry, seen, means the lease is lost; the store's fence guards the log meanwhile.
        this.rev = await this.kv.create(this.key, JSON.stringify(this.holder)).catch(() => this.rev);
      }
      // Anything else (timeout, no responders, reconnecting): retry at the next tick.
    } finally {
      this.renewing = false;
    }
  }

  private lose(e: Error): void {
    this.stopTimer();
    this.onLost(e);
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stop renewing and delete the key (if it is still ours), so a successor need not wait for the TTL. */
  async release(): Promise<void> {
    this.stopTimer();
    try {
      await this.kv.delete(this.key, { previousSeq: this.rev });
    } catch {
      // Not ours any more, or the server is gone: it expires.
    }
  }
}
