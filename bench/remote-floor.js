#!/usr/bin/env node
// The floor under the remote open+close workload (bench/remote.js): the smallest synchronous RPC over NATS that has
// the drop-in's shape, with no hsmsim in it. Each client is its own process whose main thread blocks in Atomics.wait
// while a worker thread owns the NATS connection (as src/remote/sync-client.ts does); the service is one process on a
// queue subscription that answers at once ("plain") or, "durable", only after a JetStream publish (R1, file storage)
// of the calls that arrived meanwhile is acknowledged (one publish in flight, `expect.lastSubjectSequence` = the
// previous ack, as src/events/jetstream-store.ts group-commits). An op is two calls (as an open+close pair).
//
//   node bench/remote-floor.js [--ms MS] [--clients 1,16]
//
// Prints pairs/s (sum over the clients), the median over the clients of their p50 per pair, and the client process's
// CPU per pair (main thread, worker and V8's helper threads). Starts its own nats-server on a free loopback port and
// removes its store. See docs/notes/nats-design.md § 12 ("open+close throughput").
import { fork, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isMainThread, MessageChannel, receiveMessageOnPort, Worker, workerData } from "node:worker_threads";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";

const SELF = fileURLToPath(import.meta.url);
const NATS_SERVER = process.env.NATS_SERVER ?? "/usr/sbin/nats-server";
const BODY = new Uint8Array(200).fill(0x41); // about a CallRequest's size
const RECORD = 300; // bytes stored per call (about one chain envelope of C_OpenSession)

const role = isMainThread ? process.argv[2] : "worker";

/**
 * A client's measurement, sent to the parent: 300 ms of warm-up, then pairs for `ms`: pairs/s, the p50 per pair and
 * the process's CPU per pair. `pair` may be synchronous (the drop-in's shape; awaiting its undefined costs a microtask,
 * nothing beside a pair's ~1 ms) or async.
 */
async function timePairs(pair, ms) {
  let end = performance.now() + 300;
  while (performance.now() < end) await pair();
  const lat = [];
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  end = t0 + ms;
  let t = t0;
  while (t < end) {
    await pair();
    const t1 = performance.now();
    lat.push((t1 - t) * 1000);
    t = t1;
  }
  const c = process.cpuUsage(c0);
  lat.sort((a, b) => a - b);
  process.send({ rate: lat.length / ((t - t0) / 1000), p50: lat[lat.length >> 1], cpuUsPerPair: (c.user + c.system) / lat.length }, () => process.exit(0));
}

