/**
 * The `hsmsim` command as a shell user meets it (bin/hsmsim.js on the built dist/, which `npm test` builds first):
 * `hsmsim demo` runs the documented example and exits 0; unknown commands exit 2 with the usage.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../../bin/hsmsim.js", import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 30_000 });

describe("hsmsim CLI", () => {
  it("demo: the documented example, each step's session state, the audit trail", () => {
    const r = run("demo");
    expect(r.status).toBe(0);
    const lines = r.stdout.split("\n");
    const state = (step: string) => lines.find((l) => l.startsWith(step))?.trim().split(/\s{2,}/).at(-1);
    expect(state("1 open a RW session")).toBe("CKS_RW_PUBLIC_SESSION");
    expect(state("2 log in as user")).toBe("CKS_RW_USER_FUNCTIONS");
    expect(state("4 inspect the session")).toBe("CKS_RW_USER_FUNCTIONS");
    expect(state("5 log out")).toBe("CKS_RW_PUBLIC_SESSION");
    expect(r.stdout).toContain('SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(r.stdout).toMatch(/audit trail: \d+ calls recorded/);
    expect(r.stdout).toContain("SessionClosed, ObjectHandlesInvalidated, LoggedOut");
    expect(r.stdout).not.toContain("12345678");
  });

  it("demo --json: machine-readable steps and records", () => {
    const r = run("demo", "--json");
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as { steps: { fn: string; rv: string }[]; records: { seq: number }[] };
    expect(j.steps.every((s) => s.rv === "CKR_OK")).toBe(true);
    expect(j.records.map((x) => x.seq)).toEqual(j.records.map((_, i) => i + 1));
  });

  it("demo --store records into a new file store and verifies it; audit verify names a tampered record", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hsmsim-cli-"));
    try {
      const r = run("demo", "--store", dir);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/audit verify: \d+ records, hash chain intact, head [0-9a-f]{64}/);
      expect(run("demo", "--store", dir).status).toBe(2); // it only writes a new store
      const ok = run("audit", "verify", "--store", dir, "--json");
      expect(ok.status).toBe(0);
      const v = JSON.parse(ok.stdout) as { ok: boolean; checked: number };
      expect(v.ok).toBe(true);
      expect(v.checked).toBeGreaterThan(20);
      const log = path.join(dir, "events.log");
      const lines = fs.readFileSync(log, "utf8").split("\n");
      lines[6] = lines[6]!.replace('"rv":0', '"rv":5');
      fs.writeFileSync(log, lines.join("\n"));
      const bad = run("audit", "verify", "--store", dir);
      expect(bad.status).toBe(1);
      expect(bad.stdout).toContain("bad record: seq 7");
      expect(run("audit", "verify", "--store", path.join(dir, "nope")).status).toBe(2);
      expect(run("audit", "verify").status).toBe(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("unknown commands and options exit 2 with the usage", () => {
    const r = run("frobnicate");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
    expect(r.stderr).toContain("usage: hsmsim");
    expect(run("demo", "--bogus").status).toBe(2);
    expect(run("help").status).toBe(0);
  });
});
