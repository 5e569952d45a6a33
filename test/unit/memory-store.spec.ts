/**
 * The in-memory store keeps the log as encoded bytes in chunks, indexed in pages (src/events/memory-store.ts): what is
 * read back must be what was appended, across chunk and page boundaries, for records longer than a chunk and for
 * text outside ASCII, and a record changed after it was appended must not change the log.
 */
import { describe, expect, it } from "vitest";
import { MemoryEventStore } from "../../src/events/memory-store.js";
import { encodeRecord } from "../../src/events/codec.js";
import type { CallRecord } from "../../src/events/types.js";

function record(seq: number, label: string): CallRecord {
  return { seq, time: 1_700_000_000_000 + seq, app: 1 + (seq % 3), fn: "C_SetAttributeValue", args: { hSession: seq, label }, rv: 0, facts: [] } as unknown as CallRecord;
}

describe("MemoryEventStore", () => {
  it("reads back every record, in order, across chunk and page boundaries, long and non-ASCII ones included", () => {
    const store = new MemoryEventStore({ chunkBytes: 512, pageEntries: 7 });
    const want: CallRecord[] = [];
    for (let seq = 1; seq <= 200; seq++) {
      const label = seq % 17 === 0 ? "x".repeat(2000) : seq % 5 === 0 ? `tök€n-${seq}-😀` : `label-${seq}`;
      const r = record(seq, label);
      want.push(JSON.parse(JSON.stringify(r)) as CallRecord);
      store.append(r);
    }
    expect(store.lastSeq).toBe(200);
    expect([...store.read()]).toEqual(want);
    expect([...store.read(150)]).toEqual(want.slice(149));
    expect([...store.read(201)]).toEqual([]);
    expect(store.raw()).toBe(want.map(encodeRecord).join("\n"));
  });

  it("keeps a record as it was when appended", () => {
    const store = new MemoryEventStore();
    const r = record(1, "before");
    store.append(r);
    (r.args as { label: string }).label = "after";
    expect(([...store.read()][0]!.args as { label: string }).label).toBe("before");
  });

  it("refuses a record out of sequence and stays as it was", () => {
    const store = new MemoryEventStore();
    store.append(record(1, "a"));
    expect(() => store.append(record(3, "c"))).toThrow(RangeError);
    expect(store.lastSeq).toBe(1);
    store.append(record(2, "b"));
    expect([...store.read()].map((r) => r.seq)).toEqual([1, 2]);
  });

  it("with freeze, makes a mutation of an appended record throw", () => {
    const store = new MemoryEventStore({ freeze: true });
    const r = record(1, "a");
    store.append(r);
    expect(() => {
      (r.args as { label: string }).label = "b";
    }).toThrow(TypeError);
  });
});

describe("MemoryEventStore after a snapshot (base)", () => {
  it("holds the records after `base` only, appended as records or as their encoding", () => {
    const store = new MemoryEventStore({ base: 10, chunkBytes: 256, pageEntries: 3 });
    expect(store.lastSeq).toBe(10);
    expect(() => store.append(record(1, "x"))).toThrow(RangeError);
    store.append(record(11, "eleven"));
    store.appendEncoded(encodeRecord(record(12, "twelve")));
    store.append(record(13, "thirteen"));
    expect(store.lastSeq).toBe(13);
    expect([...store.read()].map((r) => r.seq)).toEqual([11, 12, 13]);
    expect([...store.read(12)].map((r) => (r.args as { label: string }).label)).toEqual(["twelve", "thirteen"]);
    expect([...store.read(14)]).toEqual([]);
  });
});
