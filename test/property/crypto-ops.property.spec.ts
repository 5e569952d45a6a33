/**
 * Properties of the cryptographic operations through the PKCS#11 calls (fast-check):
 * 1. multi-part = single-part, for every mechanism hsmsim runs (AES ECB / CBC / CBC_PAD / CTR / GCM both ways, the
 *    HMACs sign and verify, the digests) and every split of the input, in both profiles;
 * 2. a saved and restored operation (C_GetOperationState / C_SetOperationState, default profile) finishes with the
 *    same output as an uninterrupted one, restored into another session, and in a fresh simulator rebuilt from the
 *    log (where the operation also simply goes on in its own session).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Simulator } from "../../src/actors/simulator.js";
import type { ProfileName } from "../../src/pkcs11/profiles.js";
import { caller, testSimulator, TEST_KEY } from "../support/sim.js";
import { CK, ok, type Handles } from "../support/gwt.js";
import { keys, cbc, cbcPad, ecb, ctr, gcm, hmac, IV, toHex } from "../support/crypto-setup.js";

type C = ReturnType<typeof caller>;
type Out = { data: Uint8Array; length: number };

function fresh(profile: ProfileName) {
  const sim = testSimulator({ profile });
  const c = caller(sim.application());
  const h: Handles = {};
  keys(c, h, { app2: c });
  h.rw2 = ok(c("C_OpenSession", { slotID: c("C_GetSessionInfo", { hSession: h.rw! }).out.slotID, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION })).hSession;
  return { sim, c, h };
}

const CIPHERS: [string, object, boolean][] = [
  // name, mechanism, needs whole blocks
  ["ECB", ecb, true],
  ["CBC", cbc(), true],
  ["CBC_PAD", cbcPad(), false],
  ["CTR", ctr(128, IV), false],
  ["CTR 16 bits", ctr(16, new Uint8Array(16).fill(0xfa)), false],
  ["GCM", gcm(IV.subarray(0, 12), new Uint8Array([1, 2, 3])), false],
  ["GCM 96-bit tag, 16-byte IV", gcm(IV, null, 96), false],
];

/** Cut points: sorted positions inside the input. */
const splitsOf = (n: number) => fc.uniqueArray(fc.integer({ min: 0, max: n }), { maxLength: 5 }).map((a) => a.sort((x, y) => x - y));

function multi(c: C, h: Handles, fn: "Encrypt" | "Decrypt", data: Uint8Array, cuts: number[], session = "rw"): string {
  let out = "";
  let at = 0;
  for (const cut of [...cuts, data.length]) {
    out += toHex(ok(c(`C_${fn}Update`, { hSession: h[session]!, data: data.subarray(at, cut), outLen: data.length + 64 })).data);
    at = cut;
  }
  return out + toHex(ok(c(`C_${fn}Final`, { hSession: h[session]!, outLen: data.length + 64 })).data);
}

