/**
 * The snapshot value codec (src/events/snapshot-codec.ts): a member under a symbol would be dropped, so it is refused;
 * a replay's lazy values (a digest or an object's attributes rebuilt from facts, put off until read) are carried as the
 * plain objects an eager replay builds.
 */
import { describe, expect, it } from "vitest";
import { UnsnapshotableError, ValueCodec } from "../../src/events/snapshot-codec.js";
import { STATE_CODEC } from "../../src/events/snapshot.js";
import { RecordedObject, setStored } from "../../src/model/evolve.js";
import { feedDigest, startDigest } from "../../src/model/operations.js";
import type { ObjectState } from "../../src/model/state.js";
import { CK } from "../../src/pkcs11/constants.js";

const roundTrip = (v: unknown) => {
  const e = STATE_CODEC.encode(v);
  return STATE_CODEC.decode(e.tree, Buffer.concat(e.bytes));
};

describe("snapshot codec: members under symbols", () => {
  it("refuses a symbol-keyed member (it would be dropped), enumerable or not, even one holding undefined", () => {
    const codec = new ValueCodec();
    expect(() => codec.encode({ a: 1, [Symbol("x")]: 2 })).toThrow(UnsnapshotableError);
    const hidden = { a: 1 };
    Object.defineProperty(hidden, Symbol("y"), { value: "kept out of sight" });
    expect(() => codec.encode(hidden)).toThrow(UnsnapshotableError);
    expect(() => codec.encode({ a: 1, [Symbol("z")]: undefined })).toThrow(UnsnapshotableError);
  });
});

describe("snapshot codec: a replay's lazy values", () => {
  it("carries a lazy digest rebuilt from facts as the eager one: its state folded, nothing of the inputs' list", () => {
    const data = new TextEncoder().encode("abc");
    const env = { unseal: (sealed: string) => (sealed === "sealed abc" ? data.slice() : new Uint8Array(0)) };
    const lazy = startDigest(CK.CKM_SHA256, true, env);
    feedDigest(lazy, "sealed abc", env);
    const eager = startDigest(CK.CKM_SHA256, false, env);
    feedDigest(eager, "sealed abc", env);
    expect(Object.getPrototypeOf(lazy)).not.toBe(Object.prototype); // it is the lazy kind
    const back = roundTrip(lazy) as object;
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(back).toStrictEqual(roundTrip(eager));
    expect(Object.keys(back)).toEqual(Object.keys(eager));
    expect(JSON.stringify(lazy)).toBe(JSON.stringify(eager));
    // Folded once read: an own data member from then on, and a later input is fed as an eager digest's.
    expect(Object.keys(lazy)).toContain("state");
    feedDigest(lazy, "sealed abc", env);
    feedDigest(eager, "sealed abc", env);
    expect(JSON.stringify(lazy)).toBe(JSON.stringify(eager));
  });

  it("carries an object whose attributes wait as recorded as the eager one, with its map built", () => {
    const recorded = [
      { type: CK.CKA_CLASS, value: "0000000000000000" },
      { type: CK.CKA_LABEL, value: "6379636c65" },
    ];
    const env = { unseal: () => new Uint8Array(0) };
    const lazy = new RecordedObject("a1/7", false, false, 0, recorded);
    const eager: ObjectState = { id: "a1/7", token: false, private: false, slotID: 0, attrs: new Map() };
    for (const x of recorded) setStored(eager, x, env);
    for (const o of [lazy, eager]) {
      o.app = 1;
      o.creator = 3;
      o.privateEpoch = 0;
    }
    const back = roundTrip(lazy) as object;
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(back).toStrictEqual(roundTrip(eager));
    expect(Object.keys(back)).toEqual(Object.keys(eager));
    expect(JSON.stringify(lazy)).toBe(JSON.stringify(eager));
    expect([...lazy.attrs]).toEqual([...eager.attrs]);
    expect(Object.keys(lazy)).toContain("attrs");
  });
});
