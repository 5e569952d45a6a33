/**
 * The drop-in's surface against the real npm package pkcs11js 2.1.7: the same exported names, the same constant
 * values, every method of its PKCS11 class, and the error classes' shapes. And the profile table's completeness:
 * no code outside src/pkcs11/profiles.ts may test a profile's name.
 */
import { createRequire } from "node:module";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import * as dropIn from "../../src/pkcs11/pkcs11js.js";

const real = createRequire(import.meta.url)("pkcs11js") as Record<string, unknown> & { PKCS11: new () => object };

function methods(proto: object | null): Set<string> {
  const out = new Set<string>();
  for (let p = proto; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const k of Object.getOwnPropertyNames(p)) if (k.startsWith("C_") || k === "load" || k === "close") out.add(k);
  }
  return out;
}

describe("hsmsim/pkcs11js has pkcs11js 2.1.7's surface", () => {
  it("exports every name pkcs11js exports, with the same constant values", () => {
    const ours = dropIn as unknown as Record<string, unknown>;
    const names = Object.keys(real);
    expect(names.length).toBeGreaterThan(650);
    for (const n of names) {
      expect(n in ours, n).toBe(true);
      if (typeof real[n] === "number") expect(ours[n], n).toBe(real[n]);
    }
    expect(Object.keys(dropIn.default).sort()).toEqual(names.sort());
  });

  it("has every method of pkcs11js's PKCS11 (instance and prototype), plus the operation-state pair", () => {
    const theirs = new Set([...methods(real.PKCS11.prototype), ...methods(new real.PKCS11())]);
    const ours = new Set([...methods(dropIn.PKCS11.prototype), ...methods(new dropIn.PKCS11())]);
    const missing = [...theirs].filter((m) => !ours.has(m));
    expect(missing).toEqual([]);
    expect(ours.has("C_GetOperationState") && ours.has("C_SetOperationState")).toBe(true);
  });

  it("has pkcs11js's error classes", () => {
    const e = new dropIn.Pkcs11Error("CKR_PIN_INCORRECT:160", 0, "C_Login");
    const r = new (real.Pkcs11Error as new (m: string, c: number, f: string) => Error & { code: number; method: string })("CKR_PIN_INCORRECT:160", 0, "C_Login");
    expect({ name: e.name, message: e.message, code: e.code, method: e.method }).toEqual({ name: r.name, message: r.message, code: r.code, method: r.method });
    expect(e).toBeInstanceOf(dropIn.NativeError);
    expect(e).toBeInstanceOf(Error);
  });
});

describe("the profile table is the only place profiles differ", () => {
  it("no source file outside profiles.ts tests a profile's name", () => {
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const f of readdirSync(dir)) {
        const p = join(dir, f);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith(".ts") && !p.endsWith("profiles.ts") && /profile\.name|"softhsm2"\s*[=!]==|[=!]==\s*"softhsm2"/.test(readFileSync(p, "utf8"))) offenders.push(p);
      }
    };
    walk(new URL("../../src", import.meta.url).pathname);
    expect(offenders).toEqual([]);
  });
});
