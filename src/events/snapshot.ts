/**
 * State snapshots: the simulator's whole state at a sequence, sealed, so that a simulator on a reopened store starts
 * from the newest one and replays only the records after it (issue 5: a large store opens fast). The store decides
 * when and where they are written (the file store: every `snapshotEvery` records and at close, see file-store.ts);
 * this module decides what they hold and how they are sealed and opened.
 *
 * What a snapshot holds: `{ seq, head, state, read }`: the write model (src/model/state.ts: tokens, PIN verifiers,
 * objects, applications, slots, sessions and their operations, handles, caches), the read model
 * (src/projections/read-model.ts), the sequence it is the state of and the chain hash of that record. It is walked
 * by the generic codec (snapshot-codec.ts), so fields added to either model later are carried without an edit here;
 * a value it cannot carry makes the snapshot fail (a warning, and no snapshot) rather than be written without it.
 * Class instances in the state, and how each is carried:
 * - SlotActor (the slot chart and its session charts, XState actors): as XState's persisted snapshots of the charts
 *   (`getPersistedSnapshot`), restored with `createActor(machine, { snapshot })`. Persisted snapshots are XState's
 *   own contract for this, and they carry whatever the charts hold (state value, context), where rebuilding a
 *   chart by sending it events would have to know which events lead to each state.
 * - ReadModel: its own fields, restored on its prototype.
 * Operations in progress are plain data in the write model (their mechanism states: chaining words, pending bytes),
 * so they need nothing of their own.
 *
 * Sealing: the JSON text of the encoded value is sealed with XChaCha20-Poly1305 under the simulator key's
 * `snapshot` key (crypto/keys.ts, HKDF), a fresh random 24-byte nonce (node:crypto: a snapshot is the shell's work
 * and must not draw from the simulator's own random source, whose draws are behaviour), and the sequence and chain
 * head as associated data. The state holds secrets (PIN verifiers, key material), so a snapshot is as secret as the
 * simulator key. Without that key, or with another store's, a snapshot does not open and the log is replayed from
 * its start.
 *
 * Body: "hsmsim-snapshot 1\n" || nonce(24) || ciphertext || tag(16); AAD "hsmsim-snapshot 1 <seq> <head>". The
 * plaintext: the JSON text's length (4 bytes, big-endian), the JSON text of the encoded tree, and the contents of the
 * tree's byte arrays (attribute values, key material) one after another, kept out of the JSON (no base64 either way).
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { hchacha } from "@noble/ciphers/chacha.js";
import { SlotActor, type SlotActorImage } from "../actors/slot-actor.js";
import { ReadModel } from "../projections/read-model.js";
import type { SimState } from "../model/state.js";
import { RecordedObject } from "../model/evolve.js";
import { DeferredDigest } from "../model/operations.js";
import type { SnapshotHost } from "./store.js";
import { SnapshotFormatError, ValueCodec, type ClassCodec } from "./snapshot-codec.js";

const MAGIC = "hsmsim-snapshot 1\n";
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** The state a snapshot holds. */
export interface SimImage {
  seq: number;
  state: SimState;
  read: ReadModel;
}

const slotActorCodec: ClassCodec<SlotActor> = {
  name: "SlotActor",
  type: SlotActor,
  encode: (v) => v.persist(),
  decode(data) {
    const image = data as SlotActorImage;
    const context = (image.slot as { context?: { logoutRequiresLogin?: unknown } }).context;
    if (typeof context?.logoutRequiresLogin !== "boolean") throw new SnapshotFormatError("snapshot body: a slot chart without its context");
    return new SlotActor(context.logoutRequiresLogin, image);
  },
};

/**
 * A replay's lazy values (model/evolve.ts RecordedObject, model/operations.ts DeferredDigest) go as the plain objects
 * an eager replay builds, and come back as those: reading them for the snapshot builds what they had put off.
 */
