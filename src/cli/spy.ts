/**
 * Call records as OpenSC pkcs11-spy writes calls (its text trace, as Debian opensc 0.23's pkcs11-spy.so prints them):
 *
 *   5: C_OpenSession
 *   2026-11-26 19:31:25.867
 *   [in] slotID = 0x0
 *   [in] flags = 0x6
 *   [in] pApplication = (nil)
 *   [in] Notify = (nil)
 *   [out] *phSession = 0x1
 *   Returned:  0 CKR_OK
 *
 * The number is the record's sequence (pkcs11-spy counts from 0 per process; a store holds every application's calls
 * in one sequence), the time is local as pkcs11-spy prints it. What the log does not hold is printed as pkcs11-spy
 * prints an argument it has the length of: a null address and the length (`pPin[ulPinLen] 0000000000000000 / 8`),
 * never the bytes: PINs and data to digest are not recorded. Outputs the log holds (handles, digests, session and
 * token information) are printed in full.
 */
import type { CallRecord } from "../events/types.js";
import { CK, rvName } from "../pkcs11/constants.js";

const NULL_ADDR = "0000000000000000";

function names(prefix: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const [k, v] of Object.entries(CK)) if (k.startsWith(prefix) && typeof v === "number" && !m.has(v)) m.set(v, k);
  return m;
}
const CKA = names("CKA_");
const CKM = names("CKM_");
const CKU = names("CKU_");
const CKS = names("CKS_");
const CKO = names("CKO_");

const hex = (n: number) => "0x" + n.toString(16);
const attrName = (t: number) => CKA.get(t) ?? `CKA_0x${t.toString(16)}`;

/** pkcs11-spy's timestamp: local time, milliseconds. */
export function spyTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** pkcs11-spy's hex dump: 16 bytes a line, offset, upper-case hex, printable ASCII. */
export function hexDump(bytes: Uint8Array): string[] {
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.subarray(i, i + 16);
    const h = [...row].map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join(" ");
    const a = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    out.push(`    ${i.toString(16).padStart(8, "0")}  ${h.padEnd(48)} ${a.padEnd(16)}`);
  }
  return out;
}

const lenOf = (v: unknown): number | null => (v && typeof v === "object" && typeof (v as { len?: unknown }).len === "number" ? (v as { len: number }).len : null);

/** `[in] pPin[ulPinLen] 0000000000000000 / 8`, or `NULL` when the argument was a NULL pointer. */
function buffer(dir: "in" | "out", name: string, v: unknown): string {
  const len = lenOf(v);
  return len === null ? `[${dir}] ${name} NULL` : `[${dir}] ${name} ${NULL_ADDR} / ${len}`;
}

function template(dir: "in" | "out", t: unknown): string[] {
  if (!Array.isArray(t)) return [`[${dir}] pTemplate[0]: `];
  const out = [`[${dir}] pTemplate[${t.length}]: `];
  for (const a of t as { type: number; len?: number | null; length?: number }[]) {
    const len = a.len ?? a.length ?? null;
    out.push(`    ${attrName(a.type).padEnd(21)} ${NULL_ADDR} / ${len === null ? 0 : len}`);
  }
  return out;
}

function info(fields: Record<string, unknown>, order: [string, string][]): string[] {
  const out: string[] = [];
  for (const [key, label] of order) {
    const v = fields[key];
    if (v === undefined) continue;
    let s: string;
    if (typeof v === "string") s = `'${v}'`;
    else if (v && typeof v === "object" && "major" in (v as object)) s = ` ${(v as { major: number }).major}.${(v as { minor: number }).minor}`;
    else if (key === "flags") s = ` ${(v as number).toString(16)}`;
    else s = ` ${String(v)}`;
    out.push(`      ${(label + ":").padEnd(24)}${s}`);
  }
  return out;
}

