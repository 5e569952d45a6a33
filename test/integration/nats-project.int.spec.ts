/**
 * `hsmsim project` (src/projections/service.ts, service-cli.ts) on a real nats-server, as a child process: it keeps
 * the read models from the event stream of a simulator served by `hsmsim serve` (in process here) and answers
 * queries. The call counts are checked against the stream itself (every record, read back independently), so they
 * must be exact: after a kill -9 of the projector and a restart it resumes from its stored position, and after more
 * calls nothing is counted twice or missed; a clean stop resumes exactly where it stopped.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect as natsConnect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { SimulatorService } from "../../src/service/service.js";
import { connect, type RemoteApplication, type RemoteSimulator } from "../../src/remote/client.js";
import { readSubject } from "../../src/events/jetstream-store.js";
import { queryProjection, type Query, type QueryAnswer } from "../../src/projections/service.js";
import { CK, rvName } from "../../src/pkcs11/constants.js";
import { subjects } from "../../src/remote/protocol.js";
import type { Call } from "../../src/events/calls.js";
import { startNatsServer, type NatsServer } from "../support/nats-server.js";
import { startCli, type ServeProcess } from "../support/serve-process.js";
import { SO_PIN, TEST_KEY, USER_PIN } from "../support/sim.js";

const SIM = "projected";
let nats: NatsServer;
let nc: NatsConnection;
let svc: SimulatorService;
let remote: RemoteSimulator;

beforeAll(async () => {
  nats = await startNatsServer();
  nc = await natsConnect({ servers: nats.url });
  svc = await SimulatorService.start({ nc, sim: SIM, simulatorKey: TEST_KEY, log: () => undefined });
  remote = await connect(`${nats.url}/${SIM}`, { timeoutMs: 5000 });
});
afterAll(async () => {
  await remote?.close();
  await svc?.stop();
  await nc?.close();
  await nats?.stop();
});

function project(extra: string[] = []): Promise<ServeProcess> {
  return startCli(["project", "--nats", nats.url, "--name", SIM, "--snapshot-every", "7", "--snapshot-ms", "600000", ...extra], { ready: /hsmsim project: following/ });
}

async function call(app: RemoteApplication, c: Call): Promise<number> {
  return (await app.call(c)).rv;
}

/** The call counts per function and return code, from every record in the stream (the ground truth). */
async function streamCounts(): Promise<{ counts: Record<string, Record<string, number>>; last: number }> {
  const counts: Record<string, Record<string, number>> = {};
  let last = 0;
  await readSubject(jetstream(nc), "HSMSIM", subjects(SIM).events, (m) => {
    for (const e of m.envelopes) {
      (counts[e.record.fn] ??= {})[rvName(e.record.rv)] = (counts[e.record.fn]?.[rvName(e.record.rv)] ?? 0) + 1;
      last = e.seq;
    }
  });
  return { counts, last };
}

/** A burst of calls: sessions opened and closed, logins (some with a wrong PIN), and what they leave behind. */
async function load(app: RemoteApplication, rounds: number): Promise<{ wrongPins: number; open: number[] }> {
  let wrongPins = 0;
  const open: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const r = await app.call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION } });
    expect(r.rv).toBe(CK.CKR_OK);
    const h = (r.out as { hSession: number }).hSession;
    if (i % 3 === 0) {
      expect(await call(app, { fn: "C_Login", args: { hSession: h, userType: CK.CKU_USER, pin: "0000" } })).toBe(CK.CKR_PIN_INCORRECT);
      wrongPins++;
    }
    expect(await call(app, { fn: "C_Login", args: { hSession: h, userType: CK.CKU_USER, pin: USER_PIN } })).toBe(CK.CKR_OK);
    expect(await call(app, { fn: "C_Logout", args: { hSession: h } })).toBe(CK.CKR_OK);
    if (i % 4 === 0) open.push(h);
    else expect(await call(app, { fn: "C_CloseSession", args: { hSession: h } })).toBe(CK.CKR_OK);
  }
  return { wrongPins, open };
}

