/**
 * `hsmsim replay --spy`: real traces, recorded here by OpenSC's pkcs11-spy (Debian opensc) while pkcs11-tool drives
 * real SoftHSM 2.6.1 through token init, PIN init, login, object listing, data objects, digest, mechanism listing,
 * module and slot information, a wrong PIN, a PIN change and random bytes; re-executed against the softhsm2 profile:
 * no divergence for the functions hsmsim implements, the skipped ones named with counts, and a changed trace (or the
 * default profile) reported call by call. PINs from the trace appear in no output and in no file of the store.
 * Committed fixtures (test/fixtures/spy, fake PINs) keep the parser's tests stable.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { cliInProcess } from "../support/cli-in-process.js";
import { isKnownFunction } from "../../src/events/call-schema.js";
import { parseSpyTrace, templateOf, bufferOf, infoOf } from "../../src/replay/spy-parse.js";
import type { SpyReport } from "../../src/replay/spy-run.js";
import { CK } from "../../src/pkcs11/constants.js";

const SPY = "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so";
const SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so";
const FIXTURES = fileURLToPath(new URL("../fixtures/spy/", import.meta.url));

const { cli, tempDir } = cliInProcess();

// PINs of the live recording: distinctive, so that a scan cannot meet them by chance.
const SO_PIN = "31415926";
const USER_PIN = "271828";
const NEW_PIN = "161803";
const BAD_PIN = "999111";
const PINS = [SO_PIN, USER_PIN, NEW_PIN, BAD_PIN];

/** Run pkcs11-tool flows through pkcs11-spy against a fresh SoftHSM token directory; the trace's path. */
function record(flows: string[][]): { trace: string; results: { args: string[]; status: number | null }[] } {
  const dir = tempDir("hsmsim-spy-");
  fs.mkdirSync(path.join(dir, "tokens"));
  fs.writeFileSync(path.join(dir, "softhsm2.conf"), `directories.tokendir = ${dir}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n`);
  fs.writeFileSync(path.join(dir, "data.txt"), "spy test data\n");
  const trace = path.join(dir, "trace.log");
  const env = { ...process.env, SOFTHSM2_CONF: path.join(dir, "softhsm2.conf"), PKCS11SPY: SOFTHSM, PKCS11SPY_OUTPUT: trace };
  const results = flows.map((f) => {
    const args = ["--module", SPY, ...f.map((a) => a.replace("$DIR", dir))];
    const r = spawnSync("pkcs11-tool", args, { env, encoding: "utf8", timeout: 30_000 });
    if (r.error) throw r.error;
    return { args: f, status: r.status };
  });
  return { trace, results };
}

const tok = ["--token-label", "spytest"];
const FLOWS: string[][] = [
  ["--init-token", "--slot-index", "0", "--so-pin", SO_PIN, "--label", "spytest"],
  [...tok, "--login", "--login-type", "so", "--so-pin", SO_PIN, "--init-pin", "--pin", USER_PIN],
  [...tok, "--login", "--pin", USER_PIN, "--list-objects"],
  [...tok, "--login", "--pin", USER_PIN, "--write-object", "$DIR/data.txt", "--type", "data", "--label", "spy-data"],
  [...tok, "--login", "--pin", USER_PIN, "--list-objects"],
  [...tok, "--login", "--pin", USER_PIN, "--read-object", "--type", "data", "--label", "spy-data", "-o", "$DIR/read.bin"],
  [...tok, "--login", "--pin", BAD_PIN, "--list-objects"],
  ["--hash", "-m", "SHA256", "-i", "$DIR/data.txt", "-o", "$DIR/hash.bin"],
  [...tok, "--list-mechanisms"],
  ["--show-info"],
  ["--list-slots"],
  [...tok, "--generate-random", "16", "-o", "$DIR/random.bin"],
  [...tok, "--login", "--pin", USER_PIN, "--delete-object", "--type", "data", "--label", "spy-data"],
  [...tok, "--login", "--pin", USER_PIN, "--change-pin", "--new-pin", NEW_PIN],
  [...tok, "--login", "--pin", NEW_PIN, "--list-objects"],
];

