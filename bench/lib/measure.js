// Timing helpers shared by the bench children. Plain ESM, no build step.

export const now = () => Number(process.hrtime.bigint()) / 1e6; // ms, sub-µs resolution

export const gc = () => {
  if (typeof global.gc === "function") global.gc();
};

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Runs `op` repeatedly. The timer is read once per batch (not per call), and the batch
 * size is tuned during warm-up so that a batch takes ~5 ms; each round then runs whole
 * batches until at least `minMs` have elapsed. global.gc() runs before every round.
 *
 * @param {() => void} op one workload iteration
 * @param {{warmupMs:number, minMs:number, rounds:number}} cfg
 * @returns {{opsPerSec:number, usPerOp:number, rounds:number[], iterations:number, warmupIterations:number, batch:number}}
 */
export function measure(op, { warmupMs, minMs, rounds }) {
  let batch = 1;
  let warmupIterations = 0;
  const w0 = now();
  for (;;) {
    const b0 = now();
    for (let i = 0; i < batch; i++) op();
    warmupIterations += batch;
    const t = now();
    const dt = t - b0;
    if (dt < 5 && batch < 1 << 20) batch = Math.max(batch + 1, Math.ceil(batch * Math.min(4, 5 / Math.max(dt, 0.01))));
    if (t - w0 >= warmupMs && dt >= 2) break;
    if (t - w0 >= warmupMs * 4) break; // very slow op: a single call may already exceed the batch target
  }
  const perRound = [];
  let iterations = 0;
  for (let r = 0; r < rounds; r++) {
    gc();
    let n = 0;
    const t0 = now();
    let t = t0;
    do {
      for (let i = 0; i < batch; i++) op();
      n += batch;
      t = now();
    } while (t - t0 < minMs);
    perRound.push((n * 1000) / (t - t0));
    iterations += n;
  }
  const opsPerSec = median(perRound);
  return { opsPerSec, usPerOp: 1e6 / opsPerSec, rounds: perRound.map((x) => Math.round(x)), iterations, warmupIterations, batch };
}
