/**
 * Decoding JetStream event messages as a replay needs them (src/events/jetstream-store.ts): `parseItems` (each
 * entry's seq, prev, hash and facts, cut from the message's bytes), `parseMessage` (whole envelopes, the record alone
 * through JSON.parse), and `factsOfRecordText` (the facts cut out of a record's canonical text: the store's
 * `readFacts`). Each must give exactly what parsing every line whole gives, for any log the simulator writes grouped
 * into messages of any size, for records crafted to mislead a cut, and for lines in another layout (parsed whole).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { canonicalJson, encodeEntry, GENESIS, type Envelope } from "../../src/events/chain.js";
import { factsOfRecordText, parseItems, parseMessage } from "../../src/events/jetstream-store.js";
import { MemoryEventStore } from "../../src/events/memory-store.js";
import type { CallRecord, Fact } from "../../src/events/types.js";
import { Simulator } from "../../src/actors/simulator.js";
import { runSteps, stepsArb } from "../support/arbitraries.js";
import { seededRandom, TEST_KEY } from "../support/sim.js";

const utf8 = new TextEncoder();
const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;
const whole = (lines: string[]) => lines.map((l) => JSON.parse(l) as Envelope);
const items = (es: Envelope[]) => es.map((e) => ({ seq: e.seq, prev: e.prev, hash: e.hash, facts: e.record.facts }));

/** The records' lines as the store writes them (chained), cut into messages of the given sizes. */
function messages(records: CallRecord[], sizes: number[]): string[][] {
  const lines: string[] = [];
  let prev = GENESIS;
  for (const r of records) {
    const { line, hash } = encodeEntry(prev, r);
    lines.push(line);
    prev = hash;
  }
  const out: string[][] = [];
  for (let i = 0, k = 0; i < lines.length; k++) {
    const n = Math.max(1, sizes[k % sizes.length]!);
    out.push(lines.slice(i, i + n));
    i += n;
  }
  return out;
}

describe("decoding JetStream event messages", () => {
  it("parseItems and parseMessage give what parsing each line whole gives, for logs the simulator writes", () => {
    fc.assert(
      fc.property(stepsArb(60), fc.constantFrom("default", "softhsm2"), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 8 }), (steps, profile, sizes) => {
        const store = new MemoryEventStore();
        const live = new Simulator({ profile, simulatorKey: TEST_KEY, clock: () => 1_800_000_000_000, randomBytes: seededRandom(1), store });
        runSteps([live.application(), live.application()], steps);
        const records = [...store.read()];
        for (const r of records) expect(plain(factsOfRecordText(canonicalJson(r)))).toEqual(plain(r.facts));
        for (const msg of messages(records, sizes)) {
          const data = utf8.encode(msg.join("\n"));
          expect(plain(parseItems(data))).toEqual(plain(items(whole(msg))));
          expect(parseMessage(data)).toEqual(whole(msg));
        }
      }),
      { numRuns: 40 },
    );
  });

  // Texts a cut looks for, or that end strings and containers early, put inside strings and used as keys.
  const misleading = ['],"fn":"', '"],"fn":"x', "\\", '\\"', "]}", "[{", '{"a":[1]},"facts":[]', "é€😀", "\u0000\n", ',"facts":[', '","hash":"', "\n"];
  /** A record holding `t` everywhere it can: in args, out and facts, as values and as keys, nested in arrays. */
  const crafted = (seq: number, t: string, facts: Fact[]): CallRecord => {
    const deep: Record<string, unknown> = { [t]: [t, { fn: t, facts: [t] }] };
    return { seq, time: 1, app: 3, fn: "C_SetAttributeValue", args: { hSession: 1, t, deep }, rv: 0, out: [deep, t], facts };
  };

  it("records crafted to mislead a cut, and lines in another layout, decode as parsed whole", () => {
    fc.assert(
      fc.property(fc.constantFrom(...misleading), fc.string(), fc.boolean(), (t, s, fnKey) => {
        const label = t + s;
        // A key "fn" after an inner array inside the facts (when `fnKey`): a cut must not stop there.
        const params = fnKey ? { list: [label, [label]], fn: label } : { iv: label };
        const facts = [{ type: "TokenLooked", app: 3, token: label }, { type: "CryptoStarted", app: 3, object: label, params }] as unknown as Fact[];
        const r1 = crafted(7, label, facts);
        const r2 = crafted(8, label, []);
        const cut = factsOfRecordText(canonicalJson(r1));
        if (cut !== undefined) expect(plain(cut)).toEqual(plain(facts));
        if (!fnKey) expect(cut).toBeDefined();
        expect(factsOfRecordText(canonicalJson(r2))).toEqual([]);
        // Another layout: a record's keys in insertion order, an envelope spaced out and in another key order.
        expect(factsOfRecordText(JSON.stringify(r1))).toBeUndefined();
        const a = encodeEntry(GENESIS, r1);
        const b = encodeEntry(a.hash, r2);
        const spaced = JSON.stringify({ record: r2, hash: b.hash, prev: a.hash, seq: 8 }, null, 1).replace(/\n/g, " ");
        for (const msg of [[a.line, b.line], [a.line, spaced], [spaced]]) {
          const data = utf8.encode(msg.join("\n"));
          expect(plain(parseItems(data))).toEqual(plain(items(whole(msg))));
          expect(parseMessage(data)).toEqual(whole(msg));
        }
      }),
      { numRuns: 300 },
    );
  });
});