describe.each<ProfileName>(["default", "softhsm2"])("multi-part = single-part (profile %s)", (profile) => {
  it.each(CIPHERS)("%s: encryption and decryption, every split", (_, mechanism, blocks) => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 6 }).chain((n) => fc.uint8Array({ minLength: blocks ? n * 16 : n * 11, maxLength: blocks ? n * 16 : n * 11 + 10 })),
        fc.integer({ min: 0, max: 2 ** 31 }),
        (pt, seed) => {
          const cuts = fc.sample(splitsOf(pt.length), { seed, numRuns: 1 })[0]!;
          const { c, h } = fresh(profile);
          const init = (fn: "C_EncryptInit" | "C_DecryptInit") => ok(c(fn, { hSession: h.rw!, mechanism: mechanism as never, hKey: h.aes! }));
          init("C_EncryptInit");
          const ct = ok(c("C_Encrypt", { hSession: h.rw!, data: pt, outLen: pt.length + 64 })) as Out;
          init("C_EncryptInit");
          expect(multi(c, h, "Encrypt", pt, cuts)).toBe(toHex(ct.data));
          init("C_DecryptInit");
          expect(toHex((ok(c("C_Decrypt", { hSession: h.rw!, data: ct.data, outLen: ct.data.length + 16 })) as Out).data)).toBe(toHex(pt));
          init("C_DecryptInit");
          // SoftHSM answers an empty CBC_PAD decryption update before any input with a size no buffer meets (the
          // profile row cryptoErrors): under softhsm2 no split starts with an empty piece there.
          const ctCuts = cuts.filter((x) => x <= ct.data.length && !(profile === "softhsm2" && x === 0));
          expect(multi(c, h, "Decrypt", ct.data, ctCuts)).toBe(toHex(pt));
        },
      ),
      { numRuns: 25 },
    );
  });

  it("HMACs and digests: sign, verify and digest, every split", () => {
    const macs = [CK.CKM_MD5_HMAC, CK.CKM_SHA_1_HMAC, CK.CKM_SHA224_HMAC, CK.CKM_SHA256_HMAC, CK.CKM_SHA384_HMAC, CK.CKM_SHA512_HMAC];
    const digests = [CK.CKM_MD5, CK.CKM_SHA_1, CK.CKM_SHA224, CK.CKM_SHA256, CK.CKM_SHA384, CK.CKM_SHA512];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5 }), fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 2 ** 31 }), (i, data, seed) => {
        const cuts = fc.sample(splitsOf(data.length), { seed, numRuns: 1 })[0]!;
        const { c, h } = fresh(profile);
        const pieces = [...cuts, data.length].map((cut, j, all) => data.subarray(j === 0 ? 0 : all[j - 1]!, cut));
        ok(c("C_SignInit", { hSession: h.rw!, mechanism: hmac(macs[i]!), hKey: h.gen! }));
        const mac = (ok(c("C_Sign", { hSession: h.rw!, data, outLen: 64 })) as Out).data;
        ok(c("C_SignInit", { hSession: h.rw!, mechanism: hmac(macs[i]!), hKey: h.gen! }));
        for (const p of pieces) ok(c("C_SignUpdate", { hSession: h.rw!, data: p }));
        expect(toHex((ok(c("C_SignFinal", { hSession: h.rw!, outLen: 64 })) as Out).data)).toBe(toHex(mac));
        ok(c("C_VerifyInit", { hSession: h.rw!, mechanism: hmac(macs[i]!), hKey: h.gen! }));
        for (const p of pieces) ok(c("C_VerifyUpdate", { hSession: h.rw!, data: p }));
        expect(c("C_VerifyFinal", { hSession: h.rw!, signature: mac }).rv).toBe("CKR_OK");
        ok(c("C_DigestInit", { hSession: h.rw!, mechanism: { mechanism: digests[i]! } }));
        const d = toHex(ok(c("C_Digest", { hSession: h.rw!, data, outLen: 64 })).digest);
        ok(c("C_DigestInit", { hSession: h.rw!, mechanism: { mechanism: digests[i]! } }));
        for (const p of pieces) ok(c("C_DigestUpdate", { hSession: h.rw!, data: p }));
        expect(toHex(ok(c("C_DigestFinal", { hSession: h.rw!, outLen: 64 })).digest)).toBe(d);
      }),
      { numRuns: 40 },
    );
  });
});

