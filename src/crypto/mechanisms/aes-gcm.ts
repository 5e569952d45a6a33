/**
 * CKM_AES_GCM (PKCS#11 v2.40 Current Mechanisms §2.12.3, CK_GCM_PARAMS; NIST SP 800-38D) as a multi-part operation
 * whose state is plain data.
 *
 * Per step, as SoftHSM 2.6.1 does it (observed): encryption streams, each update returning as many ciphertext bytes
 * as it was given and final returning the tag; decryption returns nothing before final, which checks the tag and
 * then returns all the plaintext. The tag covers the whole message and is only known (encrypting) or only arrives
 * (decrypting, as the last tagBits/8 bytes of the input) at the end, so both states keep the input so far, one
 * base64 chunk per update:
 *
 * - encrypting, an update XORs its bytes with the keystream at the counter the length so far gives (inc32 of the
 *   pre-counter block, through the engine's CTR) and appends the plaintext to the state; final runs the engine's
 *   one-shot GCM over everything for the tag. OpenSSL's GCM runs at ~2.5 GiB/s, so this beats carrying a GHASH
 *   accumulator in the state (noble's GHASH in JavaScript: ~50–60 MiB/s here), at the cost of state that grows with
 *   the message, which decryption needs anyway;
 * - decrypting, an update appends the input; final splits off the tag and opens the whole ciphertext at once.
 *
 * Neither state is offered to C_GetOperationState (the registry marks GCM unsaveable, CKR_STATE_UNSAVEABLE): an
 * encryption state restored twice would encrypt two messages under one key and IV, which gives away the GHASH key
 * and lets anyone forge tags; and both states grow with the message.
 *
 * SoftHSM's parameter rules, observed: ulTagBits above 128 or not a multiple of 8 → CKR_ARGUMENTS_BAD; ulTagBits 0
 * is accepted, encryption then appends no tag and decryption always fails (CKR_GENERAL_ERROR); a failed tag check is
 * CKR_GENERAL_ERROR, and so is a ciphertext shorter than the tag. hsmsim refuses an IV of 0 or more than 128 bytes
 * (CKR_MECHANISM_PARAM_INVALID): SoftHSM accepts them and encrypts under some IV other than the one given
 * (OpenSSL rejects the IV length and SoftHSM goes on), which no test should rely on. ulIvBits is ignored, as in
 * SoftHSM.
 */
import { GHASH } from "@noble/ciphers/_polyval.js";
import {
  addToCounter,
  base64Length,
  concat,
  concatAll,
  equalBytes,
  fromBase64,
  fromHex,
  hasKeys,
  isHex,
  isRecord,
  isUint,
  toBase64,
  toHex,
} from "./bytes.js";
import { AES_BLOCK, KEY_SIZE, aesKeyOk, ctrXor } from "./aes.js";
import type { AesEngine } from "./engines.js";
import { fail, type CipherPair, type CipherStream, type Failure, type Hex } from "./types.js";

/** CK_GCM_PARAMS as hsmsim reads it: pIv/ulIvLen, pAAD/ulAADLen, ulTagBits. */
export interface GcmParams {
  iv: Uint8Array;
  aad: Uint8Array;
  tagBits: number;
}

/** The same shape both ways: encrypting, `data` is the plaintext so far; decrypting, the ciphertext and tag so far. */
export interface GcmState {
  iv: Hex;
  aad: Hex;
  tagBits: number;
  /** Bytes given so far (the sum of the chunks' lengths). */
  length: number;
  /** The input so far, one base64 chunk per non-empty update. */
  data: string[];
}

export const GCM_MAX_IV = 128;
/** SP 800-38D §5.2.1.1: plaintext of at most 2^39 − 256 bits. */
export const GCM_MAX_DATA = 2 ** 36 - 32;

const EMPTY = new Uint8Array(0);
const ZERO_BLOCK = new Uint8Array(AES_BLOCK);

// ---------------------------------------------------------------------------------------------------------------
// GCM from its parts (SP 800-38D §7.1), for the pre-counter block of a non-96-bit IV and for IVs shorter than an
// engine's one-shot GCM takes (noble wants 8 bytes; OpenSSL and SoftHSM take 1).

/** [a]64 || [b]64, bit lengths, big-endian. */
function lengthBlock(aBytes: number, bBytes: number): Uint8Array {
  const out = new Uint8Array(AES_BLOCK);
  const v = new DataView(out.buffer);
  const put = (at: number, bytes: number) => {
    const bitsLen = bytes * 8;
    v.setUint32(at, Math.floor(bitsLen / 2 ** 32));
    v.setUint32(at + 4, bitsLen >>> 0);
  };
  put(0, aBytes);
  put(8, bBytes);
  return out;
}

