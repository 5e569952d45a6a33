/**
 * The hsmsim command line: `hsmsim <command> [options]`: demo, audit verify, audit show, replay. Exit codes: 0 done,
 * 1 a check failed (a verification found a bad record or checkpoint), 2 usage, or a store that cannot be opened or
 * read (args.ts). The commands that read a store (audit, replay) take no lock: a store in use can be audited.
 */
import fs from "node:fs";
import { join } from "node:path";
import { demo } from "./demo.js";
import type { SimulatorOptions } from "../actors/simulator.js";
import { FileEventStore } from "../events/file-store.js";
import { verifyStore } from "../events/verify.js";
import { progress } from "./progress.js";
import { CliError, parse, UsageError, type Parsed } from "./args.js";
import { auditShow, auditVerify } from "./audit.js";
import { replay } from "./replay.js";
import { REPLAY_TOKEN_FLAGS, REPLAY_TOKEN_USAGE, replayTokenCommand } from "./replay-token.js";
import { initToken, showSlots } from "./token.js";
import { SERVE_FLAGS, SERVE_USAGE, serveCommand } from "../service/serve-command.js";
import { PROJECT_FLAGS, PROJECT_USAGE, projectCommand } from "../projections/service-cli.js";
import { exportJetStreamLog, NATS_LOG_FLAGS, NATS_LOG_USAGE, onJetStreamLog } from "./nats-log.js";

const USAGE = `usage: hsmsim <command> [options]

commands:
  demo [--store DIR] [--json]
           run the documented example (open, log in, use, inspect, log out, close) on the embedded default,
           printing each step's session state from the read model and the audit trail; with --store, record it in
           a new file store in DIR and verify its hash chain and signed checkpoints afterwards
  audit verify --store DIR [--pubkey HEX|FILE] [--from N] [--to M] [--json]
           verify a file store's hash chain and its signed checkpoints (needs only the log, checkpoints.log and the
           audit public key: --pubkey, else the store's audit.pub); exit 1 naming the first bad record or checkpoint
  audit show --store DIR [--fn C_Login[,..]] [--rv CKR_PIN_INCORRECT[,..]] [--app N] [--session H]
             [--since ISO] [--until ISO] [--format table|jsonl|spy] [--json]
           list the recorded calls, filtered, as a table, JSON lines (--json), or OpenSC pkcs11-spy text
  replay --store DIR [--until SEQ|ISO] [--json]
           rebuild the state after record SEQ (or the last record at or before a time) in a fresh in-memory
           simulator and print it: tokens, flags, objects (no secret values), applications, slots, logins, sessions
  replay --check --store DIR [--json]
           re-execute every recorded call on a fresh simulator (the store's options and key) and report each call
           whose return code, outputs or facts differ; PINs are not in the log, so PIN checks answer from the
           recorded outcome (labelled in the report); exit 1 when a call diverges
  replay --spy TRACE [--profile default|softhsm2] [--store DIR] [--json]
           re-execute an OpenSC pkcs11-spy trace (PKCS11SPY_OUTPUT) against hsmsim (default profile softhsm2),
           mapping slot IDs and handles, and report each call whose return code or outputs differ and the
           functions skipped; PINs in the trace are used, never written; --store records the re-execution there
${REPLAY_TOKEN_USAGE}
  init-token --store DIR --slot N --label LABEL --so-pin PIN [--pin USER_PIN] [--profile default|softhsm2] [--slots N]
           initialise (or re-initialise, with the current SO PIN) the token in slot N, like softhsm2-util --init-token;
           --pin also sets the user PIN; a new store takes --profile and --slots
  show-slots --store DIR [--json]
           list the store's slots and tokens, like softhsm2-util --show-slots
${NATS_LOG_USAGE}
  export --nats URL [--name N] [--key-file FILE] .. --to DIR [--json]
           copy a served simulator's log, its signed checkpoints (and with --key-file its settings) into DIR as a
           file store, for offline audit (hsmsim audit verify --store DIR --pubkey K)
${SERVE_USAGE}
${PROJECT_USAGE}
  help     this text

exit codes: 0 done, 1 a check failed (bad record, forged checkpoint, a divergent call), 2 usage or a store that cannot be read`;

