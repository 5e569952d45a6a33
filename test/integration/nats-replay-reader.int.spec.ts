/**
 * The fast JetStream reader (src/events/jetstream-reader.ts: a push consumer read by a core subscription) on real
 * nats-server processes: every message of a subject in stream order and nothing of another, from a start sequence,
 * an empty subject; a message deleted from the stream is skipped by the reader and caught by the store's chain check;
 * a lost delivery (the consumer sequence jumps) is a ReplayGapError; a server killed or frozen mid-read fails the read
 * with ReplayInterruptedError instead of hanging; a follower catches up with it and then follows live.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { ackInfo, ackInfoBytes, DeliveryOrder, readSubjectFast, ReplayGapError, ReplayInterruptedError } from "../../src/events/jetstream-reader.js";
import { followSubject, JetStreamEventStore, readSubject, StreamCorruptError } from "../../src/events/jetstream-store.js";
import { streamSubjects, subjects } from "../../src/remote/protocol.js";
import { natsPerFile, startNatsServer, type NatsServer } from "../support/nats-server.js";
import { record } from "../support/file-store-helpers.js";
import fc from "fast-check";
import { Simulator } from "../../src/actors/simulator.js";
import { runSteps, stepsArb } from "../support/arbitraries.js";
import { seededRandom, snapshot, TEST_KEY } from "../support/sim.js";

const nats = natsPerFile("R");
const utf8 = new TextEncoder();
const text = new TextDecoder();

/**
 * A stream `<stream>` on `<prefix>.>` (deletes allowed), with `n` messages alternating subjects `<prefix>.a` and
 * `<prefix>.b`, each `m<i>` padded with spaces to `size` bytes.
 */
async function interleaved(nc: NatsConnection, n: number, o: { stream: string; prefix: string }, size = 0): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: o.stream, subjects: [`${o.prefix}.>`] });
  const js = jetstream(nc);
  const h = headers();
  h.set("Hsm-Seq", "x"); // delivered messages carry headers, as the store's do
  await Promise.all(Array.from({ length: n }, (_, i) => js.publish(`${o.prefix}.${i % 2 ? "b" : "a"}`, utf8.encode(`m${i + 1}`.padEnd(size)), { headers: h })));
}