/** Every way a PIN could be written: its text, hex (both cases, and pkcs11-spy's spaced dump), base64. */
function pinForms(pin: string): string[] {
  const b = Buffer.from(pin);
  const spaced = [...b].map((x) => x.toString(16).toUpperCase().padStart(2, "0")).join(" ");
  return [pin, b.toString("hex"), b.toString("hex").toUpperCase(), spaced, b.toString("base64").replace(/=+$/, "")];
}

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

describe("hsmsim replay --spy on real pkcs11-tool traces (pkcs11-spy over SoftHSM 2.6.1)", () => {
  const recorded = record(FLOWS);
  const text = fs.readFileSync(recorded.trace, "latin1");

  it("records the flows for real: every pkcs11-tool run but the wrong PIN succeeded", () => {
    expect(recorded.results.map((r) => r.status)).toEqual(FLOWS.map((f) => (f.includes(BAD_PIN) ? 1 : 0)));
    expect(text).toContain("OpenSC PKCS#11 spy");
    expect(text).toContain("CKR_PIN_INCORRECT");
    for (const pin of PINS) expect(text).toContain(pinForms(pin)[3]); // pkcs11-spy dumped each PIN
  });

  it("against the softhsm2 profile: no divergence for the functions hsmsim implements; skipped ones named with counts", async () => {
    const store = path.join(tempDir("hsmsim-spy-store-"), "store");
    const r = await cli("replay", "--spy", recorded.trace, "--json", "--store", store);
    const report = JSON.parse(r.out) as SpyReport & { ok: boolean; profile: string };
    expect(report.divergences).toEqual([]);
    expect(r.code).toBe(0);
    expect(report.profile).toBe("softhsm2");
    const processes = parseSpyTrace(text).modules.length;
    expect(processes).toBe(FLOWS.length);
    // Every call was either re-executed or skipped; the skipped ones are not in hsmsim's function table.
    expect(report.reexecuted + Object.values(report.skipped).reduce((n, s) => n + s.count, 0)).toBe(report.calls);
    expect(report.skipped.C_GetInterface).toEqual({ count: processes, reason: "not a function hsmsim implements" });
    for (const [fn, s] of Object.entries(report.skipped)) if (s.reason === "not a function hsmsim implements") expect(isKnownFunction(fn)).toBe(false);
    for (const fn of [
      "C_Initialize",
      "C_GetSlotList",
      "C_GetTokenInfo",
      "C_GetSlotInfo",
      "C_GetInfo",
      "C_InitToken",
      "C_InitPIN",
      "C_Login",
      "C_SetPIN",
      "C_OpenSession",
      "C_FindObjectsInit",
      "C_FindObjects",
      "C_GetAttributeValue",
      "C_CreateObject",
      "C_DestroyObject",
      "C_DigestInit",
      "C_DigestUpdate",
      "C_DigestFinal",
      "C_GetMechanismList",
      "C_GetMechanismInfo",
      "C_GenerateRandom",
      "C_Finalize",
    ]) {
      expect(report.compared[fn], fn).toBeGreaterThan(0);
    }
    expect(report.serials).toEqual({ fromTrace: 1, drawn: 0 });

    // The text report says the same.
    const t = await cli("replay", "--spy", recorded.trace);
    expect(t.code).toBe(0);
    expect(t.out).toMatch(/C_GetInterface ×\d+: not a function hsmsim implements/);
    expect(t.out).toContain("no divergence in ");
    expect(t.out).not.toContain("DIVERGES");

    // No PIN anywhere: not in any output, not in any file of the store the re-execution was recorded in.
    const files = filesUnder(store);
    expect(files.some((f) => f.endsWith("events.log"))).toBe(true);
    expect(fs.statSync(path.join(store, "events.log")).size).toBeGreaterThan(1000);
    const haystacks = [r.out, r.err, t.out, t.err, ...files.map((f) => fs.readFileSync(f).toString("latin1"))];
    for (const pin of PINS) for (const form of pinForms(pin)) for (const h of haystacks) expect(h.includes(form), `${form} found`).toBe(false);
  });

  it("reports a changed trace call by call: rv, token flags, a digest byte, a mechanism's key size", async () => {
    const lines = text.split("\n");
    const firstLogin = lines.findIndex((l) => /^\d+: C_Login$/.test(l));
    const loginReturn = lines.findIndex((l, i) => i > firstLogin && l.startsWith("Returned:"));
    lines[loginReturn] = "Returned:  160 CKR_PIN_INCORRECT";
    const flagsLine = lines.findIndex((l) => /^ {6}flags: {19}42d$/.test(l));
    lines[flagsLine] = lines[flagsLine]!.replace("42d", "42f");
    const digestOut = lines.findIndex((l) => l.startsWith("[out] pDigest"));
    lines[digestOut + 1] = lines[digestOut + 1]!.replace(/^( {4}00000000 {2})([0-9A-F]{2})/, (_m, a: string, b: string) => a + ((parseInt(b, 16) ^ 1).toString(16).toUpperCase().padStart(2, "0")));
    const mechInfo = lines.findIndex((l) => /^CKM_AES_CBC +: min:16/.test(l));
    lines[mechInfo] = lines[mechInfo]!.replace("min:16", "min:24");
    const changed = path.join(tempDir("hsmsim-spy-changed-"), "changed.log");
    fs.writeFileSync(changed, lines.join("\n"));

    const r = await cli("replay", "--spy", changed, "--json");
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out) as SpyReport;
    expect(report.divergences.find((d) => d.fn === "C_Login")).toMatchObject({ rv: { trace: CK.CKR_PIN_INCORRECT, hsmsim: CK.CKR_OK } });
    expect(report.divergences.find((d) => d.fn === "C_GetTokenInfo")?.diffs).toContainEqual({ field: "flags", trace: "42f", hsmsim: "42d" });
    expect(report.divergences.find((d) => d.fn === "C_DigestFinal")?.diffs[0]?.field).toBe("digest");
    expect(report.divergences.find((d) => d.fn === "C_GetMechanismInfo")?.diffs).toEqual([{ field: "minKeySize", trace: 24, hsmsim: 16 }]);
    const t = await cli("replay", "--spy", changed);
    expect(t.code).toBe(1);
    expect(t.out).toMatch(/DIVERGES process \d+ call \d+ C_Login \(trace line \d+\): rv trace CKR_PIN_INCORRECT, hsmsim CKR_OK/);
  });

  it("against the default profile the same trace diverges (SoftHSM's slot numbering and session counts are softhsm2's)", async () => {
    const r = await cli("replay", "--spy", recorded.trace, "--profile", "default", "--json");
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out) as SpyReport;
    expect(report.divergences.length).toBeGreaterThan(10);
    expect(report.divergences.some((d) => d.fn === "C_GetTokenInfo" && d.diffs.some((x) => x.field === "maxSessionCount"))).toBe(true);
  });
});

