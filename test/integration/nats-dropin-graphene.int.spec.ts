/**
 * graphene-pk11 2.3.6, unchanged, against a remote simulator: `graphene.Module.load("nats://host:port/<name>")` gives
 * graphene the hsmsim pkcs11js drop-in (vitest.config.ts, project "drop-in-consumers", aliases `pkcs11js` to it), which
 * reaches `hsmsim serve` (a child process) over a real nats-server. The same graphene flow runs on a private
 * in-process simulator (`memory:`) and remotely, and every observation agrees; a lost service surfaces in graphene as
 * the drop-in's Pkcs11Error CKR_DEVICE_ERROR.
 */
import * as graphene from "graphene-pk11";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CK } from "../../src/index.js";
import { PKCS11, Pkcs11Error } from "../../src/pkcs11/pkcs11js.js";
import { startNatsServer, type NatsServer } from "../support/nats-server.js";
import { startServe, type ServeProcess } from "../support/serve-process.js";
import { SO_PIN, USER_PIN } from "../support/sim.js";

let nats: NatsServer;
let svc: ServeProcess;
const SIM = "graphene";
const RW = graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION;

beforeAll(async () => {
  nats = await startNatsServer();
  svc = await startServe(nats.url, SIM);
});
afterAll(async () => {
  await svc?.stop();
  await nats?.stop();
});

const state = (s: graphene.Session) => {
  (s as unknown as { getInfo(): void }).getInfo();
  return s.state;
};

/** A graphene flow; what it observes, as data. */
function flow(mod: graphene.Module): Record<string, unknown> {
  const seen: Record<string, unknown> = {};
  mod.initialize();
  seen.manufacturer = mod.manufacturerID;
  const slot = mod.getSlots(true).items(0);
  seen.slot = [slot.slotDescription, slot.flags];
  try {
    slot.initToken(SO_PIN, "graphene remote"); // graphene 2.3.6 throws a TypeError after the token is initialised
  } catch (e) {
    seen.initToken = (e as Error).constructor.name;
  }
  const token = slot.getToken();
  seen.token = [token.label, token.flags, token.model, token.minPinLen, token.maxPinLen];
  const s = slot.open(RW);
  seen.open = [s.state, s.flags];
  try {
    s.login("87654321", graphene.UserType.SO);
  } catch (e) {
    seen.wrongPin = [(e as Error).constructor.name, (e as Error).message];
  }
  s.login(SO_PIN, graphene.UserType.SO);
  seen.so = state(s);
  s.initPin(USER_PIN);
  s.logout();
  s.login(USER_PIN);
  seen.user = state(s);
  seen.tokenFlags = slot.getToken().flags;
  const obj = s.create({ class: graphene.ObjectClass.DATA, token: true, label: "remote", value: Buffer.from("over nats") });
  seen.object = obj.getAttribute({ label: null, token: null, private: null, value: null });
  seen.found = Array.from(s.find({ class: graphene.ObjectClass.DATA }), (o) => o.getAttribute("label"));
  seen.digest = s.createDigest("sha256").once(Buffer.from("abc")).toString("hex");
  seen.random = s.generateRandom(16).length;
  s.logout();
  seen.public = state(s);
  s.close();
  slot.closeAll();
  mod.finalize();
  return seen;
}

describe("graphene-pk11 over NATS (the drop-in's nats: target)", () => {
  it("runs unchanged against hsmsim serve and observes what it observes in process", () => {
    const local = graphene.Module.load("memory:", "hsmsim");
    const expected = flow(local);
    local.close();

    const mod = graphene.Module.load(`${nats.url}/${SIM}`, "hsmsim");
    const lib = (mod as unknown as { lib: PKCS11 }).lib;
    expect(lib).toBeInstanceOf(PKCS11);
    expect(lib.simulator).toBeUndefined(); // remote
    const got = flow(mod);
    mod.close();
    expect(got).toEqual(expected);
    expect(got.digest).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(got.wrongPin).toEqual(["Pkcs11Error", "CKR_PIN_INCORRECT"]);
    expect(got.user).toBe(CK.CKS_RW_USER_FUNCTIONS);
  });

  it("a lost service is graphene's Pkcs11Error CKR_DEVICE_ERROR, not a hang", async () => {
    const mod = graphene.Module.load(`${nats.url}/${SIM}?timeout=1000`, "hsmsim");
    mod.initialize();
    const slot = mod.getSlots(true).items(0);
    const s = slot.open(RW);
    await svc.kill();
    const t0 = performance.now();
    let err: unknown;
    try {
      s.login(USER_PIN);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Pkcs11Error);
    expect((err as Pkcs11Error).message).toBe("CKR_DEVICE_ERROR");
    expect(performance.now() - t0).toBeLessThan(2000);
    mod.close();
  });
});