/** Spin for `ms` (a consumer slower than the server, so that a read is still going when the server goes). */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe("the fast JetStream reader", () => {
  it("reads every message of one subject in stream order, and nothing of another subject", async () => {
    const o = nats.fresh();
    await interleaved(nats.nc, 400, o);
    const seen: { seq: number; body: string }[] = [];
    const r = await readSubjectFast(nats.nc, o.stream, `${o.prefix}.a`, (m) => seen.push({ seq: m.streamSeq, body: text.decode(m.data) }));
    // Published concurrently: the stream's order is the server's; subject a holds every other message.
    expect(seen).toHaveLength(200);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.seq).toBeGreaterThan(seen[i - 1]!.seq);
    const jsm = await jetstreamManager(nats.nc);
    for (const s of [seen[0]!, seen[99]!, seen[199]!]) {
      const stored = await jsm.streams.getMessage(o.stream, { seq: s.seq });
      expect(stored!.subject).toBe(`${o.prefix}.a`);
      expect(text.decode(stored!.data)).toBe(s.body);
    }
    expect(r).toEqual({ lastStreamSeq: seen[199]!.seq, messages: 200 });
    // The consumer is deleted after the read.
    const left = [];
    for await (const c of jsm.consumers.list(o.stream)) left.push(c.name);
    expect(left).toEqual([]);
  });

  it("starts from a stream sequence; an empty subject, or a start past the end, reads nothing", async () => {
    const o = nats.fresh();
    await interleaved(nats.nc, 100, o);
    const seqs: number[] = [];
    const r = await readSubjectFast(nats.nc, o.stream, `${o.prefix}.>`, (m) => seqs.push(m.streamSeq), { startStreamSeq: 61 });
    expect(seqs).toEqual(Array.from({ length: 40 }, (_, i) => 61 + i));
    expect(r.lastStreamSeq).toBe(100);
    expect(await readSubjectFast(nats.nc, o.stream, `${o.prefix}.none`, () => expect.unreachable())).toEqual({ lastStreamSeq: 0, messages: 0 });
    expect(await readSubjectFast(nats.nc, o.stream, `${o.prefix}.>`, () => expect.unreachable(), { startStreamSeq: 101 })).toEqual({ lastStreamSeq: 0, messages: 0 });
    // readSubject (the store's entry) passes the start on.
    const viaStore: number[] = [];
    expect(await readSubject(jetstream(nats.nc), o.stream, `${o.prefix}.b`, (m) => viaStore.push(m.streamSeq), 95)).toBe(100);
    expect(viaStore).toEqual([96, 98, 100]);
  });

  it("an error thrown by the caller ends the read with that error", async () => {
    const o = nats.fresh();
    await interleaved(nats.nc, 50, o);
    let n = 0;
    const boom = new RangeError("stop here");
    await expect(
      readSubjectFast(nats.nc, o.stream, `${o.prefix}.>`, () => {
        if (++n === 10) throw boom;
      }),
    ).rejects.toBe(boom);
    expect(n).toBe(10);
  });

  it("a message deleted from the stream is skipped by the reader; the store's chain check refuses the log (StreamCorruptError)", async () => {
    const o = nats.fresh();
    // The stream made first, without deny_delete (the store's own stream denies deletes: an audit log).
    const jsm = await jetstreamManager(nats.nc);
    await jsm.streams.add({ name: o.stream, subjects: [streamSubjects(o.prefix)] });
    const s = await JetStreamEventStore.open({ nc: nats.nc, sim: "d", ...o });
    for (let i = 1; i <= 6; i++) {
      s.append(record(i));
      await s.flush(i); // one message per record
    }
    const streamSeqs: number[] = [];
    await readSubject(nats.nc, o.stream, subjects("d", o.prefix).events, (m) => streamSeqs.push(m.streamSeq));
    expect(streamSeqs).toHaveLength(6);
    await s.close();
    expect(await jsm.streams.deleteMessage(o.stream, streamSeqs[3]!)).toBe(true); // record 4
    const left: number[] = [];
    await readSubject(nats.nc, o.stream, subjects("d", o.prefix).events, (m) => left.push(...m.items.map((e) => e.seq)));
    expect(left).toEqual([1, 2, 3, 5, 6]);
    const err = await JetStreamEventStore.open({ nc: nats.nc, sim: "d", ...o }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StreamCorruptError);
    expect((err as StreamCorruptError).seq).toBe(4);
    expect((err as StreamCorruptError).streamSeq).toBe(streamSeqs[4]);
  });

  it("a reopened store's readFacts hands over read()'s facts, and a simulator rebuilt on it holds the live state", async () => {
    const o = nats.fresh();
    const opts = { profile: "softhsm2", simulatorKey: TEST_KEY, clock: () => 1_800_000_000_000 } as const;
    const s = await JetStreamEventStore.open({ nc: nats.nc, sim: "rf", ...o });
    const live = new Simulator({ ...opts, store: s, randomBytes: seededRandom(3) });
    runSteps([live.application(), live.application()], fc.sample(stepsArb(120), { numRuns: 1, seed: 42 })[0]!);
    await s.flush(s.lastSeq);
    await s.close();
    const r = await JetStreamEventStore.open({ nc: nats.nc, sim: "rf", ...o });
    expect(r.lastSeq).toBe(s.lastSeq);
    const whole = [...r.read()].map((x) => ({ seq: x.seq, facts: x.facts }));
    expect(JSON.parse(JSON.stringify([...r.readFacts()]))).toEqual(JSON.parse(JSON.stringify(whole)));
    expect(JSON.parse(JSON.stringify([...r.readFacts(10)]))).toEqual(JSON.parse(JSON.stringify(whole.slice(9))));
    expect(snapshot(new Simulator({ ...opts, store: r }))).toEqual(snapshot(live));
    await r.close();
  });

  it("a follower catches up with the reader, then follows live (the ordered consumer), until stopped", async () => {
    const o = nats.fresh();
    const s = await JetStreamEventStore.open({ nc: nats.nc, sim: "f", ...o });
    for (let i = 1; i <= 300; i++) s.append(record(i));
    await s.flush(300);
    const seqs: number[] = [];
    const live: boolean[] = [];
    const f = await followSubject(jetstream(nats.nc), o.stream, subjects("f", o.prefix).events, 1, (m, msg) => {
      for (const e of m.items) seqs.push(e.seq);
      live.push(msg !== undefined);
    });
    const until = async (n: number) => {
      for (let t = 0; seqs.length < n && t < 400; t++) await new Promise((r) => setTimeout(r, 25));
    };
    await until(300);
    expect(live.every((x) => !x)).toBe(true); // caught up by the reader (no JetStream message objects)
    for (let i = 301; i <= 310; i++) {
      s.append(record(i));
      await s.flush(i);
    }
    await until(310);
    expect(seqs).toEqual(Array.from({ length: 310 }, (_, i) => i + 1));
    expect(live[live.length - 1]).toBe(true); // the live part came through the ordered consumer
    await f.stop();
    await f.done;
    await s.close();
  });
});

