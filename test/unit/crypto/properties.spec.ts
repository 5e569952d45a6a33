/**
 * Properties of every mechanism in the registry (src/crypto/mechanisms/index.ts), with fast-check:
 *
 * - multi-part equals single-part for any split of the input, the rejections included (a CTR counter that runs out,
 *   a bad pad, a failed tag: the same rv, single- or multi-part);
 * - a state saved (through JSON and `parseState`) at any step and resumed finishes with the same output as an
 *   uninterrupted run;
 * - node and noble agree: single-part outputs are equal, and a run may switch engines at every step, since the state
 *   is the same plain data whichever engine produced it;
 * - and, exhaustively for one input per mechanism, every way of cutting it into two and three parts.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { aesKeyWrap, aesKeyWrapPad } from "../../../src/crypto/mechanisms/aes-wrap.js";
import { NOBLE_ENGINES, NODE_ENGINES, nobleAes, nodeAes } from "../../../src/crypto/mechanisms/engines.js";
import { createMechanisms, type MechanismEntry, type ParamKind } from "../../../src/crypto/mechanisms/index.js";
import type { CipherStream, Failure } from "../../../src/crypto/mechanisms/types.js";
import { hex, splitAt, travel } from "./harness.js";

const NODE = createMechanisms(NODE_ENGINES);
const NOBLE = createMechanisms(NOBLE_ENGINES);
const entries = [...NODE.values()];
const byFamily = <F extends MechanismEntry["family"]>(f: F) =>
  entries.filter((e): e is Extract<MechanismEntry, { family: F }> => e.family === f);
const noble = <E extends MechanismEntry>(e: E) => NOBLE.get(e.mechanism) as E;

const RUNS = { numRuns: 60 };

/** Lengths drawn uniformly: fast-check's default sizing would keep arrays to a few bytes, never past a block. */
const bytesOf = (min: number, max: number) =>
  fc.integer({ min, max }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));
const aesKey = fc.constantFrom(16, 24, 32).chain((n) => bytesOf(n, n));
const cuts = fc.array(fc.nat({ max: 260 }), { maxLength: 6 });

function paramsFor(kind: ParamKind): fc.Arbitrary<unknown> {
  switch (kind) {
    case "none":
      return fc.constant(undefined);
    case "iv":
      return bytesOf(16, 16).map((iv) => ({ iv }));
    case "ctr":
      // Small counter widths run out inside the input now and then: the rejection must match too.
      return fc.record({ counterBits: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 9, max: 128 })), cb: bytesOf(16, 16) });
    case "gcm":
      return fc.record({ iv: bytesOf(1, 40), aad: bytesOf(0, 40), tagBits: fc.constantFrom(0, 8, 32, 96, 104, 120, 128) });
    case "mac-length":
      return fc.nat({ max: 63 }).map((n) => ({ macLength: n + 1 }));
  }
}

/** ECB and CBC take whole blocks only: trim the input so the runs succeed (the length rules have their own tests). */
const aligned = (e: MechanismEntry) => e.name === "CKM_AES_ECB" || e.name === "CKM_AES_CBC";

type Outcome = { ok: true; out: string } | Pick<Failure, "ok" | "rv">;
const result = (r: { ok: true; out: Uint8Array } | Failure): Outcome => (r.ok ? { ok: true, out: hex(r.out) } : { ok: false, rv: r.rv });

/**
 * init → update per part → final, taking each step's stream from `pick` (node or noble) and sending the state
 * through JSON where `save` says.
 */
function run(
  pick: (step: number) => CipherStream<unknown, unknown>,
  save: (step: number) => boolean,
  key: Uint8Array,
  params: unknown,
  parts: Uint8Array[],
): Outcome {
  const init = pick(0).init(key, params);
  if (!init.ok) return { ok: false, rv: init.rv };
  let state = init.state;
  const outs: string[] = [];
  for (let i = 0; i <= parts.length; i++) {
    const s = pick(i + 1);
    if (save(i)) state = travel(s.parseState, state);
    if (i === parts.length) {
      const f = s.final(key, state);
      return f.ok ? { ok: true, out: outs.join("") + hex(f.out) } : { ok: false, rv: f.rv };
    }
    const u = s.update(key, state, parts[i]!);
    if (!u.ok) return { ok: false, rv: u.rv };
    outs.push(hex(u.out));
    state = u.state;
  }
  throw new Error("unreachable");
}

