/**
 * `hsmsim replay --store DIR [--until SEQ|TIME] [--json]`: time travel. The store's records up to a sequence (or up to
 * a time: every record taken at or before it) are replayed into a fresh in-memory simulator, created with the store's
 * saved options and simulator key (simulator.json), and the state there is printed: tokens (label, serial, flags,
 * PIN failure counts, objects), applications with their slots and login states, sessions with their states (the read
 * model's sessionState of the slot's login and the RW flag) and operations. Read-only: no lock, nothing written;
 * a store in use by another process can be replayed.
 *
 * No secret is printed: objects show their class, flags, label, application and identifiers; every other attribute
 * (CKA_VALUE, key material) only by its length. PIN verifiers are not shown.
 */
import fs from "node:fs";
import { Simulator, type SimulatorOptions } from "../actors/simulator.js";
import { FileEventStore, lastSeqOfLog } from "../events/file-store.js";
import { progress } from "./progress.js";
import { LogReadError, readLog } from "../events/verify.js";
import type { CallRecord } from "../events/types.js";
import type { ObjectState, TokenState } from "../model/state.js";
import { sessionState, tokenFlags } from "../projections/read-model.js";
import { CK } from "../pkcs11/constants.js";
import { CliError, isoTime, storeLog, UsageError, type Parsed } from "./args.js";
import { attrName, CKO } from "./spy.js";
import { replayCheck } from "./replay-check.js";
import { replaySpy } from "./replay-spy.js";

type Print = (line: string) => void;

const TOKEN_FLAGS = [
  "CKF_RNG",
  "CKF_WRITE_PROTECTED",
  "CKF_LOGIN_REQUIRED",
  "CKF_USER_PIN_INITIALIZED",
  "CKF_RESTORE_KEY_NOT_NEEDED",
  "CKF_CLOCK_ON_TOKEN",
  "CKF_PROTECTED_AUTHENTICATION_PATH",
  "CKF_DUAL_CRYPTO_OPERATIONS",
  "CKF_TOKEN_INITIALIZED",
  "CKF_SECONDARY_AUTHENTICATION",
  "CKF_USER_PIN_COUNT_LOW",
  "CKF_USER_PIN_FINAL_TRY",
  "CKF_USER_PIN_LOCKED",
  "CKF_USER_PIN_TO_BE_CHANGED",
  "CKF_SO_PIN_COUNT_LOW",
  "CKF_SO_PIN_FINAL_TRY",
  "CKF_SO_PIN_LOCKED",
  "CKF_SO_PIN_TO_BE_CHANGED",
].filter((n) => typeof (CK as Record<string, number>)[n] === "number");

export const flagNames = (f: number) => TOKEN_FLAGS.filter((n) => f & (CK as Record<string, number>)[n]!);

const BOOL_ATTRS = new Set(
  ["CKA_TOKEN", "CKA_PRIVATE", "CKA_MODIFIABLE", "CKA_COPYABLE", "CKA_DESTROYABLE", "CKA_SENSITIVE", "CKA_EXTRACTABLE"].map((n) => (CK as Record<string, number>)[n]),
);
const TEXT_ATTRS = new Set([CK.CKA_LABEL, CK.CKA_APPLICATION]);
const HEX_ATTRS = new Set([CK.CKA_OBJECT_ID, CK.CKA_ID]);

/** An object as replay shows it: no attribute value that could be secret. */
export function objectView(o: ObjectState) {
  const attrs: Record<string, string | boolean | { length: number }> = {};
  let cls: string | undefined;
  for (const [t, v] of o.attrs) {
    if (t === CK.CKA_CLASS && v.length === 8) {
      const n = Number(new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true));
      cls = CKO.get(n) ?? `0x${n.toString(16)}`;
    } else if (BOOL_ATTRS.has(t)) attrs[attrName(t)] = v.length > 0 && v[0] !== 0;
    else if (TEXT_ATTRS.has(t)) attrs[attrName(t)] = Buffer.from(v).toString("utf8");
    else if (HEX_ATTRS.has(t)) attrs[attrName(t)] = Buffer.from(v).toString("hex");
    else attrs[attrName(t)] = { length: v.length };
  }
  return { id: o.id, class: cls ?? "(none)", attrs };
}

