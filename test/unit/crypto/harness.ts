/**
 * Shared helpers for the mechanism tests: both engines by name, hex in and out, and a driver that runs a multi-part
 * operation over given parts, optionally sending the state through JSON and `parseState` between parts (what
 * C_GetOperationState / C_SetOperationState will do), and checking the announced output sizes on the way.
 */
import { expect } from "vitest";
import { NOBLE_ENGINES, NODE_ENGINES, type Engines } from "../../../src/crypto/mechanisms/engines.js";
import type { CipherStream, DigestStream, Failure, MacStream } from "../../../src/crypto/mechanisms/types.js";

export const ENGINES: readonly [string, Engines][] = [
  ["node", NODE_ENGINES],
  ["noble", NOBLE_ENGINES],
];

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
export const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"));

/** Split `data` at the given offsets (clamped and sorted): every part, empty ones included, is fed to update. */
export function splitAt(data: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...cuts.map((c) => Math.max(0, Math.min(data.length, c))), data.length].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const p of points) {
    parts.push(data.subarray(at, p));
    at = p;
  }
  return parts;
}

/** Through JSON and back through the module's own check, as a saved operation state would travel. */
export function travel<S>(parseState: (x: unknown) => S | undefined, state: S): S {
  const back = parseState(JSON.parse(JSON.stringify(state)));
  expect(back, "a state must survive JSON and parseState").toEqual(state);
  return back!;
}

export type CipherRun = { ok: true; out: string; outs: string[] } | Failure;

/** init → update per part → final. `save` true sends the state through JSON between every two steps. */
export function runCipher<P, S>(
  stream: CipherStream<P, S>,
  key: Uint8Array,
  params: P,
  parts: readonly Uint8Array[],
  save = false,
): CipherRun {
  const init = stream.init(key, params);
  if (!init.ok) return init;
  let state = init.state;
  const outs: string[] = [];
  for (const part of parts) {
    if (save) state = travel(stream.parseState, state);
    const expected = stream.updateLength(state, part.length);
    const r = stream.update(key, state, part);
    if (!r.ok) return r;
    expect(r.out.length, "updateLength").toBe(expected);
    outs.push(hex(r.out));
    state = r.state;
  }
  if (save) state = travel(stream.parseState, state);
  const bound = stream.finalLength(state);
  const f = stream.final(key, state);
  if (!f.ok) return f;
  expect(f.out.length, "finalLength is an upper bound").toBeLessThanOrEqual(bound);
  outs.push(hex(f.out));
  return { ok: true, out: outs.join(""), outs };
}

export function runDigest<S>(stream: DigestStream<S>, parts: readonly Uint8Array[], save = false): string {
  let state = stream.init();
  for (const part of parts) {
    if (save) state = travel(stream.parseState, state);
    state = stream.update(state, part);
  }
  if (save) state = travel(stream.parseState, state);
  return hex(stream.final(state));
}

export function runMac<P, S>(
  stream: MacStream<P, S>,
  key: Uint8Array,
  params: P,
  parts: readonly Uint8Array[],
  save = false,
): string | Failure {
  const init = stream.init(key, params);
  if (!init.ok) return init;
  let state = init.state;
  for (const part of parts) {
    if (save) state = travel(stream.parseState, state);
    state = stream.update(state, part);
  }
  if (save) state = travel(stream.parseState, state);
  return hex(stream.final(key, state));
}

/** The value of an Outcome that must have succeeded. */
export function ok<T extends object>(r: ({ ok: true } & T) | Failure): T {
  if (!r.ok) throw new Error(`expected success, got ${r.rv} (${r.reason})`);
  return r;
}
