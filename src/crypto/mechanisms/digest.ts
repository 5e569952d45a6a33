/**
 * Message digests (PKCS#11 v2.40 §5.10; Current Mechanisms §2.16–2.20, §2.25): CKM_MD5 (RFC 1321), CKM_SHA_1,
 * CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512 (FIPS 180-4), with a state that is plain data.
 *
 * node's `createHash` cannot export its state, so multi-part digests run on @noble/hashes, whose Merkle–Damgård
 * contexts keep everything in fields: the chaining words (`get()` / `set(...)`), the partial block (`buffer`, `pos`)
 * and the byte count (`length`). A state is those three as hex and a number; `update` restores a fresh noble context
 * from it, feeds the data and reads the fields back. Single-part C_Digest runs on the HashEngine (node by default:
 * one call into OpenSSL, no state to keep).
 *
 * The noble fields are `protected` in its typings and public in its JavaScript; the check at load below fails
 * loudly if a noble release moves them, and the known-answer tests pin the behaviour. A context is restored, fed
 * and read back within one synchronous call, so one scratch context per hash serves every state.
 */
import { _MD5, _SHA1 } from "@noble/hashes/legacy.js";
import { _SHA224, _SHA256, _SHA384, _SHA512 } from "@noble/hashes/sha2.js";
import { fromHex, hasKeys, isHex, isRecord, isUint, toHex } from "./bytes.js";
import type { HashEngine, HashName } from "./engines.js";
import type { DigestStream, Hex } from "./types.js";

export interface DigestState {
  /** The chaining words, in noble's `get()` order, each as 8 hex digits (SHA-384/512: 16 words, high half first). */
  h: Hex;
  /** The bytes of the current partial block. */
  buffer: Hex;
  /** Bytes hashed so far. */
  length: number;
}

/** What this module reads and writes of a noble Merkle–Damgård context. */
interface MdContext {
  readonly blockLen: number;
  readonly outputLen: number;
  buffer: Uint8Array;
  pos: number;
  length: number;
  finished: boolean;
  destroyed: boolean;
  get(): number[];
  set(...words: number[]): void;
  update(data: Uint8Array): MdContext;
  digest(): Uint8Array;
}

type MdConstructor = new () => unknown;

const CONTEXTS: Record<HashName, MdConstructor> = {
  md5: _MD5,
  sha1: _SHA1,
  sha224: _SHA224,
  sha256: _SHA256,
  sha384: _SHA384,
  sha512: _SHA512,
};

const create = (name: HashName) => new CONTEXTS[name]() as MdContext;

for (const name of Object.keys(CONTEXTS) as HashName[]) {
  const c = create(name);
  const fields = typeof c.get === "function" && typeof c.set === "function" && c.buffer instanceof Uint8Array;
  const numbers = typeof c.pos === "number" && typeof c.length === "number" && typeof c.finished === "boolean";
  if (!fields || !numbers || typeof c.destroyed !== "boolean" || !Array.isArray(c.get())) {
    throw new Error(`@noble/hashes ${name} no longer exposes get/set/buffer/pos/length/finished/destroyed: update digest.ts`);
  }
}

function save(c: MdContext): DigestState {
  const words = c.get();
  const h = new Uint8Array(words.length * 4);
  const v = new DataView(h.buffer);
  for (let i = 0; i < words.length; i++) v.setUint32(i * 4, words[i]! >>> 0);
  return { h: toHex(h), buffer: toHex(c.buffer.subarray(0, c.pos)), length: c.length };
}

/**
 * One context per hash, reused: building a noble context costs more than hashing a block (~2.6 µs against ~1.2 µs
 * for SHA-256 here), and every step restores one. Steps are synchronous and never hand the context out.
 */
const scratch = new Map<HashName, MdContext>();

function restore(name: HashName, s: DigestState): MdContext {
  let c = scratch.get(name);
  if (!c) scratch.set(name, (c = create(name)));
  const h = fromHex(s.h);
  const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
  const words: number[] = [];
  for (let i = 0; i < h.length; i += 4) words.push(v.getUint32(i) | 0);
  c.set(...words);
  const pending = fromHex(s.buffer);
  c.buffer.set(pending);
  c.pos = pending.length;
  c.length = s.length;
  // digest() marks a context finished and destroyed; a restored one is neither.
  c.finished = false;
  c.destroyed = false;
  return c;
}

/** The plain-data context of one hash, used by the digest mechanisms and by HMAC. */
export interface HashContext {
  readonly name: HashName;
  readonly size: number;
  readonly blockLen: number;
  init(): DigestState;
  /** The state after feeding `parts` in order. */
  update(state: DigestState, ...parts: Uint8Array[]): DigestState;
  /** The digest after feeding `parts` in order. */
  final(state: DigestState, ...parts: Uint8Array[]): Uint8Array;
  parseState(x: unknown): DigestState | undefined;
}

export function hashContext(name: HashName): HashContext {
  const probe = create(name);
  const { blockLen, outputLen } = probe;
  const wordsHex = probe.get().length * 8;
  const initial: DigestState = Object.freeze(save(probe));
  return {
    name,
    size: outputLen,
    blockLen,
    init: () => initial,
    update(state, ...parts) {
      if (parts.every((p) => p.length === 0)) return state;
      const c = restore(name, state);
      for (const p of parts) c.update(p);
      const next = save(c);
      c.buffer.fill(0);
      return next;
    },
    final(state, ...parts) {
      const c = restore(name, state);
      for (const p of parts) c.update(p);
      return c.digest(); // digest() copies out, then wipes the context
    },
    parseState(x) {
      if (!isRecord(x) || !hasKeys(x, ["h", "buffer", "length"])) return undefined;
      const { h, buffer, length } = x;
      if (!isHex(h) || h.length !== wordsHex || !isHex(buffer, 0, blockLen - 1) || !isUint(length)) return undefined;
      if (length % blockLen !== buffer.length / 2) return undefined;
      return { h, buffer, length };
    },
  };
}

/** A digest mechanism: multi-part through the plain-data context, single-part through the engine. */
export function digest(engine: HashEngine, name: HashName): DigestStream<DigestState> {
  const ctx = hashContext(name);
  return {
    size: ctx.size,
    blockLen: ctx.blockLen,
    init: ctx.init,
    update: (state, data) => ctx.update(state, data),
    final: (state) => ctx.final(state),
    once: (data) => engine.digest(name, data),
    parseState: ctx.parseState,
  };
}
