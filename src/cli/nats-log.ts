/**
 * The audit and replay commands on a simulator served on NATS (`hsmsim serve`): `--nats URL --name N` in place of
 * `--store DIR`. The simulator's log is read from its JetStream stream (all its event subjects, in stream order) into
 * a private temporary directory laid out as a file store, and the file-store command then runs on that copy
 * unchanged: the stream's messages hold the very lines a file store's events.log holds (remote/protocol.ts), so
 * `audit verify` checks the same hash chain, and `audit show`, `replay --until` and `replay --check` read the same
 * records. The copy is removed afterwards; `hsmsim export` keeps it (an auditor's offline copy).
 *
 * What each command needs besides the log:
 * - signed checkpoints: the ones the service stored in KV (`hsmsim-audit`, key `<prefix>.<name>.<seq>`), written to the copy's
 *   checkpoints.log; they verify under the service's audit public key, given with `--pubkey` (the service prints it
 *   and writes it beside its settings file), never taken from the server being audited;
 * - `replay` and `replay --check`: the simulator's options and key, from the service's settings file (`--key-file`,
 *   as `hsmsim serve` writes it), written to the copy's simulator.json (mode 0600, in a 0700 directory).
 *
 * Nothing is written to the stream: the log is read by an ordered consumer, which the command deletes when done.
 */
import fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credsAuthenticator, connect as natsConnect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { natsConnectOptions } from "../remote/connect-options.js";
import { AUDIT_BUCKET, checkToken, DEFAULT_PREFIX, DEFAULT_SIM, DEFAULT_STREAM, subjects, type SimConfig } from "../remote/protocol.js";
import { readSubject } from "../events/jetstream-store.js";
import { checkpointKeyBase } from "../events/jetstream-checkpoints.js";
import { CliError, UsageError, type Parsed } from "./args.js";

/** How a command reaches NATS: the servers and the credentials and TLS flags (natsEnvFromFlags). */
export const NATS_CONNECT_FLAGS = {
  nats: "value",
  user: "value",
  pass: "value",
  creds: "value",
  "tls-ca": "value",
  "tls-cert": "value",
  "tls-key": "value",
} as const;

/** The flags that name a served simulator's log, for every command that reads one. */
export const NATS_LOG_FLAGS = { ...NATS_CONNECT_FLAGS, name: "value", stream: "value", prefix: "value", "key-file": "value" } as const;

export const NATS_LOG_USAGE = `           Each audit and replay command also reads a simulator served on NATS: --nats URL [--name N] [--stream S]
           [--prefix P] [--user U --pass P | --creds FILE] [--tls-ca F ..] in place of --store DIR (replay: and
           --key-file FILE, the settings file hsmsim serve wrote); export --nats .. --to DIR keeps the copy`;

/** `--user`/`--pass`/`--tls-*` as the HSMSIM_NATS_* environment connect-options.ts reads (flags win). */
export function natsEnvFromFlags(o: Parsed, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  if (typeof o.user === "string") {
    out.HSMSIM_NATS_USER = o.user;
    if (typeof o.pass === "string") out.HSMSIM_NATS_PASSWORD = o.pass;
  }
  if (typeof o["tls-ca"] === "string") out.HSMSIM_NATS_CA = o["tls-ca"];
  if (typeof o["tls-cert"] === "string") out.HSMSIM_NATS_CERT = o["tls-cert"];
  if (typeof o["tls-key"] === "string") out.HSMSIM_NATS_KEY = o["tls-key"];
  return out;
}

/** A subject token option (`--name`, `--prefix`, `--stream`), or a UsageError naming it. */
export function tokenOption(name: string, v: string | true | undefined, fallback: string): string {
  if (v === undefined) return fallback;
  try {
    return checkToken(name, String(v));
  } catch (e) {
    throw new UsageError(`--${name}: ${(e as Error).message}`);
  }
}

/** The settings file `hsmsim serve` keeps: { config: { profile, slots }, simulatorKey }. */
function readServeSettings(cmd: string, file: string): { options: Record<string, unknown>; simulatorKey: string } {
  let s: { config?: SimConfig; simulatorKey?: string };
  try {
    s = JSON.parse(fs.readFileSync(file, "utf8")) as typeof s;
  } catch (e) {
    throw new CliError(`${cmd}: cannot read the settings file ${file}: ${(e as Error).message}`);
  }
  if (!s.config || typeof s.config !== "object" || !/^[0-9a-f]{64}$/.test(s.simulatorKey ?? "")) {
    throw new CliError(`${cmd}: ${file} is not a settings file written by hsmsim serve (config and simulatorKey)`);
  }
  const options = { ...(s.config.profile ?? {}), ...(s.config.slots !== undefined ? { slots: s.config.slots } : {}) };
  return { options, simulatorKey: s.simulatorKey! };
}