/** GHASH_H over segments, each zero-padded to a block (noble's GHASH pads every update). */
function ghash(h: Uint8Array, ...segments: Uint8Array[]): Uint8Array {
  const g = new GHASH(h, segments.reduce((n, s) => n + s.length, 0));
  for (const s of segments) if (s.length) g.update(s);
  return g.digest();
}

/** §7.1 step 2: J0 = IV || 0^31 || 1 for a 96-bit IV, else GHASH(IV || 0-pad || [len(IV)]64). */
function preCounter(engine: AesEngine, key: Uint8Array, iv: Uint8Array): Uint8Array {
  if (iv.length === 12) {
    const j0 = new Uint8Array(AES_BLOCK);
    j0.set(iv);
    j0[15] = 1;
    return j0;
  }
  return ghash(engine.ecb(true, key, ZERO_BLOCK), iv, lengthBlock(0, iv.length));
}

/** GCM encryption from the engine's ECB and CTR and noble's GHASH. */
function sealFromParts(engine: AesEngine, key: Uint8Array, iv: Uint8Array, aad: Uint8Array, data: Uint8Array) {
  const h = engine.ecb(true, key, ZERO_BLOCK);
  const j0 = preCounter(engine, key, iv);
  const ct = ctrXor(engine, key, addToCounter(j0, 1n, 32), 0, 32, data).out;
  const s = ghash(h, aad, ct, lengthBlock(aad.length, ct.length));
  const mask = engine.ecb(true, key, j0);
  const tag = s.map((b, i) => b ^ mask[i]!);
  return { ct, tag };
}

/** One-shot GCM: the engine's, or built from parts when the IV is shorter than the engine takes. */
function seal(engine: AesEngine, key: Uint8Array, iv: Uint8Array, aad: Uint8Array, data: Uint8Array) {
  return iv.length >= engine.gcmMinIvLength ? engine.gcmSeal(key, iv, aad, data) : sealFromParts(engine, key, iv, aad, data);
}

/** ct || tag: a view when the engine gave them adjacent in one buffer (engines.ts gcmSeal), else a copy. */
function joined(ct: Uint8Array, tag: Uint8Array): Uint8Array {
  if (ct.buffer === tag.buffer && ct.byteOffset + ct.length === tag.byteOffset) {
    return new Uint8Array(ct.buffer, ct.byteOffset, ct.length + tag.length);
  }
  return concat(ct, tag);
}

/** The plaintext if `tag` (1..16 bytes) is a prefix of the ciphertext's tag, else null. */
function open(engine: AesEngine, key: Uint8Array, iv: Uint8Array, aad: Uint8Array, ct: Uint8Array, tag: Uint8Array) {
  if (iv.length >= engine.gcmMinIvLength) return engine.gcmOpen(key, iv, aad, ct, tag);
  // Encrypting the ciphertext XORs the same keystream back off; encrypting the plaintext gives the full tag.
  const pt = sealFromParts(engine, key, iv, aad, ct).ct;
  return equalBytes(sealFromParts(engine, key, iv, aad, pt).tag.subarray(0, tag.length), tag) ? pt : null;
}

// ---------------------------------------------------------------------------------------------------------------

function checkParams(params: GcmParams): Failure | undefined {
  if (params == null || !(params.iv instanceof Uint8Array) || !(params.aad instanceof Uint8Array)) {
    return fail("CKR_ARGUMENTS_BAD", "param");
  }
  const t = params.tagBits;
  if (!Number.isInteger(t) || t < 0 || t > 128 || t % 8 !== 0) return fail("CKR_ARGUMENTS_BAD", "param");
  if (params.iv.length === 0 || params.iv.length > GCM_MAX_IV) return fail("CKR_MECHANISM_PARAM_INVALID", "param");
  return undefined;
}

const tagFailure = fail("CKR_GENERAL_ERROR", "auth-tag");
const tooLong = fail("CKR_DATA_LEN_RANGE", "data-len");

function start(key: Uint8Array, params: GcmParams) {
  const bad = checkParams(params) ?? (aesKeyOk(key) ? undefined : KEY_SIZE);
  if (bad) return bad;
  const state: GcmState = { iv: toHex(params.iv), aad: toHex(params.aad), tagBits: params.tagBits, length: 0, data: [] };
  return { ok: true, state } as const;
}