const recordedObjectCodec: ClassCodec<RecordedObject> = {
  name: "RecordedObject",
  type: RecordedObject,
  encode: (v) => v.plain(),
  decode: (data) => data as object,
};
const deferredDigestCodec: ClassCodec<DeferredDigest> = {
  name: "DeferredDigest",
  type: DeferredDigest,
  encode: (v) => v.plain(),
  decode: (data) => data as object,
};

/** The codec of the simulator's state: the generic walk and the classes above. */
export const STATE_CODEC = new ValueCodec()
  .register(slotActorCodec)
  .register(recordedObjectCodec)
  .register(deferredDigestCodec)
  .registerFields("ReadModel", ReadModel);

const aad = (seq: number, head: string) => utf8.encode(`hsmsim-snapshot 1 ${seq} ${head}`);

/**
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §2.3): the subkey is HChaCha20(key, nonce[0..16]) (@noble/ciphers'
 * hchacha), then ChaCha20-Poly1305 (RFC 8439) under it with the nonce 0^4 || nonce[16..24], run by node:crypto
 * (OpenSSL). Byte for byte what @noble/ciphers' xchacha20poly1305 gives (test/unit/snapshot-seal.spec.ts), at
 * OpenSSL's speed: a snapshot is megabytes, where noble's pure-JS stream takes ~50 ms per MiB (more in a cold
 * process: opening a store is one).
 */
export function xchachaSeal(key: Uint8Array, nonce: Uint8Array, data: Uint8Array, ad: Uint8Array): Uint8Array {
  const c = createCipheriv("chacha20-poly1305", subkey(key, nonce), innerNonce(nonce), { authTagLength: 16 });
  c.setAAD(ad, { plaintextLength: data.length });
  return Buffer.concat([c.update(data), c.final(), c.getAuthTag()]);
}

/** Opens what xchachaSeal sealed; throws when the tag does not verify. */
export function xchachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array {
  if (sealed.length < 16) throw new RangeError("sealed data shorter than its tag");
  const d = createDecipheriv("chacha20-poly1305", subkey(key, nonce), innerNonce(nonce), { authTagLength: 16 });
  d.setAAD(ad, { plaintextLength: sealed.length - 16 });
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
}

const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]); // "expand 32-byte k"

function words(b: Uint8Array): Uint32Array {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const w = new Uint32Array(b.length / 4);
  for (let i = 0; i < w.length; i++) w[i] = v.getUint32(i * 4, true);
  return w;
}

function subkey(key: Uint8Array, nonce: Uint8Array): Buffer {
  if (key.length !== 32 || nonce.length !== 24) throw new RangeError("XChaCha20-Poly1305 takes a 32-byte key and a 24-byte nonce");
  const out = new Uint32Array(8);
  hchacha(SIGMA, words(key), words(nonce.subarray(0, 16)), out);
  const b = Buffer.alloc(32);
  for (let i = 0; i < 8; i++) b.writeUInt32LE(out[i]!, i * 4);
  return b;
}

const innerNonce = (nonce: Uint8Array) => Buffer.concat([Buffer.alloc(4), nonce.subarray(16, 24)]);

/** Seal the state as of `image.seq` (whose chain hash is `head`). Throws UnsnapshotableError for a value it cannot carry. */
export function sealSnapshot(key: Uint8Array, image: SimImage, head: string): Uint8Array {
  const { tree, bytes } = STATE_CODEC.encode({ seq: image.seq, head, state: image.state, read: image.read });
  // Plaintext: the tree's JSON length (4 bytes, big-endian), the JSON, then the byte arrays' contents.
  const text = Buffer.from(JSON.stringify(tree), "utf8");
  const plain = Buffer.concat([Buffer.alloc(4), text, ...bytes]);
  plain.writeUInt32BE(text.length, 0);
  const nonce = new Uint8Array(randomBytes(24));
  const sealed = xchachaSeal(key, nonce, plain, aad(image.seq, head));
  const magic = utf8.encode(MAGIC);
  const out = new Uint8Array(magic.length + 24 + sealed.length);
  out.set(magic, 0);
  out.set(nonce, magic.length);
  out.set(sealed, magic.length + 24);
  return out;
}