/**
 * Standard output in 64 KiB writes, flushed before main returns: bin/hsmsim.js calls process.exit, which would cut
 * short what a pipe had not yet taken (stdout to a pipe is asynchronous), e.g. `hsmsim audit show ... | wc -l`.
 */
function stdoutLines(): { line: (l: string) => void; flush: () => Promise<void> } {
  let buf = "";
  // The reader went away (`| head`): stop quietly, as shell tools do.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  return {
    line(l) {
      buf += l + "\n";
      if (buf.length >= 1 << 16) {
        process.stdout.write(buf);
        buf = "";
      }
    },
    async flush() {
      if (buf) process.stdout.write(buf);
      buf = "";
      await new Promise<void>((done) => process.stdout.write("", () => done()));
    },
  };
}

export async function main(argv: string[], print?: (line: string) => void): Promise<number> {
  const stdout = print ? undefined : stdoutLines();
  const out = print ?? stdout!.line;
  // Progress bars while a store's log is verified or read at length (opening a big store), on a terminal only and
  // never with --json (src/cli/progress.ts).
  const json = argv.includes("--json");
  FileEventStore.onWalk = (what, total) => progress(what === "verify" ? "verifying the log" : "reading the log", total, { json });
  try {
    // Long-running and asynchronous: hsmsim serve (issue 4).
    if (argv[0] === "serve") return await cliErrors(() => serveCommand(parse(argv.slice(1), SERVE_FLAGS)));
    if (argv[0] === "project") return await cliErrors(() => projectCommand(parse(argv.slice(1), PROJECT_FLAGS)));
    // One token of a served simulator from its own JetStream subject (issue 4; needs NATS, so asynchronous).
    if (argv[0] === "replay" && argv.includes("--nats") && argv.includes("--token")) return await cliErrors(() => replayTokenCommand(parse(argv.slice(1), REPLAY_TOKEN_FLAGS), out));
    // The audit and replay commands on a simulator served on NATS (issue 5 on JetStream), and the offline copy.
    const log = logCommand(argv);
    if (log && argv.includes("--nats")) return await cliErrors(() => onNatsLog(log.name, log.rest, out));
    if (argv[0] === "export") return await cliErrors(() => exportCommand(parse(argv.slice(1), { ...NATS_LOG_FLAGS, to: "value", json: "bool" }), out));
    return run(argv, out);
  } finally {
    await stdout?.flush();
  }
}

/** The exit code of an async command, with usage and CLI errors reported as `run` reports them. */
/** A usage error exits 2 with the usage text, a CLI error with its own code; anything else is a bug and is thrown. */
function exitCodeOf(e: unknown): number {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof CliError) {
      console.error(e.message);
      return e.code;
    }
    throw e;
}

async function cliErrors(f: () => Promise<number>): Promise<number> {
  try {
    return await f();
  } catch (e) {
    return exitCodeOf(e);
  }
}

/** The commands that read a store's log: with --nats they read a served simulator's log instead (nats-log.ts). */
const LOG_COMMANDS = {
  "audit verify": { flags: { store: "value", from: "value", to: "value", pubkey: "value", json: "bool" }, run: auditVerify },
  "audit show": {
    flags: { store: "value", fn: "value", rv: "value", app: "value", session: "value", since: "value", until: "value", format: "value", json: "bool" },
    run: auditShow,
  },
  replay: { flags: { store: "value", until: "value", json: "bool", check: "bool", spy: "value", profile: "value" }, run: replay },
} as const;

/** `audit verify|show …` or `replay …`: the command's name, its flags and its arguments. */
function logCommand(argv: string[]): { name: keyof typeof LOG_COMMANDS; rest: string[] } | undefined {
  if (argv[0] === "replay") return { name: "replay", rest: argv.slice(1) };
  if (argv[0] === "audit" && (argv[1] === "verify" || argv[1] === "show")) return { name: `audit ${argv[1]}`, rest: argv.slice(2) };
  return undefined;
}

