/**
 * AES block modes as multi-part operations with plain-data state (PKCS#11 v2.40 Current Mechanisms §2.10):
 * CKM_AES_ECB, CKM_AES_CBC, CKM_AES_CBC_PAD (PKCS#7 padding) and CKM_AES_CTR (§2.10.4, CK_AES_CTR_PARAMS).
 * The modes come from NIST SP 800-38A; the bytes run through an AesEngine (node's OpenSSL by default, with padding
 * switched off: this module pads, unpads and carries the partial block itself, so a state can be saved between
 * any two parts).
 *
 * What a state holds, and what each step returns, follows SoftHSM 2.6.1 (observed, pkcs11js 2.1.7):
 *
 * | mechanism   | state                                | update returns                   | final                         |
 * |-------------|--------------------------------------|----------------------------------|-------------------------------|
 * | ECB         | pending (< 16 bytes)                 | every whole block                | nothing; *_LEN_RANGE if bytes |
 * |             |                                      |                                  | are pending                   |
 * | CBC         | iv (last ciphertext block), pending  | every whole block                | the same                      |
 * | CBC_PAD enc | iv, pending (< 16)                   | every whole block                | the padded last block         |
 * | CBC_PAD dec | iv, pending (≤ 16: the last whole    | every whole block but the last   | the unpadded last block (bad  |
 * |             | block is held back, as OpenSSL does) | while the input so far is aligned| pad: CKR_GENERAL_ERROR)       |
 * | CTR         | counter block, offset in it, bits,   | as many bytes as it was given    | nothing                       |
 * |             | bytes left before the counter wraps  |                                  |                               |
 *
 * CTR never wraps: like SoftHSM, input that would run the low `ulCounterBits` bits of the counter past their maximum
 * is refused (CKR_DATA_LEN_RANGE encrypting, CKR_ENCRYPTED_DATA_LEN_RANGE decrypting). Parameter checks come before
 * the key length check, and a key that is not 16, 24 or 32 bytes long answers CKR_MECHANISM_INVALID, as in SoftHSM.
 */
import { Buffer } from "node:buffer";
import { addToCounter, blocksBeforeWrap, concat, fromHex, hasKeys, isHex, isRecord, isUint, toHex } from "./bytes.js";
import type { AesEngine } from "./engines.js";
import { fail, type CipherPair, type CipherStream, type Failure, type Hex } from "./types.js";

export const AES_BLOCK = 16;
export const AES_KEY_LENGTHS: readonly number[] = [16, 24, 32];

export const aesKeyOk = (key: Uint8Array): boolean => AES_KEY_LENGTHS.includes(key.length);
export const KEY_SIZE: Failure = fail("CKR_MECHANISM_INVALID", "key-size");

const EMPTY = new Uint8Array(0);
const lenFailure = (encrypt: boolean): Failure =>
  encrypt ? fail("CKR_DATA_LEN_RANGE", "data-len") : fail("CKR_ENCRYPTED_DATA_LEN_RANGE", "encrypted-data-len");

/** CKM_AES_ECB takes no parameter; SoftHSM ignores one if given. */
export type EcbParams = unknown;

/** CKM_AES_CBC and CKM_AES_CBC_PAD: the IV (pParameter). null when pParameter is NULL. */
export interface CbcParams {
  iv: Uint8Array | null;
}

/** CK_AES_CTR_PARAMS. */
export interface CtrParams {
  counterBits: number;
  cb: Uint8Array;
}

export interface EcbState {
  pending: Hex;
}

export interface CbcState {
  /** The block the next block chains on: the IV, then the last ciphertext block. */
  iv: Hex;
  pending: Hex;
}

export interface CtrState {
  /** The counter block of the keystream block in use. */
  counter: Hex;
  /** Bytes of that keystream block already used (0..15). */
  offset: number;
  counterBits: number;
  /** Bytes that may still be processed before the counter bits wrap (a decimal integer: it can exceed 2^53). */
  left: string;
}

// ---------------------------------------------------------------------------------------------------------------
// ECB, CBC and CBC_PAD share one implementation: `chain` selects CBC, `pad` selects PKCS#7.

interface BlockMode {
  chain: boolean;
  pad: boolean;
}

type BlockState = CbcState; // ECB keeps `iv` empty and drops it from its public state.

