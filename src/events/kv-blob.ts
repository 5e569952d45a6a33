/**
 * A value larger than a KV entry may be (NATS's default max_payload is 1 MiB) kept in a KV bucket: the bytes in
 * chunks of ≤ 512 KiB under `<key>.<gen>.<i>`, then the entry `<key>.meta` naming the generation, its size and the
 * caller's fields; the previous generation's chunks are purged after the meta entry moved on. A reader follows the
 * meta entry, so it sees the old value or the new one, whole, whatever point a writer stopped at (a crash leaves at
 * most some unreferenced chunks, purged by the next write of the same generation name or left to age).
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

/** The newest value of `key` and its meta entry, or undefined when there is none; throws when a chunk is missing. */
export async function getBlob<E extends object>(kv: KV, key: string): Promise<{ meta: BlobMeta & E; body: Uint8Array } | undefined> {
  const e = await kv.get(`${key}.meta`);
  if (!e || e.operation !== "PUT") return undefined;
  const meta = JSON.parse(e.string()) as BlobMeta & E;
  const body = new Uint8Array(meta.size);
  let at = 0;
  for (let i = 0; i < meta.chunks; i++) {
    const c = await kv.get(`${key}.${meta.gen}.${i}`);
    if (!c || c.operation !== "PUT") throw new Error(`chunk ${i} of ${key} (generation ${meta.gen}) is missing`);
    if (at + c.value.length > meta.size) throw new Error(`the chunks of ${key} hold more than the ${meta.size} bytes its meta entry says`);
    body.set(c.value, at);
    at += c.value.length;
  }
  if (at !== meta.size) throw new Error(`the chunks of ${key} hold ${at} bytes, its meta entry says ${meta.size}`);
  return { meta, body };
}
