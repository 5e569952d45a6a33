/**
 * The drop-in's read projection on the calling thread (nats-design.md §7.7, the fast path): C_GetSessionInfo,
 * C_GetTokenInfo, C_GetSlotList and C_GetSlotInfo are decided right where pkcs11js calls them, from a read model fed
 * by the worker (sync-worker.ts follows the simulator's event subject and posts every record on a second port, then
 * raises the shared feed word `ctrl[CTRL_FEED]`), without a round trip to the worker. The same pure deciders as the
 * service and the async client (remote/client.ts) answer, so the answers agree.
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
import type { Answer, CallRecord } from "../events/types.js";
import type { DecideContext } from "../functions/context.js";
import { newSimState, type SimState } from "../model/state.js";
import { CK } from "../pkcs11/constants.js";
import { resolveProfile } from "../pkcs11/profiles.js";
import { ReadModel } from "../projections/read-model.js";
import { LOCAL_READS } from "./client.js";
import type { ReadModelImage, SimConfig } from "./protocol.js";
import { STATE_CODEC } from "../events/snapshot.js";
import type { Profile } from "../pkcs11/profiles.js";

/** The shared control word the worker raises to the seq of the last record it posted on the feed. */
export const CTRL_FEED = 3;


export class CallingThreadProjection {
  private readonly state: SimState;
  private readonly read: ReadModel;

  /** `image`: the service's read model to start from (the feed then brings the records after it), else record 1. */
  constructor(
    config: SimConfig,
    private readonly feed: MessagePort,
    private readonly ctrl: Int32Array,
    image?: ReadModelImage,
  ) {
    const profile = resolveProfile(config.profile);
    this.state = newSimState(profile, config.slots ?? 1);
    this.read = new ReadModel(profile, this.state.fixedSlots);
    // The worker checked that the image decodes to a read model at its seq (readModelImage in sync-worker.ts) before
    // following the stream from the image's message on: the same decoding here cannot differ.
    if (image) this.read = imageReadModel(image, profile)!;
  }

  get position(): number {
    return this.read.position;
  }

  /** Fold in every record the feed holds. */
  private drain(): void {
    let m: { message: CallRecord[] } | undefined;
    while ((m = receiveMessageOnPort(this.feed) as { message: CallRecord[] } | undefined)) {
      for (const r of m.message) if (r.seq === this.read.position + 1) this.read.apply(r);
    }
  }

  /** The answer to a read by application `appId`, once the projection has reached `seq`; undefined: ask the service. */
  answer(appId: number, seq: number, call: Call, timeoutMs: number): Answer | undefined {
    // Every call folds in what the feed holds, reads or not: a write-only application must not let the feed's queue
    // grow without end.
    if (Atomics.load(this.ctrl, CTRL_FEED) > this.read.position) this.drain();
    const decider = LOCAL_READS[call.fn];
    if (!decider || appId === 0) return undefined;
    if (this.read.position < seq) {
      const deadline = performance.now() + timeoutMs;
      while (this.read.position < seq) {
        const fed = Atomics.load(this.ctrl, CTRL_FEED);
        if (fed > this.read.position) {
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