describe("lost deliveries (the consumer sequence of each delivery)", () => {
  it("reads the sequences of a delivery's reply subject, in the 2.9 and the later (domain, account hash) forms", () => {
    expect(ackInfo("$JS.ACK.HSMSIM.XZbrJ2dB.1.42.7.1795751251096959088.11252")).toEqual({ delivered: 1, streamSeq: 42, consumerSeq: 7, pending: 11252 });
    expect(ackInfo("$JS.ACK.hub.ACCHASH.HSMSIM.XZbrJ2dB.1.42.7.1795751251096959088.0.r4nd0m")).toEqual({ delivered: 1, streamSeq: 42, consumerSeq: 7, pending: 0 });
    expect(ackInfo("$JS.FC.HSMSIM.x.y")).toBeUndefined();
    expect(ackInfo("$JS.ACK.HSMSIM.c.1.2")).toBeUndefined();
    expect(ackInfo("$JS.ACK.HSMSIM.c.1.x.3.4.5")).toBeUndefined();
  });

  it("reads the same sequences from the reply subject's bytes, as nats-core holds them for a real delivery", async () => {
    const forms = ["$JS.ACK.HSMSIM.XZbrJ2dB.1.42.7.1795751251096959088.11252", "$JS.ACK.hub.ACCHASH.HSMSIM.XZbrJ2dB.1.42.7.1795751251096959088.0.r4nd0m", "$JS.FC.HSMSIM.x.y", "$JS.ACK.HSMSIM.c.1.2", "$JS.ACK.HSMSIM.c.1.x.3.4.5", "$JS.ACK.HSMSIM.c.1..3.4.5", "$JS.ACK."];
    for (const r of forms) expect(ackInfoBytes(utf8.encode(r))).toEqual(ackInfo(r));
    // The reader takes the bytes from nats-core's message (MsgImpl._msg.reply, nats-core 3.3.1); if a version held
    // them otherwise it would fall back to the string, slower: this says when that happens.
    const o = nats.fresh();
    await interleaved(nats.nc, 3, o);
    const jsm = await jetstreamManager(nats.nc);
    const got = await new Promise<{ bytes: unknown; reply: string }>((resolve) => {
      const inbox = `_INBOX.bytes.${o.stream}`;
      const sub = nats.nc.subscribe(inbox, {
        callback: (_e, m) => {
          if (!m.reply?.startsWith("$JS.ACK.")) return;
          sub.unsubscribe();
          resolve({ bytes: (m as unknown as { _msg?: { reply?: unknown } })._msg?.reply, reply: m.reply });
        },
      });
      void jsm.consumers.add(o.stream, { deliver_subject: inbox, ack_policy: AckPolicy.None, filter_subject: `${o.prefix}.>` });
    });
    expect(got.bytes).toBeInstanceOf(Uint8Array);
    expect(ackInfoBytes(got.bytes as Uint8Array)).toEqual(ackInfo(got.reply));
    expect(ackInfo(got.reply)).toMatchObject({ delivered: 1, streamSeq: 1, consumerSeq: 1, pending: 2 });
  });

  it("a skipped, repeated or redelivered delivery, a stream sequence that does not rise, or a heartbeat past the last delivery: ReplayGapError", () => {
    const order = () => {
      const d = new DeliveryOrder("S", "p.x.events.>");
      d.next(1, 10);
      d.next(2, 12);
      return d;
    };
    expect(() => order().next(4, 20)).toThrow(ReplayGapError);
    expect(() => order().next(4, 20)).toThrow(/delivery 4 after delivery 2: deliveries lost/);
    expect(() => order().next(2, 20)).toThrow(/a delivery repeated/);
    expect(() => order().next(3, 12)).toThrow(/stream seq 12 delivered after stream seq 12/);
    expect(() => order().next(3, 20, 2)).toThrow(/redelivered/);
    expect(() => order().heartbeat(3)).toThrow(/delivered up to 3, 1 of them never arrived/);
    const ok = order();
    ok.heartbeat(2);
    ok.next(3, 13);
    expect([ok.consumerSeq, ok.streamSeq]).toEqual([3, 13]);
    // A start sequence: the first delivery must not lie before it.
    expect(() => new DeliveryOrder("S", "x", 50).next(1, 49)).toThrow(ReplayGapError);
  });
});

