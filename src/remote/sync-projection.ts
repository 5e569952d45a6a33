/**
 * The drop-in's read projection on the calling thread (nats-design.md §7.7, the fast path): C_GetSessionInfo,
 * C_GetTokenInfo, C_GetSlotList and C_GetSlotInfo are decided right where pkcs11js calls them, from a read model fed
 * by the worker (sync-worker.ts follows the simulator's event subject and posts every message's records on a second
 * port, then raises the shared feed word `ctrl[CTRL_FEED]`, a count of the messages posted), without a round trip to
 * the worker. The same pure deciders as the service and the async client (remote/client.ts) answer, so the answers
 * agree.
 *
 * Following only while the application reads. Keeping a projection costs every client the whole simulator's event
 * rate (every client receives, parses and applies every record of every application), which dominated the CPU of 16
 * busy drop-in processes (nats-design.md § "open+close throughput"). So, like the async client, the projection starts
 * following at the first local read, and it stops after `idleMs` without one: the next call that goes to the worker
 * anyway carries `unfollow`. The next read starts a new *generation*: the worker takes the service's read model again
 * (`<prefix>.<sim>.readmodel`, or record 1 without one), posts it as the generation's first feed message, and follows
 * the stream after it. Feed messages of an older generation are dropped, so a late record of a stopped follower can
 * never land in a newer read model.
 *
 * Read-your-writes: a read first folds in what the feed holds, and if the projection has not reached the seq of the
 * application's last answered call yet, waits on the feed word (Atomics.wait) until it has; CKR_DEVICE_ERROR if it
 * does not within the call timeout. Reads that must go to the service (an application the projection does not know,
 * finalized or expired; a read that changes state under the softhsm2 profile) return undefined. Reads answered here are
 * not recorded in the simulator's log (as for the async client).
 */
import { receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import { invalidArgument } from "../events/call-schema.js";
import type { Call } from "../events/calls.js";
import type { Answer } from "../events/types.js";
import type { ReplayItem } from "../events/store.js";
import type { DecideContext } from "../functions/context.js";
import { newSimState, type SimState } from "../model/state.js";
import { CK } from "../pkcs11/constants.js";
import { resolveProfile } from "../pkcs11/profiles.js";
import { ReadModel } from "../projections/read-model.js";
import { LOCAL_READS } from "./client.js";
import { PROJECTION_IDLE_MS, type ReadModelImage, type SimConfig } from "./protocol.js";
import { STATE_CODEC } from "../events/snapshot.js";
import type { Profile } from "../pkcs11/profiles.js";

/** The shared control word the worker raises (Atomics.add) for every message it posts on the feed. */
export const CTRL_FEED = 3;

export { PROJECTION_IDLE_MS };

/**
 * One message on the feed port. A generation starts with `start` (the service's read model at its seq, or null: the
 * records from 1 follow), then `records` in order.
 */
export type FeedMessage = { gen: number; start: ReadModelImage | null } | { gen: number; records: ReplayItem[] };

export class CallingThreadProjection {
  private readonly state: SimState;
  private readonly profile: Profile;
  private read: ReadModel;
  /** The generation being followed (0: none yet); `following` false once told to stop. */
  private gen = 0;
  private following = false;
  /** The current generation's start message has arrived: `read` is its model. */
  private started = false;
  /** Feed messages received (the worker's count is `ctrl[CTRL_FEED]`). */
  private received = 0;
  private lastRead = 0;

  constructor(
    config: SimConfig,
    private readonly feed: MessagePort,
    private readonly ctrl: Int32Array,
    /** Ask the worker to start following, as generation `gen`. */
    private readonly startFollowing: (gen: number) => void,
    private readonly idleMs = PROJECTION_IDLE_MS,
  ) {
    this.profile = resolveProfile(config.profile);
    this.state = newSimState(this.profile, config.slots ?? 1);
    this.read = new ReadModel(this.profile, this.state.fixedSlots);
  }

  get position(): number {
    return this.read.position;
  }

  /** Fold in every message the feed holds; those of another generation are dropped. */
  private drain(): void {
    let m: { message: FeedMessage } | undefined;
    while ((m = receiveMessageOnPort(this.feed) as { message: FeedMessage } | undefined)) {
      this.received++;
      const f = m.message;
      if (f.gen !== this.gen || !this.following) continue;
      if ("start" in f) {
        // The worker checked that the image decodes to a read model at its seq (readModelImage in sync-worker.ts).
        this.read = (f.start && imageReadModel(f.start, this.profile)) || new ReadModel(this.profile, this.state.fixedSlots);
        this.started = true;
      } else if (this.started) {
        for (const r of f.records) if (r.seq === this.read.position + 1) this.read.apply(r);
      }
    }
  }

  /**
   * True (once) when the projection follows the stream but has not been read for `idleMs`: the caller tells the
   * worker to stop following, with the call it sends anyway.
   */
  idle(): boolean {
    if (!this.following || performance.now() - this.lastRead < this.idleMs) return false;
    this.following = false;
    this.started = false;
    return true;
  }

  /** The answer to a read by application `appId`, once the projection has reached `seq`; undefined: ask the service. */
  answer(appId: number, seq: number, call: Call, timeoutMs: number): Answer | undefined {
    // Every call folds in what the feed holds, reads or not: the feed's queue must not grow without end.
    if (Atomics.load(this.ctrl, CTRL_FEED) > this.received) this.drain();
    const decider = LOCAL_READS[call.fn];
    if (!decider || appId === 0) return undefined;
    this.lastRead = performance.now();
    if (!this.following) {
      this.following = true;
      this.started = false;
      this.startFollowing(++this.gen);
    }
    if (!this.started || this.read.position < seq) {
      const deadline = performance.now() + timeoutMs;
      while (!this.started || this.read.position < seq) {
        const fed = Atomics.load(this.ctrl, CTRL_FEED);
        if (fed > this.received) {
          this.drain();
          continue;
        }
        const left = deadline - performance.now();
        if (left <= 0) return { rv: CK.CKR_DEVICE_ERROR }; // the projection did not catch up: the feed is stuck
        Atomics.wait(this.ctrl, CTRL_FEED, fed, left);
      }
    }
    if (!this.read.apps.has(appId)) return undefined; // finalized or expired: the service says what
    if (invalidArgument(call) !== undefined) return { rv: CK.CKR_ARGUMENTS_BAD };
    const ctx: DecideContext = { state: this.state, read: this.read, appId, app: undefined, time: Date.now(), shell: undefined as never };
    const d = decider(ctx, (call.args ?? {}) as never);
    if (d.facts.length > 0) return undefined; // a read that changes state (softhsm2): recorded by the service
    const rv = CK[d.rv];
    return d.out === undefined ? { rv } : { rv, out: d.out };
  }
}

/** The read model of a ReadModelImage (protocol.ts), or undefined if it is not one at the image's seq. */
export function imageReadModel(image: ReadModelImage, profile: Profile): ReadModel | undefined {
  if (image.tree === undefined) return undefined;
  try {
    const read = STATE_CODEC.decode(image.tree);
    if (!(read instanceof ReadModel) || read.position !== image.seq) return undefined;
    (read as { profile: Profile }).profile = profile;
    return read;
  } catch {
    return undefined;
  }
}
