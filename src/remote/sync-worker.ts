/**
 * The worker thread behind SyncRemote (sync-client.ts): it owns the async remote client (client.ts: the connection,
 * the application's id and heartbeats), follows the simulator's event subject for the calling thread's projection
 * (sync-projection.ts), runs each call the main thread posts,
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
import { CTRL_FEED, imageReadModel } from "./sync-projection.js";
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
let follower: { stop(): Promise<void> } | undefined;
let closing = false;
try {
  remote = await connect(data.target, {
    prefix: data.prefix,
    timeoutMs: data.timeoutMs,
    // Keep trying a lost server for ever: meanwhile every call answers CKR_DEVICE_ERROR after its timeout.
    nats: { maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: data.connectTimeoutMs },
  });
  app = remote.application();
  // Start the calling thread's projection from the service's read model (if it gives one), then follow the tail.
  const image = await readModelImage();
  void follow(image?.streamSeq ?? 1);
  reply({ id: 0, ok: true, answer: { rv: CK.CKR_OK }, seq: 0, app: 0, config: remote.info.config, readModel: image });
} catch (e) {
  reply({ id: 0, ok: false, error: (e as Error).message, name: (e as Error).name });
  process.exit(0);
}

/**
 * The calling thread's projection (sync-projection.ts): every record of the simulator's subject, in order, posted on
 * the feed port, then the feed word raised to its seq. Started in the background and retried while JetStream cannot
 * make the consumer (a cluster without quorum): meanwhile reads wait for the feed, up to the call timeout.
 */
async function follow(from: number): Promise<void> {
  while (!closing) {
    try {
      const f = await followSubject(jetstream(remote.nc), remote.info.stream, remote.subjects.events, from, (m) => {
        if (m.envelopes.length === 0) return;
        data.feed.postMessage(m.envelopes.map((e) => e.record));
        Atomics.store(ctrl, CTRL_FEED, m.envelopes[m.envelopes.length - 1]!.seq);
        Atomics.notify(ctrl, CTRL_FEED);
      });
      follower = f;
      // If following ever stops on an error, start again (the calling thread skips the records it already has).
      f.done.then(
        () => undefined,
        () => {
          if (!closing) void follow(from);
        },
      );
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** The service's read model (protocol.ts ReadModelImage), or undefined: the projection then starts at record 1. */
async function readModelImage(): Promise<ReadModelImage | undefined> {
  try {
    const m = await remote.nc.request(remote.subjects.readModel, new Uint8Array(0), { timeout: data.timeoutMs });
    const image = decodeWire<ReadModelImage>(m.data);
    return imageReadModel(image, resolveProfile(remote.info.config.profile)) ? image : undefined;
  } catch {
    return undefined;
  }
}

// One call at a time, in order: the main thread blocks on each, but a call it gave up on may still be running when
// the next arrives, so they queue here rather than overlap.
let queue: Promise<void> = Promise.resolve();
port.on("message", (m: SyncRequest) => {
  queue = queue.then(async () => {
    if (m.op === "close") {
      closing = true;
      await follower?.stop().catch(() => undefined);
      await remote.close().catch(() => undefined);
      reply({ id: m.id, ok: true, answer: { rv: CK.CKR_OK }, seq: 0, app: 0 });
      return;
    }
    const answer = await app.call(m.call);
    reply({ id: m.id, ok: true, answer, seq: app.lastSeq, app: app.appId });
  });
});
