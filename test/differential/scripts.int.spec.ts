/**
 * Scripted differential scenarios for calls the random sequences leave out (C_CopyObject, C_GetObjectSize, the
 * mechanism list and info, C_SeedRandom / C_GenerateRandom: random output is compared by length, never by value): the same
 * script runs through the real pkcs11js on SoftHSM 2.6.1 (in this process, fresh token directory) and through the
 * drop-in on a softhsm2-profile simulator, and every result and error shape must agree. The scripts follow SoftHSM's
 * ObjectTests::testCopyObject / testGetObjectSize (fact sheet §18) and the copy rules in
 * docs/notes/softhsm-data-objects.md §4.
 */
import { afterAll, describe, expect, it } from "vitest";
import { CK } from "../../src/pkcs11/constants.js";
import { softHsmAvailable, type SoftHsmEnv } from "../support/softhsm.js";
import { bothSides, type P, type Trace } from "../support/scripted-diff.js";

const SO = "12345678";
const USER = "1234";
const F = false;
const T = true;

/** Initialise, make a token with a user PIN, re-initialise so the token has its serial-derived slot; returns it. */
function prepare(p: P): Buffer {
  p.C_Initialize();
  const [slot] = p.C_GetSlotList(true);
  p.C_InitToken(slot, SO, "scripts".padEnd(32));
  const h = p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION);
  p.C_Login(h, CK.CKU_SO, SO);
  p.C_InitPIN(h, USER);
  p.C_Finalize();
  p.C_Initialize();
  return p.C_GetSlotList(true)[0];
}

const data = (token: boolean, priv: boolean, more: object[] = []) => [
  { type: CK.CKA_CLASS, value: CK.CKO_DATA },
  { type: CK.CKA_TOKEN, value: token },
  { type: CK.CKA_PRIVATE, value: priv },
  { type: CK.CKA_LABEL, value: "A data object" },
  ...more,
];

