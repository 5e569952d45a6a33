/**
 * Signed checkpoints: what closes the one gap a hash chain leaves open. A chain shows any record changed, dropped,
 * inserted or reordered, but a log cut short is still a valid chain; so every N records (and at close) the file store
 * signs `(seq, head, time)` with an Ed25519 audit key and appends it to `checkpoints.log` in the store directory, one
 * JSON line each:
 *
 *   {"seq":1000,"head":"<the chain hash of entry 1000>","time":"2026-11-26T19:30:00.000Z","sig":"<128 hex>"}
 *   sig = Ed25519(audit secret key, "hsmsim checkpoint v1\n" + canonicalJson({ head, seq, time }))
 *
 * A verifier needs the log, the checkpoints and the public key (32 bytes, hex): a log whose hash at a checkpoint's
 * sequence is not the signed head, or that ends before the last signed sequence, was changed after it was signed.
 *
 * The audit key is not the simulator key (which keys PIN verifiers and sealed values): it only signs, and its public
 * half is all an auditor gets. It is given to the store as an option (kept wherever the operator keeps secrets), or
 * made on first use and kept in `audit-key.json` (mode 0600) in the store directory; either way its public key is
 * written to `audit.pub`. A key kept beside the log proves nothing against whoever can write the directory: such an
 * auditor should verify with a copy of `audit.pub` taken earlier (`--pubkey`), not the one in the directory.
 */
import fs from "node:fs";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { bytesToHex, hexToBytes } from "../crypto/encoding.js";
import { canonicalJson } from "./chain.js";

export const CHECKPOINTS = "checkpoints.log";
export const AUDIT_KEY = "audit-key.json";
export const AUDIT_PUB = "audit.pub";

const DOMAIN = "hsmsim checkpoint v1\n";
const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;
const utf8 = new TextEncoder();

export interface Checkpoint {
  seq: number;
  /** The chain hash of entry `seq` (chain.ts): it commits to the log up to there. */
  head: string;
  /** When it was signed (ISO time). */
  time: string;
  /** Ed25519 signature, hex. */
  sig: string;
}

export interface AuditKey {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

function message(c: Pick<Checkpoint, "seq" | "head" | "time">): Uint8Array {
  return utf8.encode(DOMAIN + canonicalJson({ head: c.head, seq: c.seq, time: c.time }));
}

/** Sign a checkpoint. */
export function signCheckpoint(key: AuditKey, seq: number, head: string, time: string): Checkpoint {
  return { seq, head, time, sig: bytesToHex(ed25519.sign(message({ seq, head, time }), key.secretKey)) };
}

/** The checkpoint line (without its newline). */
export function checkpointLine(c: Checkpoint): string {
  return JSON.stringify({ seq: c.seq, head: c.head, time: c.time, sig: c.sig });
}

/** Why a parsed checkpoint line is not a well-formed checkpoint, or undefined. */
export function checkpointShapeProblem(c: unknown): string | undefined {
  if (c === null || typeof c !== "object" || Array.isArray(c)) return "not a JSON object";
  const { seq, head, time, sig } = c as Record<string, unknown>;
  if (!Number.isSafeInteger(seq) || (seq as number) < 1) return "seq is not a positive integer";
  if (typeof head !== "string" || !HEX64.test(head)) return "head is not 64 hex digits";
  if (typeof time !== "string") return "time is not a string";
  if (typeof sig !== "string" || !HEX128.test(sig)) return "sig is not 128 hex digits";
  return undefined;
}

/** Whether the checkpoint's signature verifies under `publicKey`. */
export function checkpointSignatureValid(c: Checkpoint, publicKey: Uint8Array): boolean {
  try {
    return ed25519.verify(hexToBytes(c.sig), message(c), publicKey);
  } catch {
    return false;
  }
}

/** A public key given as 64 hex digits, or as a file holding them. Throws RangeError saying which. */
export function parsePublicKey(given: string): Uint8Array {
  const text = given.trim().toLowerCase();
  if (HEX64.test(text)) return hexToBytes(text);
  let contents: string;
  try {
    contents = fs.readFileSync(given, "utf8");
  } catch {
    throw new RangeError(`"${given}" is neither 64 hex digits (an Ed25519 public key) nor a readable file`);
  }
  const hex = contents.trim().toLowerCase();
  if (!HEX64.test(hex)) throw new RangeError(`${given} does not hold an Ed25519 public key (64 hex digits)`);
  return hexToBytes(hex);
}

/** A secret key given as bytes or hex (32 bytes). */
export function auditKeyFrom(secret: Uint8Array | string): AuditKey {
  const secretKey = typeof secret === "string" ? (HEX64.test(secret.trim().toLowerCase()) ? hexToBytes(secret.trim().toLowerCase()) : undefined) : secret;
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== 32) throw new RangeError(`"auditKey" expected 32 bytes (or 64 hex digits)`);
  return { secretKey, publicKey: ed25519.getPublicKey(secretKey) };
}

