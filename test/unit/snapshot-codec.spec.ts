/**
 * The snapshot value codec (src/events/snapshot-codec.ts) and members under symbols: one that still holds something
 * would be dropped, so it is refused; a replayed lazy value's symbol (a digest rebuilt from facts) is emptied when the
 * walk reads the member it stands for, and the snapshot carries that member's value.
 */
import { describe, expect, it } from "vitest";
import { UnsnapshotableError, ValueCodec } from "../../src/events/snapshot-codec.js";
import { feedDigest, startDigest } from "../../src/model/operations.js";
import { CK } from "../../src/pkcs11/constants.js";

describe("snapshot codec: members under symbols", () => {
  it("refuses a symbol-keyed member that holds a value (it would be dropped), enumerable or not", () => {
    const codec = new ValueCodec();
    expect(() => codec.encode({ a: 1, [Symbol("x")]: 2 })).toThrow(UnsnapshotableError);
    const hidden = { a: 1 };
    Object.defineProperty(hidden, Symbol("y"), { value: "kept out of sight" });
    expect(() => codec.encode(hidden)).toThrow(UnsnapshotableError);
    expect(codec.decode(codec.encode({ a: 1, [Symbol("z")]: undefined }).tree)).toEqual({ a: 1 });
  });

  it("carries a lazy digest rebuilt from facts as the eager one: its state folded, nothing of the inputs' list", () => {
    const data = new TextEncoder().encode("abc");
    const env = { unseal: (sealed: string) => (sealed === "sealed abc" ? data.slice() : new Uint8Array(0)) };
    const lazy = startDigest(CK.CKM_SHA256, true, env);
    feedDigest(lazy, "sealed abc", env);
    const eager = startDigest(CK.CKM_SHA256, false, env);
    feedDigest(eager, "sealed abc", env);
    expect(Object.keys(lazy)).toEqual(Object.keys(eager));
    const codec = new ValueCodec();
    const a = codec.encode(lazy);
    const b = codec.encode(eager);
    expect(JSON.stringify(a.tree)).toBe(JSON.stringify(b.tree));
    expect(codec.decode(a.tree, Buffer.concat(a.bytes))).toEqual(codec.decode(b.tree, Buffer.concat(b.bytes)));
    expect(JSON.stringify(lazy)).toBe(JSON.stringify(eager));
  });
});
