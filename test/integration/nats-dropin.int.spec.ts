/**
 * The synchronous pkcs11js drop-in over NATS (src/remote/sync-client.ts, sync-worker.ts): `new PKCS11().load(
 * "nats://host:port/<name>")` against `hsmsim serve` (a child process) on a real nats-server.
 * - A pkcs11js flow (token init, PINs, sessions, login states, data objects, find, digest, random, errors) gives the
 *   same transcript remotely as on a private in-process simulator (`memory:`), call for call.
 * - Two drop-in instances are two applications of one remote simulator: one's login is the other's.
 * - The read projection follows the stream only while the application reads (a consumer exists then, and not after a
 *   pause followed by writes); a read after the pause starts again from the service's read model and sees every write.
 * - Losing the service answers CKR_DEVICE_ERROR, within the call timeout, never a hang: the service killed (no
 *   responders), the service hung (SIGSTOP: a timeout), the NATS server gone; and calls resume when it is back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PKCS11, Pkcs11Error, NativeError } from "../../src/pkcs11/pkcs11js.js";
import { CK } from "../../src/pkcs11/constants.js";
import { followerCount } from "../support/followers.js";
import { startNatsServer, type NatsServer } from "../support/nats-server.js";
import { startServe, type ServeProcess } from "../support/serve-process.js";
import { SO_PIN, USER_PIN } from "../support/sim.js";
import { connect as natsConnect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { readSubject } from "../../src/events/jetstream-store.js";
import { DEFAULT_STREAM, subjects } from "../../src/remote/protocol.js";
import { PROJECTION_IDLE_MS } from "../../src/remote/sync-projection.js";

let nats: NatsServer;
const services: ServeProcess[] = [];
let n = 0;

beforeAll(async () => {
  nats = await startNatsServer();
});
afterAll(async () => {
  for (const s of services) await s.stop();
  await nats?.stop();
});

async function serve(sim: string, keyFile?: string) {
  // a restart after a kill -9 waits out the dead writer's lease
  const s = await startServe(nats.url, sim, { keyFile, extra: ["--heartbeat-expiry", "60000", "--lease-wait", "15000"] });
  services.push(s);
  return s;
}

/** `hsmsim serve` for a new simulator, and two drop-in applications of it, initialised. */
async function twoApplications(): Promise<{ sim: string; a: PKCS11; b: PKCS11 }> {
  const sim = `dropin${++n}`;
  await serve(sim);
  const a = new PKCS11();
  const b = new PKCS11();
  a.load(`${nats.url}/${sim}`);
  b.load(`${nats.url}/${sim}`);
  a.C_Initialize();
  b.C_Initialize();
  return { sim, a, b };
}

const RW = CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION;
const h64 = (b: Buffer) => b.readBigUInt64LE(0).toString();

/** Run `f`, returning its result or the error's class, message and code: one transcript line. */
function step(t: unknown[], label: string, f: () => unknown): unknown {
  try {
    const v = f();
    t.push([label, normalise(v)]);
    return v;
  } catch (e) {
    const err = e as Pkcs11Error;
    t.push([label, err.constructor.name, err.message, err.code, err.method]);
    return undefined;
  }
}

function normalise(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return v.length === 8 ? `h${h64(v)}` : v.toString("hex");
  if (Array.isArray(v)) return v.map(normalise);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v)
        // the token serial is random per simulator; the clock is the machine's
        .filter(([k]) => k !== "serialNumber" && k !== "utcTime")
        .map(([k, x]) => [k, typeof x === "bigint" ? x.toString() : normalise(x)]),
    );
  }
  return v;
}