/** A token as replay shows it (its objects apart), with its C_GetTokenInfo flags. */
export function tokenView(t: TokenState, flags: number) {
  return {
    id: t.id,
    initialized: t.initialized,
    label: t.label.replace(/ +$/, ""),
    serial: t.serial,
    flags,
    flagNames: flagNames(flags),
    pinFailures: { ...t.failures },
  };
}

/** `--until`: a sequence number, or a time. */
function until(v: string | true | undefined): { seq: number } | { time: number } | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "string" && /^\d+$/.test(v)) {
    const seq = Number(v);
    if (!Number.isSafeInteger(seq) || seq < 1) throw new UsageError(`--until expected a sequence >= 1 or an ISO time, got ${v}`);
    return { seq };
  }
  return { time: isoTime("until", v)! };
}

export function replay(o: Parsed, print: Print): number {
  if (o.check === true && o.spy !== undefined) throw new UsageError("hsmsim replay: --check and --spy are separate runs; give one of them");
  if (o.check === true || o.spy !== undefined) {
    if (o.until !== undefined) throw new UsageError(`hsmsim replay: --until shows a state; it does not go with --${o.check === true ? "check" : "spy"}`);
    return o.check === true ? replayCheck(o, print) : replaySpy(o, print);
  }
  if (o.profile !== undefined) throw new UsageError("hsmsim replay: --profile goes with --spy (a store replays under its own profile)");
  const { dir, file } = storeLog("hsmsim replay", o);
  const to = until(o.until);
  let settings;
  try {
    settings = FileEventStore.readSettings(dir);
  } catch (e) {
    throw new CliError(`hsmsim replay: ${(e as Error).message.replace(/^hsmsim: /, "")}`);
  }
  if (!settings && fs.statSync(file).size > 0) {
    throw new CliError(
      `hsmsim replay: ${dir} has no simulator.json (it was written by a simulator created in code); replay needs the options and simulator key it was written with`,
    );
  }
  // Streamed: the records go from the file into the simulator one by one, however long the log.
  let total = 0;
  let last: CallRecord | undefined;
  // A bar on a terminal (src/cli/progress.ts); silent with --json or when stderr is not one.
  const logEnd = lastSeqOfLog(file);
  const bar = progress("replaying", to && "seq" in to ? Math.min(to.seq, logEnd) : logEnd, { json: o.json === true });
  function* upTo(): Generator<CallRecord> {
    for (const r of readLog(file)) {
      bar.update(r.seq);
      total = r.seq;
      if (to && ("seq" in to ? r.seq > to.seq : r.time > to.time)) return;
      last = r;
      yield r;
    }
  }
  let sim: Simulator;
  try {
    sim = Simulator.replay(upTo(), { ...((settings?.options ?? {}) as SimulatorOptions), ...(settings ? { simulatorKey: settings.simulatorKey } : {}) });
  } catch (e) {
    if (e instanceof LogReadError) throw new CliError(`hsmsim replay: ${e.message.replace(/^hsmsim: /, "")}`, 1);
    throw new CliError(`hsmsim replay: the log does not replay: ${(e as Error).message}`, 1);
  } finally {
    bar.finish();
  }
  if (to && "seq" in to && to.seq > total) {
    throw new CliError(`hsmsim replay: --until ${to.seq} is past the end of the log (it holds ${total} records)`);
  }
  const view = stateView(sim, last, String(settings?.options.profile ?? "default"));
  if (o.json === true) {
    print(JSON.stringify(view, null, 2));
    return 0;
  }
  printState(view, print);
  return 0;
}

type StateView = ReturnType<typeof stateView>;