describe("hsmsim project", () => {
  it("answers sessions, logins, token flags and exact call counts, and resumes after kill -9 and a clean stop without double counting", async () => {
    const a = remote.application();
    expect(await call(a, { fn: "C_Initialize", args: {} })).toBe(CK.CKR_OK);
    expect(await call(a, { fn: "C_InitToken", args: { slotID: 0, pin: SO_PIN, label: "projected" } })).toBe(CK.CKR_OK);
    const so = (await a.call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION } })).out as { hSession: number };
    expect(await call(a, { fn: "C_Login", args: { hSession: so.hSession, userType: CK.CKU_SO, pin: SO_PIN } })).toBe(CK.CKR_OK);
    expect(await call(a, { fn: "C_InitPIN", args: { hSession: so.hSession, pin: USER_PIN } })).toBe(CK.CKR_OK);
    expect(await call(a, { fn: "C_CloseSession", args: { hSession: so.hSession } })).toBe(CK.CKR_OK);
    const first = await load(a, 20);

    // ---- a projector from the start ----
    let proj = await project();
    const q = (query: Query) => queryProjection(nc, SIM, { minSeq: a.lastSeq, ...query });
    let truth = await streamCounts();
    expect(truth.last).toBe(a.lastSeq);
    let calls = await q({ q: "calls" });
    expect(calls.seq).toBe(truth.last);
    expect(calls.calls).toEqual(truth.counts);
    expect(calls.calls!.C_Login!.CKR_PIN_INCORRECT).toBe(first.wrongPins);

    const sessions = await q({ q: "sessions", app: a.appId });
    expect(sessions.sessions!.map((s) => s.handle).sort((x, y) => x - y)).toEqual(first.open);
    expect(new Set(sessions.sessions!.map((s) => s.state))).toEqual(new Set([CK.CKS_RW_PUBLIC_SESSION]));
    const token = (await a.call({ fn: "C_GetTokenInfo", args: { slotID: 0 } })).out as { flags: number; sessionCount: number };
    const tokens = await q({ q: "tokens", slotID: 0, app: a.appId });
    expect(tokens.tokens).toHaveLength(1);
    expect(tokens.tokens![0]).toMatchObject({ initialized: true, label: "projected".padEnd(32, " "), flags: token.flags, sessions: first.open.length });

    // a login shows in the session states and the login view
    const h = first.open[0]!;
    expect(await call(a, { fn: "C_Login", args: { hSession: h, userType: CK.CKU_USER, pin: USER_PIN } })).toBe(CK.CKR_OK);
    expect((await q({ q: "logins", app: a.appId })).logins).toEqual([{ app: a.appId, slotID: 0, login: "user" }]);
    expect(new Set((await q({ q: "sessions", app: a.appId })).sessions!.map((s) => s.state))).toEqual(new Set([CK.CKS_RW_USER_FUNCTIONS]));
    expect(await call(a, { fn: "C_Logout", args: { hSession: h } })).toBe(CK.CKR_OK);

    // ---- kill -9 the projector between two stored positions, make more calls, restart it ----
    await load(a, 5);
    // kill it while it holds records folded in after its last stored position (every 7 records here)
    let before = await q({ q: "status" });
    while (before.status!.storedSeq === before.seq) {
      expect(await call(a, { fn: "C_GetInfo", args: {} })).toBe(CK.CKR_OK);
      before = await q({ q: "status" });
    }
    await proj.kill();
    const second = await load(a, 13);
    proj = await project();
    const status = (await q({ q: "status" })).status!;
    expect(status.resumedFrom).toBeGreaterThan(0); // from its stored position, not from the start
    expect(status.resumedFrom).toBeLessThanOrEqual(before.status!.storedSeq);
    expect(status.resumedFrom).toBeLessThan(before.seq); // so records it had counted are folded in again, once
    truth = await streamCounts();
    calls = await q({ q: "calls" });
    expect(calls.seq).toBe(truth.last);
    expect(calls.calls).toEqual(truth.counts); // nothing counted twice, nothing missed
    expect(calls.calls!.C_Login!.CKR_PIN_INCORRECT).toBe(first.wrongPins + 2 + second.wrongPins);
    expect(status.records).toBeLessThanOrEqual(truth.last);

    // ---- a clean stop stores its position: the next start resumes exactly there ----
    const at = (await q({ q: "status" })).seq;
    expect((await proj.stop()).code).toBe(0);
    await load(a, 3);
    proj = await project();
    expect((await q({ q: "status" })).status!.resumedFrom).toBe(at);
    truth = await streamCounts();
    const final: QueryAnswer = await q({ q: "calls" });
    expect(final.calls).toEqual(truth.counts);
    await proj.stop();
  });

  it("a bad query is answered, not dropped; minSeq beyond the log answers Behind", async () => {
    const proj = await project(["--projection", "other"]);
    try {
      const bad = await queryProjection(nc, SIM, { q: "nonsense" as Query["q"] }, { name: "other" });
      expect(bad.error).toBe("BadQuery");
      const behind = await queryProjection(nc, SIM, { q: "calls", minSeq: 1e9, timeoutMs: 300 }, { name: "other" });
      expect(behind.error).toBe("Behind");
    } finally {
      await proj.stop();
    }
  });
});
