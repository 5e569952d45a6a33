/** For the kill -9 tests' children (file-store-child.ts, snapshot-child.ts): acknowledging a call on stdout. */
import { writeSync } from "node:fs";

/**
 * One line to stdout, written before returning: an acknowledgement must leave the process before the next call, or a
 * kill would lose acknowledgements still queued in Node's stream (process.stdout on a pipe may queue). The pipe may
 * be non-blocking: wait for the reader when it is full.
 */
export function writeLine(line: string): void {
  const b = Buffer.from(line + "\n");
  for (let done = 0; done < b.length; ) {
    try {
      done += writeSync(1, b, done, b.length - done);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}
