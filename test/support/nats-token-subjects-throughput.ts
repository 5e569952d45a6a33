/**
 * Figures for subjects per token (docs/notes/nats-design.md §11) on a private nats-server, at the store level (no
 * service, no request/reply): C closed-loop callers each append a record and await its flush, with the records
 * (a) all on `.sim` (one subject: the single-subject layout's batching), (b) each caller on its own token's subject
 * (group commit then batches runs of one subject only), (c) alternating token / `.sim` per caller (records without
 * the dispatcher's routing hint), (d) every caller on one token, token records and hinted app-state records
 * alternating (a login/logout load on one token), (e) the same with each caller on its own token; records/s, records
 * per message, p50/p99 flush latency. Then the replay of a whole log against one token's subject alone.
 *
 *   node --import tsx test/support/nats-token-subjects-throughput.ts [seconds per workload, default 2]
 *
 * Not a test: timings belong in benchmarks, never in assertions.
 */
import { connect } from "@nats-io/transport-node";
import { JetStreamEventStore } from "../../src/events/jetstream-store.js";
import { replayToken } from "../../src/events/token-replay.js";
import type { CallRecord, Fact } from "../../src/events/types.js";
import { startNatsServer } from "./nats-server.js";

const SECONDS = Number(process.argv[2] ?? 2);
const server = await startNatsServer();
const nc = await connect({ servers: server.url });
const pct = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor((p / 100) * a.length))] ?? NaN;
/** A small record (file-store-helpers' `record` registers vitest hooks, so not imported here). */
const record = (seq: number, extra: Partial<CallRecord>): CallRecord => ({ seq, time: 1_800_000_000_000 + seq, app: 1, fn: "C_Login", args: {}, rv: 0, facts: [], ...extra });
const rejected = (token: string): Fact[] => [{ type: "PinRejected", app: 1, token, role: "user" }];

let n = 0;
async function run(label: string, callers: number, factsOf: (caller: number, i: number) => Fact[], hint?: (caller: number) => string): Promise<void> {
  n++;
  const store = await JetStreamEventStore.open({ nc, sim: "bench", stream: `B${n}`, prefix: `b${n}`, onWarning: () => undefined });
  const lat: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      for (let i = 0; performance.now() < end; i++) {
        const seq = store.lastSeq + 1;
        const r: CallRecord = record(seq, { facts: factsOf(c, i) });
        const t0 = performance.now();
        store.append(r, hint?.(c));
        await store.flush(seq);
        lat.push(performance.now() - t0);
        done++;
      }
    }),
  );
  const s = store.stats;
  console.log(
    `${label.padEnd(44)} ${callers.toString().padStart(3)} callers: ${Math.round(done / SECONDS).toString().padStart(6)} records/s, ` +
      `${(s.records / s.publishes).toFixed(1)} records/msg, p50 ${pct(lat, 50).toFixed(2)} ms, p99 ${pct(lat, 99).toFixed(2)} ms`,
  );
  await store.close();
}

for (const callers of [1, 16, 64]) {
  await run("all on .sim (one subject)", callers, () => []);
  await run("each caller on its own token", callers, (c) => rejected(`slot${c}`));
  await run("each caller alternating token / .sim", callers, (c, i) => (i % 2 ? rejected(`slot${c}`) : []));
  await run("one token, login/logout-like (hint)", callers, (_c, i) => (i % 2 ? rejected("slot0") : []), () => "slot0");
  await run("own token each, login/logout-like (hint)", callers, (c, i) => (i % 2 ? rejected(`slot${c}`) : []), (c) => `slot${c}`);
}

// Replay: a log of 100k records, a fifth of them on slot0's subject, the rest on .sim and three other tokens.
{
  const store = await JetStreamEventStore.open({ nc, sim: "replay", stream: "R", prefix: "r", onWarning: () => undefined });
  const N = 100_000;
  for (let seq = 1; seq <= N; seq++) {
    store.append(record(seq, { facts: seq % 5 === 0 ? rejected("slot0") : seq % 5 === 1 ? [] : rejected(`slot${seq % 5}`) }));
    if (seq % 5000 === 0) await store.flush(seq);
  }
  await store.flush(N);
  console.log(`replay log: ${N} records in ${store.stats.publishes} messages`);
  let t0 = performance.now();
  const full = await JetStreamEventStore.open({ nc, sim: "replay", stream: "R", prefix: "r" });
  let ms = performance.now() - t0;
  console.log(`full replay (chain verified): ${full.lastSeq} records in ${ms.toFixed(0)} ms, ${Math.round(full.lastSeq / (ms / 1000))} records/s`);
  t0 = performance.now();
  const one = await replayToken({ nc, sim: "replay", token: "slot0", stream: "R", prefix: "r", processCaches: false });
  ms = performance.now() - t0;
  console.log(`token slot0 alone: ${one.records} records in ${one.messages} messages, ${ms.toFixed(0)} ms, ${Math.round(one.records / (ms / 1000))} records/s (failures.user ${one.token.failures.user})`);
}
await nc.close();
await server.stop();
