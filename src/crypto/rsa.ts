/**
 * RSA for CKK_RSA key pairs, on node:crypto (OpenSSL, as SoftHSM 2.6.1 uses it):
 * - key generation (CKM_RSA_PKCS_KEY_PAIR_GEN) — the shell's, never a decider's: the components it draws are
 *   recorded (private ones sealed) in the ObjectCreated facts, so replay never generates again;
 * - PKCS#1 v1.5 signatures (CKM_RSA_PKCS on raw data, CKM_SHA*_RSA_PKCS on a hash), deterministic;
 * - PKCS#1 v1.5 encryption (CKM_RSA_PKCS): the type-2 padding's nonzero random bytes are given by the caller (drawn
 *   through the shell), then raw RSA; decryption is raw RSA and the padding checked here (node 20 refuses
 *   RSA_PKCS1_PADDING for private decryption).
 *
 * Key material travels as `RsaComponents` (big-endian unsigned bytes, as PKCS#11 stores CKA_MODULUS & co.).
 */
import { constants, createPrivateKey, createPublicKey, generateKeyPairSync, privateDecrypt, privateEncrypt, publicDecrypt, publicEncrypt, sign, verify, type KeyObject } from "node:crypto";

export interface RsaPublic {
  n: Uint8Array;
  e: Uint8Array;
}
export interface RsaComponents extends RsaPublic {
  d: Uint8Array;
  p: Uint8Array;
  q: Uint8Array;
  dp: Uint8Array;
  dq: Uint8Array;
  qi: Uint8Array;
}

/** SoftHSM's OSSLRSA limits: modulus from 512 to 16384 bits (outside → the generation fails, CKR_GENERAL_ERROR). */
export const RSA_MIN_BITS = 512;
export const RSA_MAX_BITS = 16384;

const b64u = (b: Uint8Array) => Buffer.from(b).toString("base64url");
const fromB64u = (s: string | undefined) => new Uint8Array(Buffer.from(s ?? "", "base64url"));

/** Big-endian bytes without leading zeros (at least one byte). */
export function stripZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.slice(i);
}

/**
 * A fresh key pair, or null where OpenSSL (and so SoftHSM) refuses: a modulus outside 512..16384 bits, or a public
 * exponent that is even, below 3, or beyond what node's generator takes (2^32-1; SoftHSM's OpenSSL takes larger odd
 * ones — hsmsim refuses those, a known difference).
 */
export function generateRsa(bits: number, exponent: Uint8Array): RsaComponents | null {
  if (!Number.isSafeInteger(bits) || bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) return null;
  const e = exponentOf(exponent);
  if (e === null) return null;
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: bits, publicExponent: Number(e) });
  const j = privateKey.export({ format: "jwk" });
  return { n: fromB64u(j.n), e: fromB64u(j.e), d: fromB64u(j.d), p: fromB64u(j.p), q: fromB64u(j.q), dp: fromB64u(j.dp), dq: fromB64u(j.dq), qi: fromB64u(j.qi) };
}

/** The public exponent as a bigint, or null where the generators refuse it (even, below 3, above 2^32 − 1). */
function exponentOf(exponent: Uint8Array): bigint | null {
  let e = 0n;
  for (const x of exponent) e = (e << 8n) | BigInt(x);
  return e < 3n || e % 2n === 0n || e > 0xffffffffn ? null : e;
}

const SMALL_PRIMES = (() => {
  const out: bigint[] = [];
  for (let n = 3; out.length < 200; n += 2) if (out.every((p) => n % Number(p) !== 0)) out.push(BigInt(n));
  return out;
})();

function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1, s0, s1] = [r1, r0 - q * r1, s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? a : gcd(b, a % b));
const toBig = (b: Uint8Array) => b.reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);
function toBytes(n: bigint): Uint8Array {
  let hex = n.toString(16);
  if (hex.length % 2) hex = "0" + hex;
  return new Uint8Array(Buffer.from(hex, "hex"));
}

