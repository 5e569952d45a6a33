/**
 * The wire protocol's pure parts (src/remote/protocol.ts): subjects, the `nats://host:port/<name>` target, and the
 * JSON encoding that carries byte strings (Uint8Array and Buffer) both ways.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { decodeWire, encodeWire, parseSimUrl, streamSubjects, subjects } from "../../src/remote/protocol.js";

describe("remote protocol", () => {
  it("names every subject of a simulator under its prefix", () => {
    const s = subjects("demo", "hsm");
    expect([s.events, s.eventsSim, s.eventsToken("slot0"), s.eventsLegacy, s.eventsAny, s.call, s.info, s.readModel, s.heartbeat(7), s.heartbeats, s.health, s.leaseKey, s.healthKey]).toEqual([
      "hsm.demo.events.>",
      "hsm.demo.events.sim",
      "hsm.demo.events.tok.slot0",
      "hsm.demo.events",
      "hsm.demo.>",
      "hsm.demo.call",
      "hsm.demo.info",
      "hsm.demo.readmodel",
      "hsm.demo.hb.7",
      "hsm.demo.hb.*",
      "hsm.demo.health",
      "sim.demo",
      "svc.demo",
    ]);
    expect(streamSubjects()).toBe("hsmsim.*.events.>");
    expect(() => s.eventsToken("tok.1")).toThrow(TypeError);
    // A name that would change the subject's shape is refused.
    for (const bad of ["a.b", "*", ">", "a b", "", "x".repeat(65)]) expect(() => subjects(bad)).toThrow(TypeError);
  });

  it("parses nats://host:port/<name>, defaulting the name", () => {
    expect(parseSimUrl("nats://127.0.0.1:4222/demo")).toEqual({ server: "nats://127.0.0.1:4222", sim: "demo" });
    expect(parseSimUrl("tls://h:4222")).toEqual({ server: "tls://h:4222", sim: "default" });
    expect(parseSimUrl("nats://h:4222/")).toEqual({ server: "nats://h:4222", sim: "default" });
    for (const bad of ["http://h/x", "nats://h:1/a/b", "nats://h:1/a.b", "demo"]) expect(() => parseSimUrl(bad)).toThrow(TypeError);
  });

  it("carries byte strings and JSON values unchanged", () => {
    fc.assert(
      // An object whose only key is "$b" is the byte encoding itself (reserved: no call argument has that shape).
      fc.property(fc.jsonValue().filter((v) => !JSON.stringify(v).includes('"$b"')), fc.uint8Array(), (v, b) => {
        const round = decodeWire<{ v: unknown; b: Uint8Array; buf: Uint8Array }>(encodeWire({ v, b, buf: Buffer.from(b) }));
        expect(round.v).toEqual(JSON.parse(JSON.stringify(v)));
        expect(round.b).toEqual(b);
        expect(round.buf).toEqual(new Uint8Array(b));
      }),
    );
  });
});
