/**
 * The `hsmsim` command as a shell user meets it (bin/hsmsim.js on the built dist/, which `npm test` builds first):
 * `hsmsim demo` runs the documented example and exits 0; unknown commands exit 2 with the usage; `audit verify` checks
 * the chain and the signed checkpoints, `audit show` lists calls (table, JSON lines, pkcs11-spy text), `replay`
 * rebuilds the state at a point of the log. Each on real stores in temporary directories.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FileEventStore } from "../../src/events/file-store.js";

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

/** A store recorded by `hsmsim demo --store` (23 calls; checkpointed at close), removed after the block. */
function demoStore(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hsmsim-cli-"));
  made.push(dir);
  expect(run("demo", "--store", dir).status).toBe(0);
  return dir;
}
const made: string[] = [];
afterAll(() => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

describe("hsmsim audit verify: signed checkpoints", () => {
  it("verifies the checkpoints under audit.pub or --pubkey, and names a log cut below one", () => {
    const dir = demoStore();
    const pub = fs.readFileSync(path.join(dir, "audit.pub"), "utf8").trim();
    expect(pub).toMatch(/^[0-9a-f]{64}$/);
    const ok = run("audit", "verify", "--store", dir, "--json");
    expect(ok.status).toBe(0);
    const v = JSON.parse(ok.stdout) as { checkpoints: { verified: number; lastSeq: number; publicKey: string; keySource: string } };
    expect(v.checkpoints).toMatchObject({ verified: 1, lastSeq: 23, publicKey: pub, keySource: "audit.pub" });
    const text = run("audit", "verify", "--store", dir, "--pubkey", pub);
    expect(text.status).toBe(0);
    expect(text.stdout).toContain("checkpoints: 1 of 1 verified under audit key");
    expect(run("audit", "verify", "--store", dir, "--pubkey", path.join(dir, "audit.pub")).status).toBe(0);
    // Another key: the checkpoint is named as forged.
    const bad = run("audit", "verify", "--store", dir, "--pubkey", "ab".repeat(32));
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/bad record: seq 23 \(checkpoints.log line 1\): .*signature does not verify/);
    const garbage = run("audit", "verify", "--store", dir, "--pubkey", "not-a-key");
    expect(garbage.status).toBe(2);
    expect(garbage.stderr).toContain("--pubkey");
    // The last record dropped: a valid chain, but shorter than the signed one.
    const log = path.join(dir, "events.log");
    const lines = fs.readFileSync(log, "utf8").split("\n");
    fs.writeFileSync(log, lines.slice(0, 22).join("\n") + "\n");
    const cut = run("audit", "verify", "--store", dir);
    expect(cut.status).toBe(1);
    expect(cut.stdout).toContain("bad record: seq 23 (checkpoints.log line 1): the log ends at seq 22 but checkpoints.log line 1 signed seq 23");
    // No audit.pub and no --pubkey: told what to give.
    fs.rmSync(path.join(dir, "audit.pub"));
    const nokey = run("audit", "verify", "--store", dir);
    expect(nokey.status).toBe(2);
    expect(nokey.stderr).toContain("--pubkey");
  });
});