describe("hsmsim replay --spy on committed fixtures (fake PINs)", () => {
  it("softhsm2-token-objects.log: parsed field by field, and re-executed without divergence", async () => {
    const text = fs.readFileSync(path.join(FIXTURES, "softhsm2-token-objects.log"), "latin1");
    const trace = parseSpyTrace(text);
    expect(trace.modules.every((m) => m === SOFTHSM)).toBe(true);
    expect(trace.modules).toHaveLength(9);
    expect(trace.calls).toHaveLength(120);
    const init = trace.calls.find((c) => c.fn === "C_InitToken")!;
    const pin = init.fields.find((f) => f.name === "pPin[ulPinLen]")!;
    expect(Buffer.from(bufferOf(pin.value, pin.lines)!.buf.bytes!).toString()).toBe("10293847");
    const label = init.fields.find((f) => f.name === "pLabel[32]")!;
    expect(Buffer.from(bufferOf(label.value, label.lines)!.buf.bytes!).toString()).toBe("fixture".padEnd(32));
    const create = trace.calls.find((c) => c.fn === "C_CreateObject")!;
    const tpl = templateOf(create.fields.find((f) => f.dir === "in" && f.name === "pTemplate[5]:")!)!;
    expect(tpl.map((a) => a.name)).toEqual(["CKA_CLASS", "CKA_TOKEN", "CKA_VALUE", "CKA_PRIVATE", "CKA_LABEL"]);
    expect(tpl[0]!.shown).toBe("CKO_DATA");
    expect(tpl[1]!.shown).toBe("True");
    expect(Buffer.from(tpl[2]!.buffer!.bytes!).toString()).toBe("fixture data\n");
    expect(Buffer.from(tpl[4]!.buffer!.bytes!).toString()).toBe("fixture-data");
    expect(create.fields.find((f) => f.name === "*phObject")?.value).toBe("0x2");
    expect(trace.calls.filter((c) => c.rv === CK.CKR_PIN_INCORRECT).map((c) => c.fn)).toEqual(["C_Login"]);
    const info = infoOf(trace.calls.find((c) => c.fn === "C_GetTokenInfo" && c.rv === 0)!.fields.find((f) => f.name === "pInfo:")!);
    expect(info.get("manufacturerID")).toBe("SoftHSM project".padEnd(32));

    const r = await cli("replay", "--spy", path.join(FIXTURES, "softhsm2-token-objects.log"), "--json");
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as SpyReport;
    expect(report).toMatchObject({ processes: 9, calls: 120, reexecuted: 111, matched: 111, divergences: [], finalizedOnBehalf: 1 });
    expect(report.skipped).toEqual({ C_GetInterface: { count: 9, reason: "not a function hsmsim implements" } });
    expect(report.compared).toMatchObject({ C_CreateObject: 1, C_DestroyObject: 1, C_SetPIN: 1, C_InitPIN: 1, C_FindObjectsInit: 3 });
    for (const p of ["10293847", "5647", "8642", "7465"]) expect(r.out).not.toContain(p);
  });

  it("softhsm2-digest-info.log: the digest SoftHSM computed is hsmsim's", async () => {
    const text = fs.readFileSync(path.join(FIXTURES, "softhsm2-digest-info.log"), "latin1");
    const final = parseSpyTrace(text).calls.find((c) => c.fn === "C_DigestFinal")!;
    const d = final.fields.find((f) => f.name === "pDigest[*pulDigestLen]")!;
    expect(Buffer.from(bufferOf(d.value, d.lines)!.buf.bytes!).toString("hex")).toBe(createHash("sha256").update("fixture data\n").digest("hex"));
    const r = await cli("replay", "--spy", path.join(FIXTURES, "softhsm2-digest-info.log"));
    expect(r.code).toBe(0);
    expect(r.out).toContain("C_DigestFinal ×1");
    expect(r.out).toContain("C_GetInterface ×4: not a function hsmsim implements");
  });
});