/** A pkcs11js flow; every answer (or error) into the transcript. */
function flow(p: PKCS11): unknown[] {
  const t: unknown[] = [];
  step(t, "init", () => p.C_Initialize());
  step(t, "info", () => p.C_GetInfo());
  const slots = step(t, "slots", () => p.C_GetSlotList(true)) as Buffer[];
  const slot = slots[0]!;
  step(t, "slotInfo", () => p.C_GetSlotInfo(slot));
  step(t, "initToken", () => p.C_InitToken(slot, SO_PIN, "dropin over nats"));
  step(t, "tokenInfo", () => p.C_GetTokenInfo(slot));
  const so = step(t, "open rw", () => p.C_OpenSession(slot, RW)) as Buffer;
  step(t, "login so wrong", () => p.C_Login(so, CK.CKU_SO, "00000000"));
  step(t, "login so", () => p.C_Login(so, CK.CKU_SO, SO_PIN));
  step(t, "info so", () => p.C_GetSessionInfo(so));
  step(t, "initPIN", () => p.C_InitPIN(so, USER_PIN));
  step(t, "logout", () => p.C_Logout(so));
  const ro = step(t, "open ro", () => p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION)) as Buffer;
  step(t, "login user", () => p.C_Login(ro, CK.CKU_USER, USER_PIN));
  step(t, "info ro", () => p.C_GetSessionInfo(ro));
  step(t, "info rw", () => p.C_GetSessionInfo(so));
  step(t, "again", () => p.C_Login(ro, CK.CKU_USER, USER_PIN));
  const obj = step(t, "create", () =>
    p.C_CreateObject(so, [
      { type: CK.CKA_CLASS, value: CK.CKO_DATA },
      { type: CK.CKA_TOKEN, value: true },
      { type: CK.CKA_LABEL, value: "remote data" },
      { type: CK.CKA_VALUE, value: Buffer.from("payload") },
    ]),
  ) as Buffer;
  step(t, "getAttr", () => p.C_GetAttributeValue(so, obj, [{ type: CK.CKA_LABEL }, { type: CK.CKA_VALUE }]));
  step(t, "create ro", () => p.C_CreateObject(ro, [{ type: CK.CKA_CLASS, value: CK.CKO_DATA }, { type: CK.CKA_TOKEN, value: true }]));
  step(t, "findInit", () => p.C_FindObjectsInit(ro, [{ type: CK.CKA_LABEL, value: "remote data" }]));
  step(t, "find", () => p.C_FindObjects(ro, 10));
  step(t, "findFinal", () => p.C_FindObjectsFinal(ro));
  step(t, "digestInit", () => p.C_DigestInit(ro, { mechanism: CK.CKM_SHA256 }));
  step(t, "digest", () => p.C_Digest(ro, Buffer.from("abc"), Buffer.alloc(32)));
  step(t, "random", () => p.C_GenerateRandom(ro, Buffer.alloc(0)));
  step(t, "bad handle", () => p.C_GetSessionInfo(Buffer.from([99, 0, 0, 0, 0, 0, 0, 0])));
  step(t, "close ro", () => p.C_CloseSession(ro));
  step(t, "tokenInfo after", () => p.C_GetTokenInfo(slot));
  step(t, "closeAll", () => p.C_CloseAllSessions(slot));
  step(t, "closed", () => p.C_GetSessionInfo(so));
  step(t, "finalize", () => p.C_Finalize());
  step(t, "after finalize", () => p.C_GetSlotList(true));
  return t;
}