const TOKEN_INFO: [string, string][] = [
  ["label", "label"],
  ["manufacturerID", "manufacturerID"],
  ["model", "model"],
  ["serialNumber", "serialNumber"],
  ["maxSessionCount", "ulMaxSessionCount"],
  ["sessionCount", "ulSessionCount"],
  ["maxRwSessionCount", "ulMaxRwSessionCount"],
  ["rwSessionCount", "ulRwSessionCount"],
  ["maxPinLen", "ulMaxPinLen"],
  ["minPinLen", "ulMinPinLen"],
  ["totalPublicMemory", "ulTotalPublicMemory"],
  ["freePublicMemory", "ulFreePublicMemory"],
  ["totalPrivateMemory", "ulTotalPrivateMemory"],
  ["freePrivateMemory", "ulFreePrivateMemory"],
  ["hardwareVersion", "hardwareVersion"],
  ["firmwareVersion", "firmwareVersion"],
  ["utcTime", "time"],
  ["flags", "flags"],
];
const SLOT_INFO: [string, string][] = [
  ["slotDescription", "slotDescription"],
  ["manufacturerID", "manufacturerID"],
  ["hardwareVersion", "hardwareVersion"],
  ["firmwareVersion", "firmwareVersion"],
  ["flags", "flags"],
];
const MODULE_INFO: [string, string][] = [
  ["cryptokiVersion", "cryptokiVersion"],
  ["manufacturerID", "manufacturerID"],
  ["flags", "flags"],
  ["libraryDescription", "libraryDescription"],
  ["libraryVersion", "libraryVersion"],
];

