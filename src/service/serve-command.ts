/**
 * `hsmsim serve --nats URL[,URL…] [--name N]`: the command line face of the simulator service (service.ts).
 *
 * The simulator key and configuration (profile, slots) live in a settings file (`--key-file`, default
 * `./hsmsim-<name>.json`, created mode 0600 on first start with a fresh random key): a restart must use the same key,
 * or PIN checks and replays of sealed values fail. Credentials and TLS: `--user`/`--pass`, `--creds FILE`,
 * `--tls-ca`/`--tls-cert`/`--tls-key`, or the HSMSIM_NATS_* environment (remote/connect-options.ts; the environment
 * keeps a password out of `ps`). Prints one line `hsmsim serve: serving "<name>" …` on stdout once it answers calls;
 * logs go to stderr. SIGINT/SIGTERM stop it cleanly (exit 0); a failed store or a lost lease exit 1; a second
 * service for the same name is refused (exit 1, naming the holder).
 */
import { isProfileName } from "../pkcs11/profiles.js";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { dirname, join } from "node:path";
import { credsAuthenticator, connect as natsConnect } from "@nats-io/transport-node";
import { natsConnectOptions } from "../remote/connect-options.js";
import { DEFAULT_PREFIX, DEFAULT_SIM, DEFAULT_STREAM, type SimConfig } from "../remote/protocol.js";
import { CliError, integer, UsageError, type Parsed } from "../cli/args.js";
import { SimulatorService } from "./service.js";
import { LeaseHeldError } from "./lease.js";
import { loadAuditKey } from "../events/checkpoint.js";
import { JetStreamCheckpoints } from "../events/jetstream-checkpoints.js";
import { NATS_CONNECT_FLAGS, natsEnvFromFlags, tokenOption } from "../cli/nats-log.js";

export const SERVE_FLAGS = {
  ...NATS_CONNECT_FLAGS,
  name: "value",
  stream: "value",
  prefix: "value",
  replicas: "value",
  "key-file": "value",
  profile: "value",
  slots: "value",
  "heartbeat-expiry": "value",
  "lease-wait": "value",
  "audit-dir": "value",
  "checkpoint-every": "value",
} as const;

export const SERVE_USAGE = `  serve --nats URL[,URL..] [--name N] [--stream S] [--prefix P] [--replicas 1|3] [--key-file FILE]
        [--profile default|softhsm2] [--slots N] [--user U --pass P | --creds FILE] [--tls-ca F --tls-cert F --tls-key F]
        [--heartbeat-expiry MS] [--lease-wait MS] [--audit-dir DIR] [--checkpoint-every N]
           serve simulator N (default "default") on NATS: calls on hsmsim.N.call (queue group), events in the
           JetStream stream S (default HSMSIM), health on hsmsim.N.health; the state is rebuilt from the stream
           at start; the key and options are kept in FILE (default ./hsmsim-N.json, mode 0600); every N records
           (default 1000, 0: none) a checkpoint signed with the audit key in DIR (default hsmsim-N-audit beside FILE, made on
           first start; audit.pub there is what verifiers need) is stored in KV hsmsim-audit`;

interface Settings {
  config: SimConfig;
  simulatorKey: string;
}

function loadSettings(file: string, requested: SimConfig): { config: SimConfig; key: Uint8Array } {
  if (fs.existsSync(file)) {
    let s: Settings;
    try {
      s = JSON.parse(fs.readFileSync(file, "utf8")) as Settings;
    } catch (e) {
      throw new CliError(`hsmsim serve: cannot read ${file}: ${(e as Error).message}`);
    }
    if (!/^[0-9a-f]{64}$/.test(s.simulatorKey ?? "")) throw new CliError(`hsmsim serve: ${file} holds no simulator key`);
    const differs = (requested.profile.profile !== undefined && requested.profile.profile !== s.config.profile.profile) || (requested.slots !== undefined && requested.slots !== s.config.slots);
    if (differs) throw new UsageError(`hsmsim serve: ${file} was made with ${JSON.stringify(s.config)}; --profile and --slots cannot change it`);
    return { config: s.config, key: Uint8Array.from(Buffer.from(s.simulatorKey, "hex")) };
  }
  const key = new Uint8Array(randomBytes(32));
  const s: Settings = { config: requested, simulatorKey: Buffer.from(key).toString("hex") };
  fs.writeFileSync(file, JSON.stringify(s, null, 2) + "\n", { mode: 0o600, flag: "wx" });
  return { config: requested, key };
}