describe.each(byFamily("cipher"))("$name", (entry) => {
  const nobleEntry = noble(entry);
  const input = fc.tuple(aesKey, paramsFor(entry.param), bytesOf(0, 250), fc.boolean()).map(([key, params, raw, valid]) => {
    const data = aligned(entry) ? raw.subarray(0, raw.length - (raw.length % 16)) : raw;
    return { key, params, data, valid };
  });

  for (const direction of ["encrypt", "decrypt"] as const) {
    const nodeStream = entry.cipher[direction];
    const nobleStream = nobleEntry.cipher[direction];
    /** Decryption mostly gets a real ciphertext, sometimes the raw bytes (bad pads and tags). */
    const inputOf = (key: Uint8Array, params: unknown, data: Uint8Array, valid: boolean) => {
      if (direction === "encrypt" || !valid) return data;
      const enc = entry.cipher.encrypt.once(key, params, data);
      return enc.ok ? enc.out : data;
    };

    it(`${direction}: multi-part equals single-part, any split, rejections included`, () => {
      fc.assert(
        fc.property(input, cuts, ({ key, params, data, valid }, c) => {
          const m = inputOf(key, params, data, valid);
          const once = result(nodeStream.once(key, params, m));
          expect(run(() => nodeStream, () => false, key, params, splitAt(m, c))).toEqual(once);
        }),
        RUNS,
      );
    });

    it(`${direction}: a state saved at any step and restored finishes the same`, () => {
      fc.assert(
        fc.property(input, cuts, fc.array(fc.boolean(), { maxLength: 8 }), ({ key, params, data, valid }, c, saves) => {
          const m = inputOf(key, params, data, valid);
          const parts = splitAt(m, c);
          const straight = run(() => nodeStream, () => false, key, params, parts);
          expect(run(() => nodeStream, (i) => saves[i] ?? false, key, params, parts)).toEqual(straight);
        }),
        RUNS,
      );
    });

    it(`${direction}: node and noble agree, even switching engine at every step`, () => {
      fc.assert(
        fc.property(input, cuts, fc.array(fc.boolean(), { maxLength: 9 }), ({ key, params, data, valid }, c, engines) => {
          const m = inputOf(key, params, data, valid);
          const once = result(nodeStream.once(key, params, m));
          expect(result(nobleStream.once(key, params, m))).toEqual(once);
          const pick = (i: number) => ((engines[i] ?? false) ? nobleStream : nodeStream);
          expect(run(pick, (i) => i % 2 === 0, key, params, splitAt(m, c))).toEqual(once);
        }),
        RUNS,
      );
    });
  }

  it("every cut into two and three parts of one input, both directions", () => {
    const key = new Uint8Array(16).map((_, i) => i * 17);
    const params = fc.sample(paramsFor(entry.param), { numRuns: 1, seed: 42 })[0];
    const fixed = entry.param === "ctr" ? { counterBits: 128, cb: new Uint8Array(16).fill(9) } : params;
    const fixedGcm = entry.param === "gcm" ? { iv: new Uint8Array(12).fill(3), aad: new Uint8Array(5), tagBits: 128 } : fixed;
    const data = new Uint8Array(aligned(entry) ? 48 : 41).map((_, i) => i);
    for (const direction of ["encrypt", "decrypt"] as const) {
      const stream = entry.cipher[direction];
      const m = direction === "encrypt" ? data : (entry.cipher.encrypt.once(key, fixedGcm, data) as { out: Uint8Array }).out;
      const once = result(stream.once(key, fixedGcm, m));
      expect(once.ok).toBe(true);
      for (let a = 0; a <= m.length; a++) {
        expect(run(() => stream, () => false, key, fixedGcm, splitAt(m, [a]))).toEqual(once);
        for (let b = a; b <= m.length; b++) {
          expect(run(() => stream, (i) => i === 1, key, fixedGcm, splitAt(m, [a, b]))).toEqual(once);
        }
      }
    }
  });
});

describe.each(byFamily("digest"))("$name", (entry) => {
  const nobleDigest = noble(entry).digest;
  it("multi-part (saved at random steps, either engine) equals single-part on both engines", () => {
    fc.assert(
      fc.property(bytesOf(0, 400), cuts, fc.array(fc.boolean(), { maxLength: 8 }), (data, c, saves) => {
        const d = entry.digest;
        const once = hex(d.once(data));
        expect(hex(nobleDigest.once(data))).toBe(once);
        let state = d.init();
        splitAt(data, c).forEach((part, i) => {
          if (saves[i]) state = travel(d.parseState, state);
          state = (i % 2 ? nobleDigest : d).update(state, part);
        });
        expect(hex(d.final(travel(d.parseState, state)))).toBe(once);
      }),
      RUNS,
    );
  });
});

describe.each(byFamily("mac"))("$name", (entry) => {
  const nobleMac = noble(entry).mac;
  const size = entry.info.minKeySize;
  it("multi-part (saved at random steps) equals single-part; node and noble agree; verify accepts it", () => {
    fc.assert(
      fc.property(bytesOf(size, 200), paramsFor(entry.param), bytesOf(0, 300), cuts, fc.array(fc.boolean(), { maxLength: 8 }), (key, params, data, c, saves) => {
        const mac = entry.mac;
        const p = params as { macLength: number } | undefined;
        const once = mac.once(key, p, data);
        expect(result(nobleMac.once(key, p, data))).toEqual(result(once));
        if (!once.ok) {
          expect(once.rv).toBe("CKR_MECHANISM_PARAM_INVALID"); // _GENERAL with a length over the hash size
          return;
        }
        let state = (mac.init(key, p) as { state: unknown }).state as Parameters<typeof mac.update>[0];
        splitAt(data, c).forEach((part, i) => {
          if (saves[i]) state = travel(mac.parseState, state);
          state = (i % 2 ? nobleMac : mac).update(state, part);
        });
        expect(hex(mac.final(key, state))).toBe(hex(once.out));
        expect(nobleMac.verifyFinal(key, state, once.out)).toEqual({ ok: true });
      }),
      RUNS,
    );
  });
});

describe("key wrap", () => {
  it("node and noble agree on random keys, KEKs and lengths; unwrap gives back the (zero-padded) key", () => {
    fc.assert(
      fc.property(aesKey, bytesOf(0, 80), fc.boolean(), (kek, value, zeroPad) => {
        for (const make of [aesKeyWrap, aesKeyWrapPad]) {
          const a = make(nodeAes, { zeroPad }).wrap(kek, value);
          const b = make(nobleAes, { zeroPad }).wrap(kek, value);
          expect(result(b)).toEqual(result(a));
          if (!a.ok) continue;
          const back = make(nobleAes, { zeroPad }).unwrap(kek, a.out);
          const expected = zeroPad ? hex(value).padEnd(Math.ceil(value.length / 8) * 16, "0") : hex(value);
          expect(result(back)).toEqual({ ok: true, out: expected });
        }
      }),
      { numRuns: 200 },
    );
  });
});