/** The state as replay shows it; `profileName` as the store's settings name it. */
function stateView(sim: Simulator, last: CallRecord | undefined, profileName: string) {
  const { state, read, profile } = sim;
  return {
    at: { seq: last?.seq ?? 0, time: last ? new Date(last.time).toISOString() : null },
    profile: profileName,
    tokens: [...state.tokens.values()].map((t) => {
      const view = read.tokens.get(t.id);
      const flags = tokenFlags(view, profile);
      const counts = read.counts.get(t.id) ?? { sessions: 0, rwSessions: 0 };
      return {
        ...tokenView(t, flags),
        sessions: { ...counts },
        objects: [...t.objects.values()].map(objectView),
      };
    }),
    applications: [...state.apps.values()].map((a) => ({
      id: a.id,
      slots: a.slotOrder.map((slotID) => ({ slotID, token: a.slots.get(slotID)?.token ?? null, login: read.login(a.id, slotID) })),
      sessions: [...(read.sessions.get(a.id)?.values() ?? [])].map((s) => {
        const op = a.sessions.get(s.handle)?.op ?? null;
        const st = sessionState(read.login(a.id, s.slotID), s.rw);
        return {
          handle: s.handle,
          slotID: s.slotID,
          token: s.token,
          rw: s.rw,
          state: st,
          stateName: Object.entries(CK).find(([k, v]) => k.startsWith("CKS_") && v === st)?.[0] ?? String(st),
          operation: op === null ? null : op.kind === "find" ? "find" : `${op.kind} (${mechName(op.mechanism)})`,
        };
      }),
      sessionObjects: [...a.sessionObjects.values()].map(objectView),
    })),
  };
}

const mechName = (m: number) => Object.entries(CK).find(([k, v]) => k.startsWith("CKM_") && v === m)?.[0] ?? `0x${m.toString(16)}`;

function printState(v: StateView, print: Print): void {
  print(`state after seq ${v.at.seq}${v.at.time ? ` (${v.at.time})` : " (the empty log)"}, profile ${v.profile}`);
  print("");
  print(`tokens: ${v.tokens.length}`);
  for (const t of v.tokens) {
    if (!t.initialized) {
      print(`  ${t.id}: not initialised`);
      continue;
    }
    print(`  ${t.id}: label "${t.label}", serial ${t.serial}, ${t.sessions.sessions} sessions open (${t.sessions.rwSessions} RW)`);
    print(`    flags 0x${t.flags.toString(16)}: ${t.flagNames.join(" | ")}`);
    print(`    PIN failures: SO ${t.pinFailures.so}, user ${t.pinFailures.user}`);
    printObjects(t.objects, print);
  }
  print("");
  print(`applications: ${v.applications.length}`);
  for (const a of v.applications) {
    print(`  application ${a.id}`);
    for (const s of a.slots) print(`    slot ${s.slotID}: token ${s.token ?? "(none)"}, ${s.login === "public" ? "not logged in" : `${s.login === "so" ? "SO" : "user"} logged in`}`);
    if (a.sessions.length === 0) print("    no sessions");
    for (const s of a.sessions) print(`    session ${s.handle}: slot ${s.slotID}, ${s.rw ? "RW" : "RO"}, ${s.stateName}${s.operation ? `, ${s.operation} in progress` : ""}`);
    if (a.sessionObjects.length) printObjects(a.sessionObjects, print);
  }
}

export function printObjects(objects: ReturnType<typeof objectView>[], print: Print): void {
  if (objects.length === 0) {
    print("    no objects");
    return;
  }
  for (const o of objects) {
    const parts = Object.entries(o.attrs).map(([k, v]) =>
      typeof v === "object" ? `${k} (${v.length} bytes, not shown)` : typeof v === "string" ? `${k} "${v}"` : `${k} ${v}`,
    );
    print(`    object ${o.id}: ${o.class}; ${parts.join(", ")}`);
  }
}