describe("the server lost in the middle of a read", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  const o = { stream: "LOSS", prefix: "loss" };
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  const filled = async () => {
    nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    const jsm = await jetstreamManager(nc);
    if (!(await jsm.streams.info(o.stream).catch(() => undefined))) await interleaved(nc, 3000, o, 8192); // 24 MB: more than the sockets hold
  };

  it("killed (SIGKILL): the read fails with ReplayInterruptedError, soon, and does not hang", async () => {
    await filled();
    let n = 0;
    const t0 = performance.now();
    const err = await readSubjectFast(nc, o.stream, `${o.prefix}.>`, () => {
      n++;
      if (n === 100) void server.kill();
      busy(1); // 3000 messages would take 3 s
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(ReplayInterruptedError);
    expect((err as Error).message).toMatch(/connection to the server was lost|connection is closed/);
    expect(n).toBeGreaterThanOrEqual(100);
    expect(n).toBeLessThan(3000);
    expect(ms).toBeLessThan(10_000);
    await nc.close();
    await server.restart();
  });

  it("frozen (SIGSTOP, the connection open): no message and no heartbeat for stallMs fails it with ReplayInterruptedError", async () => {
    await filled();
    let n = 0;
    const t0 = performance.now();
    try {
      const err = await readSubjectFast(
        nc,
        o.stream,
        `${o.prefix}.>`,
        () => {
          if (++n === 100) server.proc.kill("SIGSTOP");
        },
        { heartbeatMs: 200, stallMs: 1500 },
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ReplayInterruptedError);
      expect((err as Error).message).toMatch(/nothing from the server for 1500 ms/);
      expect((err as ReplayInterruptedError).lastStreamSeq).toBeGreaterThanOrEqual(100);
      expect(n).toBeLessThan(3000);
      expect(performance.now() - t0).toBeLessThan(10_000);
    } finally {
      server.proc.kill("SIGCONT");
    }
    await nc.close();
  });
});
