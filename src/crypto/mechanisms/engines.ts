/**
 * The two implementations the mechanisms run on, behind one interface each: node's built-in crypto (OpenSSL, the
 * library SoftHSM itself uses) and @noble's audited pure-JS code. The engines are stateless primitives over whole
 * inputs; the mechanism modules own padding, partial blocks and the saved state, so the same mechanism code runs
 * on either engine and the tests can hold one against the other.
 *
 * Node is the default for AES and for single-part digests and HMACs: OpenSSL is 8–60× faster on bulk data (bench/
 * crypto-mechanisms.js, 1 MiB: AES-256-GCM decrypt ~2.7 GiB/s against ~48 MiB/s, CBC_PAD encrypt ~510 against
 * ~62 MiB/s) and 2–4× faster at 64 bytes. Multi-part digests always run on @noble/hashes, whose contexts can be saved
 * to plain data (digest.ts); node's Hash objects cannot be saved.
 */
import { Buffer } from "node:buffer";
import { createCipheriv, createDecipheriv, createHmac, hash as nodeOneShot, type CipherGCMTypes } from "node:crypto";
import { cbc, ctr, ecb, gcm, aeskw, aeskwp } from "@noble/ciphers/aes.js";
import { hmac } from "@noble/hashes/hmac.js";
import { md5, sha1 } from "@noble/hashes/legacy.js";
import { sha224, sha256, sha384, sha512 } from "@noble/hashes/sha2.js";
import { equalBytes } from "./bytes.js";

export type EngineName = "node" | "noble";

