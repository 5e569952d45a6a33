/**
 * The writer the snapshot kill -9 test kills (test/integration/snapshot-kill9.int.spec.ts): `node snapshot-child.js
 * <dir> <snapshotEvery> [thread|inline]` (how the store writes its periodic snapshots: `snapshotThread`, default
 * thread). With thread, it prints `writing` once the background writer has written its first snapshot of this run
 * (it writes them one after another from then on, the kill's target). It opens the store (group durability: every append is written before it returns, so a kill
 * -9 loses no acknowledged call), restores the newest snapshot a previous run left, prints `ready <lastSeq> <from>`
 * (`from`: where it started reading the log), then runs calls until killed, printing `<seq> <fn>` as each returns.
 * Snapshots come every `snapshotEvery` records and the state is kept large (up to 400 token objects of 1 KiB, a
 * digest in progress, a find in progress), so most of the writer's time goes into writing snapshots and the kill
 * often lands inside one: the capture, the temporary file, the rename, or the removal of an old one.
 */
import { Simulator } from "../../src/actors/simulator.js";
import type { EventStore } from "../../src/events/store.js";
import { FileEventStore } from "../../src/events/file-store.js";
import { CK } from "../../src/pkcs11/constants.js";
import { writeLine } from "./ack.js";
import type { Call, CallOut, FnName } from "../../src/events/calls.js";
import type { Fact } from "../../src/events/types.js";

const SNAPSHOT_KILL9_KEY = new Uint8Array(32).fill(11);
const SO_PIN = "12345678";
const USER_PIN = "1234";

const out = writeLine;

const [dir, every, mode = "thread"] = process.argv.slice(2);
const store = new FileEventStore(dir!, {
  durability: "group",
  snapshotEvery: Number(every),
  snapshotThread: mode === "thread",
  onWarning: (m) => out(`warn ${m.replace(/\n/g, " ")}`),
});
let from = 0;
const watched: EventStore = new Proxy(store, {
  get(target, key) {
    if (key === "read") return (f = 1) => ((from = f), target.read(f));
    if (key === "readFacts") return (f = 1) => ((from = f), target.readFacts(f));
    if (key === "eachFacts") return (f: number, k: Uint8Array, apply: (seq: number, facts: readonly Fact[]) => void) => ((from = f), target.eachFacts(f, k, apply));
    const v = Reflect.get(target, key, target) as unknown;
    return typeof v === "function" ? v.bind(target) : v;
  },
});
const sim = new Simulator({ store: watched, simulatorKey: SNAPSHOT_KILL9_KEY });
out(`ready ${store.lastSeq} ${from}`);
const app = sim.application();
/** One call, acknowledged on stdout as it returns; its output as the function's (CallOut). */
const call = <F extends FnName>(c: Extract<Call, { fn: F }>): { rv: number; out?: CallOut[F] } => {
  const r = app.call(c);
  out(`${sim.lastSeq} ${c.fn}`);
  return r as { rv: number; out?: CallOut[F] };
};
const RW = CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION;
call({ fn: "C_Initialize", args: {} });
const info = call({ fn: "C_GetTokenInfo", args: { slotID: 0 } });
if (!(info.out!.flags & CK.CKF_TOKEN_INITIALIZED)) {
  call({ fn: "C_InitToken", args: { slotID: 0, pin: SO_PIN, label: "kill9" } });
  const h = call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).out!.hSession;
  call({ fn: "C_Login", args: { hSession: h, userType: CK.CKU_SO, pin: SO_PIN } });
  call({ fn: "C_InitPIN", args: { hSession: h, pin: USER_PIN } });
  call({ fn: "C_CloseSession", args: { hSession: h } });
}
const h = call({ fn: "C_OpenSession", args: { slotID: 0, flags: RW } }).out!.hSession;
call({ fn: "C_Login", args: { hSession: h, userType: CK.CKU_USER, pin: USER_PIN } });
const digester = call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION } }).out!.hSession;
call({ fn: "C_DigestInit", args: { hSession: digester, mechanism: { mechanism: CK.CKM_SHA256 } } });
const finder = call({ fn: "C_OpenSession", args: { slotID: 0, flags: CK.CKF_SERIAL_SESSION } }).out!.hSession;
const ulong = (n: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
};
const value = new Uint8Array(1024).fill(0x5a);
const made: number[] = [];
let writing = false;
const started = performance.now();
for (let i = 0; ; i++) {
  if (!writing && mode === "thread" && (store.snapshotStats.written > 0 || performance.now() - started > 10_000)) {
    // Without one after 10 s the writer is broken: said as a warning, which fails the test.
    if (store.snapshotStats.written === 0) out("warn no background snapshot written within 10 s");
    writing = true;
    out("writing");
  }
  if (made.length >= 400) call({ fn: "C_DestroyObject", args: { hSession: h, hObject: made.shift()! } });
  const o = call({
    fn: "C_CreateObject",
    args: { hSession: h, template: [{ type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA) }, { type: CK.CKA_TOKEN, value: Uint8Array.of(1) }, { type: CK.CKA_VALUE, value }] },
  });
  if (o.rv === CK.CKR_OK) made.push(o.out!.hObject);
  call({ fn: "C_DigestUpdate", args: { hSession: digester, data: Uint8Array.of(i & 0xff) } });
  if (i % 7 === 0) {
    call({ fn: "C_FindObjectsFinal", args: { hSession: finder } });
    call({ fn: "C_FindObjectsInit", args: { hSession: finder, template: [] } });
  }
}
