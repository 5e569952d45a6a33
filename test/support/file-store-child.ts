/**
 * A second process for the file store tests (test/integration/file-store*.int.spec.ts). Run with
 * `node --import tsx test/support/file-store-child.ts <mode> <dir>`, or compiled (the kill -9 test compiles it with
 * tsc once, so that 200 children start in 0.15 s each rather than 0.4 s through tsx).
 *
 * Modes (every line goes to stdout):
 * - `hold <dir>`: open the store, print `held <pid>`, keep it until stdin closes.
 * - `open <dir>`: try to open the store; print `opened`, or `<error name> <holder pid>` and the message.
 * - `load <dir>`: the writer the kill -9 test kills. Open the store in fsync mode (printing `warn <message>` for each
 *   warning: stale lock taken over, torn tail cut), rebuild the simulator from it, print `ready <lastSeq>`, then run
 *   a PKCS#11 workload until killed, printing `<seq> <fn>` for every call as soon as `call()` returns: by then the
 *   record is fdatasync'ed, so every seq printed is one the store must still hold after the kill. One object in
 *   eight carries a 256 KiB value (a 0.5 MiB line), so that a kill may land inside a large write and tear it (rare:
 *   the writer spends its time in fdatasync and in hashing, not in write(2)).
 */
import { randomBytes } from "node:crypto";
import { Simulator } from "../../src/actors/simulator.js";
import type { Call, CallArgs, CallOut, FnName } from "../../src/events/calls.js";
import { FileEventStore, StoreLockedError } from "../../src/events/file-store.js";
import { CK } from "../../src/pkcs11/constants.js";
import { writeLine } from "./ack.js";

/** The simulator key of the kill -9 test (its parent replays the log with the same one). */
const KILL9_KEY = new Uint8Array(32).fill(9);
const SO_PIN = "12345678";
const USER_PIN = "1234";

const out = writeLine;

function hold(dir: string): void {
  const store = new FileEventStore(dir);
  out(`held ${process.pid}`);
  process.stdin.on("end", () => {
    store.close();
    process.exit(0);
  });
  process.stdin.resume();
}

function open(dir: string): void {
  try {
    new FileEventStore(dir).close();
    out("opened");
  } catch (e) {
    out(`${(e as Error).name} ${e instanceof StoreLockedError ? e.holder?.pid : "-"}`);
    out((e as Error).message);
  }
}

function load(dir: string): void {
  const store = new FileEventStore(dir, { durability: "fsync", onWarning: (m) => out(`warn ${m}`) });
  const sim = new Simulator({ store, simulatorKey: KILL9_KEY });
  out(`ready ${store.lastSeq}`);
  const app = sim.application();
  const call = <F extends FnName>(fn: F, args: CallArgs[F]): { rv: number; out: CallOut[F] } => {
    const r = app.call({ fn, args } as Extract<Call, { fn: F }>);
    out(`${sim.lastSeq} ${fn}`);
    return r as { rv: number; out: CallOut[F] };
  };
  const ulong = (n: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
    return b;
  };
  const RW = CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION;

  call("C_Initialize", {});
  for (let round = 0; ; round++) {
    const info = call("C_GetTokenInfo", { slotID: 0 });
    if (info.rv === CK.CKR_OK && !(info.out.flags & CK.CKF_TOKEN_INITIALIZED)) {
      call("C_InitToken", { slotID: 0, pin: SO_PIN, label: "kill9" });
      const so = call("C_OpenSession", { slotID: 0, flags: RW }).out.hSession;
      call("C_Login", { hSession: so, userType: CK.CKU_SO, pin: SO_PIN });
      call("C_InitPIN", { hSession: so, pin: USER_PIN });
      call("C_CloseSession", { hSession: so });
    }
    const opened = call("C_OpenSession", { slotID: 0, flags: RW });
    if (opened.rv !== CK.CKR_OK) continue;
    const h = opened.out.hSession;
    call("C_Login", { hSession: h, userType: CK.CKU_USER, pin: USER_PIN });
    const big = round % 8 === 7;
    const created = call("C_CreateObject", {
      hSession: h,
      template: [
        { type: CK.CKA_CLASS, value: ulong(CK.CKO_DATA) },
        { type: CK.CKA_TOKEN, value: Uint8Array.of(round % 2) },
        { type: CK.CKA_PRIVATE, value: Uint8Array.of(round % 3 === 0 ? 1 : 0) },
        { type: CK.CKA_LABEL, value: new TextEncoder().encode(`obj${round}`) },
        { type: CK.CKA_VALUE, value: new Uint8Array(randomBytes(big ? 256 * 1024 : 16 + (round % 48))) },
      ],
    });
    call("C_DigestInit", { hSession: h, mechanism: { mechanism: CK.CKM_SHA256 } });
    call("C_DigestUpdate", { hSession: h, data: new Uint8Array(randomBytes(1 + (round % 64))) });
    call("C_DigestFinal", { hSession: h, outLen: 32 });
    call("C_FindObjectsInit", { hSession: h, template: [{ type: CK.CKA_TOKEN, value: Uint8Array.of(1) }] });
    const found = call("C_FindObjects", { hSession: h, maxCount: 4 });
    call("C_FindObjectsFinal", { hSession: h });
    // Keep the token small: destroy a token object now and then, and every big one.
    if (created.rv === CK.CKR_OK && (big || round % 2 === 0)) call("C_DestroyObject", { hSession: h, hObject: created.out.hObject });
    else if (found.rv === CK.CKR_OK && found.out.handles.length > 2) call("C_DestroyObject", { hSession: h, hObject: found.out.handles[0]! });
    call("C_Logout", { hSession: h });
    call("C_CloseSession", { hSession: h });
  }
}

const [mode, dir] = process.argv.slice(2);
if (!dir) throw new TypeError("usage: file-store-child.ts hold|open|load <dir>");
if (mode === "hold") hold(dir);
else if (mode === "open") open(dir);
else if (mode === "load") load(dir);
else throw new RangeError(`unknown mode "${mode}"`);