function probablePrime(n: bigint, random: (n: number) => Uint8Array, bytes: number): boolean {
  for (const p of SMALL_PRIMES) if (n % p === 0n) return n === p;
  let d = n - 1n;
  let r = 0;
  while ((d & 1n) === 0n) {
    d >>= 1n;
    r++;
  }
  for (let i = 0; i < 24; i++) {
    const a = 2n + (toBig(random(bytes)) % (n - 3n));
    let x = modPow(a, d, n);
    if (x === 1n || x === n - 1n) continue;
    let composite = true;
    for (let j = 1; j < r && composite; j++) {
      x = (x * x) % n;
      if (x === n - 1n) composite = false;
    }
    if (composite) return false;
  }
  return true;
}

function primeOf(bits: number, e: bigint, random: (n: number) => Uint8Array): bigint {
  const bytes = Math.ceil(bits / 8);
  const top = 1n << BigInt(bits - 1);
  for (;;) {
    // The two top bits set, so that the product has exactly the bits asked for; odd.
    const c = (toBig(random(bytes)) & ((1n << BigInt(bits)) - 1n)) | top | (top >> 1n) | 1n;
    if (gcd(e, c - 1n) === 1n && probablePrime(c, random, bytes)) return c;
  }
}

/**
 * A key pair drawn from the given random source (BigInt arithmetic, Miller–Rabin): what a simulator with an injected,
 * seeded random source uses, so that its whole run repeats. The same refusals as `generateRsa`. Slow for large moduli
 * (a 2048-bit pair takes seconds); the default simulator uses node's generator.
 */
export function generateRsaFrom(bits: number, exponent: Uint8Array, random: (n: number) => Uint8Array): RsaComponents | null {
  if (!Number.isSafeInteger(bits) || bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) return null;
  const e = exponentOf(exponent);
  if (e === null) return null;
  const pBits = Math.ceil(bits / 2);
  for (;;) {
    const p = primeOf(pBits, e, random);
    const q = primeOf(bits - pBits, e, random);
    if (p === q) continue;
    const [big, small] = p > q ? [p, q] : [q, p];
    const phi = (big - 1n) * (small - 1n);
    const d = modInverse(e, phi);
    return {
      n: toBytes(big * small),
      e: toBytes(e),
      d: toBytes(d),
      p: toBytes(big),
      q: toBytes(small),
      dp: toBytes(d % (big - 1n)),
      dq: toBytes(d % (small - 1n)),
      qi: toBytes(modInverse(small, big)),
    };
  }
}

export function privateKeyObject(c: RsaComponents): KeyObject {
  return createPrivateKey({
    format: "jwk",
    key: { kty: "RSA", n: b64u(c.n), e: b64u(c.e), d: b64u(c.d), p: b64u(c.p), q: b64u(c.q), dp: b64u(c.dp), dq: b64u(c.dq), qi: b64u(c.qi) },
  });
}

export function publicKeyObject(c: RsaPublic): KeyObject {
  return createPublicKey({ format: "jwk", key: { kty: "RSA", n: b64u(stripZeros(c.n)), e: b64u(stripZeros(c.e)) } });
}

/** The modulus length in bytes (SoftHSM's getOutputLength: the size of every signature and ciphertext). */
export const modulusBytes = (c: RsaPublic) => stripZeros(c.n).length;

/** The hash each CKM_*_RSA_PKCS signs with (CKM_RSA_PKCS: none, the data is signed as it is). */
export const RSA_SIGN_HASH: ReadonlyMap<number, string | null> = new Map([
  [0x1, null], // CKM_RSA_PKCS
  [0x6, "sha1"], // CKM_SHA1_RSA_PKCS
  [0x46, "sha224"], // CKM_SHA224_RSA_PKCS
  [0x40, "sha256"], // CKM_SHA256_RSA_PKCS
  [0x41, "sha384"], // CKM_SHA384_RSA_PKCS
  [0x42, "sha512"], // CKM_SHA512_RSA_PKCS
]);