export async function serveCommand(o: Parsed): Promise<number> {
  if (typeof o.nats !== "string") throw new UsageError("hsmsim serve: --nats URL is required");
  const sim = tokenOption("name", o.name, DEFAULT_SIM);
  const prefix = tokenOption("prefix", o.prefix, DEFAULT_PREFIX);
  const stream = tokenOption("stream", o.stream, DEFAULT_STREAM);
  const replicas = integer("replicas", o.replicas) ?? 1;
  if (replicas !== 1 && replicas !== 3) throw new UsageError("--replicas expected 1 or 3");
  const profile = o.profile === undefined ? undefined : String(o.profile);
  if (profile !== undefined && !isProfileName(profile)) throw new UsageError(`--profile expected default or softhsm2, got ${profile}`);
  const slots = integer("slots", o.slots);
  const requested: SimConfig = { profile: profile === undefined ? { profile: "default" } : { profile: profile }, ...(slots !== undefined ? { slots } : {}) };
  const keyFile = typeof o["key-file"] === "string" ? o["key-file"] : `hsmsim-${sim}.json`;
  const { config, key } = loadSettings(keyFile, requested);

  const opts = natsConnectOptions(o.nats, natsEnvFromFlags(o));
  if (typeof o.creds === "string") opts.authenticator = credsAuthenticator(fs.readFileSync(o.creds));
  opts.name = `hsmsim-serve-${sim}-${process.pid}`;
  opts.maxReconnectAttempts = -1;
  opts.reconnectTimeWait = 250;
  // No stack captured up front for every request and publish (about 7% of the service's CPU at 16 clients).
  opts.noAsyncTraces = true;

  const log = (l: string) => console.error(l);
  let nc;
  try {
    nc = await natsConnect(opts);
  } catch (e) {
    throw new CliError(`hsmsim serve: cannot connect to ${o.nats}: ${(e as Error).message}`, 1);
  }
  let service: SimulatorService;
  try {
    service = await SimulatorService.start({
      nc,
      sim,
      stream,
      prefix,
      replicas,
      config,
      simulatorKey: key,
      heartbeat: { expiryMs: integer("heartbeat-expiry", o["heartbeat-expiry"]) },
      leaseWaitMs: integer("lease-wait", o["lease-wait"], 0) ?? 0,
      log,
    });
  } catch (e) {
    await nc.close().catch(() => undefined);
    if (e instanceof LeaseHeldError) throw new CliError(e.message, 1);
    throw new CliError(`hsmsim serve: cannot start: ${(e as Error).name}: ${(e as Error).message}`, 1);
  }
  // Signed checkpoints of the log (issue 5 on JetStream): the audit key apart from the simulator key.
  let checkpoints: JetStreamCheckpoints | undefined;
  const every = integer("checkpoint-every", o["checkpoint-every"], 0) ?? 1000;
  if (every > 0) {
    // Beside the settings file by default: where the operator keeps this simulator's secrets.
    const auditDir = typeof o["audit-dir"] === "string" ? o["audit-dir"] : join(dirname(keyFile), `hsmsim-${sim}-audit`);
    try {
      fs.mkdirSync(auditDir, { recursive: true, mode: 0o700 });
      const key = loadAuditKey(auditDir, undefined, () => new Uint8Array(randomBytes(32)), true);
      checkpoints = await JetStreamCheckpoints.open({ nc, sim, prefix, key, every, replicas, onWarning: log });
      checkpoints.attach(service.simulator, service.store);
      log(`hsmsim serve: signing a checkpoint every ${every} records; audit public key ${Buffer.from(key.publicKey).toString("hex")} (${auditDir}/audit.pub)`);
    } catch (e) {
      await service.stop();
      await nc.close().catch(() => undefined);
      throw new CliError(`hsmsim serve: cannot start the checkpoints: ${(e as Error).message}`, 1);
    }
  }
  const stop = () => void service.stop();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  console.log(`hsmsim serve: serving "${sim}" on ${o.nats} (stream ${stream}, subject ${service.store.subject}, ${service.store.lastSeq} records, writer ${service.writerId})`);
  const failure = await service.stopped;
  // A clean stop signs the last stored record, as a file store does at close.
  if (!failure) await checkpoints?.close({ seq: service.store.durableSeq, head: service.store.headHash });
  await nc.drain().catch(() => undefined);
  return failure ? 1 : 0;
}
