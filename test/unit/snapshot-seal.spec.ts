/**
 * The snapshot's XChaCha20-Poly1305 (src/events/snapshot.ts: HChaCha20 from @noble/ciphers, ChaCha20-Poly1305 from
 * node:crypto) is byte for byte @noble/ciphers' xchacha20poly1305, and refuses anything changed: the draft's test
 * vector (draft-irtf-cfrg-xchacha-03 §A.3.1), then random keys, nonces, data and associated data of many lengths.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { xchachaOpen, xchachaSeal } from "../../src/events/snapshot.js";

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s/g, ""), "hex"));

describe("xchachaSeal / xchachaOpen", () => {
  it("the draft's test vector", () => {
    const plaintext = new TextEncoder().encode(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const aad = hex("50515253c0c1c2c3c4c5c6c7");
    const key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    const nonce = hex("404142434445464748494a4b4c4d4e4f5051525354555657");
    const sealed = xchachaSeal(key, nonce, plaintext, aad);
    expect(Buffer.from(sealed.subarray(sealed.length - 16)).toString("hex")).toBe("c0875924c1c7987947deafd8780acf49");
    expect(Buffer.from(sealed.subarray(0, 16)).toString("hex")).toBe("bd6d179d3e83d43b9576579493c0e939");
    expect(Buffer.from(xchachaOpen(key, nonce, sealed, aad))).toEqual(Buffer.from(plaintext));
  });

  it("is @noble/ciphers' xchacha20poly1305, and a changed byte, nonce, key or associated data does not open", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 24, maxLength: 24 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 40 }),
        fc.nat(),
        (key, nonce, data, ad, at) => {
          const sealed = xchachaSeal(key, nonce, data, ad);
          expect(Buffer.from(sealed)).toEqual(Buffer.from(xchacha20poly1305(key, nonce, ad).encrypt(data)));
          expect(Buffer.from(xchachaOpen(key, nonce, sealed, ad))).toEqual(Buffer.from(data));
          const flipped = Uint8Array.from(sealed);
          flipped[at % flipped.length]! ^= 1;
          expect(() => xchachaOpen(key, nonce, flipped, ad)).toThrow();
          const otherNonce = Uint8Array.from(nonce);
          otherNonce[at % 24]! ^= 1;
          expect(() => xchachaOpen(key, otherNonce, sealed, ad)).toThrow();
          const otherKey = Uint8Array.from(key);
          otherKey[at % 32]! ^= 1;
          expect(() => xchachaOpen(otherKey, nonce, sealed, ad)).toThrow();
          expect(() => xchachaOpen(key, nonce, sealed, Uint8Array.of(...ad, 0))).toThrow();
        },
      ),
      { numRuns: 300 },
    );
  });
});
