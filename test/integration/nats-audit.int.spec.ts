/**
 * Audit and replay on a simulator served on NATS (issue 5 "on JetStream too"), end to end on a real nats-server:
 * `hsmsim serve` signs a checkpoint every N records into KV hsmsim-audit with its own audit key; `hsmsim audit
 * verify|show`, `replay --until` and `replay --check` take `--nats URL --name N` in place of `--store DIR`, and
 * `hsmsim export` writes the log as a file store. Tampering is caught: a forged checkpoint, a record deleted from the
 * stream, and a log cut short behind its last signed checkpoint.
 */
import fs from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { ed25519 } from "@noble/curves/ed25519.js";
import { connect } from "../../src/remote/client.js";
import { CK } from "../../src/pkcs11/constants.js";
import { AUDIT_BUCKET, DEFAULT_PREFIX, DEFAULT_STREAM, subjects } from "../../src/remote/protocol.js";
import { ensureStream, readSubject } from "../../src/events/jetstream-store.js";
import { checkpointKeyBase } from "../../src/events/jetstream-checkpoints.js";
import { checkpointLine, signCheckpoint } from "../../src/events/checkpoint.js";
import { natsPerFile } from "../support/nats-server.js";
import { startServe, type ServeProcess } from "../support/serve-process.js";
import { cliInProcess } from "../support/cli-in-process.js";
import { SO_PIN, USER_PIN } from "../support/sim.js";
import { initToken, remote } from "../support/remote-app.js";

const { cli, tempDir } = cliInProcess();
const RW = CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION;
const EVERY = 5;

const nats = natsPerFile("A");

interface Served {
  sim: string;
  keyFile: string;
  pub: string;
  records: number;
}

/** Serve `sim`, run a session's worth of calls through a remote client, stop the service cleanly. */
async function servedAndStopped(sim: string): Promise<Served> {
  const auditDir = join(tempDir("hsmsim-audit-dir-"), "audit");
  const svc: ServeProcess & { keyFile: string } = await startServe(nats.server.url, sim, { extra: ["--checkpoint-every", String(EVERY), "--audit-dir", auditDir] });
  try {
    const c = await connect(`${nats.server.url}/${sim}`, { timeoutMs: 5000 });
    const call = remote(c.application());
    await initToken(call, "audited");
    const h = (await call("C_OpenSession", { slotID: 0, flags: RW })).out.hSession;
    expect((await call("C_Login", { hSession: h, userType: CK.CKU_USER, pin: "wrong" })).rv).toBe("CKR_PIN_INCORRECT");
    expect((await call("C_Login", { hSession: h, userType: CK.CKU_USER, pin: USER_PIN })).rv).toBe("CKR_OK");
    const data = new TextEncoder().encode("what the auditor may not read");
    expect((await call("C_DigestInit", { hSession: h, mechanism: { mechanism: CK.CKM_SHA256, parameter: null } })).rv).toBe("CKR_OK");
    expect((await call("C_Digest", { hSession: h, data, outLen: 32 })).rv).toBe("CKR_OK");
    expect((await call("C_Logout", { hSession: h })).rv).toBe("CKR_OK");
    expect((await call("C_CloseSession", { hSession: h })).rv).toBe("CKR_OK");
    expect((await call("C_Finalize", {})).rv).toBe("CKR_OK");
    await c.close();
  } finally {
    expect((await svc.stop()).code).toBe(0);
  }
  const pub = join(auditDir, "audit.pub");
  expect(svc.stderr()).toContain(`audit public key ${fs.readFileSync(pub, "utf8").trim()}`);
  const shown = await cli("audit", "show", "--nats", nats.server.url, "--name", sim, "--json");
  expect(shown.code, shown.err).toBe(0);
  return { sim, keyFile: svc.keyFile, pub, records: shown.out.split("\n").length };
}