/**
 * The store's audit key: `given`, or the one in `audit-key.json`, or a new one written there (mode 0600). Writes
 * `audit.pub` when missing; a given key whose public half differs from an existing `audit.pub` is a RangeError (the
 * checkpoints already there were signed with that other key).
 */
export function loadAuditKey(dir: string, given: Uint8Array | string | undefined, randomSecret: () => Uint8Array, durable: boolean): AuditKey {
  const keyPath = join(dir, AUDIT_KEY);
  const pubPath = join(dir, AUDIT_PUB);
  let key: AuditKey;
  if (given !== undefined) key = auditKeyFrom(given);
  else {
    const text = readText(keyPath);
    if (text !== undefined) {
      let hex: unknown;
      try {
        hex = (JSON.parse(text) as { secretKey?: unknown }).secretKey;
      } catch {
        hex = undefined;
      }
      if (typeof hex !== "string" || !HEX64.test(hex)) throw new RangeError(`hsmsim: ${keyPath} is not a valid audit key file`);
      key = auditKeyFrom(hex);
    } else {
      key = auditKeyFrom(randomSecret());
      writeAtomic(keyPath, JSON.stringify({ secretKey: bytesToHex(key.secretKey), publicKey: bytesToHex(key.publicKey) }, null, 2) + "\n", 0o600, durable);
    }
  }
  const pub = bytesToHex(key.publicKey);
  const existing = readText(pubPath)?.trim();
  if (existing === undefined) writeAtomic(pubPath, pub + "\n", 0o644, durable);
  else if (existing !== pub) {
    throw new RangeError(
      `hsmsim: the audit key does not match ${pubPath} (${existing.slice(0, 16)}…): the checkpoints in ${dir} were signed with ` +
        `another key; use that key, or move checkpoints.log and audit.pub aside to start a new series`,
    );
  }
  return key;
}

/** A file's text, or undefined when it does not exist (any other error is thrown). */
export function readText(path: string): string | undefined {
  try {
    return fs.readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

function writeAtomic(path: string, body: string, mode: number, durable: boolean): void {
  const tmp = path + ".tmp";
  const fd = fs.openSync(tmp, "w", mode);
  try {
    fs.writeFileSync(fd, body);
    if (durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path);
}

export interface CheckpointLine {
  /** 1-based line number in checkpoints.log. */
  line: number;
  /** The parsed checkpoint, or why the line is not one. */
  checkpoint?: Checkpoint;
  problem?: string;
}

/** The lines of a checkpoints file (none when it does not exist). A last line without a newline is `torn`. */
export function readCheckpoints(file: string): { lines: CheckpointLine[]; torn: boolean; tornOffset: number } {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { lines: [], torn: false, tornOffset: 0 };
    throw e;
  }
  // Byte offsets, not string lengths: a damaged line may hold bytes that are not ASCII.
  const end = bytes.lastIndexOf(10) + 1;
  const torn = end < bytes.length;
  const whole = end === 0 ? [] : bytes.toString("utf8", 0, end - 1).split("\n");
  const out: CheckpointLine[] = whole.map((l, i) => {
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      return { line: i + 1, problem: "not valid JSON" };
    }
    const problem = checkpointShapeProblem(v);
    return problem ? { line: i + 1, problem } : { line: i + 1, checkpoint: v as Checkpoint };
  });
  return { lines: out, torn, tornOffset: end };
}