/** Raw AES. Callers pass valid key lengths (16, 24, 32) and, for ECB and CBC, whole blocks. */
export interface AesEngine {
  readonly name: EngineName;
  ecb(encrypt: boolean, key: Uint8Array, data: Uint8Array): Uint8Array;
  cbc(encrypt: boolean, key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array;
  /** CTR from a block boundary; the 16-byte counter block increments as one 128-bit big-endian number. */
  ctr(key: Uint8Array, counter: Uint8Array, data: Uint8Array): Uint8Array;
  /** Shortest GCM IV the engine takes (noble requires 8 bytes; SP 800-38D lets implementations narrow it). */
  readonly gcmMinIvLength: number;
  /**
   * GCM encryption (SP 800-38D): the ciphertext and the full 16-byte tag (both engines give them as adjacent views of
   * one buffer, which lets a one-shot output be a view). IV of gcmMinIvLength..128 bytes.
   */
  gcmSeal(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, data: Uint8Array): { ct: Uint8Array; tag: Uint8Array };
  /** GCM decryption against a tag of 1..16 bytes (a prefix of the full tag): the plaintext, or null. */
  gcmOpen(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, ct: Uint8Array, tag: Uint8Array): Uint8Array | null;
  /** RFC 3394 (pad = false; 16+ bytes, a multiple of 8) and RFC 5649 (pad = true; 1+ bytes) key wrap. */
  wrap(pad: boolean, kek: Uint8Array, keyValue: Uint8Array): Uint8Array;
  /** The unwrapped key, or null when the integrity check fails. */
  unwrap(pad: boolean, kek: Uint8Array, wrapped: Uint8Array): Uint8Array | null;
}

export type HashName = "md5" | "sha1" | "sha224" | "sha256" | "sha384" | "sha512";

/** Single-part digests and HMACs. */
export interface HashEngine {
  readonly name: EngineName;
  digest(hash: HashName, data: Uint8Array): Uint8Array;
  hmac(hash: HashName, key: Uint8Array, data: Uint8Array): Uint8Array;
}

const EMPTY = new Uint8Array(0);
const KW_IV = Buffer.from("a6a6a6a6a6a6a6a6", "hex");
const KWP_IV = Buffer.from("a65959a6", "hex");

const bits = (key: Uint8Array) => key.length * 8;
const gcmName = (key: Uint8Array) => `aes-${bits(key)}-gcm` as CipherGCMTypes;

/** Tag lengths node lets a GCM decipher check itself (crypto/crypto_cipher.cc IsValidGCMTagLength). */
const NODE_GCM_TAGS = new Set([4, 8, 12, 13, 14, 15, 16]);

/** Input per cipher update when sealing: small enough that each piece of output is copied while still in cache. */
const GCM_SLICE = 64 * 1024;

/**
 * The ciphertext and tag as views of one buffer, ct then tag (as noble's GCM gives them), so that a one-shot
 * encryption's output (ct || tag) is a view and not a copy: node's update() returns new memory, so a 1 MiB seal
 * otherwise ends in a 1 MiB concat (~14 % of bench aes-gcm-1m's time). Feeding the cipher 64 KiB at a time and
 * copying each piece out while it is hot costs about as much as the update alone.
 */
function nodeGcmSeal(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, data: Uint8Array) {
  const c = createCipheriv(gcmName(key), key, iv, { authTagLength: 16 });
  if (aad.length) c.setAAD(aad);
  // Its own memory (allocUnsafeSlow, not a slice of node's shared pool): the output is handed to the caller as a view
  // of this buffer, which must hold nothing else. Every byte is written below.
  const out = Buffer.allocUnsafeSlow(data.length + 16);
  let at = 0;
  for (let i = 0; i < data.length; i += GCM_SLICE) {
    const piece = c.update(data.subarray(i, i + GCM_SLICE));
    out.set(piece, at);
    at += piece.length;
  }
  const tail = c.final(); // GCM is a stream mode: nothing is held back
  out.set(tail, at);
  at += tail.length;
  out.set(c.getAuthTag(), at);
  return { ct: out.subarray(0, at), tag: out.subarray(at, at + 16) };
}

export const nodeAes: AesEngine = {
  name: "node",
  gcmMinIvLength: 1,
  ecb(encrypt, key, data) {
    if (data.length === 0) return EMPTY;
    const c = (encrypt ? createCipheriv : createDecipheriv)(`aes-${bits(key)}-ecb`, key, null).setAutoPadding(false);
    return c.update(data);
  },
  cbc(encrypt, key, iv, data) {
    if (data.length === 0) return EMPTY;
    const c = (encrypt ? createCipheriv : createDecipheriv)(`aes-${bits(key)}-cbc`, key, iv).setAutoPadding(false);
    return c.update(data);
  },
  ctr(key, counter, data) {
    if (data.length === 0) return EMPTY;
    return createCipheriv(`aes-${bits(key)}-ctr`, key, counter).update(data);
  },
  gcmSeal: nodeGcmSeal,
  gcmOpen(key, iv, aad, ct, tag) {
    if (NODE_GCM_TAGS.has(tag.length)) {
      const d = createDecipheriv(gcmName(key), key, iv, { authTagLength: tag.length });
      if (aad.length) d.setAAD(aad);
      d.setAuthTag(tag);
      const body = d.update(ct);
      try {
        const tail = d.final();
        return tail.length ? Buffer.concat([body, tail]) : body;
      } catch {
        return null;
      }
    }
    // Tags node will not check (1–3, 5–7, 9–11 bytes): GCM encryption of the ciphertext under the same key and IV
    // XORs the same keystream, so it yields the plaintext; encrypting that gives the full tag to compare.
    const pt = nodeGcmSeal(key, iv, aad, ct).ct;
    return equalBytes(nodeGcmSeal(key, iv, aad, pt).tag.subarray(0, tag.length), tag) ? pt : null;
  },
  wrap(pad, kek, keyValue) {
    const c = createCipheriv(`id-aes${bits(kek)}-wrap${pad ? "-pad" : ""}`, kek, pad ? KWP_IV : KW_IV);
    return Buffer.concat([c.update(keyValue), c.final()]);
  },
  unwrap(pad, kek, wrapped) {
    const d = createDecipheriv(`id-aes${bits(kek)}-wrap${pad ? "-pad" : ""}`, kek, pad ? KWP_IV : KW_IV);
    try {
      return Buffer.concat([d.update(wrapped), d.final()]);
    } catch {
      return null;
    }
  },
};

export const nobleAes: AesEngine = {
  name: "noble",
  gcmMinIvLength: 8,
  ecb(encrypt, key, data) {
    if (data.length === 0) return EMPTY;
    const c = ecb(key, { disablePadding: true });
    return encrypt ? c.encrypt(data) : c.decrypt(data);
  },
  cbc(encrypt, key, iv, data) {
    if (data.length === 0) return EMPTY;
    const c = cbc(key, iv, { disablePadding: true });
    return encrypt ? c.encrypt(data) : c.decrypt(data);
  },
  ctr(key, counter, data) {
    if (data.length === 0) return EMPTY;
    return ctr(key, counter).encrypt(data);
  },
  gcmSeal(key, iv, aad, data) {
    const sealed = gcm(key, iv, aad).encrypt(data);
    return { ct: sealed.subarray(0, data.length), tag: sealed.subarray(data.length) };
  },
  gcmOpen(key, iv, aad, ct, tag) {
    if (tag.length === 16) {
      const full = new Uint8Array(ct.length + 16);
      full.set(ct);
      full.set(tag, ct.length);
      try {
        return gcm(key, iv, aad).decrypt(full);
      } catch {
        return null;
      }
    }
    // noble checks only full tags: the same keystream trick as node's fallback.
    const pt = gcm(key, iv, aad).encrypt(ct).subarray(0, ct.length);
    const full = gcm(key, iv, aad).encrypt(pt).subarray(ct.length);
    return equalBytes(full.subarray(0, tag.length), tag) ? pt : null;
  },
  wrap(pad, kek, keyValue) {
    return (pad ? aeskwp : aeskw)(kek).encrypt(keyValue);
  },
  unwrap(pad, kek, wrapped) {
    try {
      return (pad ? aeskwp : aeskw)(kek).decrypt(wrapped);
    } catch {
      return null;
    }
  },
};

const NOBLE_HASHES = { md5, sha1, sha224, sha256, sha384, sha512 } as const;

export const nodeHash: HashEngine = {
  name: "node",
  // crypto.hash (one-shot, Node ≥ 20.12): no Hash object, ~1 µs less per call on short inputs.
  digest: (hash, data) => nodeOneShot(hash, data, "buffer"),
  hmac: (hash, key, data) => createHmac(hash, key).update(data).digest(),
};

export const nobleHash: HashEngine = {
  name: "noble",
  digest: (hash, data) => NOBLE_HASHES[hash](data),
  hmac: (hash, key, data) => hmac(NOBLE_HASHES[hash], key, data),
};

export interface Engines {
  aes: AesEngine;
  hash: HashEngine;
}

/** The hot path: OpenSSL through node:crypto. */
export const NODE_ENGINES: Engines = { aes: nodeAes, hash: nodeHash };
/** The independent implementation the tests and the benchmark hold the node path against. */
export const NOBLE_ENGINES: Engines = { aes: nobleAes, hash: nobleHash };