describe("audit and replay of a simulator served on NATS", () => {
  let s: Served;
  beforeAll(async () => {
    s = await servedAndStopped("audited");
  }, 90_000);

  it("audit verify: the chain and every signed checkpoint, under the public key given", async () => {
    const r = await cli("audit", "verify", "--nats", nats.server.url, "--name", s.sim, "--pubkey", s.pub, "--json");
    expect(r.code, r.err).toBe(0);
    const v = JSON.parse(r.out) as { ok: boolean; checked: number; checkpoints: { verified: number; lastSeq: number } };
    expect(v.ok).toBe(true);
    expect(v.checked).toBe(s.records);
    expect(s.records).toBeGreaterThanOrEqual(12);
    // One per EVERY records, and the last record's at the clean stop.
    expect(v.checkpoints.verified).toBeGreaterThanOrEqual(Math.floor(s.records / EVERY));
    expect(v.checkpoints.lastSeq).toBe(s.records);
    // Another key: the signatures do not verify.
    const other = Buffer.from(ed25519.getPublicKey(new Uint8Array(32).fill(7))).toString("hex");
    const bad = await cli("audit", "verify", "--nats", nats.server.url, "--name", s.sim, "--pubkey", other);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/signature does not verify/);
  });

  it("audit show lists the recorded calls, filtered, and no PIN", async () => {
    const all = await cli("audit", "show", "--nats", nats.server.url, "--name", s.sim, "--json");
    expect(all.code, all.err).toBe(0);
    const rows = all.out.split("\n").map((l) => JSON.parse(l) as { fn: string; rv: string });
    expect(rows).toHaveLength(s.records);
    const logins = await cli("audit", "show", "--nats", nats.server.url, "--name", s.sim, "--fn", "C_Login", "--rv", "CKR_PIN_INCORRECT", "--json");
    expect(logins.out.split("\n")).toHaveLength(1);
    for (const secret of [SO_PIN, USER_PIN, "wrong", "what the auditor may not read"]) expect(all.out).not.toContain(secret);
  });

  it("replay --until rebuilds an earlier state; replay --check re-executes the log with no divergence", async () => {
    const at = await cli("replay", "--nats", nats.server.url, "--name", s.sim, "--key-file", s.keyFile, "--until", "4", "--json");
    expect(at.code, at.err).toBe(0);
    const view = JSON.parse(at.out) as { at: { seq: number }; tokens: { label: string }[] };
    expect(view.at.seq).toBe(4);
    expect(JSON.stringify(view.tokens)).toContain("audited");
    const check = await cli("replay", "--check", "--nats", nats.server.url, "--name", s.sim, "--key-file", s.keyFile, "--json");
    expect(check.code, check.err + check.out).toBe(0);
    expect((JSON.parse(check.out) as { records: number; divergences: unknown[] }).divergences).toEqual([]);
    // Without the settings file, replay says what it needs.
    const none = await cli("replay", "--nats", nats.server.url, "--name", s.sim);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/simulator\.json|settings/);
  });

  it("export writes a file store an auditor verifies offline", async () => {
    const dir = join(tempDir("hsmsim-export-"), "copy");
    const r = await cli("export", "--nats", nats.server.url, "--name", s.sim, "--to", dir, "--json");
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ records: s.records });
    const v = await cli("audit", "verify", "--store", dir, "--pubkey", s.pub, "--json");
    expect(v.code, v.err).toBe(0);
    expect(JSON.parse(v.out)).toMatchObject({ ok: true, checked: s.records });
    expect((await cli("export", "--nats", nats.server.url, "--name", s.sim, "--to", dir)).code).toBe(2);
    expect((await cli("audit", "verify", "--nats", nats.server.url, "--store", dir)).code).toBe(2);
  });
});

describe("tampering with a served simulator's log or checkpoints is caught", () => {
  /**
   * The stream denies deletes (ensureStream), so a rewritten log is modelled as an attacker with the account's rights
   * would make one: a copy of the messages, edited, in another stream under another prefix, with every signed
   * checkpoint copied beside it (signatures can be copied, not made).
   */
  async function forged(s: Served, prefix: string, keep: (i: number, n: number) => boolean): Promise<string> {
    const jsm = await jetstreamManager(nats.nc);
    expect((await jsm.streams.info(DEFAULT_STREAM)).config.deny_delete).toBe(true);
    const stream = prefix.toUpperCase();
    await ensureStream(jsm, stream, prefix);
    const js = jetstream(nats.nc);
    const msgs: Uint8Array[] = [];
    await readSubject(js, DEFAULT_STREAM, subjects(s.sim).events, (m) => void msgs.push(m.data));
    for (const [i, d] of msgs.entries()) if (keep(i, msgs.length)) await js.publish(forgedSubject(s.sim, prefix), d);
    const kv = await new Kvm(nats.nc).open(AUDIT_BUCKET);
    const from = checkpointKeyBase(DEFAULT_PREFIX, s.sim);
    for await (const k of await kv.keys(`${from}*`)) await kv.put(checkpointKeyBase(prefix, s.sim) + k.slice(from.length), (await kv.get(k))!.string());
    return stream;
  }

  async function verify(s: Served, stream = DEFAULT_STREAM, prefix = DEFAULT_PREFIX) {
    const r = await cli("audit", "verify", "--nats", nats.server.url, "--name", s.sim, "--stream", stream, "--prefix", prefix, "--pubkey", s.pub, "--json");
    return { code: r.code, v: JSON.parse(r.out) as { ok: boolean; checked: number; firstBad?: { seq: number; problem: string } } };
  }

  it("a forged checkpoint, a record dropped from the middle, a log cut behind its last checkpoint", async () => {
    const s = await servedAndStopped("tampered");
    expect((await verify(s)).code).toBe(0);

    // An exact copy verifies: the copying itself changes nothing that is checked.
    expect((await verify(s, await forged(s, "copied", () => true), "copied")).v).toMatchObject({ ok: true, checked: s.records });

    // A checkpoint signed by another key, for the log's own head: the signature gives it away.
    const kv = await new Kvm(nats.nc).open(AUDIT_BUCKET);
    const key = checkpointKeyBase(DEFAULT_PREFIX, s.sim) + EVERY;
    const original = (await kv.get(key))!.string();
    const real = JSON.parse(original) as { head: string; time: string };
    const mallory = new Uint8Array(32).fill(9);
    await kv.put(key, checkpointLine(signCheckpoint({ secretKey: mallory, publicKey: ed25519.getPublicKey(mallory) }, EVERY, real.head, real.time)));
    let r = await verify(s);
    expect(r.code).toBe(1);
    expect(r.v.firstBad!.seq).toBe(EVERY);
    await kv.put(key, original);
    expect((await verify(s)).code).toBe(0);

    // The last message dropped: the log now ends before the checkpoint signed at the clean stop.
    r = await verify(s, await forged(s, "cut", (i, n) => i < n - 1), "cut");
    expect(r.code).toBe(1);
    expect(r.v.ok).toBe(false);

    // The first message dropped: the chain breaks at the first record.
    r = await verify(s, await forged(s, "dropped", (i) => i > 0), "dropped");
    expect(r.code).toBe(1);
    expect(r.v.firstBad!.seq).toBe(1);
  }, 90_000);
});

/** A subject of `sim`'s log under `prefix`, for a forged copy (every event subject is read back by the same filter). */
function forgedSubject(sim: string, prefix: string): string {
  return subjects(sim, prefix).eventsSim;
}
