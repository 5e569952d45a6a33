/**
 * The CLI's progress bars (src/cli/progress.ts): silent unless stderr is a terminal, silent with --json, drawn in
 * place and throttled on a terminal, erased at the end; and the file store's walks (verifying a log at open, reading
 * it) report through the hook the CLI sets (FileEventStore.onWalk).
 */
import { describe, expect, it, afterEach } from "vitest";
import { progress, type ProgressStream } from "../../src/cli/progress.js";
import { FileEventStore, lastSeqOfLog } from "../../src/events/file-store.js";
import { record, tempDir } from "../support/file-store-helpers.js";
import { join } from "node:path";

function fakeStream(isTTY: boolean): ProgressStream & { out: string[] } {
  const out: string[] = [];
  return { isTTY, columns: 100, out, write: (s: string) => out.push(s) };
}

/** A clock that moves `step` ms every time it is read. */
function clock(step: number): () => number {
  let t = 0;
  return () => (t += step);
}

describe("progress", () => {
  afterEach(() => {
    FileEventStore.onWalk = undefined;
  });

  it("writes nothing when the stream is not a terminal, or when the command prints JSON", () => {
    for (const [stream, json] of [[fakeStream(false), false], [fakeStream(true), true]] as const) {
      const bar = progress("verifying", 100_000, { stream, json, now: clock(1000) });
      for (let i = 1; i <= 100_000; i++) bar.update(i);
      bar.finish();
      expect(stream.out).toEqual([]);
    }
  });

  it("on a terminal: one line redrawn in place with the bar, the share, the counts and the rate; erased at the end", () => {
    const stream = fakeStream(true);
    const bar = progress("verifying", 8192, { stream, now: clock(50) });
    for (let i = 1; i <= 8192; i++) bar.update(i);
    bar.finish();
    // The clock is read every 1,024 updates and moves 50 ms each time: drawn at every second reading (100 ms apart).
    expect(stream.out.length).toBe(5);
    expect(stream.out[0]).toMatch(/^\rverifying \[#{10}-{30}\] 25% 2048\/8192 [\d.]+[kM]?\/s\x1b\[K$/);
    expect(stream.out[3]).toMatch(/^\rverifying \[#{40}\] 100% 8192\/8192 /);
    expect(stream.out.at(-1)).toBe("\r\x1b[K");
  });

  it("an unknown total is shown as a count; a short walk draws nothing at all", () => {
    const stream = fakeStream(true);
    const bar = progress("reading", 0, { stream, now: clock(200) });
    for (let i = 1; i <= 2048; i++) bar.update(i);
    bar.finish();
    expect(stream.out[0]).toMatch(/^\rreading 1024 /);
    const quiet = fakeStream(true);
    const short = progress("reading", 500, { stream: quiet, now: clock(1000) });
    for (let i = 1; i <= 500; i++) short.update(i);
    short.finish();
    expect(quiet.out).toEqual([]);
  });

  it("the file store reports its walks through FileEventStore.onWalk: verifying at open, then reading", () => {
    const dir = tempDir();
    const store = new FileEventStore(dir, { durability: "none", checkpointEvery: 0 });
    for (let i = 1; i <= 5000; i++) store.append(record(i));
    store.close();
    expect(lastSeqOfLog(join(dir, "events.log"))).toBe(5000);
    const stream = fakeStream(true);
    const walks: string[] = [];
    FileEventStore.onWalk = (what, total) => {
      walks.push(`${what} ${total}`);
      return progress(what, total, { stream, now: clock(100) });
    };
    const again = new FileEventStore(dir, { durability: "none", checkpointEvery: 0 });
    expect([...again.read(1001)].length).toBe(4000);
    again.close();
    expect(walks).toEqual(["verify 5000", "read 4000"]);
    expect(stream.out.filter((s) => s.startsWith("\rverify [")).length).toBeGreaterThan(0);
    expect(stream.out.filter((s) => s.startsWith("\rread [")).length).toBeGreaterThan(0);
    expect(stream.out.filter((s) => s === "\r\x1b[K").length).toBe(2);
  });
});