describe("the pkcs11-spy reader: the shapes pkcs11-spy prints", () => {
  const call = (body: string) => parseSpyTrace(`0: C_Test\n2026-01-02 03:04:05.678\n${body}\nReturned:  0 CKR_OK\n`).calls[0]!;

  it("C_GetMechanismInfo's [in] type and [out] pInfo on one line", () => {
    const c = call("[in] slotID = 0x1\n[in] type = CKM_SHA256                   [out] pInfo: \nCKM_SHA256                    : min:0 max:0 flags:0x400 ( Digest )");
    expect(c.fields.map((f) => [f.dir, f.name, f.value])).toEqual([
      ["in", "slotID", "0x1"],
      ["in", "type", "CKM_SHA256"],
      ["out", "pInfo:", ""],
    ]);
    expect(c.fields[2]!.lines[0]).toMatch(/min:0 max:0 flags:0x400/);
    expect(c.time).toBe(new Date(2026, 0, 2, 3, 4, 5, 678).getTime());
  });

  it("print_print dumps longer than a row, print_generic dumps, unknown attributes, NULL and unavailable lengths", () => {
    const label = "a label that is longer than thirty-two bytes";
    const b = Buffer.from(label);
    const rows: string[] = [];
    for (let i = 0; i < b.length; i += 32) {
      const row = b.subarray(i, i + 32);
      rows.push("    " + (row.toString("hex").toUpperCase().match(/.{1,8}/g) ?? []).join(" "));
      rows.push("    " + [...row].map((x, j) => (j && j % 4 === 0 ? " " : "") + " " + String.fromCharCode(x)).join(""));
      if (row.length === 32) rows.push("    ");
    }
    const c = call(
      [
        "[in] pTemplate[5]: ",
        `    CKA_LABEL             00007ffd8a20ba3d / ${b.length}`,
        ...rows,
        "    CKA_VALUE             00007ffe234e5e20 / 18",
        "    00000000  68 65 6C 6C 6F 20 77 6F 72 6C 64 20 61 67 61 69  hello world agai",
        "    00000010  6E 21                                            n!              ",
        "    CKA_? (0x80000001)    0000000000000000 / 0",
        "    CKA_ID                0000000000000000 / -1",
        "    CKA_MODIFIABLE        False",
      ].join("\n"),
    );
    const t = templateOf(c.fields[0]!)!;
    expect(Buffer.from(t[0]!.buffer!.bytes!).toString()).toBe(label);
    expect(Buffer.from(t[1]!.buffer!.bytes!).toString()).toBe("hello world again!");
    expect(t[2]).toMatchObject({ type: 0x80000001, buffer: { isNull: true, len: 0 } });
    expect(t[3]).toMatchObject({ type: CK.CKA_ID, buffer: { isNull: true, len: CK.CK_UNAVAILABLE_INFORMATION } });
    expect(t[4]).toMatchObject({ type: CK.CKA_MODIFIABLE, shown: "False" });
    expect(bufferOf("NULL [size : 0x20 (32)]", [])!.buf).toEqual({ isNull: true, len: 32 });
  });

  it("skips what hsmsim does not implement and calls cut off by the end of the trace, by name", async () => {
    const dir = tempDir("hsmsim-spy-shapes-");
    const file = path.join(dir, "t.log");
    fs.writeFileSync(
      file,
      [
        "*************** OpenSC PKCS#11 spy *****************",
        'Loaded: "/some/module.so"',
        "",
        "0: C_Initialize",
        "2026-01-02 03:04:05.678",
        "[in] pInitArgs = (nil)",
        "Returned:  0 CKR_OK",
        "",
        "1: C_FrobnicateToken",
        "2026-01-02 03:04:05.679",
        "Returned:  0 CKR_OK",
        "",
        "2: C_GetInfo",
        "2026-01-02 03:04:05.680",
      ].join("\n"),
    );
    const r = await cli("replay", "--spy", file, "--json");
    const report = JSON.parse(r.out) as SpyReport;
    expect(r.code).toBe(0);
    expect(report.skipped).toEqual({
      C_FrobnicateToken: { count: 1, reason: "not a function hsmsim implements" },
      C_GetInfo: { count: 1, reason: "the trace ends before it returned" },
    });
    expect(report.compared).toEqual({ C_Initialize: 1 });
    expect(report.finalizedOnBehalf).toBe(1);
  });

  it("errors a shell user can act on: exit 2", async () => {
    const missing = await cli("replay", "--spy", "/nonexistent/trace.log");
    expect(missing.code).toBe(2);
    expect(missing.err).toContain("cannot read /nonexistent/trace.log: ENOENT");
    const empty = path.join(tempDir("hsmsim-spy-empty-"), "empty.log");
    fs.writeFileSync(empty, "not a trace\n");
    const e = await cli("replay", "--spy", empty);
    expect(e.code).toBe(2);
    expect(e.err).toContain("holds no pkcs11-spy calls");
    expect((await cli("replay", "--spy", empty, "--profile", "nope")).code).toBe(2);
    expect((await cli("replay", "--spy", empty, "--check")).code).toBe(2);
    expect((await cli("replay", "--spy", empty, "--until", "3")).code).toBe(2);
  });
});
