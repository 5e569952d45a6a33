/**
 * The facts cache: a binary copy of the log's facts (facts-codec.ts) in a file beside it, `facts.cache`, that replay
 * reads instead of parsing each line's JSON. The log stays the record: the cache is only ever used where it provably
 * says what the log says, and deleting it only makes replay slower.
 *
 * Why: decoding a record's facts from its JSON line is ~2 µs on this machine, about half of a replay
 * (docs/notes/replay-speed.md); from the cache it is a few hundred nanoseconds, and the cache is a fifteenth of the
 * log's size, so replay also reads less.
 *
 * The file: a header line, then blocks. A block holds the facts of consecutive records (up to BLOCK_RECORDS):
 *
 *   header (64 bytes, little-endian): payload length u32, record count u32, first seq f64, byte offset of the last
 *     record's line in the log f64, that record's chain hash (32 bytes), 8 bytes of zeros
 *   payload: the records' facts (facts-codec.ts), in order
 *   MAC: HMAC-SHA256 over header and payload, keyed by a key derived from the simulator key (crypto/keys.ts)
 *
 * A block is used only when both hold:
 * - its MAC checks: it was written by a holder of the simulator key (as snapshots are sealed with it), so nobody
 *   without the key can make replay read other facts than the log's;
 * - it is bound to this log: the line at the stated offset is the record at the block's last sequence and carries
 *   the stated chain hash. The chain makes that hash a commitment to every record up to it, so the block's records
 *   are the log's (a cache left from another log, or from a log cut after a crash and written again, fails here).
 * A block that fails either is skipped with a warning and its records are read from the log.
 *
 * Writing: the store adds each record's facts after its line is written, and writes a block when it is full and at
 * close; it never fsyncs the cache. So after a crash the cache may lack the log's last records (they are read from
 * the log), hold a torn last block, or hold blocks past a log whose unsynced tail was lost: the writer cuts those
 * when it opens (the last blocks, checked as above), and a reader skips any block that does not check.
 */
import * as fs from "node:fs";
import { createHmac, timingSafeEqual } from "node:crypto";
import { join } from "node:path";
import { FactsBlockDecoder, FactsBlockEncoder } from "./facts-codec.js";
import type { Fact } from "./types.js";

export const FACTS_CACHE_FILE = "facts.cache";
const MAGIC = Buffer.from("hsmsim-facts-cache 1\n", "latin1");
const HEADER = 64;
const MAC = 32;
/** Records per block: a block is decoded whole, so this bounds what a replay from mid-block decodes for nothing. */
export const BLOCK_RECORDS = 4096;
/** A block is written early past this many payload bytes (large facts: keys, long templates). */
const BLOCK_BYTES = 1 << 20;

/** One block, as its header says. */
export interface CacheBlock {
  /** Byte offset of its header in the cache file. */
  at: number;
  payload: number;
  first: number;
  count: number;
  /** The log offset of its last record's line, and that record's chain hash (hex). */
  lastOffset: number;
  lastHash: string;
}

/** The log the cache is bound to: reads `n` bytes at `offset` (fewer at its end). */
export type LogReader = (offset: number, n: number) => Buffer;

function mac(key: Uint8Array, header: Buffer, payload: Buffer): Buffer {
  return createHmac("sha256", key).update(header).update(payload).digest();
}

/** Whether the log's line at `offset` is the record `seq` with chain hash `hash` (the line's fixed prefix). */
export function lineIs(log: LogReader, offset: number, seq: number, hash: string): boolean {
  const head = `{"seq":${seq},"prev":"`;
  const want = head.length + 64 + `","hash":"`.length + 64;
  const b = log(offset, want);
  if (b.length < want) return false;
  const text = b.toString("latin1");
  return text.startsWith(head) && text.startsWith(`","hash":"${hash}`, head.length + 64);
}

/** The blocks of a cache file, by their headers, up to the first that is cut short or malformed. */
export function cacheBlocks(fd: number, size: number): CacheBlock[] {
  const blocks: CacheBlock[] = [];
  const magic = Buffer.alloc(MAGIC.length);
  if (size < MAGIC.length || fs.readSync(fd, magic, 0, MAGIC.length, 0) !== MAGIC.length || !magic.equals(MAGIC)) return blocks;
  const h = Buffer.alloc(HEADER);
  let at = MAGIC.length;
  let next = 0;
  while (at + HEADER <= size) {
    if (fs.readSync(fd, h, 0, HEADER, at) !== HEADER) break;
    const payload = h.readUInt32LE(0);
    const count = h.readUInt32LE(4);
    const first = h.readDoubleLE(8);
    const lastOffset = h.readDoubleLE(16);
    if (count < 1 || !Number.isSafeInteger(first) || first < 1 || first < next || !Number.isSafeInteger(lastOffset) || lastOffset < 0) break;
    if (at + HEADER + payload + MAC > size) break;
    blocks.push({ at, payload, first, count, lastOffset, lastHash: h.toString("hex", 24, 56) });
    next = first + count;
    at += HEADER + payload + MAC;
  }
  return blocks;
}

