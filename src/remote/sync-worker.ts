/**
 * The worker thread behind SyncRemote (sync-client.ts): it owns the NATS connection and the application's protocol
 * state (its id, its heartbeats), runs each call the main thread posts as a request to `<prefix>.<sim>.call`, and
 * posts the answer back, waking the main thread through the shared control words. It keeps beating while the main
 * thread is blocked in Atomics.wait, so a long pause in the application does not expire it.
 *
 * Failures become answers, never exceptions: no responders, a timeout, a closed connection all answer
 * CKR_DEVICE_ERROR (src/remote/protocol.ts, ErrorName "ServiceUnavailable" / "CallTimeout").
 */
import { randomUUID } from "node:crypto";
import { workerData } from "node:worker_threads";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { CK } from "../pkcs11/constants.js";
import { natsConnectOptions } from "./connect-options.js";
import { decodeWire, encodeWire, PROTOCOL_VERSION, subjects, type CallReply, type CallRequest, type Heartbeat } from "./protocol.js";
import { CTRL_ID, CTRL_READY, type SyncReply, type SyncRequest, type SyncWorkerData } from "./sync-client.js";

const data = workerData as SyncWorkerData;
const ctrl = new Int32Array(data.ctrl);
const port = data.port;
const subj = subjects(data.sim, data.prefix);
const client = randomUUID();
let app = 0;
let beat: NodeJS.Timeout | undefined;

function reply(r: SyncReply): void {
  port.postMessage(r);
  Atomics.store(ctrl, CTRL_ID, r.id);
  Atomics.store(ctrl, CTRL_READY, 1);
  Atomics.notify(ctrl, CTRL_READY);
}

function heartbeats(intervalMs: number): void {
  stopHeartbeats();
  const body = encodeWire({ app, client } satisfies Heartbeat);
  const subject = subj.heartbeat(app);
  beat = setInterval(() => {
    if (!nc.isClosed()) nc.publish(subject, body);
  }, intervalMs);
  beat.unref();
}

function stopHeartbeats(): void {
  if (beat) clearInterval(beat);
  beat = undefined;
}

async function call(id: number, c: CallRequest["call"]): Promise<SyncReply> {
  let r: CallReply;
  try {
    const m = await nc.request(subj.call, encodeWire({ v: PROTOCOL_VERSION, app, client, call: c } satisfies CallRequest), { timeout: data.timeoutMs });
    r = decodeWire<CallReply>(m.data);
  } catch {
    // No responders, a timeout, a closed connection: the device is unreachable; the outcome of a timed-out call is
    // unknown (it may be in the log).
    return { id, ok: true, answer: { rv: CK.CKR_DEVICE_ERROR }, seq: 0, app };
  }
  if (c.fn === "C_Initialize" && r.rv === CK.CKR_OK && r.app !== undefined) {
    app = r.app;
    heartbeats(r.init?.heartbeat.intervalMs ?? 1000);
  } else if (c.fn === "C_Finalize" && r.rv === CK.CKR_OK) {
    stopHeartbeats();
    app = 0;
  }
  return { id, ok: true, answer: r.out === undefined ? { rv: r.rv } : { rv: r.rv, out: r.out }, seq: r.seq, app };
}

let nc: NatsConnection;
try {
  nc = await connect({ ...natsConnectOptions(data.servers, data.env), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  reply({ id: 0, ok: true, answer: { rv: CK.CKR_OK }, seq: 0, app: 0 });
} catch (e) {
  reply({ id: 0, ok: false, error: (e as Error).message, name: (e as Error).name });
  process.exit(0);
}

// One call at a time, in order: the main thread blocks on each, but a timed-out call may still be running when the
// next arrives, so they queue here rather than overlap.
let queue: Promise<void> = Promise.resolve();
port.on("message", (m: SyncRequest) => {
  queue = queue.then(async () => {
    if (m.op === "close") {
      stopHeartbeats();
      await nc.drain().catch(() => undefined);
      reply({ id: m.id, ok: true, answer: { rv: CK.CKR_OK }, seq: 0, app });
      return;
    }
    reply(await call(m.id, m.call));
  });
});
