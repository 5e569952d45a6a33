/**
 * Values larger than a KV entry (events/kv-blob.ts), on a real nats-server whose max_payload is the default 1 MiB:
 * a 1.3 MiB value is written in chunks and read back whole; a new generation replaces it and the old chunks go; a
 * reader never sees half a value; a missing chunk is an error, not a short value; a reader that a writer overtakes
 * (the chunks it was reading purged under it) reads the new value.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { Kvm, type KV } from "@nats-io/kv";
import { getBlob, KV_CHUNK, putBlob } from "../../src/events/kv-blob.js";
import { natsPerFile } from "../support/nats-server.js";

const nats = natsPerFile("B");
let kv: KV;

beforeAll(async () => {
  kv = await new Kvm(nats.nc).create("blob-test", { history: 1 });
});

const bytes = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * 7 + seed) & 0xff);

describe("KV blobs", () => {
  it("over the server's max payload: written in chunks, read back whole, replaced by the next generation", async () => {
    expect(nats.nc.info!.max_payload).toBeLessThan(1_300_000);
    const big = bytes(1_300_000, 1);
    await expect(kv.put("too-big", big)).rejects.toThrow();
    await putBlob(kv, "state", 1, big, { note: "first" });
    const got = await getBlob<{ note: string }>(kv, "state");
    expect(got!.meta).toMatchObject({ gen: 1, chunks: Math.ceil(big.length / KV_CHUNK), size: big.length, note: "first" });
    expect(Buffer.from(got!.body).equals(Buffer.from(big))).toBe(true);

    const next = bytes(10, 2);
    await putBlob(kv, "state", 2, next, { note: "second" });
    expect((await getBlob<{ note: string }>(kv, "state"))!.meta.note).toBe("second");
    expect(Array.from((await getBlob(kv, "state"))!.body)).toEqual(Array.from(next));
    for (let i = 0; i < 3; i++) expect((await kv.get(`state.1.${i}`))?.operation ?? "gone").not.toBe("PUT");
  });

  it("no value: undefined; a chunk missing: an error", async () => {
    expect(await getBlob(kv, "nothing")).toBeUndefined();
    await putBlob(kv, "broken", 5, bytes(KV_CHUNK + 10, 3), {});
    await kv.purge("broken.5.1");
    await expect(getBlob(kv, "broken")).rejects.toThrow(/chunk 1 of broken \(generation 5\) is missing/);
  });

  it("a reader overtaken by a writer (its generation's chunks purged while it reads them) reads the new value", async () => {
    const first = bytes(KV_CHUNK + 10, 4);
    const second = bytes(KV_CHUNK * 2 + 5, 5);
    await putBlob(kv, "race", 1, first, { note: "first" });
    // The reader has the meta entry of generation 1; the writer puts generation 2 (and purges 1) before the reader
    // asks for its second chunk.
    let raced = false;
    const racing = new Proxy(kv, {
      get(target, name) {
        if (name !== "get") return Reflect.get(target, name, target);
        return async (k: string) => {
          if (k === "race.1.1" && !raced) {
            raced = true;
            await putBlob(target, "race", 2, second, { note: "second" });
          }
          return target.get(k);
        };
      },
    });
    const got = await getBlob<{ note: string }>(racing, "race");
    expect(raced).toBe(true);
    expect(got!.meta).toMatchObject({ gen: 2, note: "second", size: second.length });
    expect(Buffer.from(got!.body).equals(Buffer.from(second))).toBe(true);
  });
});