export interface ExportedLog {
  records: number;
  messages: number;
  checkpoints: number;
}

/**
 * Copy a served simulator's log (and its signed checkpoints; its settings when `--key-file` is given) into `dir`, as
 * a file store's events.log, checkpoints.log and simulator.json.
 */
export async function exportJetStreamLog(cmd: string, o: Parsed, dir: string): Promise<ExportedLog> {
  if (typeof o.nats !== "string") throw new UsageError(`${cmd}: --nats URL is required`);
  const sim = tokenOption("name", o.name, DEFAULT_SIM);
  const prefix = tokenOption("prefix", o.prefix, DEFAULT_PREFIX);
  const stream = tokenOption("stream", o.stream, DEFAULT_STREAM);
  const settings = typeof o["key-file"] === "string" ? readServeSettings(cmd, o["key-file"]) : undefined;
  let opts;
  try {
    opts = natsConnectOptions(o.nats, natsEnvFromFlags(o));
  } catch (e) {
    throw new UsageError(`${cmd}: ${(e as Error).message}`);
  }
  if (typeof o.creds === "string") opts.authenticator = credsAuthenticator(fs.readFileSync(o.creds));
  opts.name = `hsmsim-audit-${sim}-${process.pid}`;
  let nc: NatsConnection;
  try {
    nc = await natsConnect(opts);
  } catch (e) {
    throw new CliError(`${cmd}: cannot connect to ${o.nats}: ${(e as Error).message}`);
  }
  try {
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(stream);
    } catch (e) {
      throw new CliError(`${cmd}: no stream ${stream} on ${o.nats} (${(e as Error).message}); is --stream right?`);
    }
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const fd = fs.openSync(join(dir, "events.log"), "wx", 0o600);
    let records = 0;
    let messages = 0;
    try {
      await readSubject(jetstream(nc), stream, subjects(sim, prefix).events, (m) => {
        // One message, one group commit: its lines are events.log lines (no newline after the last).
        fs.writeSync(fd, m.data);
        fs.writeSync(fd, "\n");
        messages++;
        for (const b of m.data) if (b === 10) records++;
        records++;
      });
    } finally {
      fs.closeSync(fd);
    }
    const checkpoints = await exportCheckpoints(nc, checkpointKeyBase(prefix, sim), join(dir, "checkpoints.log"));
    if (settings) fs.writeFileSync(join(dir, "simulator.json"), JSON.stringify(settings, null, 2) + "\n", { mode: 0o600, flag: "wx" });
    return { records, messages, checkpoints };
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** The service's signed checkpoints (KV AUDIT_BUCKET, `<base><seq>`), in sequence order, as checkpoints.log lines. */
async function exportCheckpoints(nc: NatsConnection, base: string, file: string): Promise<number> {
  let kv;
  try {
    kv = await new Kvm(nc).open(AUDIT_BUCKET);
    await kv.status();
  } catch {
    return 0; // no bucket: a service that signs no checkpoints (or none yet)
  }
  const keys: string[] = [];
  for await (const k of await kv.keys(`${base}*`)) keys.push(k);
  keys.sort((a, b) => Number(a.slice(base.length)) - Number(b.slice(base.length)));
  const lines: string[] = [];
  for (const k of keys) {
    const e = await kv.get(k);
    if (e && e.operation === "PUT") lines.push(e.string().trimEnd());
  }
  if (lines.length) fs.writeFileSync(file, lines.join("\n") + "\n", { mode: 0o600 });
  return lines.length;
}

/** Run a file-store command on a temporary copy of a served simulator's log (removed afterwards). */
export async function onJetStreamLog(cmd: string, o: Parsed, run: (dir: string, exported: ExportedLog) => number): Promise<number> {
  const parent = fs.mkdtempSync(join(tmpdir(), "hsmsim-nats-log-"));
  try {
    const dir = join(parent, "store");
    const exported = await exportJetStreamLog(cmd, o, dir);
    return run(dir, exported);
  } finally {
    fs.rmSync(parent, { recursive: true, force: true });
  }
}
