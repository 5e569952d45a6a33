/**
 * The core engine's differential sequences (test/differential/sequence.ts) through the async remote client against
 * `hsmsim serve`, compared with in-process hsmsim call by call.
 *
 * Each seeded sequence runs first in process through the pkcs11js drop-in (profile softhsm2, as the SoftHSM
 * differential runs it, and default), with every call the drop-in hands to the dispatcher captured, in order, with the
 * application that made it and its answer. The captured calls are then sent, in the same order, through one remote
 * application per in-process application to a service (SimulatorService, its own simulator name per sequence) with
 * the same key, clock and seeded random source, so serials and handles match. Every answer must agree: the CK_RV
 * and the outputs. Reads the client answers from its projection (C_GetSessionInfo, C_GetSlotInfo, and the reads
 * that record nothing) are checked by the same comparison, so the projection is held to the in-process read model.
 *
 * Both profiles: softhsm2 (where C_GetTokenInfo records a look at the token, so the client sends it to the service)
 * and default (where it is answered from the projection).
 *
 * HSMSIM_NATS_DIFF_COUNT: number of sequences per profile (default 50); HSMSIM_DIFF_SEED: base seed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect as natsConnect, type NatsConnection } from "@nats-io/transport-node";
import { createSimulator, type Application } from "../../src/index.js";
import { PKCS11 } from "../../src/pkcs11/pkcs11js.js";
import type { Call } from "../../src/events/calls.js";
import type { Answer } from "../../src/events/types.js";
import { rvName } from "../../src/pkcs11/constants.js";
import type { ProfileName } from "../../src/pkcs11/profiles.js";
import { SimulatorService } from "../../src/service/service.js";
import { connect, type RemoteApplication } from "../../src/remote/client.js";
import { pkcs11jsApps, runSequence } from "../differential/run.js";
import { generateSequence, sequenceSeeds } from "../differential/sequence.js";
import { startNatsServer, type NatsServer } from "../support/nats-server.js";
import { seededRandom, TEST_KEY } from "../support/sim.js";

const BASE_SEED = Number(process.env.HSMSIM_DIFF_SEED ?? 20261126);
const COUNT = Number(process.env.HSMSIM_NATS_DIFF_COUNT ?? 50);
const CLOCK = () => 1_800_000_000_000;

let server: NatsServer;
let nc: NatsConnection;
beforeAll(async () => {
  server = await startNatsServer();
  nc = await natsConnect({ servers: server.url });
});
afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

/** Bytes as hex, so that a Buffer, a Uint8Array and a decoded wire value compare equal. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { hex: Buffer.from(v).toString("hex") };
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, plain(x)]));
  return v;
}

interface Captured {
  app: number;
  call: Call;
  answer: Answer;
}

/** Run a sequence in process, capturing every dispatched call. */
async function inProcess(seed: number, profile: ProfileName): Promise<Captured[]> {
  const sim = createSimulator({ profile, simulatorKey: TEST_KEY, clock: CLOCK, randomBytes: seededRandom(seed) });
  const apps = new Map<Application, number>();
  const captured: Captured[] = [];
  const dispatch = sim.dispatch.bind(sim);
  sim.dispatch = (caller, call) => {
    if (!apps.has(caller)) apps.set(caller, apps.size);
    const copy = structuredClone(call);
    const answer = dispatch(caller, call);
    captured.push({ app: apps.get(caller)!, call: copy, answer: structuredClone(answer) });
    return answer;
  };
  await runSequence(generateSequence(seed), pkcs11jsApps(PKCS11, sim));
  return captured;
}

describe("differential: the remote client against hsmsim serve agrees with in-process hsmsim", () => {
  it.each(["softhsm2", "default"] as const)(`${COUNT} seeded sequences, call by call, profile %s`, { timeout: 600_000 }, async (profile) => {
    let calls = 0;
    let local = 0;
    const problems: string[] = [];
    for (const [i, seed] of sequenceSeeds(BASE_SEED, COUNT).entries()) {
      const captured = await inProcess(seed, profile);
      const name = `diff_${profile}_${i}`;
      const svc = await SimulatorService.start({
        nc,
        sim: name,
        simulatorKey: TEST_KEY,
        config: { profile: { profile } },
        simulator: { clock: CLOCK, randomBytes: seededRandom(seed) },
        lease: false,
        log: () => undefined,
      });
      const client = await connect(`${server.url}/${name}`, { nc, clock: CLOCK });
      const remoteApps: RemoteApplication[] = [];
      try {
        for (const [k, c] of captured.entries()) {
          const app = (remoteApps[c.app] ??= client.application());
          const got = await app.call(c.call as never);
          calls++;
          if (app.lastSeq === 0 && app.lastError === undefined) local++;
          const want = { rv: rvName(c.answer.rv), out: plain(c.answer.out) };
          const have = { rv: rvName(got.rv), out: plain(got.out) };
          if (JSON.stringify(want) !== JSON.stringify(have)) {
            problems.push(`seed ${seed} call ${k} (app ${c.app}) ${c.call.fn}: in process ${JSON.stringify(want)}, remote ${JSON.stringify(have)}`);
            break;
          }
        }
        // The service's log has the in-process log's calls, less the reads the client answered locally.
        expect(svc.store.lastSeq).toBeLessThanOrEqual(captured.length);
      } finally {
        await client.close();
        await svc.stop();
      }
      if (problems.length >= 3) break;
    }
    if (problems.length > 0) throw new Error(`remote differential: ${problems.length} sequences disagree:\n${problems.join("\n")}`);
    console.log(`remote differential (${profile}): ${COUNT} sequences, ${calls} calls agree (${local} answered from the client's projection)`);
  });
});
