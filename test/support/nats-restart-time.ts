/**
 * Start time of `hsmsim serve` (SimulatorService, in process) on a log of N records: from the snapshot written at the
 * last stop plus the tail, against a full replay of the stream. Not a test: timings belong in benchmarks.
 *
 *   node --import tsx test/support/nats-restart-time.ts [records, default 50000]
 */
import { connect as natsConnect } from "@nats-io/transport-node";
import { startNatsServer } from "./nats-server.js";
import { SimulatorService } from "../../src/service/service.js";
import { CK } from "../../src/pkcs11/constants.js";
const server = await startNatsServer();
const nc = await natsConnect({ servers: server.url, noAsyncTraces: true });
const key = new Uint8Array(32).fill(3);
const lines: string[] = [];
const start = (o: { snapshots?: boolean } = {}) => SimulatorService.start({ nc, sim: "s", simulatorKey: key, log: (l) => lines.push(l), lease: false, ...o });
let svc = await start();
const a = svc.simulator.application();
a.call({ fn: "C_Initialize", args: {} });
a.call({ fn: "C_InitToken", args: { slotID: 0, pin: "12345678", label: "s" } });
const N = Number(process.argv[2] ?? 50000);
for (let i = 0; i < N / 2; i++) {
  const h = a.call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION } }).out!.hSession;
  if (i % 10 !== 0) a.call({ fn: "C_CloseSession", args: { hSession: h } });
  if (i % 500 === 0) await svc.store.flush(svc.simulator.lastSeq);
}
await svc.stop();
for (const snapshots of [true, false, true, false]) {
  const t0 = performance.now();
  const s2 = await start({ snapshots });
  const ms = performance.now() - t0;
  console.log(`${snapshots ? "snapshot + tail" : "full replay    "}: ${s2.simulator.lastSeq} records, start ${ms.toFixed(0)} ms`);
  await s2.stop();
}
console.log(lines.filter((l) => l.includes("rebuilt")).slice(-4).join("\n"));
await nc.close(); await server.stop(); process.exit(0);