const append = (state: GcmState, data: Uint8Array): GcmState =>
  data.length ? { ...state, length: state.length + data.length, data: [...state.data, toBase64(data)] } : state;

const input = (state: GcmState) => concatAll(state.data.map(fromBase64));

function parseState(x: unknown, maxLength: number): GcmState | undefined {
  if (!isRecord(x) || !hasKeys(x, ["iv", "aad", "tagBits", "length", "data"])) return undefined;
  const { iv, aad, tagBits, length, data } = x;
  if (!isHex(iv, 1, GCM_MAX_IV) || !isHex(aad) || !isUint(tagBits, 128) || tagBits % 8 !== 0) return undefined;
  if (!isUint(length, maxLength) || !Array.isArray(data)) return undefined;
  let sum = 0;
  for (const d of data) {
    const n = base64Length(d);
    if (n <= 0) return undefined;
    sum += n;
  }
  return sum === length ? { iv, aad, tagBits, length, data: data as string[] } : undefined;
}

function encryptStream(engine: AesEngine): CipherStream<GcmParams, GcmState> {
  return {
    init: start,
    update(key, state, data) {
      if (!aesKeyOk(key)) return KEY_SIZE;
      if (state.length + data.length > GCM_MAX_DATA) return tooLong;
      const j0 = preCounter(engine, key, fromHex(state.iv));
      const at = state.length;
      const counter = addToCounter(j0, BigInt(1 + Math.floor(at / AES_BLOCK)), 32);
      const { out } = ctrXor(engine, key, counter, at % AES_BLOCK, 32, data);
      return { ok: true, state: append(state, data), out };
    },
    final(key, state) {
      if (!aesKeyOk(key)) return KEY_SIZE;
      const { tag } = seal(engine, key, fromHex(state.iv), fromHex(state.aad), input(state));
      return { ok: true, out: tag.subarray(0, state.tagBits / 8) };
    },
    once(key, params, data) {
      const bad = checkParams(params) ?? (aesKeyOk(key) ? undefined : KEY_SIZE);
      if (bad) return bad;
      if (data.length > GCM_MAX_DATA) return tooLong;
      const { ct, tag } = seal(engine, key, params.iv, params.aad, data);
      return { ok: true, out: joined(ct, tag.subarray(0, params.tagBits / 8)) };
    },
    updateLength: (_state, dataLen) => dataLen,
    finalLength: (state) => state.tagBits / 8,
    onceLength: (params, dataLen) => dataLen + params.tagBits / 8,
    parseState: (x) => parseState(x, GCM_MAX_DATA),
  };
}

function decryptStream(engine: AesEngine): CipherStream<GcmParams, GcmState> {
  function check(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, tagBits: number, all: Uint8Array) {
    const tagLen = tagBits / 8;
    if (tagLen === 0) return tagFailure;
    if (all.length < tagLen) return fail("CKR_GENERAL_ERROR", "encrypted-data-len");
    const cut = all.length - tagLen;
    const pt = open(engine, key, iv, aad, all.subarray(0, cut), all.subarray(cut));
    return pt ? ({ ok: true, out: pt } as const) : tagFailure;
  }
  return {
    init: start,
    update(key, state, data) {
      if (!aesKeyOk(key)) return KEY_SIZE;
      if (state.length + data.length > GCM_MAX_DATA + AES_BLOCK) return fail("CKR_ENCRYPTED_DATA_LEN_RANGE", "encrypted-data-len");
      return { ok: true, state: append(state, data), out: EMPTY };
    },
    final(key, state) {
      if (!aesKeyOk(key)) return KEY_SIZE;
      return check(key, fromHex(state.iv), fromHex(state.aad), state.tagBits, input(state));
    },
    once(key, params, data) {
      const bad = checkParams(params) ?? (aesKeyOk(key) ? undefined : KEY_SIZE);
      if (bad) return bad;
      return check(key, params.iv, params.aad, params.tagBits, data);
    },
    updateLength: () => 0,
    finalLength: (state) => Math.max(0, state.length - state.tagBits / 8),
    onceLength: (params, dataLen) => Math.max(0, dataLen - params.tagBits / 8),
    parseState: (x) => parseState(x, GCM_MAX_DATA + AES_BLOCK),
  };
}

export function aesGcm(engine: AesEngine): CipherPair<GcmParams, GcmState> {
  return { encrypt: encryptStream(engine), decrypt: decryptStream(engine) };
}
