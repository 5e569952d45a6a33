/**
 * A reader for the text traces OpenSC's pkcs11-spy writes (PKCS11SPY_OUTPUT; the format of opensc 0.23's
 * pkcs11-spy.c and pkcs11-display.c, as Debian ships it). A trace is a sequence of process blocks, each opened by
 *
 *   *************** OpenSC PKCS#11 spy *****************
 *   Loaded: "/usr/lib/softhsm/libsofthsm2.so"
 *
 * and holding calls numbered from 0:
 *
 *   7: C_Login
 *   2026-11-26 20:15:38.116
 *   [in] hSession = 0x1
 *   [in] userType = CKU_SO
 *   [in] pPin[ulPinLen] 00007ffc87ebca48 / 8
 *       00000000  38 37 36 35 34 33 32 31                          87654321
 *   Returned:  0 CKR_OK
 *
 * This module only splits the text: each call's `[in]` / `[out]` fields with their continuation lines, and reads the
 * value shapes pkcs11-spy prints (numbers, buffers with their hex dumps in both of its dump formats, attribute
 * templates, info blocks, lists). What a field means for a function is spy-run.ts's business.
 *
 * PINs are in a trace as pkcs11-spy dumps them (it dumps every input buffer). This reader keeps them in memory only.
 */
import { CK } from "../pkcs11/constants.js";

export interface SpyField {
  dir: "in" | "out";
  /** As printed: `hSession`, `*phSession`, `pPin[ulPinLen]`, `pTemplate[2]:`, `pMechanism->type`, ... */
  name: string;
  /** What follows the name on its line (without a leading `= `). */
  value: string;
  /** Continuation lines (dumps, list entries, info lines, template entries), as printed. */
  lines: string[];
}

export interface SpyCall {
  /** The process block (0-based) in the trace: one application's C_Initialize..C_Finalize life. */
  process: number;
  /** pkcs11-spy's number for the call, counted per process. */
  index: number;
  /** The line of the call's header in the trace (1-based). */
  line: number;
  fn: string;
  /** Milliseconds since the epoch, read as local time as pkcs11-spy prints it. */
  time?: number;
  fields: SpyField[];
  /** The return code; undefined when the trace ends before the call returned. */
  rv?: number;
}

export interface SpyTrace {
  /** The module each process block loaded. */
  modules: string[];
  calls: SpyCall[];
}

export class SpyParseError extends Error {
  override readonly name = "SpyParseError";
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

const BANNER = /^\*+ OpenSC PKCS#11 spy \*+$/;
const HEADER = /^(\d+): (C_\w+)\s*$/;
const TIME = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{3})$/;
const RETURNED = /^Returned:\s+(-?\d+)(?:\s+(\S+))?/;
const FIELD = /^\[(in|out)\] (\S+)(.*)$/;

export function parseSpyTrace(text: string): SpyTrace {
  const lines = text.split(/\r?\n/);
  const modules: string[] = [];
  const calls: SpyCall[] = [];
  let process = -1;
  let call: SpyCall | undefined;
  let field: SpyField | undefined;
  const end = () => {
    if (call) calls.push(call);
    call = undefined;
    field = undefined;
  };
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (BANNER.test(raw.trim())) {
      end();
      process++;
      modules.push("");
      continue;
    }
    const loaded = /^Loaded: "(.*)"$/.exec(raw);
    if (loaded && !call) {
      if (process < 0) {
        process = 0;
        modules.push("");
      }
      modules[process] = loaded[1]!;
      continue;
    }
    const head = HEADER.exec(raw);
    if (head) {
      end();
      if (process < 0) {
        // A trace cut from the middle of a file: its first block has no banner.
        process = 0;
        modules.push("");
      }
      call = { process, index: Number(head[1]), line: i + 1, fn: head[2]!, fields: [] };
      continue;
    }
    if (!call) continue;
    const t = TIME.exec(raw);
    if (t && call.time === undefined && call.fields.length === 0) {
      const [, y, mo, d, h, mi, s, ms] = t.map(Number) as number[];
      call.time = new Date(y!, mo! - 1, d!, h!, mi!, s!, ms!).getTime();
      continue;
    }
    const ret = RETURNED.exec(raw);
    if (ret) {
      call.rv = Number(ret[1]);
      // `%ld` of a CK_RV: a vendor code above 2^63 prints negative.
      if (call.rv < 0) call.rv += 2 ** 64;
      end();
      continue;
    }
    if (raw === "[compat]") continue;
    // pkcs11-spy prints C_GetMechanismInfo's `[in] type = X` without a newline before `[out] pInfo:`.
    const parts = raw.startsWith("[") ? raw.split(/(?=\[(?:in|out)\] )/) : [raw];
    for (const part of parts) {
      const f = FIELD.exec(part);
      if (f) {
        let value = f[3]!.replace(/\s+$/, "");
        if (value.startsWith(" = ")) value = value.slice(3);
        else if (value === " =") value = "";
        else value = value.replace(/^ /, "");
        field = { dir: f[1] as "in" | "out", name: f[2]!, value, lines: [] };
        call.fields.push(field);
      } else if (field && part.trim() !== "") field.lines.push(part);
    }
  }
  end();
  return { modules, calls };
}

// ---------------------------------------------------------------------------------------------------------------
// Value shapes.

/** `0x1a`, `26`, `-1`: a CK_ULONG as pkcs11-spy prints it (`%ld` prints CK_UNAVAILABLE_INFORMATION as -1). */
export function ulongOf(s: string): number | undefined {
  const v = s.trim();
  if (/^0x[0-9a-f]+$/i.test(v)) return Number(v);
  if (/^\d+$/.test(v)) return Number(v);
  if (v === "-1") return CK.CK_UNAVAILABLE_INFORMATION;
  return undefined;
}