describe("hsmsim audit show", () => {
  it("lists calls with filters, as a table and as JSON lines", () => {
    const dir = demoStore();
    const all = run("audit", "show", "--store", dir);
    expect(all.status).toBe(0);
    expect(all.stdout.split("\n")[0]).toMatch(/^seq\s+time \(UTC\)\s+app\s+session\s+call\s+args\s+rv\s+facts$/);
    expect(all.stdout).toContain("23 calls");
    const logins = run("audit", "show", "--store", dir, "--fn", "C_Login", "--format", "jsonl");
    expect(logins.status).toBe(0);
    const recs = logins.stdout.trim().split("\n").map((l) => JSON.parse(l) as { seq: number; fn: string; args: { pin: unknown } });
    expect(recs.map((r) => [r.seq, r.fn])).toEqual([
      [4, "C_Login"],
      [9, "C_Login"],
    ]);
    expect(recs[1]!.args.pin).toEqual({ len: 4 });
    const json = (...a: string[]) => run("audit", "show", "--store", dir, "--json", ...a).stdout.trim().split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { seq: number }).seq);
    expect(json("--rv", "CKR_SESSION_HANDLE_INVALID")).toEqual([22, 23]);
    expect(json("--rv", "0xb3")).toEqual([22, 23]);
    expect(json("--session", "1", "--app", "1")).toEqual([3, 4, 5, 6]);
    expect(json("--app", "1")).toHaveLength(23); // C_Initialize counts for the application it started
    expect(json("--app", "2")).toEqual([]);
    expect(json("--since", "2100-01-01T00:00:00Z")).toEqual([]);
    expect(json("--until", "2100-01-01T00:00:00Z")).toHaveLength(23);
    expect(json("--fn", "Login,C_Logout")).toEqual([4, 9, 19]);
    const none = run("audit", "show", "--store", dir, "--fn", "C_SetPIN");
    expect(none.stdout.trim()).toBe("0 calls matching");
  });

  it("writes pkcs11-spy's layout, PINs as lengths only", () => {
    const dir = demoStore();
    const r = run("audit", "show", "--store", dir, "--format", "spy");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("*************** OpenSC PKCS#11 spy *****************");
    const block = (n: number, fn: string) => {
      const lines = r.stdout.split("\n");
      const i = lines.indexOf(`${n}: ${fn}`);
      expect(i).toBeGreaterThanOrEqual(0);
      return lines.slice(i, lines.findIndex((l, j) => j > i && l.startsWith("Returned:")) + 1);
    };
    // The same lines as Debian opensc's pkcs11-spy.so around SoftHSM (captured from pkcs11-tool --login), but for the
    // time, the address pkcs11-spy prints (the log has none) and the PIN bytes it dumps (the log has their length).
    const login = block(9, "C_Login");
    expect(login[1]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);
    expect(login.slice(2)).toEqual(["[in] hSession = 0x2", "[in] userType = CKU_USER", "[in] pPin[ulPinLen] 0000000000000000 / 4", "Returned:  0 CKR_OK"]);
    expect(block(7, "C_OpenSession").slice(2)).toEqual([
      "[in] slotID = 0x0",
      "[in] flags = 0x6",
      "[in] pApplication = (nil)",
      "[in] Notify = (nil)",
      "[out] *phSession = 0x2",
      "Returned:  0 CKR_OK",
    ]);
    expect(block(13, "C_DigestInit").slice(2)).toEqual([
      "[in] hSession = 0x2",
      "[in] pMechanism->type = CKM_SHA256                    ",
      "[in] pMechanism->pParameter[ulParameterLen] NULL [size : 0x0 (0)]",
      "Returned:  0 CKR_OK",
    ]);
    expect(block(15, "C_Digest")).toContain("    00000000  BA 78 16 BF 8F 01 CF EA 41 41 40 DE 5D AE 22 23  .x......AA@.].\"#");
    expect(block(21, "C_CloseSession").slice(2)).toEqual(["[in] hSession = 0x2", "Returned:  0 CKR_OK"]);
    expect(block(22, "C_GetSessionInfo").at(-1)).toBe("Returned:  179 CKR_SESSION_HANDLE_INVALID");
    expect(r.stdout).not.toContain("12345678");
    expect(r.stdout).not.toContain("31 32 33 34");
  });

  it("writes all of a long listing to a pipe (nothing cut by the exit)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hsmsim-cli-"));
    made.push(dir);
    const store = new FileEventStore(dir, { durability: "none" });
    for (let seq = 1; seq <= 20_000; seq++) store.append({ seq, time: 1_800_000_000_000 + seq, app: 1, fn: "C_GetInfo", args: {}, rv: 0, facts: [] });
    store.close();
    const r = spawnSync(process.execPath, [BIN, "audit", "show", "--store", dir, "--json"], { encoding: "utf8", timeout: 60_000, maxBuffer: 64 << 20 });
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(20_000);
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ seq: 20_000 });
  });

  it("exits 2 for bad options and 1 for a tampered log", () => {
    const dir = demoStore();
    expect(run("audit", "show", "--store", dir, "--rv", "CKR_NOPE").status).toBe(2);
    expect(run("audit", "show", "--store", dir, "--format", "xml").status).toBe(2);
    expect(run("audit", "show", "--store", dir, "--since", "yesterday").status).toBe(2);
    expect(run("audit", "show", "--store", dir, "--app", "-1").status).toBe(2);
    expect(run("audit", "show", "--store", path.join(dir, "nope")).status).toBe(2);
    expect(run("audit", "show").status).toBe(2);
    const log = path.join(dir, "events.log");
    const lines = fs.readFileSync(log, "utf8").split("\n");
    lines[9] = lines[9]!.replace('"rv":0', '"rv":5');
    fs.writeFileSync(log, lines.join("\n"));
    const bad = run("audit", "show", "--store", dir);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("bad at seq 10");
  });
});

