/**
 * Figures for the async remote client against `hsmsim serve` (a child process) on a private nats-server: ops/s and
 * p50/p99 latency for C_GetSessionInfo (answered from the client's projection), open+close and login+logout (each
 * call durable in JetStream before its answer), with 1 client sequential, 16 concurrent clients (one connection
 * and one application each: 16 processes' worth of connections in this one process), and 16 applications sharing one
 * client's connection, then the replay rate of the JetStream store (records/s, opening the stream the load
 * wrote) and of a whole rebuild (store + Simulator).
 *
 *   node --import tsx test/support/nats-throughput.ts [seconds per workload, default 2]
 *
 * Not a test: timings belong in benchmarks, never in assertions.
 */
import { connect as natsConnect } from "@nats-io/transport-node";
import { connect, type RemoteApplication } from "../../src/remote/client.js";
import { JetStreamEventStore } from "../../src/events/jetstream-store.js";
import { Simulator } from "../../src/actors/simulator.js";
import { CK } from "../../src/pkcs11/constants.js";
import { startNatsServer } from "./nats-server.js";
import { startServe } from "./serve-process.js";
import { SO_PIN, USER_PIN } from "./sim.js";
import { readFileSync } from "node:fs";

const SECONDS = Number(process.argv[2] ?? 2);
const server = await startNatsServer();
const svc = await startServe(server.url, "bench");
const url = `${server.url}/bench`;

const pct = (a: number[], p: number) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function app(): Promise<{ a: RemoteApplication; close: () => Promise<void> }> {
  const c = await connect(url);
  const a = c.application();
  await a.call({ fn: "C_Initialize", args: {} });
  return { a, close: () => c.close() };
}

/** `n` applications of one client (one connection, one projection). */
async function appsOfOne(n: number): Promise<{ a: RemoteApplication; close: () => Promise<void> }[]> {
  const c = await connect(url);
  const out = [];
  for (let i = 0; i < n; i++) {
    const a = c.application();
    await a.call({ fn: "C_Initialize", args: {} });
    out.push({ a, close: async () => (i === n - 1 ? c.close() : undefined) });
  }
  return out;
}

{
  const { a, close } = await app();
  await a.call({ fn: "C_InitToken", args: { slotID: 0, pin: SO_PIN, label: "bench" } });
  const h = (await a.call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION } })).out!.hSession;
  await a.call({ fn: "C_Login", args: { hSession: h, userType: CK.CKU_SO, pin: SO_PIN } });
  await a.call({ fn: "C_InitPIN", args: { hSession: h, pin: USER_PIN } });
  await a.call({ fn: "C_Finalize", args: {} });
  await close();
}

type Op = (a: RemoteApplication, h: number) => Promise<void>;
const must = (rv: number, what: string) => {
  if (rv !== CK.CKR_OK) throw new Error(`${what}: rv 0x${rv.toString(16)}`);
};
const WORKLOADS: Record<string, Op> = {
  C_GetSessionInfo: async (a, h) => must((await a.call({ fn: "C_GetSessionInfo", args: { hSession: h } })).rv, "C_GetSessionInfo"),
  "open+close": async (a) => {
    const o = await a.call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION } });
    must(o.rv, "C_OpenSession");
    must((await a.call({ fn: "C_CloseSession", args: { hSession: o.out!.hSession } })).rv, "C_CloseSession");
  },
  "login+logout": async (a, h) => {
    must((await a.call({ fn: "C_Login", args: { hSession: h, userType: CK.CKU_USER, pin: USER_PIN } })).rv, "C_Login");
    must((await a.call({ fn: "C_Logout", args: { hSession: h } })).rv, "C_Logout");
  },
};

for (const [clients, shared] of [[1, false], [16, false], [16, true]] as const) {
  const apps = shared ? await appsOfOne(clients) : await Promise.all(Array.from({ length: clients }, app));
  const label = shared ? "16 apps, 1 conn " : `${String(clients).padStart(2)} client(s)     `;
  const handles = await Promise.all(apps.map(async ({ a }) => (await a.call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION } })).out!.hSession));
  for (const [name, op] of Object.entries(WORKLOADS)) {
    const lat: number[] = [];
    const end = performance.now() + SECONDS * 1000;
    const t0 = performance.now();
    await Promise.all(
      apps.map(async ({ a }, i) => {
        while (performance.now() < end) {
          const s = performance.now();
          await op(a, handles[i]!);
          lat.push(performance.now() - s);
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    console.log(
      `${label} ${name.padEnd(16)} ${(lat.length / secs).toFixed(0).padStart(7)} ops/s  ` +
        `p50 ${(pct(lat, 50) * 1000).toFixed(0)} µs  p99 ${(pct(lat, 99) * 1000).toFixed(0)} µs  (an op = ${name.includes("+") ? "2 calls" : "1 call"})`,
    );
  }
  for (const x of apps) await x.close();
}

await svc.stop();
const nc = await natsConnect({ servers: server.url });
for (let round = 0; round < 3; round++) {
  const t0 = performance.now();
  const store = await JetStreamEventStore.open({ nc, sim: "bench", onWarning: () => undefined });
  const storeMs = performance.now() - t0;
  const settings = JSON.parse(readFileSync(svc.keyFile, "utf8")) as { simulatorKey: string; config: { profile: object } };
  const sim = new Simulator({ ...settings.config.profile, simulatorKey: Buffer.from(settings.simulatorKey, "hex"), store });
  const allMs = performance.now() - t0;
  console.log(
    `replay: ${store.lastSeq} records in ${store.stats.loadedMessages} messages: store ${storeMs.toFixed(0)} ms = ${((store.lastSeq / storeMs) * 1000).toFixed(0)} records/s; ` +
      `with the Simulator rebuild ${allMs.toFixed(0)} ms = ${((sim.lastSeq / allMs) * 1000).toFixed(0)} records/s`,
  );
}
// A larger log, group-committed as a busy service writes it (C_GetSessionInfo-sized records, 256 per message), then
// replayed (chain verified) by the store alone.
{
  const REPLAY = Number(process.env.HSMSIM_REPLAY_RECORDS ?? 100_000);
  const w = await JetStreamEventStore.open({ nc, sim: "replay", onWarning: () => undefined });
  for (let seq = 1; seq <= REPLAY; seq++) {
    w.append({ seq, time: 1_800_000_000_000 + seq, app: 1, fn: "C_GetSessionInfo", args: { hSession: seq % 100 }, rv: 0, out: { slotID: 0, state: 2, flags: 6, ulDeviceError: 0 }, facts: [] });
    if (seq % 4096 === 0) await w.flush(seq);
  }
  await w.flush(REPLAY);
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    const r = await JetStreamEventStore.open({ nc, sim: "replay", onWarning: () => undefined });
    const ms = performance.now() - t0;
    console.log(`replay (store, chain verified): ${r.lastSeq} records in ${r.stats.loadedMessages} messages: ${ms.toFixed(0)} ms = ${((r.lastSeq / ms) * 1000).toFixed(0)} records/s`);
  }
}
await nc.close();
await server.stop();
