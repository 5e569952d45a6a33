/**
 * `hsmsim replay --nats URL[,URL..] [--name N] --token ID [--stream S] [--prefix P] [--key-file F | --profile P]
 * [--json]`: one token of a served simulator replayed alone from its own JetStream subject
 * (`<prefix>.<N>.events.tok.<ID>`, events/token-replay.ts; design note §11.4), no other subject read. Prints the
 * token's persistent state: initialised, label, serial, the flags that follow from it, the PIN failure counters, the
 * token objects (no secret value, as `hsmsim replay --store` shows them). Sessions and logins are application state,
 * not rebuilt. The profile (PIN retries, softhsm2's generation counter) comes from the service's settings file
 * (`--key-file`, default `hsmsim-<N>.json`, read, never created) or `--profile`. Credentials and TLS as for
 * `hsmsim serve`: the HSMSIM_NATS_* environment. Exit 0, 1 when the subject does not replay (corrupt, the
 * single-subject layout) or NATS cannot be reached, 2 on usage.
 */
import fs from "node:fs";
import { connect as natsConnect } from "@nats-io/transport-node";
import { replayToken } from "../events/token-replay.js";
import { isProfileName, resolveProfile, type ProfileOptions } from "../pkcs11/profiles.js";
import { tokenFlags } from "../projections/read-model.js";
import { natsConnectOptions } from "../remote/connect-options.js";
import { checkToken, DEFAULT_PREFIX, DEFAULT_SIM, DEFAULT_STREAM } from "../remote/protocol.js";
import { CliError, UsageError, type Parsed } from "./args.js";
import { objectView, printObjects, tokenView } from "./replay.js";

export const REPLAY_TOKEN_FLAGS = {
  nats: "value",
  name: "value",
  token: "value",
  stream: "value",
  prefix: "value",
  "key-file": "value",
  profile: "value",
  json: "bool",
} as const;

export const REPLAY_TOKEN_USAGE = `  replay --nats URL[,URL..] [--name N] --token ID [--stream S] [--prefix P] [--key-file F | --profile P] [--json]
           replay one token of served simulator N alone from its own JetStream subject (<prefix>.N.events.tok.ID;
           ID as in the model: slot0.. or tok1..) and print its persistent state: label, serial, flags, PIN
           failures, token objects (no secret values); sessions and logins belong to applications, not shown`;

function option(name: string, v: string | true | undefined, fallback: string): string {
  if (v === undefined) return fallback;
  try {
    return checkToken(name, String(v));
  } catch (e) {
    throw new UsageError(`--${name}: ${(e as Error).message}`);
  }
}

/** The simulator's profile options and key: from its settings file if there is one, else `--profile`. */
function settings(o: Parsed, sim: string): { profile: ProfileOptions; key?: Uint8Array } {
  const file = typeof o["key-file"] === "string" ? o["key-file"] : `hsmsim-${sim}.json`;
  if (o.profile !== undefined) {
    if (o["key-file"] !== undefined) throw new UsageError("hsmsim replay: --key-file and --profile both name the profile; give one");
    if (!isProfileName(o.profile)) throw new UsageError(`--profile expected default or softhsm2, got ${String(o.profile)}`);
    return { profile: { profile: o.profile } };
  }
  if (!fs.existsSync(file)) {
    if (o["key-file"] !== undefined) throw new CliError(`hsmsim replay: ${file} does not exist`);
    return { profile: { profile: "default" } };
  }
  try {
    const s = JSON.parse(fs.readFileSync(file, "utf8")) as { config: { profile: ProfileOptions }; simulatorKey?: string };
    return { profile: s.config.profile, ...(s.simulatorKey ? { key: Uint8Array.from(Buffer.from(s.simulatorKey, "hex")) } : {}) };
  } catch (e) {
    throw new CliError(`hsmsim replay: cannot read ${file}: ${(e as Error).message}`);
  }
}

export async function replayTokenCommand(o: Parsed, print: (line: string) => void): Promise<number> {
  if (typeof o.nats !== "string") throw new UsageError("hsmsim replay: --nats URL is required with --token");
  if (typeof o.token !== "string") throw new UsageError("hsmsim replay: --token ID is required with --nats");
  const sim = option("name", o.name, DEFAULT_SIM);
  const token = option("token", o.token, "");
  const stream = option("stream", o.stream, DEFAULT_STREAM);
  const prefix = option("prefix", o.prefix, DEFAULT_PREFIX);
  const { profile: profileOptions, key } = settings(o, sim);
  const profile = resolveProfile(profileOptions);
  let nc;
  try {
    nc = await natsConnect({ ...natsConnectOptions(o.nats), name: `hsmsim-replay-${sim}-${process.pid}` });
  } catch (e) {
    throw new CliError(`hsmsim replay: cannot connect to ${o.nats}: ${(e as Error).message}`, 1);
  }
  let r;
  try {
    r = await replayToken({ nc, sim, token, stream, prefix, processCaches: profile.processCaches, ...(key ? { simulatorKey: key } : {}) });
  } catch (e) {
    throw new CliError(`hsmsim replay: ${(e as Error).message.replace(/^hsmsim: /, "")}`, 1);
  } finally {
    await nc.close().catch(() => undefined);
  }
  const t = r.token;
  const flags = tokenFlags({ id: t.id, initialized: t.initialized, serial: t.serial, label: t.label, userPinSet: t.userPin !== null, failures: t.failures }, profile);
  const view = {
    sim,
    subject: r.subject,
    records: r.records,
    messages: r.messages,
    lastSeq: r.lastSeq,
    ...tokenView(t, flags),
    generation: t.generation,
    objects: [...t.objects.values()].map(objectView),
  };
  if (o.json === true) {
    print(JSON.stringify(view, null, 2));
    return 0;
  }
  print(`token ${t.id} of simulator "${sim}", replayed alone from ${r.subject}: ${r.records} records in ${r.messages} messages (last record seq ${r.lastSeq})`);
  if (!t.initialized) {
    print("  not initialised");
    return 0;
  }
  print(`  label "${view.label}", serial ${t.serial}`);
  print(`  flags 0x${flags.toString(16)}: ${view.flagNames.join(" | ")} (sessions and logins are application state: not rebuilt from the token's subject)`);
  print(`  PIN failures: SO ${t.failures.so}, user ${t.failures.user}`);
  printObjects(view.objects, print);
  return 0;
}
