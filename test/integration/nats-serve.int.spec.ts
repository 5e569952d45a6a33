/**
 * `hsmsim serve` (src/service/service.ts) and the async remote client (src/remote/client.ts) end to end, on a real
 * nats-server: open, log in, session info, log out, close; two clients are two applications sharing the token; reads
 * answered from the client's projection agree with the service's state right after the client's own writes; a
 * client that vanishes (stops heartbeating) has its sessions closed and its login ended by recorded calls; a second
 * service for the same simulator is refused; a service restarted on the stream serves the same state; the service
 * unreachable answers CKR_DEVICE_ERROR instead of hanging.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connect as natsConnect, type NatsConnection } from "@nats-io/transport-node";
import { SimulatorService } from "../../src/service/service.js";
import { LeaseHeldError } from "../../src/service/lease.js";
import { connect, type RemoteSimulator } from "../../src/remote/client.js";
import { CK, CKR_NAMES, rvName } from "../../src/pkcs11/constants.js";
import { CALL_SCHEMA } from "../../src/events/call-schema.js";
import { decodeWire, encodeWire, subjects, type CallReply } from "../../src/remote/protocol.js";
import fc from "fast-check";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { readSubject } from "../../src/events/jetstream-store.js";
import type { Call } from "../../src/events/calls.js";
import { Kvm } from "@nats-io/kv";
import { HEALTH_BUCKET } from "../../src/remote/protocol.js";
import { followerCount } from "../support/followers.js";
import { initToken, remote } from "../support/remote-app.js";
import { startNatsServer, type NatsServer } from "../support/nats-server.js";
import { startServe } from "../support/serve-process.js";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { SO_PIN, TEST_KEY, USER_PIN } from "../support/sim.js";

let server: NatsServer;
let nc: NatsConnection;
let n = 0;
const services: SimulatorService[] = [];
const clients: RemoteSimulator[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  nc = await natsConnect({ servers: server.url });
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  for (const s of services.splice(0)) await s.stop();
});
afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

async function serve(sim: string, extra: Partial<Parameters<typeof SimulatorService.start>[0]> = {}): Promise<SimulatorService> {
  const s = await SimulatorService.start({ nc, sim, simulatorKey: TEST_KEY, log: () => undefined, ...extra });
  services.push(s);
  return s;
}

async function client(sim: string): Promise<RemoteSimulator> {
  const c = await connect(`${server.url}/${sim}`, { timeoutMs: 2000 });
  clients.push(c);
  return c;
}


const RW = CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION;


/** A new simulator served, one client application with the token initialised and an RW session open. */
async function servedWithSession() {
  const sim = `s${++n}`;
  const svc = await serve(sim);
  const c = await client(sim);
  const a = c.application();
  const app = remote(a);
  await initToken(app, "remote");
  const h = (await app("C_OpenSession", { slotID: 0, flags: RW })).out.hSession;
  return { sim, svc, c, a, app, h };
}

