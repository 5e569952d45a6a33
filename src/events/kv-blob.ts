/**
 * A value larger than a KV entry may be (NATS's default max_payload is 1 MiB) kept in a KV bucket: the bytes in
 * chunks of ≤ 512 KiB under `<key>.<gen>.<i>`, then the entry `<key>.meta` naming the generation, its size and the
 * caller's fields; the previous generation's chunks are purged after the meta entry moved on. A reader follows the
 * meta entry, so it sees the old value or the new one, whole, whatever point a writer stopped at (a crash leaves at
 * most some unreferenced chunks, purged by the next write of the same generation name or left to age). A reader that
 * meets a writer (it read the meta entry, then the writer moved it on and purged the chunks it was reading) reads
 * again from the new meta entry.
 */
import type { KV } from "@nats-io/kv";

export const KV_CHUNK = 512 * 1024;

export interface BlobMeta {
  /** The generation: chunks are `<key>.<gen>.<i>`. */
  gen: number;
  chunks: number;
  size: number;
}

/** Write `body` as generation `gen` of `key`, with `extra` fields in its meta entry. */
export async function putBlob<E extends object>(kv: KV, key: string, gen: number, body: Uint8Array, extra: E): Promise<void> {
  const chunks = Math.max(1, Math.ceil(body.length / KV_CHUNK));
  for (let i = 0; i < chunks; i++) await kv.put(`${key}.${gen}.${i}`, body.subarray(i * KV_CHUNK, (i + 1) * KV_CHUNK));
  const prev = await kv.get(`${key}.meta`).catch(() => null);
  const meta: BlobMeta & E = { ...extra, gen, chunks, size: body.length };
  await kv.put(`${key}.meta`, JSON.stringify(meta));
  if (prev && prev.operation === "PUT") {
    const old = JSON.parse(prev.string()) as BlobMeta;
    if (old.gen !== gen) for (let i = 0; i < old.chunks; i++) await kv.purge(`${key}.${old.gen}.${i}`).catch(() => undefined);
  }
}

/** How many times a reader starts again when writers keep replacing the value under it. */
const READ_ATTEMPTS = 5;

/**
 * The newest value of `key` and its meta entry, or undefined when there is none; throws when a chunk is missing (and
 * the meta entry did not move on meanwhile: then the chunks were purged by a writer, and it reads the new value).
 */
export async function getBlob<E extends object>(kv: KV, key: string): Promise<{ meta: BlobMeta & E; body: Uint8Array } | undefined> {
  for (let attempt = 1; ; attempt++) {
    const e = await kv.get(`${key}.meta`);
    if (!e || e.operation !== "PUT") return undefined;
    const meta = JSON.parse(e.string()) as BlobMeta & E;
    const body = await readChunks(kv, key, meta);
    if (typeof body !== "number") return { meta, body };
    const now = await kv.get(`${key}.meta`);
    if (attempt >= READ_ATTEMPTS || !now || now.revision === e.revision) {
      throw new Error(`chunk ${body} of ${key} (generation ${meta.gen}) is missing`);
    }
  }
}

/** The chunks of one generation, joined; the index of the first missing chunk when one is. */
async function readChunks(kv: KV, key: string, meta: BlobMeta): Promise<Uint8Array | number> {
  const body = new Uint8Array(meta.size);
  let at = 0;
  for (let i = 0; i < meta.chunks; i++) {
    const c = await kv.get(`${key}.${meta.gen}.${i}`);
    if (!c || c.operation !== "PUT") return i;
    if (at + c.value.length > meta.size) throw new Error(`the chunks of ${key} hold more than the ${meta.size} bytes its meta entry says`);
    body.set(c.value, at);
    at += c.value.length;
  }
  if (at !== meta.size) throw new Error(`the chunks of ${key} hold ${at} bytes, its meta entry says ${meta.size}`);
  return body;
}