/** A PKCS#1 v1.5 signature, or null when the data does not fit (CKM_RSA_PKCS: more than k − 11 bytes). */
export function pkcs1Sign(key: KeyObject, k: number, hash: string | null, data: Uint8Array): Uint8Array | null {
  if (hash !== null) return new Uint8Array(sign(hash, data, { key, padding: constants.RSA_PKCS1_PADDING }));
  if (data.length > k - 11) return null;
  return new Uint8Array(privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, data));
}

/** PKCS#1 v1.5's DigestInfo prefix for each hash (RFC 8017 §9.2 note 1). */
const DIGEST_INFO: Readonly<Record<string, string>> = {
  sha1: "3021300906052b0e03021a05000414",
  sha224: "302d300d06096086480165030402040500041c",
  sha256: "3031300d060960864801650304020105000420",
  sha384: "3041300d060960864801650304020205000430",
  sha512: "3051300d060960864801650304020305000440",
};

/** The signed block of a hash computed elsewhere (a multi-part signature): DigestInfo ‖ hash. */
export function digestInfo(hash: string, digest: Uint8Array): Uint8Array {
  return new Uint8Array(Buffer.concat([Buffer.from(DIGEST_INFO[hash]!, "hex"), digest]));
}

/** Whether a PKCS#1 v1.5 signature of the data verifies under the public key. */
export function pkcs1Verify(key: KeyObject, hash: string | null, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    if (hash !== null) return verify(hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
    const recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
    return Buffer.compare(recovered, Buffer.from(data)) === 0;
  } catch {
    return false;
  }
}

/**
 * PKCS#1 v1.5 encryption (type 2) with the padding bytes given: `pad` supplies at least k − 3 − data.length random
 * bytes, of which the nonzero ones are used. Null when the data is longer than k − 11.
 */
export function pkcs1Encrypt(key: KeyObject, k: number, data: Uint8Array, pad: Uint8Array): Uint8Array | null {
  if (data.length > k - 11) return null;
  const em = new Uint8Array(k);
  em[1] = 2;
  const need = k - 3 - data.length;
  let j = 0;
  for (let i = 0; i < need; i++) {
    while (j < pad.length && pad[j] === 0) j++;
    em[2 + i] = j < pad.length ? pad[j++] : 1 + (i % 255);
  }
  em[2 + need] = 0;
  em.set(data, 3 + need);
  return new Uint8Array(publicEncrypt({ key, padding: constants.RSA_NO_PADDING }, em));
}

/** PKCS#1 v1.5 decryption: the plaintext, or null (wrong length, a value not below the modulus, bad padding). */
export function pkcs1Decrypt(key: KeyObject, k: number, ct: Uint8Array): Uint8Array | null {
  if (ct.length !== k) return null;
  let em: Uint8Array;
  try {
    em = new Uint8Array(privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, ct));
  } catch {
    return null;
  }
  if (em[0] !== 0 || em[1] !== 2) return null;
  const sep = em.indexOf(0, 2);
  if (sep < 10) return null;
  return em.slice(sep + 1);
}

/** Key material as bytes for a sealed fact, and back (JSON of hex fields; a public key has n and e only). */
export function encodeRsaKey(c: RsaPublic | RsaComponents): Uint8Array {
  const o: Record<string, string> = {};
  for (const [k, v] of Object.entries(c)) o[k] = Buffer.from(v as Uint8Array).toString("hex");
  return new TextEncoder().encode(JSON.stringify(o));
}

export function decodeRsaKey(b: Uint8Array): RsaPublic | RsaComponents | null {
  try {
    const o = JSON.parse(new TextDecoder().decode(b)) as Record<string, string>;
    const out: Record<string, Uint8Array> = {};
    for (const [k, v] of Object.entries(o)) out[k] = new Uint8Array(Buffer.from(v, "hex"));
    return out.n && out.e ? (out as unknown as RsaPublic) : null;
  } catch {
    return null;
  }
}

export const isPrivateComponents = (c: RsaPublic | RsaComponents): c is RsaComponents => "d" in c;
