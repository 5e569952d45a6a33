/**
 * The simulator's default random source: node's CSPRNG, drawn 4 KiB at a time. Each `randomBytes(n)` call crosses into
 * C++ and costs ~4 µs here whatever n is, and a generated key takes two small draws (its value and its seal's nonce),
 * so small draws are cut from a pooled block (~0.2 µs). Every byte is handed out once and copied out of the pool;
 * large draws go straight to node.
 */
import { randomFillSync } from "node:crypto";

const POOL = 4096;
const LARGE = 256;

export function pooledRandomSource(): (n: number) => Uint8Array {
  let pool = new Uint8Array(POOL);
  let at = POOL;
  return (n) => {
    if (n > LARGE) return randomFillSync(new Uint8Array(n));
    if (at + n > POOL) {
      pool = randomFillSync(new Uint8Array(POOL));
      at = 0;
    }
    const out = pool.slice(at, at + n);
    // Handed-out bytes are not kept in the pool.
    pool.fill(0, at, at + n);
    at += n;
    return out;
  };
}