/** PKCS#7: 1..16 bytes of value n. */
function padBlock(pending: Uint8Array): Uint8Array {
  const n = AES_BLOCK - pending.length;
  const out = new Uint8Array(AES_BLOCK).fill(n);
  out.set(pending);
  return out;
}

/** The unpadded length of a decrypted last block, or -1. Looks at every byte whatever the pad value. */
function unpaddedLength(block: Uint8Array): number {
  const n = block[AES_BLOCK - 1]!;
  let bad = n === 0 || n > AES_BLOCK ? 1 : 0;
  for (let i = 0; i < AES_BLOCK; i++) {
    const inPad = i >= AES_BLOCK - n ? 1 : 0;
    bad |= inPad & (block[i]! !== n ? 1 : 0);
  }
  return bad ? -1 : AES_BLOCK - n;
}

/** CBC_PAD decryption holds back the last whole block while the input so far is block-aligned (OpenSSL's rule). */
function keepBack(mode: BlockMode, encrypt: boolean, total: number): number {
  const rem = total % AES_BLOCK;
  if (!encrypt && mode.pad && rem === 0) return Math.min(AES_BLOCK, total);
  return rem;
}

function blockStream(engine: AesEngine, mode: BlockMode, encrypt: boolean): CipherStream<CbcParams, BlockState> {
  function run(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
    return mode.chain ? engine.cbc(encrypt, key, iv, data) : engine.ecb(encrypt, key, data);
  }
  function nextIv(iv: Hex, input: Uint8Array, out: Uint8Array): Hex {
    if (!mode.chain || out.length === 0) return iv;
    const c = encrypt ? out : input;
    return toHex(c.subarray(c.length - AES_BLOCK));
  }
  function checkParams(params: CbcParams): Failure | undefined {
    if (!mode.chain) return undefined;
    if (params?.iv == null) return fail("CKR_ARGUMENTS_BAD", "param");
    if (params.iv.length !== AES_BLOCK) return fail("CKR_MECHANISM_INVALID", "param");
    return undefined;
  }

  const stream: CipherStream<CbcParams, BlockState> = {
    init(key, params) {
      const bad = checkParams(params) ?? (aesKeyOk(key) ? undefined : KEY_SIZE);
      if (bad) return bad;
      return { ok: true, state: { iv: mode.chain ? toHex(params.iv!) : "", pending: "" } };
    },
    update(key, state, data) {
      if (!aesKeyOk(key)) return KEY_SIZE;
      const buf = concat(fromHex(state.pending), data);
      const n = buf.length - keepBack(mode, encrypt, buf.length);
      const input = buf.subarray(0, n);
      const out = run(key, mode.chain ? fromHex(state.iv) : EMPTY, input);
      return { ok: true, state: { iv: nextIv(state.iv, input, out), pending: toHex(buf.subarray(n)) }, out };
    },
    final(key, state) {
      if (!aesKeyOk(key)) return KEY_SIZE;
      const pending = fromHex(state.pending);
      const iv = mode.chain ? fromHex(state.iv) : EMPTY;
      if (!mode.pad) return pending.length ? lenFailure(encrypt) : { ok: true, out: EMPTY };
      if (encrypt) return { ok: true, out: run(key, iv, padBlock(pending)) };
      if (pending.length !== AES_BLOCK) return lenFailure(false);
      const last = run(key, iv, pending);
      const n = unpaddedLength(last);
      return n < 0 ? fail("CKR_GENERAL_ERROR", "padding") : { ok: true, out: last.subarray(0, n) };
    },
    once(key, params, data) {
      const bad = checkParams(params) ?? (aesKeyOk(key) ? undefined : KEY_SIZE);
      if (bad) return bad;
      const iv = mode.chain ? params.iv! : EMPTY;
      if (encrypt && mode.pad) {
        const whole = data.length - (data.length % AES_BLOCK);
        // Every byte is written below (the data, then the padded last block over its tail): not zeroed first.
        const padded = Buffer.allocUnsafe(whole + AES_BLOCK);
        padded.set(data);
        padded.set(padBlock(data.subarray(whole)), whole);
        return { ok: true, out: run(key, iv, padded) };
      }
      if (data.length % AES_BLOCK !== 0 || (!encrypt && mode.pad && data.length === 0)) return lenFailure(encrypt);
      const out = run(key, iv, data);
      if (encrypt || !mode.pad) return { ok: true, out };
      const n = unpaddedLength(out.subarray(out.length - AES_BLOCK));
      return n < 0 ? fail("CKR_GENERAL_ERROR", "padding") : { ok: true, out: out.subarray(0, out.length - AES_BLOCK + n) };
    },
    updateLength(state, dataLen) {
      const total = state.pending.length / 2 + dataLen;
      return total - keepBack(mode, encrypt, total);
    },
    finalLength(state) {
      if (!mode.pad) return 0;
      return encrypt ? AES_BLOCK : state.pending.length / 2;
    },
    onceLength(_params, dataLen) {
      if (mode.pad && encrypt) return dataLen - (dataLen % AES_BLOCK) + AES_BLOCK;
      return dataLen;
    },
    parseState(x) {
      if (!isRecord(x) || !hasKeys(x, ["iv", "pending"])) return undefined;
      const maxPending = !encrypt && mode.pad ? AES_BLOCK : AES_BLOCK - 1;
      const ivOk = mode.chain ? isHex(x.iv, AES_BLOCK, AES_BLOCK) : x.iv === "";
      if (!ivOk || !isHex(x.pending, 0, maxPending)) return undefined;
      return { iv: x.iv as string, pending: x.pending as string };
    },
  };
  return stream;
}

