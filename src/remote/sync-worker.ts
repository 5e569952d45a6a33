/**
 * The worker thread behind SyncRemote (sync-client.ts): it owns the async remote client (client.ts: the connection,
 * the application's id and heartbeats), follows the simulator's event subject for the calling thread's projection
 * (sync-projection.ts) while the calling thread asks it to, runs each call the main thread posts,
 * and posts the answer back, waking the main thread through the shared control words. It keeps beating while the
 * main thread is blocked in Atomics.wait, so a long pause in the application does not expire it.
 *
 * Failures are answers, never exceptions: client.ts answers CKR_DEVICE_ERROR for no responders, a timeout or a
 * projection that does not catch up.
 */
import { workerData } from "node:worker_threads";
import { CK } from "../pkcs11/constants.js";
import { jetstream } from "@nats-io/jetstream";
import { followSubject } from "../events/jetstream-store.js";
import { connect, type RemoteApplication, type RemoteSimulator } from "./client.js";
import { CTRL_FEED, imageReadModel, type FeedMessage } from "./sync-projection.js";
import { resolveProfile } from "../pkcs11/profiles.js";
import { decodeWire, type ReadModelImage } from "./protocol.js";
import { CTRL_ID, CTRL_READY, type SyncReply, type SyncRequest, type SyncWorkerData } from "./sync-client.js";

const data = workerData as SyncWorkerData;
const ctrl = new Int32Array(data.ctrl);
const port = data.port;

function reply(r: SyncReply): void {
  port.postMessage(r);
  Atomics.store(ctrl, CTRL_ID, r.id);
  Atomics.store(ctrl, CTRL_READY, 1);
  Atomics.notify(ctrl, CTRL_READY);
}

let remote: RemoteSimulator;
let app: RemoteApplication;
let closing = false;
try {
  remote = await connect(data.target, {
    prefix: data.prefix,
    timeoutMs: data.timeoutMs,
    // The calling thread's projection answers the reads it can (sync-projection.ts); a read that reaches the worker
    // is one it sent on (or `localReads=0`): to the service, not to a second projection here.
    localReads: false,
    // Keep trying a lost server for ever: meanwhile every call answers CKR_DEVICE_ERROR after its timeout.
    nats: { maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: data.connectTimeoutMs },
  });
  app = remote.application();
  reply({ id: 0, ok: true, answer: { rv: CK.CKR_OK }, seq: 0, app: 0, config: remote.info.config });
} catch (e) {
  reply({ id: 0, ok: false, error: (e as Error).message, name: (e as Error).name });
  process.exit(0);
}

function post(m: FeedMessage): void {
  data.feed.postMessage(m);
  Atomics.add(ctrl, CTRL_FEED, 1);
  Atomics.notify(ctrl, CTRL_FEED);
}

/**
 * The calling thread's projection (sync-projection.ts), one generation at a time: the service's read model (if it
 * gives one, else a start from record 1), then every record of the simulator's subject after it, in order, posted on
 * the feed port. Retried while JetStream cannot make the consumer (a cluster without quorum): meanwhile reads wait for
 * the feed, up to the call timeout. `stopFollowing` (or a newer generation) ends it.
 */
let generation: { gen: number; stopped: boolean; follower?: { stop(): Promise<void> } } | undefined;

function stopFollowing(): void {
  const g = generation;
  generation = undefined;
  if (!g) return;
  g.stopped = true;
  void g.follower?.stop().catch(() => undefined);
}

async function startFollowing(gen: number): Promise<void> {
  stopFollowing();
  const g: NonNullable<typeof generation> = { gen, stopped: false };
  generation = g;
  const image = await readModelImage();
  if (g.stopped) return;
  post({ gen, start: image ?? null });
  const from = image?.streamSeq ?? 1;
  while (!g.stopped && !closing) {
    try {
      const f = await followSubject(jetstream(remote.nc), remote.info.stream, remote.subjects.events, from, (m) => {
        if (g.stopped || m.items.length === 0) return;
        // What the projection folds: each record's seq and facts (the rest is neither parsed nor copied across).
        post({ gen, records: m.items.map((e) => ({ seq: e.seq, facts: e.facts })) });
      });
      if (g.stopped) {
        await f.stop();
        return;
      }
      g.follower = f;
      // If following ever stops on an error, follow again in the same generation from a fresh read model: its start
      // message replaces the calling thread's model, and the records after it follow.
      f.done.then(
        () => undefined,
        () => {
          if (generation === g) {
            generation = undefined;
            if (!closing) void startFollowing(gen);
          }
        },
      );
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * The service's read model (protocol.ts ReadModelImage), or undefined: the projection then starts at record 1 (from
 * the stream, which needs no service). Half the call timeout at most, so that a read waiting for it while the service
 * hangs still has time for that replay.
 */
async function readModelImage(): Promise<ReadModelImage | undefined> {
  try {
    const m = await remote.nc.request(remote.subjects.readModel, new Uint8Array(0), { timeout: Math.max(1, Math.floor(data.timeoutMs / 2)) });
    const image = decodeWire<ReadModelImage>(m.data);
    return imageReadModel(image, resolveProfile(remote.info.config.profile)) ? image : undefined;
  } catch {
    return undefined;
  }
}

// One call at a time, in order: the main thread blocks on each, but a call it gave up on may still be running when
// the next arrives, so they queue here rather than overlap. Following starts and stops at once (not behind a call).
let queue: Promise<void> = Promise.resolve();
port.on("message", (m: SyncRequest) => {
  if (m.op === "follow") {
    void startFollowing(m.gen);
    return;
  }
  if (m.op === "call" && m.unfollow) stopFollowing();
  queue = queue.then(async () => {
    if (m.op === "close") {
      closing = true;
      const g = generation;
      stopFollowing();
      await g?.follower?.stop().catch(() => undefined);
      await remote.close().catch(() => undefined);
      reply({ id: m.id, ok: true, answer: { rv: CK.CKR_OK }, seq: 0, app: 0 });
      return;
    }
    const answer = await app.call(m.call);
    reply({ id: m.id, ok: true, answer, seq: app.lastSeq, app: app.appId });
  });
});