/** The lines of one call, ending with its `Returned:` line. */
export function spyLines(r: CallRecord): string[] {
  const a = r.args as Record<string, unknown>;
  const out = (r.out ?? undefined) as Record<string, unknown> | undefined;
  const ok = r.rv === CK.CKR_OK;
  const L: string[] = [`${r.seq}: ${r.fn}`, spyTime(r.time)];
  const inUlong = (name: string, key = name) => {
    if (typeof a[key] === "number") L.push(`[in] ${name} = ${hex(a[key] as number)}`);
  };
  if (a.invalid === true) L.push("[in] (arguments not valid: not recorded)");
  else
    switch (r.fn) {
      case "C_Initialize":
        L.push("[in] pInitArgs = (nil)");
        break;
      case "C_Finalize":
        break;
      case "C_GetInfo":
        if (out) L.push("[out] pInfo: ", ...info(out, MODULE_INFO));
        break;
      case "C_GetSlotList":
        L.push(`[in] tokenPresent = ${hex(a.tokenPresent ? 1 : 0)}`, "[out] pSlotList: ");
        if (out) {
          const slots = (out.slots as number[] | undefined) ?? [];
          if (a.pSlotList === null || slots.length === 0) L.push(`Count is ${out.count as number}`);
          else for (const s of slots) L.push(`Slot ${s}`);
          L.push(`[out] *pulCount = ${hex(out.count as number)}`);
        }
        break;
      case "C_GetSlotInfo":
        inUlong("slotID");
        if (out && ok) L.push("[out] pInfo: ", ...info(out, SLOT_INFO));
        break;
      case "C_GetTokenInfo":
        inUlong("slotID");
        if (out && ok) L.push("[out] pInfo: ", ...info(out, TOKEN_INFO));
        break;
      case "C_InitToken":
        inUlong("slotID");
        L.push(buffer("in", "pPin[ulPinLen]", a.pin));
        if (typeof a.label === "string") {
          const label = Buffer.from(a.label.padEnd(32, " ").slice(0, 32), "utf8");
          L.push(`[in] pLabel[32] ${NULL_ADDR} / 32`, ...hexDump(label));
        }
        break;
      case "C_InitPIN":
        inUlong("hSession");
        L.push(buffer("in", "pPin[ulPinLen]", a.pin));
        break;
      case "C_SetPIN":
        inUlong("hSession");
        L.push(buffer("in", "pOldPin[ulOldLen]", a.oldPin), buffer("in", "pNewPin[ulNewLen]", a.newPin));
        break;
      case "C_OpenSession":
        inUlong("slotID");
        inUlong("flags");
        L.push("[in] pApplication = (nil)", "[in] Notify = (nil)");
        if (out && ok) L.push(`[out] *phSession = ${hex(out.hSession as number)}`);
        break;
      case "C_CloseAllSessions":
        inUlong("slotID");
        break;
      case "C_GetSessionInfo":
        inUlong("hSession");
        if (out && ok) {
          L.push(
            "[out] pInfo: ",
            `      slotID:                  ${out.slotID as number}`,
            `      state:                  '${CKS.get(out.state as number) ?? hex(out.state as number)}'`,
            `      flags:                   ${(out.flags as number).toString(16)}`,
            ...((out.flags as number) & CK.CKF_SERIAL_SESSION ? ["        CKF_SERIAL_SESSION               "] : []),
            ...((out.flags as number) & CK.CKF_RW_SESSION ? ["        CKF_RW_SESSION                   "] : []),
            `      ulDeviceError:           ${out.deviceError as number}`,
          );
        }
        break;
      case "C_Login":
        inUlong("hSession");
        if (typeof a.userType === "number") L.push(`[in] userType = ${CKU.get(a.userType) ?? hex(a.userType)}`);
        L.push(buffer("in", "pPin[ulPinLen]", a.pin));
        break;
      case "C_CreateObject":
        inUlong("hSession");
        L.push(...template("in", a.template));
        if (out && ok) L.push(`[out] *phObject = ${hex(out.hObject as number)}`);
        break;
      case "C_CopyObject":
        inUlong("hSession");
        inUlong("hObject");
        L.push(...template("in", a.template));
        if (out && ok) L.push(`[out] *phNewObject = ${hex(out.hObject as number)}`);
        break;
      case "C_DestroyObject":
        inUlong("hSession");
        inUlong("hObject");
        break;
      case "C_GetObjectSize":
        inUlong("hSession");
        inUlong("hObject");
        if (out && ok) L.push(`[out] *pulSize = ${hex(out.size as number)}`);
        break;
      case "C_GetAttributeValue":
        inUlong("hSession");
        inUlong("hObject");
        L.push(...template("in", a.template));
        if (out) L.push(...template("out", out.attrs));
        break;
      case "C_SetAttributeValue":
        inUlong("hSession");
        inUlong("hObject");
        L.push(...template("in", a.template));
        break;
      case "C_FindObjectsInit":
        inUlong("hSession");
        L.push(...template("in", a.template));
        break;
      case "C_FindObjects":
        inUlong("hSession");
        inUlong("ulMaxObjectCount", "maxCount");
        if (out && ok) {
          const hs = (out.handles as number[] | undefined) ?? [];
          L.push(`[out] ulObjectCount = ${hex(hs.length)}`, ...hs.map((h) => `Object ${hex(h)} matches`));
        }
        break;
      case "C_DigestInit": {
        inUlong("hSession");
        const m = a.mechanism as { mechanism: number; parameter: unknown } | null;
        if (m) {
          L.push(`[in] pMechanism->type = ${(CKM.get(m.mechanism) ?? hex(m.mechanism)).padEnd(30)}`);
          const pl = lenOf(m.parameter);
          L.push(pl === null ? "[in] pMechanism->pParameter[ulParameterLen] NULL [size : 0x0 (0)]" : `[in] pMechanism->pParameter[ulParameterLen] ${NULL_ADDR} / ${pl}`);
        }
        break;
      }
      case "C_DigestUpdate":
        inUlong("hSession");
        L.push(buffer("in", "pPart[ulPartLen]", a.data));
        break;
      case "C_Digest":
      case "C_DigestFinal":
        inUlong("hSession");
        if (r.fn === "C_Digest") L.push(buffer("in", "pData[ulDataLen]", a.data));
        if (out) {
          const d = out.digest as string | null;
          if (d) L.push(`[out] pDigest[*pulDigestLen] ${NULL_ADDR} / ${d.length / 2}`, ...hexDump(Buffer.from(d, "hex")));
          else L.push(`[out] pDigest[*pulDigestLen] NULL [size : ${hex(out.length as number)} (${out.length as number})]`);
        }
        break;
      default:
        // C_CloseSession, C_Logout, C_FindObjectsFinal and the rest: their handles and numbers as they are.
        for (const [k, v] of Object.entries(a)) if (typeof v === "number") L.push(`[in] ${k} = ${hex(v)}`);
    }
  L.push(`Returned:  ${r.rv} ${rvName(r.rv)}`);
  return L;
}

/** The trace header pkcs11-spy writes when it loads its module. */
export function spyHeader(loaded: string): string[] {
  return ["", "", "*************** OpenSC PKCS#11 spy *****************", `Loaded: "${loaded}"`, ""];
}

export { CKO, CKA, attrName };