describe("pkcs11js drop-in over NATS (load(\"nats://host:port/<name>\"))", () => {
  it("a pkcs11js flow gives the same transcript against hsmsim serve as in process", async () => {
    const sim = `dropin${++n}`;
    await serve(sim);
    const local = new PKCS11();
    local.load("memory:");
    const expected = flow(local);
    local.close();

    const p = new PKCS11();
    p.load(`${nats.url}/${sim}`);
    expect(p.libPath).toBe(`${nats.url}/${sim}`);
    expect(p.simulator).toBeUndefined(); // remote: no in-process simulator behind it
    const got = flow(p);
    p.close();
    expect(got).toEqual(expected);
    // the flow really ran its checks: errors where pkcs11js throws them, digests where it answers
    expect(got).toContainEqual(["login so wrong", "Pkcs11Error", "CKR_PIN_INCORRECT", CK.CKR_PIN_INCORRECT, "C_Login"]);
    expect(got).toContainEqual(["digest", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]);
    expect(got).toContainEqual(["closed", "Pkcs11Error", "CKR_SESSION_HANDLE_INVALID", CK.CKR_SESSION_HANDLE_INVALID, "C_GetSessionInfo"]);
  });

  it("two drop-in instances are two applications of one simulator: a login is seen by the other", async () => {
    const { sim, a, b } = await twoApplications();
    try {
      const slot = a.C_GetSlotList(true)[0]!;
      a.C_InitToken(slot, SO_PIN, "shared");
      const sa = a.C_OpenSession(slot, RW);
      a.C_Login(sa, CK.CKU_SO, SO_PIN);
      a.C_InitPIN(sa, USER_PIN);
      a.C_Logout(sa);
      const sb = b.C_OpenSession(slot, CK.CKF_SERIAL_SESSION);
      expect(b.C_GetSessionInfo(sb).state).toBe(CK.CKS_RO_PUBLIC_SESSION);
      a.C_Login(sa, CK.CKU_USER, USER_PIN);
      // login state is per token in PKCS#11, but per application: b's session stays public
      expect(b.C_GetSessionInfo(sb).state).toBe(CK.CKS_RO_PUBLIC_SESSION);
      expect(a.C_GetSessionInfo(sa).state).toBe(CK.CKS_RW_USER_FUNCTIONS);
      // the token's session counts (default profile: live) include both applications' sessions, read from each
      // client's own projection right after its own writes
      expect(b.C_GetTokenInfo(slot).sessionCount).toBe(2);
      expect(a.C_GetTokenInfo(slot).rwSessionCount).toBe(1);
      expect(() => b.C_InitToken(slot, SO_PIN, "again")).toThrow(/CKR_SESSION_EXISTS/);
      // a third application joining late starts its projection from the service's read model (or the log): it sees
      // the token as the others left it
      const c = new PKCS11();
      c.load(`${nats.url}/${sim}`);
      try {
        c.C_Initialize();
        const t = c.C_GetTokenInfo(slot);
        expect([t.label.trim(), t.sessionCount, t.rwSessionCount]).toEqual(["shared", 2, 1]);
        expect(t.flags & CK.CKF_USER_PIN_INITIALIZED).toBe(CK.CKF_USER_PIN_INITIALIZED);
        expect(() => c.C_GetSessionInfo(sa)).toThrow(/CKR_SESSION_HANDLE_INVALID/); // a's session is not c's
      } finally {
        c.close();
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it("the projection follows the stream only while the application reads, and a read after a pause still sees every write", async () => {
    const { sim, a, b } = await twoApplications();
    const nc = await natsConnect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    const events = subjects(sim).events;
    /** The consumers following this simulator's subject (each drop-in that follows has one). */
    const { count: followers, until } = followerCount(jsm, events);
    try {
      // connected and initialised, nothing read yet: nobody follows
      expect(await followers()).toBe(0);
      const slot = a.C_GetSlotList(true)[0]!; // a's first read: a follows
      expect(await until(1)).toBe(1);
      a.C_InitToken(slot, SO_PIN, "pauses");
      const sa = a.C_OpenSession(slot, RW);
      expect(a.C_GetSessionInfo(sa).state).toBe(CK.CKS_RW_PUBLIC_SESSION);
      // a pause without reads (longer than PROJECTION_IDLE_MS), then writes only: the first write stops a's follower
      await new Promise((r) => setTimeout(r, PROJECTION_IDLE_MS + 150));
      const written: Buffer[] = [];
      for (let i = 0; i < 5; i++) written.push(a.C_OpenSession(slot, RW));
      expect(await until(0)).toBe(0);
      for (let i = 0; i < 5; i++) a.C_CloseSession(written[i]!);
      expect(await followers()).toBe(0);
      // meanwhile another application writes (b logs the SO in on a session of its own)
      const sb = b.C_OpenSession(slot, RW);
      b.C_Login(sb, CK.CKU_SO, SO_PIN);
      b.C_InitPIN(sb, USER_PIN);
      // a's next read follows again, from the service's read model: its own writes and b's are all there
      expect(a.C_GetSessionInfo(sa).state).toBe(CK.CKS_RW_PUBLIC_SESSION); // the login is b's (per application)
      const t = a.C_GetTokenInfo(slot);
      expect([t.sessionCount, t.rwSessionCount]).toEqual([2, 2]);
      expect(t.flags & CK.CKF_USER_PIN_INITIALIZED).toBe(CK.CKF_USER_PIN_INITIALIZED);
      expect(() => a.C_GetSessionInfo(written[0]!)).toThrow(/CKR_SESSION_HANDLE_INVALID/);
      expect(await until(1)).toBe(1);
      // and it keeps following while it reads: b's next session shows in a's next read
      b.C_OpenSession(slot, RW);
      a.C_OpenSession(slot, RW); // a's own write: its read below waits for the stream to reach it, so b's session too
      const t2 = a.C_GetTokenInfo(slot);
      expect([t2.sessionCount, t2.rwSessionCount]).toEqual([4, 4]);
      expect(await followers()).toBe(1);
    } finally {
      a.close();
      b.close();
      await nc.close();
    }
  });

  it("with localReads=0 the reads go to the service and are recorded in the log; by default they are answered locally, unrecorded", async () => {
    const { sim, a } = await twoApplications();
    const audited = new PKCS11();
    audited.load(`${nats.url}/${sim}?localReads=0`);
    try {
      audited.C_Initialize();
      const slot = a.C_GetSlotList(true)[0]!;
      a.C_InitToken(slot, SO_PIN, "audited");
      const hl = a.C_OpenSession(slot, RW);
      const ha = audited.C_OpenSession(slot, RW); // opened after a's
      for (let i = 0; i < 3; i++) {
        expect(a.C_GetSessionInfo(hl).state).toBe(CK.CKS_RW_PUBLIC_SESSION);
        expect(audited.C_GetSessionInfo(ha).state).toBe(CK.CKS_RW_PUBLIC_SESSION);
      }
      expect(audited.C_GetTokenInfo(slot).label.trim()).toBe("audited");
      // The log, read from the stream: the audited application's reads are there, answered as it saw them.
      const nc = await natsConnect({ servers: nats.url });
      const records: { app: number; fn: string; args: { hSession?: number }; rv: number; out?: { state?: number } }[] = [];
      try {
        await readSubject(jetstream(nc), DEFAULT_STREAM, subjects(sim).events, (m) => {
          for (const e of m.envelopes) records.push(e.record as never);
        });
      } finally {
        await nc.close();
      }
      // Each application's session handles start at the same number: its application is told by the order of opens.
      const [local, audit] = records.filter((r) => r.fn === "C_OpenSession").map((r) => r.app);
      const reads = (app: number) => records.filter((r) => r.app === app && r.fn === "C_GetSessionInfo");
      expect(reads(audit!)).toHaveLength(3);
      expect(reads(audit!).every((r) => r.rv === CK.CKR_OK && r.args.hSession === Number(h64(ha)) && r.out?.state === CK.CKS_RW_PUBLIC_SESSION)).toBe(true);
      expect(records.some((r) => r.app === audit && r.fn === "C_GetTokenInfo")).toBe(true);
      expect(local).not.toBe(audit);
      expect(reads(local!)).toHaveLength(0);
    } finally {
      audited.close();
      a.close();
    }
  });

  it("a load() that finds no service throws (as a missing library does); a bad option is refused", () => {
    const p = new PKCS11();
    const e = (() => {
      try {
        p.load(`${nats.url}/nobody-serves-this`);
      } catch (x) {
        return x as Error;
      }
      throw new Error("load should have thrown");
    })();
    expect(e).toBeInstanceOf(NativeError);
    expect(e.message).toMatch(/no simulator "nobody-serves-this"/);
    expect(() => p.load(`${nats.url}/x?profile=softhsm2`)).toThrow(/unknown option "profile=softhsm2"/);
    expect(() => p.load(`${nats.url}/x?localReads=no`)).toThrow(/unknown option "localReads=no"/);
    expect(() => p.C_Initialize()).toThrow(/not loaded/);
  });

  it("losing the service answers CKR_DEVICE_ERROR within the timeout, never hangs, and calls resume when it is back", async () => {
    const sim = `dropin${++n}`;
    const svc = await serve(sim);
    const p = new PKCS11();
    p.load(`${nats.url}/${sim}?timeout=1500`);
    p.C_Initialize();
    const slot = p.C_GetSlotList(true)[0]!;
    p.C_InitToken(slot, SO_PIN, "outage");
    const h = p.C_OpenSession(slot, RW);
    p.C_Login(h, CK.CKU_SO, SO_PIN);

    const timed = (f: () => unknown): { ms: number; error: Pkcs11Error | undefined } => {
      const t0 = performance.now();
      try {
        f();
        return { ms: performance.now() - t0, error: undefined };
      } catch (e) {
        return { ms: performance.now() - t0, error: e as Pkcs11Error };
      }
    };

    // 1. The service hangs (SIGSTOP: it holds its subscription but answers nothing): the request times out.
    await new Promise((r) => setTimeout(r, PROJECTION_IDLE_MS + 50)); // no read meanwhile: the next call unfollows
    svc.proc.kill("SIGSTOP");
    const hung = timed(() => p.C_OpenSession(slot, RW));
    expect(hung.error?.message).toBe("CKR_DEVICE_ERROR");
    expect(hung.error?.code).toBe(CK.CKR_DEVICE_ERROR);
    expect(hung.error?.method).toBe("C_OpenSession");
    expect(hung.ms).toBeGreaterThanOrEqual(1400);
    expect(hung.ms).toBeLessThan(1500 + 1000);
    // A read after that pause finds the projection stopped (the hung call carried `unfollow`); the hung service gives
    // no read model, so the projection replays the stream (JetStream still answers) and the read is answered, in time.
    const read = timed(() => p.C_GetSessionInfo(h));
    expect(read.error).toBeUndefined();
    expect(read.ms).toBeLessThan(1500);
    expect(p.C_GetSessionInfo(h).state).toBe(CK.CKS_RW_SO_FUNCTIONS);
    svc.proc.kill("SIGCONT");

    // 2. The service killed: no responders, answered at once.
    await svc.kill();
    const gone = timed(() => p.C_Logout(h));
    expect(gone.error?.message).toBe("CKR_DEVICE_ERROR");
    expect(gone.ms).toBeLessThan(1000);

    // 3. The service back on the same stream and key: the application (still heartbeating) keeps its session and
    //    login; the one call whose outcome was unknown (the C_OpenSession sent to the stopped service) may have
    //    happened, which is exactly what CKR_DEVICE_ERROR told the caller.
    await serve(sim, svc.keyFile);
    expect(p.C_GetSessionInfo(h).state).toBe(CK.CKS_RW_SO_FUNCTIONS);
    p.C_Logout(h);
    expect(p.C_GetSessionInfo(h).state).toBe(CK.CKS_RW_PUBLIC_SESSION);

    // 4. The NATS server gone: CKR_DEVICE_ERROR after the timeout, not a hang; back, and calls resume.
    await nats.halt();
    const down = timed(() => p.C_Login(h, CK.CKU_SO, SO_PIN));
    expect(down.error?.message).toBe("CKR_DEVICE_ERROR");
    expect(down.ms).toBeLessThan(1500 + 1000);
    await nats.restart();
    let back: Pkcs11Error | undefined;
    const deadline = Date.now() + 20_000;
    for (;;) {
      back = timed(() => p.C_Login(h, CK.CKU_SO, SO_PIN)).error;
      if (!back || back.message !== "CKR_DEVICE_ERROR" || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(back).toBeUndefined();
    expect(p.C_GetSessionInfo(h).state).toBe(CK.CKS_RW_SO_FUNCTIONS);
    p.close();
  });
});
