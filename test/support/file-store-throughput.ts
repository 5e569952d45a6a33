/**
 * Append throughput of the file event store in each durability mode, on this machine:
 *
 *   node --import tsx test/support/file-store-throughput.ts [seconds per round, default 1]
 *
 * Two figures per mode: `append` is FileEventStore.append alone (a C_DigestInit record, a 380-byte line, as the
 * simulator writes it: canonical JSON, chain hash, one write, and the mode's fsync); `call` is a whole
 * C_GetSessionInfo through the simulator on the store (decide, record, append, project); `memory` is the in-memory
 * store beside them. Three rounds each, the median printed. Temporary stores go to the OS temp dir (set TMPDIR to
 * measure another disk). Until `npm run bench` has a file-store section (issue 5), the figures in
 * src/events/file-store.ts come from here.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Simulator } from "../../src/actors/simulator.js";
import { FileEventStore, type Durability } from "../../src/events/file-store.js";
import { MemoryEventStore } from "../../src/events/memory-store.js";
import type { CallRecord } from "../../src/events/types.js";
import { CK } from "../../src/pkcs11/constants.js";

const seconds = Number(process.argv[2] ?? 1);

const record = (seq: number): CallRecord => ({
  seq,
  time: 1_800_000_000_000 + seq,
  app: 1,
  fn: "C_DigestInit",
  args: { hSession: 2, mechanism: { mechanism: CK.CKM_SHA256, parameter: null } },
  rv: 0,
  facts: [{ type: "DigestStarted", app: 1, session: 2, mechanism: CK.CKM_SHA256 }],
});

/** Operations per second over one round of about `seconds` (`memory`: the in-memory store, for comparison). */
function round(durability: Durability | "memory", op: "append" | "call"): number {
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-throughput-"));
  try {
    const store = durability === "memory" ? new MemoryEventStore() : new FileEventStore(dir, { durability });
    let n = 0;
    let step: () => void;
    if (op === "append") step = () => store.append(record(++n));
    else {
      const app = new Simulator({ store }).application();
      app.call({ fn: "C_Initialize", args: {} });
      app.call({ fn: "C_InitToken", args: { slotID: 0, pin: "12345678", label: "throughput" } });
      const h = app.call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION } }).out!.hSession;
      step = () => {
        app.call({ fn: "C_GetSessionInfo", args: { hSession: h } });
        n++;
      };
    }
    const t0 = performance.now();
    const until = t0 + seconds * 1000;
    let now = t0;
    while (now < until) {
      for (let i = 0; i < 64; i++) step();
      now = performance.now();
    }
    const ops = n / ((now - t0) / 1000);
    if (store instanceof FileEventStore) store.close();
    return ops;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`node ${process.version}, ${tmpdir()}, ${seconds} s rounds, median of 3`);
for (const op of ["append", "call"] as const) {
  for (const d of ["fsync", "group", "none", "memory"] as const) {
    const ops = median([round(d, op), round(d, op), round(d, op)]);
    console.log(`${op.padEnd(6)} ${d.padEnd(5)} ${Math.round(ops).toLocaleString("en-US").padStart(9)} ops/s  ${(1e6 / ops).toFixed(1).padStart(7)} µs/op`);
  }
}