describe("hsmsim serve and the async remote client", () => {
  it("the projection follows the stream only while the client reads; a read after a pause sees every write since", async () => {
    const { sim, c } = await servedWithSession();
    const idle = await connect(`${server.url}/${sim}`, { timeoutMs: 2000, projectionIdleMs: 100 });
    clients.push(idle);
    const jsm = await jetstreamManager(nc);
    const events = subjects(sim).events;
    const { count: followers, until } = followerCount(jsm, events);
    // The setup's client goes (C_Finalize: its session with it); it only wrote, so it never followed.
    await c.close();
    clients.splice(clients.indexOf(c), 1);
    const other = remote(idle.application());
    expect((await other("C_Initialize", {})).rv).toBe("CKR_OK");
    expect(idle.following).toBe(false);
    expect(await followers()).toBe(0);
    const mine = (await other("C_OpenSession", { slotID: 0, flags: RW })).out.hSession;
    expect((await other("C_GetSessionInfo", { hSession: mine })).out).toMatchObject({ state: CK.CKS_RW_PUBLIC_SESSION });
    expect(idle.following).toBe(true);
    expect(await until(1)).toBe(1);
    // No read for longer than the idle time: the follower stops without any call to notice it.
    await new Promise((r) => setTimeout(r, 350));
    expect(idle.following).toBe(false);
    expect(await until(0)).toBe(0);
    // Meanwhile another application writes: a user login on the token, and a session.
    const third = await client(sim);
    const t = remote(third.application());
    expect((await t("C_Initialize", {})).rv).toBe("CKR_OK");
    const hs = (await t("C_OpenSession", { slotID: 0, flags: RW })).out.hSession;
    expect((await t("C_Login", { hSession: hs, userType: CK.CKU_SO, pin: SO_PIN })).rv).toBe("CKR_OK");
    expect((await t("C_SetPIN", { hSession: hs, oldPin: SO_PIN, newPin: SO_PIN })).rv).toBe("CKR_OK");
    // The next read follows again and sees all of it (the sessions of every application, this one's login state).
    const info = (await other("C_GetTokenInfo", { slotID: 0 })).out as { sessionCount: number };
    expect(info.sessionCount).toBe(2); // mine and the third's
    expect((await other("C_GetSessionInfo", { hSession: mine })).out).toMatchObject({ state: CK.CKS_RW_PUBLIC_SESSION });
    expect(idle.following).toBe(true);
    expect(await until(1)).toBe(1);
    // Its own write is seen by its next read (read-your-writes across the restart).
    expect((await other("C_CloseSession", { hSession: mine })).rv).toBe("CKR_OK");
    expect((await other("C_GetSessionInfo", { hSession: mine })).rv).toBe("CKR_SESSION_HANDLE_INVALID");
  });

  it("open, log in, session info, log out, close, each answered once stored", async () => {
    const { svc, c, a, app, h } = await servedWithSession();
    expect(a.lastSeq).toBeGreaterThan(0);
    expect(svc.store.durableSeq).toBeGreaterThanOrEqual(a.lastSeq);
    expect((await app("C_GetSessionInfo", { hSession: h })).out).toMatchObject({ slotID: 0, state: CK.CKS_RW_PUBLIC_SESSION });
    // The projection started from the service's read model, not from the first record.
    expect(c.startedFrom).toBeGreaterThan(0);
    expect((await app("C_Login", { hSession: h, userType: CK.CKU_USER, pin: USER_PIN })).rv).toBe("CKR_OK");
    // Read-your-writes: answered locally, right after the login, already in the user state.
    expect((await app("C_GetSessionInfo", { hSession: h })).out).toMatchObject({ state: CK.CKS_RW_USER_FUNCTIONS });
    expect(a.lastSeq).toBe(0); // a local read: no record
    const tokenInfo = (await app("C_GetTokenInfo", { slotID: 0 })).out as { flags: number; sessionCount: number };
    expect(tokenInfo.flags & CK.CKF_USER_PIN_INITIALIZED).toBeTruthy();
    expect((await app("C_Login", { hSession: h, userType: CK.CKU_USER, pin: USER_PIN })).rv).toBe("CKR_USER_ALREADY_LOGGED_IN");
    expect((await app("C_Logout", { hSession: h })).rv).toBe("CKR_OK");
    expect((await app("C_GetSessionInfo", { hSession: h })).out).toMatchObject({ state: CK.CKS_RW_PUBLIC_SESSION });
    expect((await app("C_CloseSession", { hSession: h })).rv).toBe("CKR_OK");
    expect((await app("C_GetSessionInfo", { hSession: h })).rv).toBe("CKR_SESSION_HANDLE_INVALID");
    expect((await app("C_Finalize", {})).rv).toBe("CKR_OK");
    expect((await app("C_GetSlotList", { tokenPresent: true, pSlotList: null })).rv).toBe("CKR_CRYPTOKI_NOT_INITIALIZED");
    // A wrong PIN is an answer, and bad input is a CK_RV, never a throw.
    expect((await app("C_OpenSession", { slotID: "x" as never, flags: RW })).rv).toBe("CKR_ARGUMENTS_BAD");
    // The service's own state agrees with what the client saw.
    expect(svc.simulator.read.sessions.get(a.appId)?.size ?? 0).toBe(0);
  });

  it("two clients are two applications sharing the token; each sees the other's login on its sessions", async () => {
    const sim = `s${++n}`;
    const svc = await serve(sim);
    const c1 = await client(sim);
    const c2 = await client(sim);
    const a1 = c1.application();
    const a2 = c2.application();
    const app1 = remote(a1);
    const app2 = remote(a2);
    await initToken(app1, "remote");
    expect((await app2("C_Initialize", {})).rv).toBe("CKR_OK");
    expect(a1.appId).not.toBe(a2.appId);
    const h1 = (await app1("C_OpenSession", { slotID: 0, flags: RW })).out.hSession;
    const h2 = (await app2("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION })).out.hSession;
    // Sessions belong to their application.
    expect((await app2("C_GetSessionInfo", { hSession: h1 })).rv).toBe(h1 === h2 ? "CKR_OK" : "CKR_SESSION_HANDLE_INVALID");
    expect((await app1("C_Login", { hSession: h1, userType: CK.CKU_USER, pin: USER_PIN })).rv).toBe("CKR_OK");
    // Login state is per application (as with SoftHSM processes): app 2 is still public.
    expect((await app2("C_GetSessionInfo", { hSession: h2 })).out).toMatchObject({ state: CK.CKS_RO_PUBLIC_SESSION });
    // Token counts are shared: both clients' projections count both sessions.
    const count = async (app: ReturnType<typeof remote>) => ((await app("C_GetTokenInfo", { slotID: 0 })).out as { sessionCount: number }).sessionCount;
    await c2.reach(a1.lastSeq || svc.store.lastSeq);
    expect(await count(app1)).toBe(await count(app2));
    expect(svc.simulator.read.sessions.get(a1.appId)?.size).toBe(1);
    expect(svc.simulator.read.sessions.get(a2.appId)?.size).toBe(1);
    // Closing a client finalizes its applications at once: their sessions are gone, recorded.
    const app2Id = a2.appId;
    await c2.close();
    clients.splice(clients.indexOf(c2), 1);
    expect(svc.simulator.state.apps.has(app2Id)).toBe(false);
    expect([...svc.store.read()].at(-1)).toMatchObject({ app: app2Id, fn: "C_Finalize", rv: CK.CKR_OK });
  });

  it("a client that vanishes has its sessions closed and its login ended, as recorded calls", async () => {
    const sim = `s${++n}`;
    const svc = await serve(sim, { heartbeat: { intervalMs: 100, expiryMs: 600 } });
    const c1 = await client(sim);
    const c2 = await client(sim);
    const app1 = remote(c1.application());
    const a2 = c2.application();
    const app2 = remote(a2);
    await initToken(app1, "remote");
    await app2("C_Initialize", {});
    const h = (await app2("C_OpenSession", { slotID: 0, flags: RW })).out.hSession;
    await app2("C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION });
    expect((await app2("C_Login", { hSession: h, userType: CK.CKU_USER, pin: USER_PIN })).rv).toBe("CKR_OK");
    const vanished = a2.appId;
    // Client 2 vanishes: no more heartbeats, no C_Finalize (as if killed).
    await c2.close({ finalize: false });
    clients.splice(clients.indexOf(c2), 1);
    const deadline = Date.now() + 5000;
    while (svc.simulator.state.apps.has(vanished) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(svc.simulator.state.apps.has(vanished)).toBe(false);
    const records = [...svc.store.read()].filter((r) => r.app === vanished).slice(-2);
    expect(records.map((r) => `${r.fn}:${rvName(r.rv)}`)).toEqual(["C_CloseAllSessions:CKR_OK", "C_Finalize:CKR_OK"]);
    expect(records[0]!.facts.map((f) => f.type)).toContain("AllSessionsClosed");
    expect(svc.simulator.read.sessions.get(vanished)?.size ?? 0).toBe(0);
    // Client 1, which kept beating, is still there.
    expect((await app1("C_OpenSession", { slotID: 0, flags: RW })).rv).toBe("CKR_OK");
  });

  it("puts no PIN in the stream, the snapshots, the read model image, the health or the service's log", async () => {
    const sim = `s${++n}`;
    const lines: string[] = [];
    const svc = await serve(sim, { log: (l) => lines.push(l) });
    const so = "so-Secret-Zq9x";
    const user = "user-Secret-Xw7k";
    const c = await client(sim);
    const app = remote(c.application());
    await app("C_Initialize", {});
    await app("C_InitToken", { slotID: 0, pin: so, label: "secrets" });
    const h = (await app("C_OpenSession", { slotID: 0, flags: RW })).out.hSession;
    await app("C_Login", { hSession: h, userType: CK.CKU_SO, pin: so });
    await app("C_InitPIN", { hSession: h, pin: user });
    await app("C_Logout", { hSession: h });
    await app("C_Login", { hSession: h, userType: CK.CKU_USER, pin: "wrong-Pin-Qq1" });
    await app("C_Login", { hSession: h, userType: CK.CKU_USER, pin: user });
    await app("C_SetPIN", { hSession: h, oldPin: user, newPin: "new-Secret-Pp3" });
    await app("C_GetTokenInfo", { slotID: 0 }); // the projection's image, asked for at the first read
    const image = await nc.request(subjects(sim).readModel, new Uint8Array(0), { timeout: 2000 });
    await svc.stop(); // a snapshot at stop
    services.splice(services.indexOf(svc), 1);
    const seen: string[] = [...lines, new TextDecoder().decode(image.data)];
    await readSubject(jetstream(nc), "HSMSIM", subjects(sim).events, (m) => seen.push(new TextDecoder().decode(m.data)));
    seen.push(new TextDecoder().decode(encodeWire(svc.health())));
    const kv = await new Kvm(nc).open("hsmsim-snapshots");
    for await (const k of await kv.keys(`hsmsim.${sim}.>`)) {
      const e = await kv.get(k);
      if (e) seen.push(Buffer.from(e.value).toString("latin1"));
    }
    expect(seen.length).toBeGreaterThan(3);
    const all = seen.join("\n");
    expect(all).toContain("secrets"); // the scan sees the label: it would see a PIN
    expect(all).toContain("hsmsim-snapshot 1"); // and the sealed snapshot
    for (const pin of [so, user, "wrong-Pin-Qq1", "new-Secret-Pp3"]) {
      expect(all).not.toContain(pin);
      expect(all).not.toContain(Buffer.from(pin).toString("hex"));
      expect(all).not.toContain(Buffer.from(pin).toString("base64"));
    }
  });

  it("an application is its client's: another client naming its id is no application, and cannot touch its sessions", async () => {
    const { sim, a, app, h } = await servedWithSession();
    expect((await app("C_Login", { hSession: h, userType: CK.CKU_USER, pin: USER_PIN })).rv).toBe("CKR_OK");
    const call = subjects(sim).call;
    const as = async (client: string, c: Call): Promise<CallReply> =>
      decodeWire<CallReply>((await nc.request(call, encodeWire({ v: 1, app: a.appId, client, call: c }), { timeout: 2000 })).data);
    // Another client (its own connection id) sends calls in the name of `a`'s application.
    for (const c of [
      { fn: "C_CloseSession", args: { hSession: h } },
      { fn: "C_Logout", args: { hSession: h } },
      { fn: "C_CloseAllSessions", args: { slotID: 0 } },
      { fn: "C_Finalize", args: {} },
    ] as Call[]) {
      expect(rvName((await as("intruder", c)).rv)).toBe("CKR_CRYPTOKI_NOT_INITIALIZED");
    }
    // Nothing changed for the application's own client: its session and login are there.
    expect((await app("C_GetSessionInfo", { hSession: h })).out).toMatchObject({ state: CK.CKS_RW_USER_FUNCTIONS });
    // Its own client, by id, still may (the same request shape, from the right client).
    expect(rvName((await as(a.simulator.clientId, { fn: "C_Logout", args: { hSession: h } })).rv)).toBe("CKR_OK");
  });

  it("answers garbage requests with a CK_RV and keeps serving", async () => {
    const sim = `s${++n}`;
    const svc = await serve(sim);
    const call = subjects(sim).call;
    const ask = async (body: Uint8Array): Promise<CallReply> => decodeWire<CallReply>((await nc.request(call, body, { timeout: 2000 })).data);
    const utf8 = new TextEncoder();
    for (const raw of ["", "not json", "null", "[]", '{"app":"x"}', '{"v":1,"app":0,"client":"c","call":null}']) {
      const r = await ask(utf8.encode(raw));
      expect(rvName(r.rv)).toBe("CKR_ARGUMENTS_BAD");
      expect(r.error).toBe("ProtocolError");
    }
    const fns = [...Object.keys(CALL_SCHEMA), "C_Bogus", "constructor", "__proto__"];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...fns), fc.oneof(fc.anything(), fc.dictionary(fc.string(), fc.anything())), fc.integer({ min: -2, max: 5 }), async (fn, args, app) => {
        const r = await ask(encodeWire({ v: 1, app, client: "fuzz", call: { fn, args } }));
        expect(CKR_NAMES.has(r.rv), `${fn} ${JSON.stringify(args)} answered ${r.rv}`).toBe(true);
        expect(r.rv).not.toBe(CK.CKR_DEVICE_ERROR);
      }),
      { numRuns: 200 },
    );
    expect(svc.health().status).toBe("serving");
    const app = remote((await client(sim)).application());
    expect((await app("C_Initialize", {})).rv).toBe("CKR_OK");
  });

  it("refuses a second service for the same simulator with a named error", async () => {
    const sim = `s${++n}`;
    await serve(sim);
    const e = await SimulatorService.start({ nc, sim, simulatorKey: TEST_KEY, log: () => undefined }).then(
      (s) => {
        services.push(s);
        return undefined;
      },
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(LeaseHeldError);
    expect((e as Error).message).toMatch(new RegExp(`simulator "${sim}" is already served by writer`));
  });

  it("without the lease, the fence still stops a second service at its first write: it leaves, the log is not forked", async () => {
    const sim = `s${++n}`;
    const a = await serve(sim, { lease: false });
    const b = await serve(sim, { lease: false }); // same log, same fence: nothing refused it yet
    // A writes first: B's view is now stale.
    const direct = a.simulator.application();
    direct.call({ fn: "C_Initialize", args: {} });
    await a.store.flush(a.simulator.lastSeq);
    const c = await client(sim);
    const app = c.application();
    const rvs: string[] = [];
    // The queue group spreads the calls over A and B until B has failed and left.
    for (let i = 0; i < 20; i++) rvs.push(rvName((await app.call({ fn: "C_Initialize", args: {} })).rv));
    expect(await Promise.race([b.stopped, new Promise((r) => setTimeout(() => r("running"), 2000))])).toMatchObject({ name: "FenceLostError" });
    expect(rvs).toContain("CKR_OK");
    for (const rv of rvs) expect(["CKR_OK", "CKR_CRYPTOKI_ALREADY_INITIALIZED", "CKR_DEVICE_ERROR"]).toContain(rv);
    // Whatever B decided is not in the log: the stream is A's alone, chained, and a rebuild agrees with A.
    await a.stop();
    services.splice(services.indexOf(a), 1);
    const rebuilt = await serve(sim);
    expect(rebuilt.store.lastSeq).toBe(a.store.lastSeq);
    expect(rebuilt.store.headHash).toBe(a.store.headHash);
  });

  it("a restart restores the snapshot written at stop; one it cannot open (another key) falls back to a full replay", async () => {
    const { sim, svc } = await servedWithSession();
    const seq = svc.store.lastSeq;
    await svc.stop();
    services.splice(services.indexOf(svc), 1);
    const lines: string[] = [];
    const again = await serve(sim, { log: (l) => lines.push(l) });
    expect(again.store.stats.restoredFrom).toBe(seq);
    expect(lines.join("\n")).toMatch(new RegExp(`snapshot at seq ${seq} \\+ 0 records`));
    await again.stop();
    services.splice(services.indexOf(again), 1);
    const other = await serve(sim, { simulatorKey: new Uint8Array(32).fill(9), log: (l) => lines.push(l) });
    expect(other.store.stats.restoredFrom).toBe(0);
    expect(other.simulator.lastSeq).toBe(seq);
    expect(lines.join("\n")).toMatch(/was not restored/);
  });

  it("a service restarted on the stream serves the same state; a client keeps its sessions", async () => {
    const { sim, svc, a, app, h } = await servedWithSession();
    await app("C_Login", { hSession: h, userType: CK.CKU_USER, pin: USER_PIN });
    const seq = svc.store.lastSeq;
    await svc.stop();
    services.splice(services.indexOf(svc), 1);
    // Nobody serves: CKR_DEVICE_ERROR at once, not a hang.
    const t0 = Date.now();
    expect((await app("C_OpenSession", { slotID: 0, flags: RW })).rv).toBe("CKR_DEVICE_ERROR");
    expect(a.lastError?.name).toBe("ServiceUnavailable");
    expect(Date.now() - t0).toBeLessThan(1500);
    const again = await serve(sim);
    expect(again.store.lastSeq).toBe(seq);
    expect((await app("C_Logout", { hSession: h })).rv).toBe("CKR_OK");
    expect((await app("C_GetSessionInfo", { hSession: h })).out).toMatchObject({ state: CK.CKS_RW_PUBLIC_SESSION });
  });
});

describe("hsmsim serve, the command", () => {
  it("exits 2 on usage errors and 1 when NATS cannot be reached", () => {
    const root = resolve(import.meta.dirname, "../..");
    const run = (...args: string[]) =>
      spawnSync(process.execPath, ["--import", pathToFileURL(join(root, "node_modules/tsx/dist/loader.mjs")).href, "-e", `import(${JSON.stringify(join(root, "src/cli/main.ts"))}).then((m) => m.main(process.argv.slice(1))).then((c) => process.exit(c))`, ...args], {
        cwd: mkdtempSync(join(tmpdir(), "hsmsim-serve-cli-")),
        encoding: "utf8",
        timeout: 30_000,
      });
    const noNats = run("serve");
    expect([noNats.status, noNats.stderr]).toEqual([2, expect.stringContaining("--nats URL is required")]);
    const badName = run("serve", "--nats", "nats://127.0.0.1:1", "--name", "a.b");
    expect([badName.status, badName.stderr]).toEqual([2, expect.stringContaining("--name")]);
    const badReplicas = run("serve", "--nats", "nats://127.0.0.1:1", "--replicas", "2");
    expect(badReplicas.status).toBe(2);
    const unreachable = run("serve", "--nats", "nats://127.0.0.1:1");
    expect([unreachable.status, unreachable.stderr]).toEqual([1, expect.stringContaining("cannot connect to nats://127.0.0.1:1")]);
  });

  it("serves with a user and password, keeps its health in KV, refuses a second service for the name (exit 1)", { timeout: 60_000 }, async () => {
    const auth = await startNatsServer({ user: "hsm", pass: "s3cret" });
    const creds = ["--user", "hsm", "--pass", "s3cret"];
    try {
      const svc = await startServe(auth.url, "cli", { extra: creds });
      const c = await connect(`${auth.url}/cli`, { nats: { user: "hsm", pass: "s3cret" } });
      const app = remote(c.application());
      expect((await app("C_Initialize", {})).rv).toBe("CKR_OK");
      expect((await app("C_GetSlotList", { tokenPresent: false, pSlotList: null })).out).toMatchObject({ count: 1 });
      // Health: KV hsmsim-health, key svc.<name>.
      const nc2 = await natsConnect({ servers: auth.url, user: "hsm", pass: "s3cret" });
      const kv = await new Kvm(nc2).open(HEALTH_BUCKET);
      let health: Record<string, unknown> | undefined;
      for (let i = 0; i < 50 && !health; i++) {
        const e = await kv.get("svc.cli");
        if (e && e.operation === "PUT") health = JSON.parse(e.string()) as Record<string, unknown>;
        else await new Promise((r) => setTimeout(r, 100));
      }
      expect(health).toMatchObject({ sim: "cli", status: "serving", pid: svc.proc.pid });
      await nc2.close();
      // Without credentials there is no connection.
      await expect(connect(`${auth.url}/cli`)).rejects.toThrow(/authoriz/i);
      // A second service for the same name exits 1, naming the one that serves it.
      await expect(startServe(auth.url, "cli", { extra: creds })).rejects.toThrow(/exited 1 before it was ready[\s\S]*simulator "cli" is already served by writer/);
      await c.close();
      expect((await svc.stop()).code).toBe(0);
    } finally {
      await auth.stop();
    }
  });
});
