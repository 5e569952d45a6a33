/**
 * `hsmsim init-token` and `hsmsim show-slots`: what `softhsm2-util --init-token` / `--show-slots` do, on a file store.
 * Both run as an application of the store's simulator through the pkcs11js drop-in (`load("file:DIR")`), so every
 * call they make is recorded, audited and replayable like any other; PINs reach the log only as lengths.
 */
import fs from "node:fs";
import { PKCS11, Pkcs11Error } from "../pkcs11/pkcs11js.js";
import { CK } from "../pkcs11/constants.js";
import { slotIdFromSerial } from "../functions/context.js";
import { CliError, integer, UsageError, type Parsed } from "./args.js";

const slotNumber = (b: Buffer) => Number(b.readBigUInt64LE(0));

/** Open the store as a pkcs11js module; `profile`/`slots` only matter when the store is new. */
function open(cmd: string, o: Parsed, mayCreate: boolean): PKCS11 {
  if (typeof o.store !== "string") throw new UsageError(`${cmd}: --store DIR is required`);
  if (!mayCreate && !fs.existsSync(`${o.store}/events.log`)) {
    throw new CliError(`${cmd}: no store in ${o.store} (create one with hsmsim init-token)`);
  }
  const q = new URLSearchParams();
  if (typeof o.profile === "string") q.set("profile", o.profile);
  if (typeof o.slots === "string") q.set("slots", String(integer("slots", o.slots)));
  const p = new PKCS11();
  try {
    p.load(`file:${o.store}${q.size ? `?${q}` : ""}`);
  } catch (e) {
    throw new CliError(`${cmd}: cannot open the store in ${o.store}: ${(e as Error).message}`);
  }
  return p;
}

/** Run `f` as one application of the store, C_Initialize…C_Finalize, and unlock the store whatever happens. */
function withModule<T>(cmd: string, p: PKCS11, f: () => T): T {
  try {
    p.C_Initialize();
    try {
      return f();
    } finally {
      p.C_Finalize();
    }
  } catch (e) {
    if (e instanceof CliError) throw e;
    const name = e instanceof Pkcs11Error ? e.message : (e as Error).message.split(":")[0];
    throw new CliError(`${cmd}: ${name}${e instanceof Pkcs11Error ? ` (${e.method})` : ""}`, 1);
  } finally {
    p.close();
  }
}

export function initToken(o: Parsed, out: (l: string) => void): number {
  const cmd = "hsmsim init-token";
  const slotID = integer("slot", o.slot, 0);
  if (slotID === undefined) throw new UsageError(`${cmd}: --slot N is required`);
  if (typeof o.label !== "string") throw new UsageError(`${cmd}: --label LABEL is required`);
  if (typeof o["so-pin"] !== "string") throw new UsageError(`${cmd}: --so-pin PIN is required`);
  if (Buffer.byteLength(o.label) > 32) throw new UsageError(`${cmd}: --label is at most 32 bytes`);
  const soPin = o["so-pin"];
  const userPin = typeof o.pin === "string" ? o.pin : undefined;
  const p = open(cmd, o, true);
  return withModule(cmd, p, () => {
    const slot = p.C_GetSlotList(false).find((s) => slotNumber(s) === slotID);
    if (!slot) {
      const have = p.C_GetSlotList(false).map(slotNumber).join(", ");
      throw new CliError(`${cmd}: no slot ${slotID} in this store (slots: ${have})`);
    }
    p.C_InitToken(slot, soPin, o.label as string);
    if (userPin !== undefined) {
      const s = p.C_OpenSession(slot, CK.CKF_SERIAL_SESSION | CK.CKF_RW_SESSION);
      p.C_Login(s, CK.CKU_SO, soPin);
      p.C_InitPIN(s, userPin);
      p.C_CloseSession(s);
    }
    const serial = p.C_GetTokenInfo(slot).serialNumber.trim();
    const later = slotIdFromSerial(serial);
    out(`The token has been initialized on slot ${slotID} (serial ${serial})${userPin !== undefined ? ", with a user PIN" : ""}.`);
    if (later !== slotID && p.simulator?.profile.slotNumbering === "softhsm") {
      out(`As in SoftHSM, it is reassigned to slot ${later} from the next C_Initialize on.`);
    }
    return 0;
  });
}

const text = (s: string) => s.replace(/[\0 ]+$/, "");

export function showSlots(o: Parsed, out: (l: string) => void): number {
  const cmd = "hsmsim show-slots";
  const p = open(cmd, o, false);
  return withModule(cmd, p, () => {
    const rows = p.C_GetSlotList(false).map((slot) => {
      const info = p.C_GetSlotInfo(slot);
      const token = p.C_GetTokenInfo(slot);
      return { slotID: slotNumber(slot), slot: info, token };
    });
    if (o.json === true) {
      out(JSON.stringify(rows, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2));
      return 0;
    }
    out("Available slots:");
    for (const { slotID, slot, token } of rows) {
      const has = (f: number) => ((token.flags & f) !== 0 ? "yes" : "no");
      out(`Slot ${slotID}`);
      out(`    Slot info:`);
      out(`        Description:      ${text(slot.slotDescription)}`);
      out(`        Manufacturer ID:  ${text(slot.manufacturerID)}`);
      out(`        Token present:    ${(slot.flags & CK.CKF_TOKEN_PRESENT) !== 0 ? "yes" : "no"}`);
      out(`    Token info:`);
      out(`        Model:            ${text(token.model)}`);
      out(`        Serial number:    ${text(token.serialNumber)}`);
      out(`        Initialized:      ${has(CK.CKF_TOKEN_INITIALIZED)}`);
      out(`        User PIN init.:   ${has(CK.CKF_USER_PIN_INITIALIZED)}`);
      out(`        Label:            ${text(token.label)}`);
      out(`        Flags:            0x${token.flags.toString(16)}`);
    }
    return 0;
  });
}