describe("a saved and restored operation finishes like an uninterrupted one (default profile)", () => {
  const SAVEABLE: [string, "encrypt" | "decrypt" | "sign" | "digest", object][] = [
    ["ECB encrypt", "encrypt", ecb],
    ["CBC decrypt", "decrypt", cbc()],
    ["CBC_PAD encrypt", "encrypt", cbcPad()],
    ["CBC_PAD decrypt", "decrypt", cbcPad()],
    ["CTR encrypt", "encrypt", ctr(32, IV)],
    ["HMAC-SHA-384 sign", "sign", hmac(CK.CKM_SHA384_HMAC)],
    ["SHA-512 digest", "digest", { mechanism: CK.CKM_SHA512 }],
  ];

  it.each(SAVEABLE)("%s: in another session, and in a simulator rebuilt from the log", (_, kind, mechanism) => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 80 }), fc.nat(), (blocks, cutRaw, byte) => {
        const data = new Uint8Array(blocks * 16).fill(byte & 0xff).map((x, i) => (x + i * 7) & 0xff);
        const cut = Math.min(cutRaw, data.length);
        const { sim, c, h } = fresh("default");
        // Ciphertext for the decryptions: valid for the mechanism (padded where it pads).
        let input: Uint8Array = data;
        if (kind === "decrypt") {
          ok(c("C_EncryptInit", { hSession: h.rw!, mechanism: mechanism as never, hKey: h.aes! }));
          input = (ok(c("C_Encrypt", { hSession: h.rw!, data, outLen: data.length + 16 })) as Out).data;
        }
        const cutAt = Math.min(cut, input.length);
        const key = kind === "sign" ? h.gen! : h.aes!;
        const start = (c: C, session: number) => {
          if (kind === "digest") ok(c("C_DigestInit", { hSession: session, mechanism: mechanism as never }));
          else ok(c(kind === "sign" ? "C_SignInit" : kind === "encrypt" ? "C_EncryptInit" : "C_DecryptInit", { hSession: session, mechanism: mechanism as never, hKey: key }));
        };
        /** Feed `part` and finish: the output of every step after the save point, as hex. */
        const finish = (c: C, session: number, part: Uint8Array): string => {
          if (kind === "digest") {
            ok(c("C_DigestUpdate", { hSession: session, data: part }));
            return toHex(ok(c("C_DigestFinal", { hSession: session, outLen: 64 })).digest) ?? "";
          }
          if (kind === "sign") {
            ok(c("C_SignUpdate", { hSession: session, data: part }));
            return toHex((ok(c("C_SignFinal", { hSession: session, outLen: 64 })) as Out).data) ?? "";
          }
          const F = kind === "encrypt" ? "Encrypt" : "Decrypt";
          const u = toHex((ok(c(`C_${F}Update`, { hSession: session, data: part, outLen: 200 })) as Out).data) ?? "";
          return u + (toHex((ok(c(`C_${F}Final`, { hSession: session, outLen: 200 })) as Out).data) ?? "");
        };
        const first = input.subarray(0, cutAt);
        const rest = input.subarray(cutAt);
        start(c, h.rw!);
        if (kind === "digest") ok(c("C_DigestUpdate", { hSession: h.rw!, data: first }));
        else if (kind === "sign") ok(c("C_SignUpdate", { hSession: h.rw!, data: first }));
        else ok(c(kind === "encrypt" ? "C_EncryptUpdate" : "C_DecryptUpdate", { hSession: h.rw!, data: first, outLen: 200 }));
        const blob = ok(c("C_GetOperationState", { hSession: h.rw! })).state;
        const log = [...sim.store.read()];
        const uninterrupted = finish(c, h.rw!, rest);

        // Another session of the same simulator.
        const enc = kind === "encrypt" || kind === "decrypt" ? key : 0;
        const auth = kind === "sign" ? key : 0;
        ok(c("C_SetOperationState", { hSession: h.rw2!, state: blob, hEncryptionKey: enc, hAuthenticationKey: auth }));
        expect(finish(c, h.rw2!, rest)).toBe(uninterrupted);

        // A fresh simulator rebuilt from the log as it was at the save: the operation goes on in its own session,
        // and the blob restores into another session there too.
        const reborn = Simulator.replay(log, { simulatorKey: TEST_KEY });
        const app = reborn.application();
        app.appId = 1;
        const c2 = caller(app);
        expect(finish(c2, h.rw!, rest)).toBe(uninterrupted);
        ok(c2("C_SetOperationState", { hSession: h.rw2!, state: blob, hEncryptionKey: enc, hAuthenticationKey: auth }));
        expect(finish(c2, h.rw2!, rest)).toBe(uninterrupted);
      }),
      { numRuns: 20 },
    );
  });
});
