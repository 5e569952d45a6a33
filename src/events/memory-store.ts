/**
 * The in-memory event store: the embedded default. It keeps the log as bytes: each record is encoded (codec.ts, the
 * line a file store writes) into large byte chunks as it is appended, and decoded again when it is read.
 *
 * Why bytes and not the record objects: a kept record is a tree of ~15-25 small objects, and keeping millions of them
 * makes the garbage collector's work grow with the length of the log. Every young collection copies the records
 * appended since the last one, and every full one marks all records ever appended, so a call's cost would grow with
 * the number of calls before it. Measured with the bench's 64-byte SHA-256 loop (C_DigestInit + C_Digest, the
 * pkcs11js drop-in, 2-vCPU VM): keeping the objects costs ~17 µs per loop, a third of it in GC; keeping nothing at all
 * ~7.7 µs; keeping the encoded bytes ~9 µs. Chunks are ArrayBuffers, outside the JS heap's object graph: the GC
 * never walks into them, and they are not copied as they age. The encoding (JSON.stringify + Buffer#write, ~1 µs for a
 * small record) also takes the record's value at the moment it is stored: a caller that later changes an object it
 * was handed cannot rewrite the log.
 *
 * `{ freeze: true }` also deep-freezes every record as it is appended, so that code which mutates a record or a fact
 * after deciding it throws at once (the test simulators run that way).
 */
import { decodeRecord, encodeRecord, freezeRecord } from "./codec.js";
import type { EventStore } from "./store.js";
import type { CallRecord } from "./types.js";

/** Bytes per chunk; a record longer than a chunk's worst case gets a chunk of its own. */
const CHUNK = 4 << 20;
/** Index entries per index page: pages are added, never grown by copying, so an append never copies the index. */
const PAGE = 1 << 16;


export class MemoryEventStore implements EventStore {
  private readonly freeze: boolean;
  private readonly chunks: Buffer[] = [];
  /** The chunk being filled and how much of it is used. */
  private chunk = Buffer.alloc(0);
  private used = 0;
  /** Per record (seq - 1): its chunk number, its offset in it and its length, in pages of PAGE entries. */
  private readonly where: Uint32Array[] = [];
  private count = 0;

  private readonly chunkBytes: number;
  private readonly pageEntries: number;

  /** Records up to `base` are not held (a store that restored a snapshot keeps the records after it). */
  private readonly base: number;

  /** `chunkBytes` and `pageEntries` default to 4 MiB and 65,536; tests pass small ones to cross the boundaries often. */
  constructor(opts: { freeze?: boolean; chunkBytes?: number; pageEntries?: number; base?: number } = {}) {
    this.freeze = opts.freeze ?? false;
    this.base = opts.base ?? 0;
    this.chunkBytes = opts.chunkBytes ?? CHUNK;
    this.pageEntries = opts.pageEntries ?? PAGE;
  }

  append(record: CallRecord): void {
    if (record.seq !== this.base + this.count + 1) {
      throw new RangeError(`"record.seq" expected ${this.base + this.count + 1}, got ${record.seq}`);
    }
    if (this.freeze) freezeRecord(record);
    this.keep(encodeRecord(record));
  }

  /**
   * Append the next record as its encoding (codec.ts), as read from a log: a store loading its log keeps the text it
   * read instead of encoding the parsed record again.
   */
  appendEncoded(line: string): void {
    this.keep(line);
  }

  private keep(line: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const worst = line.length * 3;
    if (this.used + worst > this.chunk.length) {
      // allocUnsafeSlow: a chunk of its own (not a slice of node's shared pool), written before it is read.
      this.chunk = Buffer.allocUnsafeSlow(Math.max(this.chunkBytes, worst));
      this.chunks.push(this.chunk);
      this.used = 0;
    }
    // Buffer#write, not TextEncoder#encodeInto: 0.23 µs against 2.3 µs for a 1.4 KB record here.
    const written = this.chunk.write(line, this.used, "utf8");
    const i = this.count;
    const per = this.pageEntries;
    const page = i % per === 0 ? this.where[this.where.push(new Uint32Array(3 * per)) - 1]! : this.where[(i / per) | 0]!;
    const at = 3 * (i % per);
    page[at] = this.chunks.length - 1;
    page[at + 1] = this.used;
    page[at + 2] = written;
    this.used += written;
    this.count++;
  }

  /** The record at `seq`, decoded: a fresh object on every read. */
  private line(seq: number): string {
    const i = seq - this.base - 1;
    const per = this.pageEntries;
    const page = this.where[(i / per) | 0]!;
    const at = 3 * (i % per);
    const start = page[at + 1]!;
    return this.chunks[page[at]!]!.toString("utf8", start, start + page[at + 2]!);
  }

  *read(from = 1): Iterable<CallRecord> {
    for (let seq = Math.max(this.base + 1, from); seq <= this.base + this.count; seq++) yield decodeRecord(this.line(seq));
  }

  /**
   * The records' encodings from `from`, as held (each the text `read` decodes): for a store that decodes only what it
   * needs of them (the JetStream store's `readFacts`).
   */
  *texts(from = 1): Iterable<string> {
    for (let seq = Math.max(this.base + 1, from); seq <= this.base + this.count; seq++) yield this.line(seq);
  }

  get lastSeq(): number {
    return this.base + this.count;
  }

  /** The encoded log, one record per line: the bytes a file store holds (records `from` to `to`, default all held). */
  raw(from = this.base + 1, to = this.base + this.count): string {
    const lines: string[] = [];
    for (let seq = Math.max(from, this.base + 1); seq <= Math.min(to, this.base + this.count); seq++) lines.push(this.line(seq));
    return lines.join("\n");
  }
}