/** ECB's public state drops the always-empty `iv`. */
function ecbView(s: CipherStream<CbcParams, BlockState>): CipherStream<EcbParams, EcbState> {
  const NO_IV: CbcParams = { iv: null };
  const wide = (st: EcbState): BlockState => ({ iv: "", pending: st.pending });
  return {
    init: (key) => {
      const r = s.init(key, NO_IV);
      return r.ok ? { ok: true, state: { pending: r.state.pending } } : r;
    },
    update: (key, st, data) => {
      const r = s.update(key, wide(st), data);
      return r.ok ? { ok: true, state: { pending: r.state.pending }, out: r.out } : r;
    },
    final: (key, st) => s.final(key, wide(st)),
    once: (key, _params, data) => s.once(key, NO_IV, data),
    updateLength: (st, n) => s.updateLength(wide(st), n),
    finalLength: (st) => s.finalLength(wide(st)),
    onceLength: (_params, n) => s.onceLength(NO_IV, n),
    parseState: (x) => {
      if (!isRecord(x) || !hasKeys(x, ["pending"])) return undefined;
      return s.parseState({ iv: "", pending: x.pending }) ? { pending: x.pending as string } : undefined;
    },
  };
}

export function aesEcb(engine: AesEngine): CipherPair<EcbParams, EcbState> {
  const mode = { chain: false, pad: false };
  return { encrypt: ecbView(blockStream(engine, mode, true)), decrypt: ecbView(blockStream(engine, mode, false)) };
}

export function aesCbc(engine: AesEngine): CipherPair<CbcParams, CbcState> {
  const mode = { chain: true, pad: false };
  return { encrypt: blockStream(engine, mode, true), decrypt: blockStream(engine, mode, false) };
}

export function aesCbcPad(engine: AesEngine): CipherPair<CbcParams, CbcState> {
  const mode = { chain: true, pad: true };
  return { encrypt: blockStream(engine, mode, true), decrypt: blockStream(engine, mode, false) };
}

// ---------------------------------------------------------------------------------------------------------------
// CTR

const MAX_LEFT = (1n << 128n) * 16n;

/**
 * XOR `data` with the keystream starting `offset` bytes into the block of `counter`, where only the low `bits` bits
 * of the counter count. Shared with GCM (bits = 32, the inc32 of SP 800-38D). The caller makes sure the counter bits
 * do not wrap inside `data` unless `bits` is 32 (GCM's counter wraps by definition): then the run is split at
 * the wrap, because the engines count with all 128 bits.
 */
