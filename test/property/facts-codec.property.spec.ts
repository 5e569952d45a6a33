/**
 * The facts cache's binary form (src/events/facts-codec.ts) must give back exactly what the log's JSON gives:
 * `JSON.parse(canonicalJson(v))`, with its keys in the same order, for any JSON value, including what UTF-8 or an
 * object literal cannot carry as they stand (lone surrogates, a key "__proto__"), -0, undefined members and elements,
 * long hex and long text. Blocks carry their own tables, so a block decodes alone after a reset. Any bytes at all
 * decode or fail with FactsCodecError: a damaged block is read from the log, never a crash.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { FactsBlockDecoder, FactsBlockEncoder, FactsCodecError } from "../../src/events/facts-codec.js";
import { canonicalJson } from "../../src/events/chain.js";

/** What the log hands back for `v`: the canonical JSON, parsed. */
const viaJson = (v: unknown): unknown => JSON.parse(canonicalJson(v));

function decodeAll(bytes: Buffer, records: number): unknown[][] {
  const d = new FactsBlockDecoder(bytes, 0, bytes.length);
  const out: unknown[][] = [];
  for (let i = 0; i < records; i++) out.push(d.next());
  expect(d.done).toBe(true);
  return out;
}

const hex = fc.uint8Array({ minLength: 0, maxLength: 80 }).map((b) => Buffer.from(b).toString("hex"));
const text = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary", maxLength: 90 }), // lone surrogates included
  hex,
  hex.map((h) => h.toUpperCase()),
  hex.map((h) => h + "a"), // odd length
  fc.constantFrom("__proto__", "constructor", "toString", "", "0", "10", "9", "a\u0000b", '"}]', "é€😀"),
);
const num = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 53, 2 ** 60, 1e21, 5e-324, -1.5),
);
const { value } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    text,
    num,
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.oneof(tie("value"), fc.constant(undefined)), { maxLength: 5 }),
    fc.dictionary(text, fc.oneof(tie("value"), fc.constant(undefined)), { maxKeys: 6 }),
  ),
}));
/** A fact-like object: a record's facts are objects of a few shapes that repeat. */
const fact = fc.record({ type: fc.constantFrom("SessionOpened", "LoggedIn", "ObjectCreated"), app: fc.nat(5), value }, { requiredKeys: ["type"] });
const records = fc.array(fc.array(fc.oneof(fact, value), { maxLength: 4 }), { minLength: 1, maxLength: 12 });

describe("the facts codec", () => {
  it("decodes what JSON.parse(canonicalJson(...)) gives, keys in the same order, record by record", () => {
    fc.assert(
      fc.property(records, (recs) => {
        const enc = new FactsBlockEncoder();
        for (const r of recs) enc.add(r);
        expect(enc.records).toBe(recs.length);
        const got = decodeAll(Buffer.from(enc.bytes()), recs.length);
        const want = recs.map(viaJson);
        expect(got).toEqual(want);
        // toEqual ignores key order; the text does not.
        expect(JSON.stringify(got)).toBe(JSON.stringify(want));
      }),
      { numRuns: 400 },
    );
  });

  it("a block decodes alone: after reset() the tables start again", () => {
    fc.assert(
      fc.property(records, records, (a, b) => {
        const enc = new FactsBlockEncoder();
        for (const r of a) enc.add(r);
        enc.reset();
        expect(enc.size).toBe(0);
        for (const r of b) enc.add(r);
        expect(JSON.stringify(decodeAll(Buffer.from(enc.bytes()), b.length))).toBe(JSON.stringify(b.map(viaJson)));
      }),
      { numRuns: 100 },
    );
  });

  it("shares strings and shapes within a block: a repeated record costs a few bytes", () => {
    const f = { app: 1, handle: 7, rw: true, slotID: 0, token: "slot0", type: "SessionOpened" };
    const enc = new FactsBlockEncoder();
    enc.add([f]);
    const first = enc.size;
    enc.add([{ ...f, handle: 8 }]);
    expect(enc.size - first).toBeLessThanOrEqual(16);
    expect(first).toBeGreaterThan(50);
  });

  it("refuses what is not JSON, as canonicalJson does, and leaves the block as it was", () => {
    const enc = new FactsBlockEncoder();
    enc.add([{ type: "A", n: 1 }]);
    const before = Buffer.from(enc.bytes());
    for (const bad of [NaN, Infinity, new Uint8Array(2), new Map(), () => 1, 1n, Symbol("s")]) {
      expect(() => enc.add([{ type: "A", x: "new string", bad }])).toThrow(TypeError);
      expect(() => canonicalJson({ bad })).toThrow(TypeError);
    }
    expect(Buffer.from(enc.bytes()).equals(before)).toBe(true);
    // What a refused record would have defined is defined again by the next one.
    enc.add([{ type: "A", x: "new string" }]);
    expect(decodeAll(Buffer.from(enc.bytes()), 2)).toEqual([[{ type: "A", n: 1 }], [{ type: "A", x: "new string" }]]);
  });

  it("any bytes decode or fail with FactsCodecError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(6), (bytes, n) => {
        const d = new FactsBlockDecoder(Buffer.from(bytes), 0, bytes.length);
        try {
          for (let i = 0; i < n; i++) d.next();
        } catch (e) {
          expect(e).toBeInstanceOf(FactsCodecError);
        }
      }),
      { numRuns: 2000 },
    );
    // Damage to a real block: the same.
    const enc = new FactsBlockEncoder();
    enc.add([{ type: "ObjectCreated", object: { attrs: [{ type: 0, value: "00".repeat(40) }], id: "a1/1" } }]);
    const good = Buffer.from(enc.bytes());
    for (let i = 0; i < good.length; i++) {
      for (const x of [0x01, 0x80, 0xff]) {
        const b = Buffer.from(good);
        b[i]! ^= x;
        try {
          new FactsBlockDecoder(b, 0, b.length).next();
        } catch (e) {
          expect(e).toBeInstanceOf(FactsCodecError);
        }
      }
    }
  });

  it("a shape with a key __proto__ in a block is refused (the encoder sends such objects as JSON)", () => {
    const enc = new FactsBlockEncoder();
    const o = JSON.parse('{"__proto__":{"polluted":1},"type":"X"}') as object;
    enc.add([o]);
    const [[got]] = decodeAll(Buffer.from(enc.bytes()), 1) as [[Record<string, unknown>]];
    expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
    expect(Object.keys(got)).toEqual(["__proto__", "type"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // A hand-made block defining such a shape: tag 11 (object, new shape), 1 key, tag 6 (string) "__proto__", null.
    const forged = Buffer.from([1, 11, 1, 6, 9, ...Buffer.from("__proto__"), 0]);
    expect(() => new FactsBlockDecoder(forged, 0, forged.length).next()).toThrow(FactsCodecError);
  });
});