/**
 * A block checked (its MAC, then bound to the log) and ready to decode, record by record; undefined when it does not
 * check (the caller reads those records from the log). Decoding as replay goes, not the whole block first: 4,096
 * records' facts held at once would outlive a young-generation collection or two, and copying and promoting them was
 * a fifth of a replay.
 */
export function openBlock(fd: number, b: CacheBlock, key: Uint8Array, log: LogReader): FactsBlockDecoder | undefined {
  const buf = Buffer.allocUnsafe(HEADER + b.payload + MAC);
  if (fs.readSync(fd, buf, 0, buf.length, b.at) !== buf.length) return undefined;
  const header = buf.subarray(0, HEADER);
  const payload = buf.subarray(HEADER, HEADER + b.payload);
  if (!timingSafeEqual(mac(key, header, payload), buf.subarray(HEADER + b.payload))) return undefined;
  if (!lineIs(log, b.lastOffset, b.first + b.count - 1, b.lastHash)) return undefined;
  return new FactsBlockDecoder(buf, HEADER, HEADER + b.payload);
}

/** The records of a block, checked and decoded whole (the writer's check of its last block at open). */
function readBlock(fd: number, b: CacheBlock, key: Uint8Array, log: LogReader): Fact[][] | undefined {
  const d = openBlock(fd, b, key, log);
  if (!d) return undefined;
  try {
    const out: Fact[][] = new Array(b.count);
    for (let i = 0; i < b.count; i++) out[i] = d.next() as Fact[];
    return d.done ? out : undefined;
  } catch {
    return undefined;
  }
}

/** Appends blocks to the cache as the store appends records. */
export class FactsCacheWriter {
  private readonly fd: number;
  private size: number;
  private readonly enc = new FactsBlockEncoder();
  private first = 0;
  private next = 0;
  private lastOffset = 0;
  private lastHash = "";
  private failed = false;

  /**
   * Open (or create) the cache of a log whose last record is `lastSeq`: blocks past it, or that do not check, are cut
   * from the end (a crash: see the module comment). The records after the last good block are not backfilled; they
   * stay in the log only, and replay reads them there.
   */
  constructor(
    dir: string,
    private readonly key: Uint8Array,
    lastSeq: number,
    log: LogReader,
    private readonly warn: (message: string) => void,
  ) {
    const file = join(dir, FACTS_CACHE_FILE);
    this.fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    try {
      const size = fs.fstatSync(this.fd).size;
      const blocks = cacheBlocks(this.fd, size);
      let keep = blocks.length;
      while (keep > 0) {
        const b = blocks[keep - 1]!;
        if (b.first + b.count - 1 <= lastSeq && readBlock(this.fd, b, key, log)) break;
        keep--;
      }
      const end = keep > 0 ? blocks[keep - 1]!.at + HEADER + blocks[keep - 1]!.payload + MAC : 0;
      if (end === 0) {
        fs.ftruncateSync(this.fd, 0);
        fs.writeSync(this.fd, MAGIC, 0, MAGIC.length, 0);
        this.size = MAGIC.length;
      } else {
        if (end < size) fs.ftruncateSync(this.fd, end);
        this.size = end;
      }
    } catch (e) {
      fs.closeSync(this.fd);
      throw e;
    }
  }

  /** Record `seq`'s facts; its line is at `offset` in the log and its chain hash is `hash`. */
  add(seq: number, facts: readonly Fact[], offset: number, hash: string): void {
    if (this.failed) return;
    try {
      if (this.enc.records > 0 && seq !== this.next) this.flush();
      if (this.enc.records === 0) this.first = seq;
      this.enc.add(facts);
      this.next = seq + 1;
      this.lastOffset = offset;
      this.lastHash = hash;
      if (this.enc.records >= BLOCK_RECORDS || this.enc.size >= BLOCK_BYTES) this.flush();
    } catch (e) {
      // The cache is never worth a failed call: the log has the record; replay reads it there.
      this.failed = true;
      this.warn(`hsmsim: the facts cache stopped (replay reads the log from here on): ${(e as Error).message}`);
    }
  }

  /** Write the block being built, if any. */
  flush(): void {
    if (this.enc.records === 0 || this.failed) return;
    const payload = this.enc.bytes();
    const header = Buffer.alloc(HEADER);
    header.writeUInt32LE(payload.length, 0);
    header.writeUInt32LE(this.enc.records, 4);
    header.writeDoubleLE(this.first, 8);
    header.writeDoubleLE(this.lastOffset, 16);
    header.write(this.lastHash, 24, 32, "hex");
    const block = Buffer.concat([header, payload, mac(this.key, header, payload)]);
    this.enc.reset();
    try {
      for (let done = 0; done < block.length; ) done += fs.writeSync(this.fd, block, done, block.length - done, this.size + done);
      this.size += block.length;
    } catch (e) {
      this.failed = true;
      try {
        fs.ftruncateSync(this.fd, this.size);
      } catch {
        // A reader skips a torn block.
      }
      this.warn(`hsmsim: the facts cache stopped (replay reads the log from here on): ${(e as Error).message}`);
    }
  }

  close(): void {
    this.flush();
    fs.closeSync(this.fd);
  }
}