/** Open a sealed snapshot of `seq` / `head`. Throws when it does not open under `key` or does not decode. */
export function openSnapshot(key: Uint8Array, body: Uint8Array, seq: number, head: string): SimImage {
  const magic = utf8.encode(MAGIC);
  if (body.length < magic.length + 24 + 16 || !magic.every((b, i) => body[i] === b)) throw new SnapshotFormatError("not an hsmsim snapshot (version 1)");
  const nonce = body.subarray(magic.length, magic.length + 24);
  let plain: Uint8Array;
  try {
    plain = xchachaOpen(key, nonce, body.subarray(magic.length + 24), aad(seq, head));
  } catch (cause) {
    throw new SnapshotFormatError("it does not open under this simulator key (another store's, or damaged)", { cause });
  }
  const textLength = new DataView(plain.buffer, plain.byteOffset, plain.byteLength).getUint32(0);
  if (4 + textLength > plain.length) throw new SnapshotFormatError("its body is cut short");
  const tree = JSON.parse(fromUtf8.decode(plain.subarray(4, 4 + textLength))) as unknown;
  const v = STATE_CODEC.decode(tree, plain.subarray(4 + textLength)) as { seq: number; head: string; state: SimState; read: ReadModel };
  if (v.seq !== seq || v.head !== head) throw new SnapshotFormatError(`it holds seq ${v.seq}, not ${seq}`);
  if (!(v.read instanceof ReadModel) || typeof v.state !== "object" || v.state === null || !(v.state.tokens instanceof Map)) {
    throw new SnapshotFormatError("its body is not a simulator state");
  }
  return { seq, state: v.state, read: v.read };
}

/**
 * The newest snapshot in `host` that opens under `key` and was written under the same profile and slots as `fresh`
 * (a new simulator's empty state), or undefined: the caller then replays from the first record. Each one passed over
 * is a warning, so a fallback is never silent.
 */
export function restoreSnapshot(host: SnapshotHost, key: Uint8Array, fresh: SimState): SimImage | undefined {
  let skipped = 0;
  for (const c of host.candidates()) {
    try {
      const image = openSnapshot(key, c.body(), c.seq, c.head);
      const why = mismatch(image.state, fresh);
      if (why) throw new SnapshotFormatError(why);
      // One profile object, the simulator's own, as a new simulator has.
      image.state.profile = fresh.profile;
      (image.read as { profile: unknown }).profile = fresh.profile;
      if (skipped > 0) host.warn(`hsmsim: restored the older snapshot ${c.name} (seq ${c.seq}) instead`);
      return image;
    } catch (e) {
      skipped++;
      host.warn(`hsmsim: snapshot ${c.name} (seq ${c.seq}) is not usable: ${(e as Error).message}`);
    }
  }
  if (skipped > 0) host.warn("hsmsim: no usable snapshot: replaying the log from its first record");
  return undefined;
}

function mismatch(s: SimState, fresh: SimState): string | undefined {
  if (JSON.stringify(s.profile) !== JSON.stringify(fresh.profile)) return `it was written under other profile settings (${s.profile?.name})`;
  if (JSON.stringify(s.fixedSlots) !== JSON.stringify(fresh.fixedSlots)) return "it was written with another number of slots";
  return undefined;
}

/**
 * The capture a simulator attaches to its store: its state sealed, when that state is the one of `seq`: when the read
 * model, the last thing a call updates, has folded record `seq` in. (A call whose evolve threw half-way left it
 * behind: no snapshot is taken of such a state.)
 */
export function snapshotCapture(key: Uint8Array, models: () => Omit<SimImage, "seq">): (seq: number, head: string) => Uint8Array | undefined {
  return (seq, head) => {
    const { state, read } = models();
    if (read.position !== seq) return undefined;
    return sealSnapshot(key, { seq, state, read }, head);
  };
}
