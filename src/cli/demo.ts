/**
 * `hsmsim demo`: the documented example (session-management.md, "open, login, use, and close") on the embedded
 * default: a fresh in-process simulator, default profile, in-memory event store. Each step prints its return code and
 * the session state as the read model answers C_GetSessionInfo; then the audit trail: every call recorded, with its
 * facts. PINs appear nowhere in the trail (they are `{ len }` in the arguments).
 */
import { Simulator, type Application, type SimulatorOptions } from "../actors/simulator.js";
import type { Call, CallOut, FnName } from "../events/calls.js";
import type { CallRecord } from "../events/types.js";
import type { EventStore } from "../events/store.js";
import { CK, CKS_NAMES, rvName } from "../pkcs11/constants.js";

const SO_PIN = "12345678";
const USER_PIN = "1234";

export interface DemoOptions {
  json?: boolean;
  out?: (line: string) => void;
  /** Where the calls are recorded (default: the in-memory store). */
  store?: EventStore;
  /** What the store is, for the heading (e.g. "file store ./hsm"). */
  storeName?: string;
  /** The simulator options and key the store records under (a file store's `settings()`), so it can be replayed. */
  simulator?: Omit<SimulatorOptions, "store">;
}

export function demo(opts: DemoOptions = {}): number {
  const print = opts.out ?? ((l: string) => console.log(l));
  const sim = new Simulator({ ...opts.simulator, ...(opts.store ? { store: opts.store } : {}) });
  const app = sim.application();
  const steps: { step: string; fn: string; rv: string; state?: string }[] = [];
  let hSession = 0;

  const call = <F extends FnName>(step: string, fn: F, args: Extract<Call, { fn: F }>["args"]): CallOut[F] | undefined => {
    const r = app.call({ fn, args } as Extract<Call, { fn: F }>);
    const row: { step: string; fn: string; rv: string; state?: string } = { step, fn, rv: rvName(r.rv) };
    if (hSession) row.state = sessionState(app, hSession);
    steps.push(row);
    return r.out as CallOut[F];
  };

  // Preparation a real deployment does once, with softhsm2-util or an SO: a token with a user PIN.
  call("prepare: library", "C_Initialize", {});
  call("prepare: token", "C_InitToken", { slotID: 0, pin: SO_PIN, label: "demo" });
  const so = call("prepare: SO session", "C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION });
  call("prepare: SO login", "C_Login", { hSession: so!.hSession, userType: CK.CKU_SO, pin: SO_PIN });
  call("prepare: user PIN", "C_InitPIN", { hSession: so!.hSession, pin: USER_PIN });
  call("prepare: close SO session", "C_CloseSession", { hSession: so!.hSession });

  // The documented example.
  const opened = call("1 open a RW session", "C_OpenSession", { slotID: 0, flags: CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION });
  hSession = opened!.hSession;
  steps[steps.length - 1]!.state = sessionState(app, hSession);
  call("2 log in as user", "C_Login", { hSession, userType: CK.CKU_USER, pin: USER_PIN });
  const enc = new TextEncoder();
  call("3 use: create a data object", "C_CreateObject", {
    hSession,
    template: [
      { type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA) },
      { type: CK.CKA_LABEL, value: enc.encode("demo data") },
      { type: CK.CKA_VALUE, value: enc.encode("hello") },
    ],
  });
  call("3 use: digest init", "C_DigestInit", { hSession, mechanism: { mechanism: CK.CKM_SHA256 } });
  const digest = call("3 use: digest", "C_Digest", { hSession, data: enc.encode("abc"), outLen: 32 });
  call("4 inspect the session", "C_GetSessionInfo", { hSession });
  call("5 log out", "C_Logout", { hSession });
  const last = hSession;
  call("6 close the session", "C_CloseSession", { hSession });
  hSession = 0;
  steps[steps.length - 1]!.state = "(closed)";

  const records = [...sim.store.read()];
  if (opts.json) {
    print(JSON.stringify({ steps, digest: hex(digest?.digest ?? null), records }, null, 2));
    return 0;
  }
  print(`hsmsim demo: the documented example on the embedded default (in-process simulator, ${opts.storeName ?? "in-memory event store"})\n`);
  print(table(["step", "call", "rv", "session state (read model)"], steps.map((s) => [s.step, s.fn, s.rv, s.state ?? ""])));
  print(`\nSHA-256("abc") = ${hex(digest?.digest ?? null)}`);
  print(`session ${last} after close: ${rvName(app.call({ fn: "C_GetSessionInfo", args: { hSession: last } }).rv)}`);
  print(`\naudit trail: ${records.length} calls recorded (every call, reads and failures included; no PIN anywhere)\n`);
  print(table(["seq", "app", "call", "args", "rv", "facts"], records.map(recordRow)));
  return 0;
}

function sessionState(app: Application, hSession: number): string {
  const r = app.call({ fn: "C_GetSessionInfo", args: { hSession } });
  if (r.rv !== CK.CKR_OK) return rvName(r.rv);
  return CKS_NAMES.get((r.out as { state: number }).state) ?? String((r.out as { state: number }).state);
}

function recordRow(r: CallRecord): string[] {
  const args = JSON.stringify(r.args);
  return [
    String(r.seq),
    String(r.app),
    r.fn,
    args.length > 48 ? args.slice(0, 45) + "..." : args,
    rvName(r.rv),
    r.facts.map((f) => f.type).join(", "),
  ];
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (c ?? "").padEnd(w[i]!)).join("  ").trimEnd();
  return [line(head), line(w.map((n) => "-".repeat(n))), ...rows.map(line)].join("\n");
}

const hex = (b: Uint8Array | null) => (b ? Buffer.from(b).toString("hex") : "-");
function ulong(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
}