/** A log command on a served simulator's log: run on a temporary file-store copy of it. */
async function onNatsLog(name: keyof typeof LOG_COMMANDS, rest: string[], out: (line: string) => void): Promise<number> {
  const c = LOG_COMMANDS[name];
  const o = parse(rest, { ...c.flags, ...NATS_LOG_FLAGS });
  const cmd = `hsmsim ${name}`;
  if (o.store !== undefined) throw new UsageError(`${cmd}: give --store DIR or --nats URL, not both`);
  if (o.spy !== undefined) throw new UsageError(`${cmd}: --spy re-executes a trace; it reads no served log (leave out --nats)`);
  return onJetStreamLog(cmd, o, (dir) => c.run({ ...o, store: dir }, out));
}

function run(argv: string[], out: (line: string) => void): number {
  const [cmd, ...rest] = argv;
  try {
    const log = logCommand(argv);
    if (log) return LOG_COMMANDS[log.name].run(parse(log.rest, LOG_COMMANDS[log.name].flags), out);
    switch (cmd) {
      case "demo":
        return runDemo(parse(rest, { json: "bool", store: "value" }));
      case "audit":
        throw new UsageError(`hsmsim audit: unknown subcommand ${rest[0] === undefined ? "(none)" : `"${rest[0]}"`} (verify or show)`);
      case "init-token":
        return initToken(parse(rest, { store: "value", slot: "value", label: "value", "so-pin": "value", pin: "value", profile: "value", slots: "value" }), out);
      case "show-slots":
        return showSlots(parse(rest, { store: "value", json: "bool" }), out);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        out(USAGE);
        return 0;
      default:
        throw new UsageError(`hsmsim: unknown command "${cmd}"`);
    }
  } catch (e) {
    return exitCodeOf(e);
  }
}

/** `hsmsim export --nats URL … --to DIR`: a served simulator's log as a file store in DIR (a new directory). */
async function exportCommand(o: Parsed, out: (line: string) => void): Promise<number> {
  if (typeof o.to !== "string") throw new UsageError("hsmsim export: --to DIR is required (a directory that does not exist yet)");
  if (fs.existsSync(o.to)) throw new CliError(`hsmsim export: ${o.to} exists; export writes a new directory`);
  const e = await exportJetStreamLog("hsmsim export", o, o.to);
  if (o.json === true) out(JSON.stringify({ dir: o.to, ...e }));
  else out(`exported ${e.records} records (${e.messages} messages) and ${e.checkpoints} signed checkpoints to ${o.to}`);
  return 0;
}

function runDemo(o: Parsed): number {
  const json = o.json === true;
  if (typeof o.store !== "string") return demo({ json });
  const dir = o.store;
  if (fs.existsSync(join(dir, "events.log")) && fs.statSync(join(dir, "events.log")).size > 0) {
    console.error(`hsmsim demo: ${dir} already holds a log; the demo records into a new store (choose an empty directory)`);
    return 2;
  }
  const store = new FileEventStore(dir, { durability: "fsync" });
  let code: number;
  try {
    // Saved with the store (simulator.json), so that `hsmsim replay` can rebuild it.
    const saved = store.settings({}, { profile: "default" });
    code = demo({ json, store, storeName: `file store ${dir}, fsync durability`, simulator: { ...(saved.options as SimulatorOptions), simulatorKey: saved.simulatorKey } });
  } finally {
    store.close();
  }
  const v = verifyStore(dir);
  if (!json) {
    console.log(
      v.ok
        ? `\naudit verify: ${v.checked} records, hash chain intact, head ${v.head}; ` +
            `${v.checkpoints.verified} signed checkpoint${v.checkpoints.verified === 1 ? "" : "s"} verified (audit key ${v.checkpoints.publicKey?.slice(0, 16)}…, in ${join(dir, "audit.pub")})`
        : `\naudit verify: FAILED at seq ${v.firstBad!.seq}: ${v.firstBad!.problem}`,
    );
  }
  return v.ok ? code : 1;
}