const SCRIPTS: Record<string, (p: P, t: Trace) => void> = {
  "ObjectTests::testCopyObject": (p, t) => {
    const slot = prepare(p);
    const ro = t("open RO", () => p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION));
    const o = t("dataMin", () => p.C_CreateObject(ro, data(F, F)));
    const oc = t("dataMCD C=F", () => p.C_CreateObject(ro, data(F, F, [{ type: CK.CKA_MODIFIABLE, value: T }, { type: CK.CKA_COPYABLE, value: F }, { type: CK.CKA_DESTROYABLE, value: T }])));
    const attrs = [
      { type: CK.CKA_LABEL, value: "Label modified via C_CopyObject" },
      { type: CK.CKA_TOKEN, value: F },
      { type: CK.CKA_PRIVATE, value: F },
      { type: CK.CKA_CLASS, value: CK.CKO_DATA },
    ];
    const c1 = t("copy 1 attr", () => p.C_CopyObject(ro, o, attrs.slice(0, 1)));
    t("destroy copy", () => p.C_DestroyObject(ro, c1));
    t("copy non-copyable", () => p.C_CopyObject(ro, oc, attrs.slice(0, 1)));
    t("destroy oc", () => p.C_DestroyObject(ro, oc));
    const c3 = t("copy 3 attrs", () => p.C_CopyObject(ro, o, attrs.slice(0, 3)));
    t("destroy c3", () => p.C_DestroyObject(ro, c3));
    t("copy with CKA_CLASS", () => p.C_CopyObject(ro, o, attrs));
    attrs[1] = { type: CK.CKA_TOKEN, value: T };
    t("copy to token in RO", () => p.C_CopyObject(ro, o, attrs.slice(0, 3)));
    attrs[1] = { type: CK.CKA_TOKEN, value: F };
    attrs[2] = { type: CK.CKA_PRIVATE, value: T };
    t("copy to private, public session", () => p.C_CopyObject(ro, o, attrs.slice(0, 3)));
    t("close RO", () => p.C_CloseSession(ro));
    const rw = t("open RW", () => p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION));
    t("login user", () => p.C_Login(rw, CK.CKU_USER, USER));
    const normal = (priv: boolean) => data(F, priv, [{ type: CK.CKA_APPLICATION, value: "app" }, { type: CK.CKA_OBJECT_ID, value: Buffer.from("3006", "hex") }, { type: CK.CKA_VALUE, value: "Some data" }]);
    const o2 = t("dataNormal", () => p.C_CreateObject(rw, normal(F)));
    attrs[1] = { type: CK.CKA_TOKEN, value: T };
    attrs[2] = { type: CK.CKA_PRIVATE, value: F };
    const c4 = t("copy to token", () => p.C_CopyObject(rw, o2, attrs.slice(0, 3)));
    t("read copy", () => p.C_GetAttributeValue(rw, c4, [{ type: CK.CKA_LABEL }, { type: CK.CKA_TOKEN }, { type: CK.CKA_APPLICATION }, { type: CK.CKA_VALUE }, { type: CK.CKA_OBJECT_ID }]));
    t("destroy c4", () => p.C_DestroyObject(rw, c4));
    attrs[2] = { type: CK.CKA_PRIVATE, value: T };
    const c5 = t("copy to private token", () => p.C_CopyObject(rw, o2, attrs.slice(0, 3)));
    t("destroy c5", () => p.C_DestroyObject(rw, c5));
    attrs[3] = { type: CK.CKA_OBJECT_ID, value: "Another object ID" };
    t("copy with OBJECT_ID", () => p.C_CopyObject(rw, o2, attrs));
    t("destroy o2", () => p.C_DestroyObject(rw, o2));
    const o3 = t("dataNormal private", () => p.C_CreateObject(rw, normal(T)));
    attrs[1] = { type: CK.CKA_TOKEN, value: F };
    attrs[2] = { type: CK.CKA_PRIVATE, value: F };
    t("privacy downgrade", () => p.C_CopyObject(rw, o3, attrs.slice(0, 3)));
    t("close RW", () => p.C_CloseSession(rw));
    p.C_Finalize();
  },

  "copy rules (notes §4)": (p, t) => {
    const slot = prepare(p);
    const rw = t("open RW", () => p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION));
    const ro = t("open RO", () => p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION));
    t("login", () => p.C_Login(rw, CK.CKU_USER, USER));
    const tok = t("token object", () => p.C_CreateObject(rw, data(T, F, [{ type: CK.CKA_VALUE, value: "tv" }])));
    const nm = t("non-modifiable", () => p.C_CreateObject(rw, data(F, F, [{ type: CK.CKA_MODIFIABLE, value: F }])));
    t("copy non-modifiable, empty template", () => p.C_CopyObject(rw, nm, []));
    t("copy non-modifiable, MODIFIABLE=T", () => p.C_CopyObject(rw, nm, [{ type: CK.CKA_MODIFIABLE, value: T }]));
    t("copy non-modifiable, label", () => p.C_CopyObject(rw, nm, [{ type: CK.CKA_LABEL, value: "x" }]));
    const s1 = t("token to session", () => p.C_CopyObject(ro, tok, [{ type: CK.CKA_TOKEN, value: F }, { type: CK.CKA_LABEL, value: "sess" }]));
    t("read it", () => p.C_GetAttributeValue(rw, s1, [{ type: CK.CKA_TOKEN }, { type: CK.CKA_LABEL }, { type: CK.CKA_VALUE }]));
    t("2-byte bool", () => p.C_CopyObject(rw, tok, [{ type: CK.CKA_TOKEN, value: Buffer.from([1, 0]) }]));
    t("COPYABLE=F", () => p.C_CopyObject(rw, tok, [{ type: CK.CKA_COPYABLE, value: F }]));
    t("CKA_SIGN", () => p.C_CopyObject(rw, tok, [{ type: CK.CKA_SIGN, value: T }]));
    t("MODIFIABLE=F then LABEL", () => p.C_CopyObject(rw, tok, [{ type: CK.CKA_MODIFIABLE, value: F }, { type: CK.CKA_LABEL, value: "late" }]));
    t("DESTROYABLE=F", () => p.C_CopyObject(rw, tok, [{ type: CK.CKA_DESTROYABLE, value: F }]));
    t("bad handle", () => p.C_CopyObject(rw, Buffer.from("ff00000000000000", "hex"), []));
    t("find all", () => {
      p.C_FindObjectsInit(rw, []);
      const r = p.C_FindObjects(rw, 50);
      p.C_FindObjectsFinal(rw);
      return r;
    });
    t("close session: its copies go", () => p.C_CloseSession(ro));
    t("find again", () => {
      p.C_FindObjectsInit(rw, []);
      const r = p.C_FindObjects(rw, 50);
      p.C_FindObjectsFinal(rw);
      return r;
    });
    t("logout", () => p.C_Logout(rw));
    const priv = t("login again, private object", () => {
      p.C_Login(rw, CK.CKU_USER, USER);
      return p.C_CreateObject(rw, data(F, T));
    });
    t("logout", () => p.C_Logout(rw));
    t("copy a private object after logout", () => p.C_CopyObject(rw, priv, []));
    p.C_Finalize();
  },

  "digest mechanisms (FIPS 180-4 / RFC 1321 'abc'), single- and multi-part": (p, t) => {
    const slot = prepare(p);
    const h = t("open", () => p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION));
    for (const m of [CK.CKM_MD5, CK.CKM_SHA_1, CK.CKM_SHA224, CK.CKM_SHA256, CK.CKM_SHA384, CK.CKM_SHA512, CK.CKM_SHA256_HMAC, CK.CKM_RIPEMD160]) {
      t(`init 0x${m.toString(16)}`, () => p.C_DigestInit(h, { mechanism: m }));
      t(`digest 0x${m.toString(16)}`, () => p.C_Digest(h, Buffer.from("abc"), Buffer.alloc(64)));
      t(`init again 0x${m.toString(16)}`, () => p.C_DigestInit(h, { mechanism: m }));
      t(`update`, () => p.C_DigestUpdate(h, Buffer.from("ab")));
      t(`small out`, () => p.C_DigestFinal(h, Buffer.alloc(8)));
      t(`update`, () => p.C_DigestUpdate(h, Buffer.from("c")));
      t(`final`, () => p.C_DigestFinal(h, Buffer.alloc(64)));
    }
    p.C_Finalize();
  },

  "InfoTests::testGetMechanismList / testGetMechanismInfo, every mechanism (fact sheet §18)": (p, t) => {
    const invalid = Buffer.from("0000008000000000", "hex");
    t("list before init", () => p.C_GetMechanismList(Buffer.alloc(8)));
    t("info before init", () => p.C_GetMechanismInfo(Buffer.alloc(8), CK.CKM_RSA_PKCS));
    const slot = prepare(p);
    const list: number[] = t("list", () => p.C_GetMechanismList(slot)) ?? [];
    for (const m of list) t(`info 0x${m.toString(16)}`, () => p.C_GetMechanismInfo(slot, m));
    // Slot IDs derive from random serials: compare the count, not the IDs.
    const all: Buffer[] = p.C_GetSlotList(false);
    t("all slots", () => all.length);
    t("list on the uninitialised slot", () => p.C_GetMechanismList(all[all.length - 1]));
    t("info on the uninitialised slot", () => p.C_GetMechanismInfo(all[all.length - 1], CK.CKM_SHA256));
    t("list, invalid slot", () => p.C_GetMechanismList(invalid));
    t("info, invalid slot", () => p.C_GetMechanismInfo(invalid, CK.CKM_SHA256));
    t("info, invalid slot and mechanism", () => p.C_GetMechanismInfo(invalid, CK.CKM_VENDOR_DEFINED));
    for (const m of [CK.CKM_VENDOR_DEFINED, 0x12345, CK.CKM_SHA256_HMAC_GENERAL, CK.CKM_RIPEMD160, 0xffffffff]) {
      t(`info unknown 0x${m.toString(16)}`, () => p.C_GetMechanismInfo(slot, m));
    }
    p.C_Finalize();
  },

  "C_SeedRandom / C_GenerateRandom check orders (fact sheet §14); lengths, not bytes": (p, t) => {
    const bad = Buffer.from("6300000000000000", "hex");
    t("generate before init", () => p.C_GenerateRandom(bad, Buffer.alloc(4)).length);
    t("seed before init", () => p.C_SeedRandom(bad, Buffer.from("s")));
    const slot = prepare(p);
    t("generate, NULL buffer and bad session", () => p.C_GenerateRandom(bad, Buffer.alloc(0)));
    t("seed, NULL seed and bad session", () => p.C_SeedRandom(bad, Buffer.alloc(0)));
    t("generate, bad session", () => p.C_GenerateRandom(bad, Buffer.alloc(4)).length);
    t("seed, bad session", () => p.C_SeedRandom(bad, Buffer.from("s")));
    const ro = t("open RO", () => p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION));
    for (const n of [1, 16, 32, 1000, 65536]) {
      t(`generate ${n}`, () => {
        const buf = Buffer.alloc(n);
        const r = p.C_GenerateRandom(ro, buf);
        return { same: r === buf, length: r.length, zeros: n >= 16 && buf.equals(Buffer.alloc(n)) };
      });
    }
    t("generate 0 (a view: not NULL)", () => p.C_GenerateRandom(ro, Buffer.alloc(8).subarray(0, 0)).length);
    t("generate, NULL buffer", () => p.C_GenerateRandom(ro, Buffer.alloc(0)));
    t("seed", () => p.C_SeedRandom(ro, Buffer.from("some seed material")));
    t("seed 0 (a view: not NULL)", () => p.C_SeedRandom(ro, Buffer.alloc(8).subarray(0, 0)));
    t("seed, NULL", () => p.C_SeedRandom(ro, Buffer.alloc(0)));
    t("seed during a digest", () => {
      p.C_DigestInit(ro, { mechanism: CK.CKM_SHA256 });
      p.C_SeedRandom(ro, Buffer.from("x"));
      return p.C_GenerateRandom(ro, Buffer.alloc(8)).length;
    });
    t("the digest survives", () => p.C_DigestFinal(ro, Buffer.alloc(32)).length);
    const rw = t("open RW", () => p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION));
    t("login user", () => p.C_Login(rw, CK.CKU_USER, USER));
    t("generate, logged in", () => p.C_GenerateRandom(ro, Buffer.alloc(20)).length);
    t("close RO", () => p.C_CloseSession(ro));
    t("generate, closed session", () => p.C_GenerateRandom(ro, Buffer.alloc(4)).length);
    t("seed, closed session", () => p.C_SeedRandom(ro, Buffer.from("s")));
    p.C_Finalize();
  },

  "ObjectTests::testGetObjectSize and more": (p, t) => {
    const slot = prepare(p);
    const ro = t("open RO", () => p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION));
    const o = t("dataMin", () => p.C_CreateObject(ro, data(F, F)));
    t("size", () => p.C_GetObjectSize(ro, o));
    t("size of a bad handle", () => p.C_GetObjectSize(ro, Buffer.from("0000000000000000", "hex")));
    t("size through a bad session", () => p.C_GetObjectSize(Buffer.from("6300000000000000", "hex"), o));
    t("close", () => p.C_CloseSession(ro));
    t("size after close", () => p.C_GetObjectSize(ro, o));
    p.C_Finalize();
  },
};

describe.skipIf(!softHsmAvailable())("scripted differential: hsmsim (softhsm2) vs SoftHSM 2.6.1", () => {
  const envs: SoftHsmEnv[] = [];
  afterAll(() => envs.forEach((e) => e.remove()));

  it.each(Object.keys(SCRIPTS))("%s", (name) => {
    const { real, ours } = bothSides(SCRIPTS[name]!, envs, { finalize: false });
    expect(real.filter((l) => l.includes(" OK ")).length).toBeGreaterThan(3);
    if (process.env.SHOW) console.log(real.join("\n"));
    expect(ours).toEqual(real);
  });
});