if (role === "server") {
  // node remote-floor.js server <url> plain|durable
  const [, , , url, mode] = process.argv;
  const nc = await connect({ servers: url, noAsyncTraces: true });
  let pending = [];
  let inflight = false;
  let fence = 0;
  let js;
  if (mode === "durable") {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "FLOOR", subjects: ["floor.>"], storage: "file" });
    js = jetstream(nc);
  }
  const commit = async () => {
    if (inflight || pending.length === 0) return;
    inflight = true;
    const batch = pending;
    pending = [];
    const ack = await js.publish("floor.events", new Uint8Array(RECORD * batch.length), { expect: { lastSubjectSequence: fence } });
    fence = ack.seq;
    for (const m of batch) m.respond(BODY);
    inflight = false;
    void commit();
  };
  nc.subscribe("floor.call", {
    queue: "floor",
    callback: (err, m) => {
      if (err) return;
      if (!js) return m.respond(BODY);
      pending.push(m);
      queueMicrotask(() => void commit());
    },
  });
  await nc.flush();
  process.send("ready");
} else if (role === "client") {
  // node remote-floor.js client <url> <ms>
  const [, , , url, msArg] = process.argv;
  const ctrl = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const w = new Worker(SELF, { workerData: { url, ctrl: ctrl.buffer, port: port2 }, transferList: [port2] });
  w.unref();
  const call = () => {
    Atomics.store(ctrl, 0, 0);
    port1.postMessage(0);
    for (;;) {
      const m = receiveMessageOnPort(port1);
      if (m) return m.message;
      Atomics.wait(ctrl, 0, 0, 10_000);
      Atomics.store(ctrl, 0, 0);
    }
  };
  const pair = () => {
    call();
    call();
  };
  pair(); // connected
  process.send("ready");
  process.once("message", () => void timePairs(pair, Number(msArg)));
} else if (role === "aclient") {
  // node remote-floor.js aclient <url> <ms>: the same pairs from an async client (the connection on the calling
  // thread, one call in flight), as `connect()` gives: no worker, no Atomics.wait.
  const [, , , url, msArg] = process.argv;
  const nc = await connect({ servers: url, noAsyncTraces: true });
  const pair = async () => {
    await nc.request("floor.call", BODY, { timeout: 10_000 });
    await nc.request("floor.call", BODY, { timeout: 10_000 });
  };
  await pair();
  process.send("ready");
  process.once("message", () => void timePairs(pair, Number(msArg)));
} else if (role === "worker") {
  const { url, ctrl, port } = workerData;
  const c = new Int32Array(ctrl);
  const nc = await connect({ servers: url, noAsyncTraces: true });
  port.on("message", async () => {
    await nc.request("floor.call", BODY, { timeout: 10_000 });
    port.postMessage(1);
    Atomics.store(c, 0, 1);
    Atomics.notify(c, 0);
  });
} else {
  const o = { ms: 3000, clients: [1, 16], shapes: ["sync"] };
  for (let i = 2; i < process.argv.length; i++) {
    if (process.argv[i] === "--ms") o.ms = Number(process.argv[++i]);
    else if (process.argv[i] === "--clients") o.clients = process.argv[++i].split(",").map(Number);
    else if (process.argv[i] === "--shapes") o.shapes = process.argv[++i].split(",");
    else {
      console.error("usage: node bench/remote-floor.js [--ms MS] [--clients 1,16] [--shapes sync,async]");
      process.exit(2);
    }
  }
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-floor-"));
  const nats = spawn(NATS_SERVER, ["-js", "-sd", dir, "-a", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
  const live = new Set([nats]);
  process.on("exit", () => {
    for (const p of live) p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  await new Promise((resolve) => nats.stderr.on("data", (d) => String(d).includes("Server is ready") && resolve()));
  const url = `nats://127.0.0.1:${port}`;
  const started = (p) => {
    live.add(p);
    p.once("exit", () => live.delete(p));
    return new Promise((resolve, reject) => {
      p.once("message", () => resolve(p));
      p.once("exit", (code) => reject(new Error(`exited ${code} before it was ready`)));
    });
  };
  console.log(`remote floor: minimal RPC over NATS (sync: worker + Atomics.wait; async: the connection on the calling thread), ${o.ms} ms per cell, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  console.log("service   client  clients  pairs/s  p50 per pair  client CPU per pair");
  for (const mode of ["plain", "durable"]) {
    const server = await started(fork(SELF, ["server", url, mode]));
    for (const shape of o.shapes)
    for (const n of o.clients) {
      const cs = await Promise.all(Array.from({ length: n }, () => started(fork(SELF, [shape === "async" ? "aclient" : "client", url, String(o.ms)]))));
      const rs = cs.map((c) => new Promise((resolve) => c.once("message", resolve)));
      for (const c of cs) c.send("go");
      const r = await Promise.all(rs);
      const med = (k) => r.map((x) => x[k]).sort((a, b) => a - b)[r.length >> 1];
      const sum = r.reduce((s, x) => s + x.rate, 0);
      console.log(`${mode.padEnd(8)}  ${shape.padEnd(6)}  ${String(n).padStart(7)}  ${sum.toFixed(0).padStart(7)}  ${(med("p50") / 1000).toFixed(2).padStart(9)} ms  ${(med("cpuUsPerPair") / 1000).toFixed(2).padStart(16)} ms`);
    }
    server.kill("SIGKILL");
  }
  process.exit(0);
}