/** `00007ffd50226a51 / 8`: a buffer's address and length. */
const SPEC = /^([0-9a-f]{8}|[0-9a-f]{16}) \/ (-?\d+)$/;
const GENERIC_DUMP = /^ {4}[0-9A-F]{8} {2}/;
const PRINT_DUMP = /^ {4}[0-9A-F]{2,8}(?: [0-9A-F]{2,8})*\s*$/;

export interface SpyBuffer {
  /** The pointer was NULL. */
  isNull: boolean;
  /** ulValueLen / the length printed (CK_UNAVAILABLE_INFORMATION for -1). */
  len: number;
  /** The bytes, when pkcs11-spy dumped them. */
  bytes?: Uint8Array;
}

/**
 * A buffer: its spec (`addr / len`, `NULL [size : 0x20 (32)]`, `EMPTY`) and its dump lines (`    00000000  38 37 ...`
 * or print_print's `    6D796461 7461` with an ASCII line under each). Returns the lines it used.
 */
export function bufferOf(spec: string, lines: readonly string[], from = 0): { buf: SpyBuffer; used: number } | undefined {
  const s = spec.trim();
  const nul = /^NULL(?: \[size : 0x([0-9a-f]+) \((\d+)\)\])?$/i.exec(s);
  if (nul) return { buf: { isNull: true, len: nul[1] ? parseInt(nul[1], 16) : 0 }, used: 0 };
  if (s === "EMPTY") return { buf: { isNull: false, len: 0, bytes: new Uint8Array(0) }, used: 0 };
  const m = SPEC.exec(s);
  if (!m) return undefined;
  const len = Number(m[2]);
  const buf: SpyBuffer = { isNull: /^0+$/.test(m[1]!), len: len < 0 ? CK.CK_UNAVAILABLE_INFORMATION : len };
  const bytes: number[] = [];
  let i = from;
  let dumped = false;
  while (i < lines.length) {
    const l = lines[i]!;
    if (GENERIC_DUMP.test(l)) {
      for (const h of l.slice(14, 14 + 48).trim().split(/\s+/)) if (h) bytes.push(parseInt(h, 16));
      dumped = true;
      i++;
    } else if (PRINT_DUMP.test(l) && !/^ {4}CKA_/.test(l)) {
      for (const g of l.trim().split(/\s+/)) for (let k = 0; k < g.length; k += 2) bytes.push(parseInt(g.slice(k, k + 2), 16));
      dumped = true;
      i++;
      // The ASCII line under it (and, after a full 32-byte row, print_print's empty line).
      if (i < lines.length && /^ {5}/.test(lines[i]!) && !GENERIC_DUMP.test(lines[i]!)) i++;
    } else if (dumped && /^\s*$/.test(l)) i++;
    else if (/^ {4}DN: /.test(l)) i++;
    else break;
  }
  if (dumped) buf.bytes = new Uint8Array(bytes.slice(0, Math.max(0, len)));
  return { buf, used: i - from };
}

export interface SpyAttribute {
  type: number;
  /** The name as printed (trimmed), e.g. `CKA_LABEL`. */
  name: string;
  buffer?: SpyBuffer;
  /** A value pkcs11-spy printed by meaning: a boolean, an enum name (CKO_DATA), or print_enum's "Value X not found". */
  shown?: string;
}

const CKA_BY_NAME = new Map<string, number>();
for (const [k, v] of Object.entries(CK)) if (k.startsWith("CKA_") && typeof v === "number") CKA_BY_NAME.set(k, v);

/** The template a `[in] pTemplate[N]:` field lists (print_attribute_list and print_attribute_list_req). */
export function templateOf(f: SpyField): SpyAttribute[] | undefined {
  const attrs: SpyAttribute[] = [];
  const L = f.lines;
  let i = 0;
  while (i < L.length) {
    const l = L[i]!;
    let m = /^ {4}CKA_\? \(0x([0-9a-f]+)\)\s+(.*)$/.exec(l);
    let type: number | undefined;
    let name: string;
    let rest: string;
    if (m) {
      type = parseInt(m[1]!, 16);
      name = `CKA_0x${m[1]}`;
      rest = m[2]!;
    } else {
      m = /^ {4}(CKA_[A-Z0-9_]+)(?:\([^)]*\))?\s+(.*)$/.exec(l);
      if (!m) return undefined;
      name = m[1]!;
      type = CKA_BY_NAME.get(name);
      rest = m[2]!;
      if (type === undefined) return undefined;
    }
    i++;
    const a: SpyAttribute = { type, name };
    const b = bufferOf(rest, L, i);
    if (b) {
      a.buffer = b.buf;
      i += b.used;
    } else a.shown = rest.trim();
    attrs.push(a);
  }
  const n = /\[(\d+)\]:?$/.exec(f.name);
  if (n && Number(n[1]) !== attrs.length) return undefined;
  return attrs;
}

/** `      label:                  'test    '` lines of an info block, by key; quoted values keep their padding. */
export function infoOf(f: SpyField): Map<string, string> {
  const m = new Map<string, string>();
  let last: string | undefined;
  for (const l of f.lines) {
    const kv = /^ {6}(\w+):\s+(.*)$/.exec(l);
    if (kv) {
      last = kv[1]!;
      m.set(last, unquote(kv[2]!));
    } else if (last && /^ {20,}'/.test(l)) m.set(last, m.get(last)! + unquote(l.trim()));
  }
  return m;
}

const unquote = (s: string) => {
  const q = /^'(.*)'\s*$/.exec(s);
  return q ? q[1]! : s.trim();
};