export function ctrXor(
  engine: AesEngine,
  key: Uint8Array,
  counter: Uint8Array,
  offset: number,
  bits: number,
  data: Uint8Array,
): { out: Uint8Array; counter: Uint8Array; offset: number } {
  if (data.length === 0) return { out: EMPTY, counter, offset };
  const out = new Uint8Array(data.length);
  let pos = 0;
  let ctr = counter;
  let off = offset;
  if (off > 0) {
    const ks = engine.ecb(true, key, ctr);
    const n = Math.min(AES_BLOCK - off, data.length);
    for (let i = 0; i < n; i++) out[i] = data[i]! ^ ks[off + i]!;
    pos = n;
    off += n;
    if (off === AES_BLOCK) {
      ctr = addToCounter(ctr, 1n, bits);
      off = 0;
    }
  }
  while (pos < data.length) {
    // Blocks (the partial last one included) this run may take before the counter bits wrap.
    const room = blocksBeforeWrap(ctr, bits);
    const wanted = BigInt(Math.ceil((data.length - pos) / AES_BLOCK));
    const take = room >= wanted ? data.length - pos : Number(room) * AES_BLOCK;
    const chunk = engine.ctr(key, ctr, data.subarray(pos, pos + take));
    if (pos === 0 && take === data.length) {
      ctr = addToCounter(ctr, BigInt(Math.floor(take / AES_BLOCK)), bits);
      return { out: chunk, counter: ctr, offset: take % AES_BLOCK };
    }
    out.set(chunk, pos);
    pos += take;
    ctr = addToCounter(ctr, BigInt(Math.floor(take / AES_BLOCK)), bits);
    off = take % AES_BLOCK;
  }
  return { out, counter: ctr, offset: off };
}

function ctrStream(engine: AesEngine, encrypt: boolean): CipherStream<CtrParams, CtrState> {
  function checkParams(params: CtrParams): Failure | undefined {
    if (params == null || !(params.cb instanceof Uint8Array) || params.cb.length !== AES_BLOCK) {
      return fail("CKR_ARGUMENTS_BAD", "param");
    }
    if (!Number.isInteger(params.counterBits) || params.counterBits < 1 || params.counterBits > 128) {
      return fail("CKR_MECHANISM_PARAM_INVALID", "param");
    }
    return undefined;
  }
  const stream: CipherStream<CtrParams, CtrState> = {
    init(key, params) {
      const bad = checkParams(params) ?? (aesKeyOk(key) ? undefined : KEY_SIZE);
      if (bad) return bad;
      const left = blocksBeforeWrap(params.cb, params.counterBits) * BigInt(AES_BLOCK);
      return {
        ok: true,
        state: { counter: toHex(params.cb), offset: 0, counterBits: params.counterBits, left: left.toString() },
      };
    },
    update(key, state, data) {
      if (!aesKeyOk(key)) return KEY_SIZE;
      const left = BigInt(state.left);
      if (BigInt(data.length) > left) return lenFailure(encrypt);
      const r = ctrXor(engine, key, fromHex(state.counter), state.offset, state.counterBits, data);
      const next: CtrState = {
        counter: toHex(r.counter),
        offset: r.offset,
        counterBits: state.counterBits,
        left: (left - BigInt(data.length)).toString(),
      };
      return { ok: true, state: next, out: r.out };
    },
    final(key) {
      return aesKeyOk(key) ? { ok: true, out: EMPTY } : KEY_SIZE;
    },
    once(key, params, data) {
      const s = stream.init(key, params);
      if (!s.ok) return s;
      const u = stream.update(key, s.state, data);
      return u.ok ? { ok: true, out: u.out } : u;
    },
    updateLength: (_state, dataLen) => dataLen,
    finalLength: () => 0,
    onceLength: (_params, dataLen) => dataLen,
    parseState(x) {
      if (!isRecord(x) || !hasKeys(x, ["counter", "offset", "counterBits", "left"])) return undefined;
      const { counter, offset, counterBits, left } = x;
      if (!isHex(counter, AES_BLOCK, AES_BLOCK) || !isUint(offset, AES_BLOCK - 1)) return undefined;
      if (!isUint(counterBits, 128) || counterBits < 1) return undefined;
      if (typeof left !== "string" || !/^(0|[1-9][0-9]{0,40})$/.test(left) || BigInt(left) > MAX_LEFT) return undefined;
      return { counter, offset, counterBits, left };
    },
  };
  return stream;
}

export function aesCtr(engine: AesEngine): CipherPair<CtrParams, CtrState> {
  return { encrypt: ctrStream(engine, true), decrypt: ctrStream(engine, false) };
}