describe("hsmsim replay", () => {
  it("rebuilds the state at a sequence or a time: tokens, flags, logins, sessions, no secret values", () => {
    const dir = demoStore();
    const r = run("replay", "--store", dir, "--until", "13", "--json");
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout) as {
      at: { seq: number; time: string };
      tokens: { label: string; flagNames: string[]; sessions: { sessions: number } }[];
      applications: { slots: { login: string }[]; sessions: { handle: number; stateName: string; operation: string | null }[]; sessionObjects: { attrs: Record<string, unknown> }[] }[];
    };
    expect(s.at.seq).toBe(13);
    expect(s.tokens[0]).toMatchObject({ label: "demo", sessions: { sessions: 1 } });
    expect(s.tokens[0]!.flagNames).toContain("CKF_USER_PIN_INITIALIZED");
    expect(s.applications[0]!.slots[0]!.login).toBe("user");
    expect(s.applications[0]!.sessions).toEqual([expect.objectContaining({ handle: 2, stateName: "CKS_RW_USER_FUNCTIONS", operation: "digest (CKM_SHA256)" })]);
    expect(s.applications[0]!.sessionObjects[0]!.attrs).toMatchObject({ CKA_LABEL: "demo data", CKA_VALUE: { length: 5 } });
    expect(r.stdout).not.toContain("hello");
    expect(r.stdout).not.toContain("68656c6c6f");
    // After the log-out (seq 19): the same session, public.
    const out = run("replay", "--store", dir, "--until", "19");
    expect(out.status).toBe(0);
    expect(out.stdout).toContain("session 2: slot 0, RW, CKS_RW_PUBLIC_SESSION");
    expect(out.stdout).toContain("slot 0: token slot0, not logged in");
    // By time: the time of record 9 gives the state after it.
    const rec9 = JSON.parse(fs.readFileSync(path.join(dir, "events.log"), "utf8").split("\n")[8]!) as { record: { time: number } };
    const byTime = JSON.parse(run("replay", "--store", dir, "--until", new Date(rec9.record.time).toISOString(), "--json").stdout) as { at: { seq: number } };
    expect(byTime.at.seq).toBeGreaterThanOrEqual(9);
    const all = run("replay", "--store", dir);
    expect(all.stdout).toContain("state after seq 23");
    expect(all.stdout).toContain("no sessions");
  });

  it("exits 2 with a message for a point past the log, a bad --until, a missing store", () => {
    const dir = demoStore();
    const past = run("replay", "--store", dir, "--until", "99");
    expect(past.status).toBe(2);
    expect(past.stderr).toContain("--until 99 is past the end of the log (it holds 23 records)");
    expect(run("replay", "--store", dir, "--until", "soon").status).toBe(2);
    expect(run("replay", "--store", path.join(dir, "nope")).status).toBe(2);
    fs.rmSync(path.join(dir, "simulator.json"));
    const nosettings = run("replay", "--store", dir);
    expect(nosettings.status).toBe(2);
    expect(nosettings.stderr).toContain("simulator.json");
  });

  it("init-token, show-slots, then the store's log, checkpoints and every export hold no PIN", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hsmsim-token-"));
    const SO = "S0-secret-pin-42";
    const USER = "usr-secret-pin-17";
    try {
      const init = run("init-token", "--store", dir, "--slot", "0", "--label", "cli token", "--so-pin", SO, "--pin", USER);
      expect(init.status).toBe(0);
      expect(init.stdout).toMatch(/initialized on slot 0 \(serial [0-9a-f]{16}\), with a user PIN/);
      expect(run("init-token", "--store", dir, "--slot", "0", "--label", "x", "--so-pin", "not-the-pin").status).toBe(1);
      expect(run("init-token", "--store", dir, "--slot", "9", "--label", "x", "--so-pin", SO).status).toBe(2);

      const show = run("show-slots", "--store", dir, "--json");
      expect(show.status).toBe(0);
      const [slot] = JSON.parse(show.stdout) as { slotID: number; token: { label: string; flags: number } }[];
      expect(slot!.slotID).toBe(0);
      expect(slot!.token.label.trim()).toBe("cli token");
      expect(slot!.token.flags & 0x8).toBe(0x8); // CKF_USER_PIN_INITIALIZED

      // The user PIN set by the CLI opens the token through the drop-in.
      const { PKCS11 } = await import("../../src/pkcs11/pkcs11js.js");
      const p = new PKCS11();
      p.load(`file:${dir}`);
      p.C_Initialize();
      const h = p.C_OpenSession(p.C_GetSlotList(true)[0]!, 6);
      p.C_Login(h, 1, USER);
      expect(p.C_GetSessionInfo(h).state).toBe(3);
      p.C_Finalize();
      p.close();

      const outputs = [
        show.stdout,
        init.stdout,
        run("show-slots", "--store", dir).stdout,
        run("audit", "show", "--store", dir, "--format", "jsonl").stdout,
        run("audit", "show", "--store", dir, "--format", "spy").stdout,
        run("audit", "show", "--store", dir).stdout,
        run("replay", "--store", dir, "--json").stdout,
        fs.readFileSync(path.join(dir, "events.log"), "latin1"),
        fs.readFileSync(path.join(dir, "checkpoints.log"), "latin1"),
      ];
      for (const pin of [SO, USER]) {
        const b = Buffer.from(pin);
        for (const enc of [pin, b.toString("hex"), b.toString("hex").toUpperCase(), b.toString("base64")]) {
          for (const o of outputs) expect(o.includes(enc), `${pin} as ${enc}`).toBe(false);
        }
      }
      expect(outputs[3]!.length).toBeGreaterThan(1000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
