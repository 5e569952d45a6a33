/**
 * `hsmsim project --nats URL[,URL…] [--name SIM] [--projection P] …`: the command line face of the projector
 * (service.ts). Credentials and TLS as for `hsmsim serve`: the HSMSIM_NATS_* environment (remote/connect-options.ts)
 * or `--user`/`--pass`/`--tls-ca`. Prints one line `hsmsim project: following "<sim>" …` on stdout once it follows the
 * stream and answers queries; SIGINT/SIGTERM store the position and exit 0; a broken chain exits 1.
 */
import { isProfileName } from "../pkcs11/profiles.js";
import { connect as natsConnect } from "@nats-io/transport-node";
import { natsConnectOptions } from "../remote/connect-options.js";
import { DEFAULT_PREFIX, DEFAULT_SIM, DEFAULT_STREAM, checkToken } from "../remote/protocol.js";
import { CliError, integer, UsageError, type Parsed } from "../cli/args.js";
import { DEFAULT_PROJECTION, Projector, querySubject } from "./service.js";

export const PROJECT_FLAGS = {
  nats: "value",
  name: "value",
  projection: "value",
  stream: "value",
  prefix: "value",
  profile: "value",
  replicas: "value",
  "snapshot-every": "value",
  "snapshot-ms": "value",
  user: "value",
  pass: "value",
  "tls-ca": "value",
} as const;

export const PROJECT_USAGE = `  project --nats URL[,URL..] [--name N] [--projection P] [--stream S] [--prefix P] [--profile default|softhsm2]
          [--replicas 1|3] [--snapshot-every N] [--snapshot-ms MS] [--user U --pass P] [--tls-ca F]
           keep simulator N's read models (sessions per application, login state per slot, token flags, call counts
           per function and return code) from its event stream and answer queries on hsmsim.N.query.P; the state and
           stream position are stored in KV hsmsim-projections every N records (default 1000) or MS ms (default
           1000) and on a clean stop, so a restart resumes where it left off`;

export async function projectCommand(o: Parsed): Promise<number> {
  if (typeof o.nats !== "string") throw new UsageError("hsmsim project: --nats URL is required");
  const sim = checkToken("name", typeof o.name === "string" ? o.name : DEFAULT_SIM);
  const name = checkToken("projection", typeof o.projection === "string" ? o.projection : DEFAULT_PROJECTION);
  const prefix = typeof o.prefix === "string" ? checkToken("prefix", o.prefix) : DEFAULT_PREFIX;
  const stream = typeof o.stream === "string" ? checkToken("stream", o.stream) : DEFAULT_STREAM;
  const profile = o.profile === undefined ? undefined : String(o.profile);
  if (profile !== undefined && !isProfileName(profile)) throw new UsageError(`--profile expected default or softhsm2, got ${profile}`);
  const replicas = integer("replicas", o.replicas) ?? 1;
  if (replicas !== 1 && replicas !== 3) throw new UsageError("--replicas expected 1 or 3");
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (typeof o.user === "string") {
    env.HSMSIM_NATS_USER = o.user;
    if (typeof o.pass === "string") env.HSMSIM_NATS_PASSWORD = o.pass;
  }
  if (typeof o["tls-ca"] === "string") env.HSMSIM_NATS_CA = o["tls-ca"];
  const opts = { ...natsConnectOptions(o.nats, env), name: `hsmsim-project-${sim}-${name}-${process.pid}`, maxReconnectAttempts: -1, reconnectTimeWait: 250 };
  let nc;
  try {
    nc = await natsConnect(opts);
  } catch (e) {
    throw new CliError(`hsmsim project: cannot connect to ${o.nats}: ${(e as Error).message}`, 1);
  }
  let p: Projector;
  try {
    p = await Projector.start({
      nc,
      sim,
      name,
      stream,
      prefix,
      replicas,
      profile: profile === undefined ? undefined : { profile: profile },
      snapshotEvery: integer("snapshot-every", o["snapshot-every"]),
      snapshotMs: integer("snapshot-ms", o["snapshot-ms"]),
    });
  } catch (e) {
    await nc.close().catch(() => undefined);
    throw new CliError(`hsmsim project: cannot start: ${(e as Error).name}: ${(e as Error).message}`, 1);
  }
  console.log(`hsmsim project: following "${sim}" in ${stream} from record ${p.resumedFrom}, answering on ${querySubject(sim, name, prefix)}`);
  // The connection keeps the process alive until a signal, or a failure (a broken chain, a position not stored).
  let watch: NodeJS.Timeout | undefined;
  const code = await new Promise<number>((resolve) => {
    const stop = () => resolve(0);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    watch = setInterval(() => {
      if (p.failure) {
        console.error(`hsmsim project: stopped: ${p.failure.name}: ${p.failure.message}`);
        resolve(1);
      }
    }, 250);
  });
  clearInterval(watch);
  await p.stop();
  await nc.drain().catch(() => undefined);
  return code;
}
