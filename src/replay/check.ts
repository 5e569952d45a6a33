/**
 * Re-execution of a log (`hsmsim replay --check`): every recorded call is decided again, by today's deciders, on a
 * fresh simulator created with the log's options and simulator key, and its return code, outputs and facts are
 * compared with the record. `Simulator.replay` folds recorded facts; this decides again, so it finds the calls a
 * changed decider (or a different profile, or an edited log) would answer differently.
 *
 * A record holds the call's arguments redacted (call-schema.ts): PINs and data as lengths, template values as
 * lengths. What each call is re-executed with, and how far the comparison then goes (`Mode`):
 *
 * - exact: every argument the outcome depends on is in the record, or in its facts. Numbers, flags, handles, labels
 *   and pointer NULL-ness are recorded; the data of an update (C_DigestUpdate, C_EncryptUpdate, C_SignUpdate, ...) is
 *   opened from the record's sealed DigestUpdated / CryptoUpdated fact (with the simulator key); a mechanism parameter
 *   (IV, counter block, GCM IV and AAD, MAC length) from the CryptoStarted fact of a successful C_*Init (in clear there,
 *   GCM's AAD sealed); buffers
 *   whose content the decider ignores (C_GetAttributeValue's value buffers, C_SeedRandom's seed, the parameters of a
 *   failed init) are zero bytes of the recorded length. A C_CreateObject, C_CopyObject, C_SetAttributeValue or
 *   C_GenerateKey that succeeded gets its template values from the attributes its fact stored (sealed ones opened: an
 *   exact inverse, since a successful call stores every entry it was given).
 * - pin: the decider compared a PIN or made a verifier (C_Login, C_InitToken, C_InitPIN, C_SetPIN; the same calls
 *   refused before that are "exact"). No PIN is in the log, and a PIN verifier
 *   (a keyed MAC) does not yield it, so the PIN argument is zero bytes of the recorded length (length checks are real)
 *   and the shell's PIN comparison is an oracle that answers from the record: "no match" exactly when the record holds
 *   a PinRejected fact, "match" otherwise. A new PIN's verifier is the one the record's fact holds. Everything else
 *   the decider does (the checks before the comparison, the chart's decision, the facts) is decided again. Reported
 *   separately, so that nobody reads it as a PIN check.
 * - partial: a single-part C_Digest, C_Encrypt or C_Sign: its data is not in the log (no fact seals it), so it is
 *   re-executed with zero bytes of the recorded length: rv, facts and the output's length are compared, the output's
 *   bytes (digest, hash of the ciphertext or signature) are not.
 * - record: the outcome depends on argument values the log does not hold: a template's values in a failed
 *   C_CreateObject / C_CopyObject / C_SetAttributeValue / C_GenerateKey, a failed call's mechanism parameter (other
 *   than a digest's), any non-empty C_FindObjectsInit template, the
 *   data of C_Decrypt and C_Verify, C_VerifyFinal's signature, C_UnwrapKey's wrapped key, C_SetOperationState's state.
 *   Not decided again: its recorded facts are applied so that the calls after it meet the recorded state; each is
 *   listed (`unchecked`).
 *
 * Randomness never comes from a random source during a check: the replaying shell hands the decider the values the
 * record's facts hold (a new token's serial and a new PIN verifier, in order; for a value to seal, the nonce of the
 * recorded sealed value that holds the same plaintext, so the sealed fact compares byte for byte; a generated key's
 * bytes, from its sealed CKA_VALUE; a saved operation state's nonce, from the record's output). C_GenerateRandom's bytes are recorded by their length only, so the check hands out
 * zero bytes and compares the length. The clock is the record's time.
 */
import { Simulator, type Application, type SimulatorOptions } from "../actors/simulator.js";
import { CALL_SCHEMA, isKnownFunction } from "../events/call-schema.js";
import type { Call, FnName, Template } from "../events/calls.js";
import { canonicalJson } from "../events/chain.js";
import type { CallRecord, Fact, PinVerifier, StoredAttribute } from "../events/types.js";
import { deriveKeys } from "../crypto/keys.js";
import { unseal } from "../crypto/seal.js";
import { bytesToHex, equalBytes, hexToBytes } from "../crypto/encoding.js";
import type { Shell } from "../functions/context.js";
import { CK } from "../pkcs11/constants.js";
import { ulongBytes } from "../pkcs11/attributes.js";
import type { RsaComponents } from "../crypto/rsa.js";

export type Mode = "exact" | "pin" | "partial" | "record";

export interface Outcome {
  rv: number;
  out?: unknown;
  facts: unknown[];
}

export interface Divergence {
  seq: number;
  fn: string;
  app: number;
  mode: Mode;
  /** What differs: the return code, the outputs, the facts, or the re-built arguments (a reconstruction fault). */
  differs: ("rv" | "out" | "facts" | "args")[];
  recorded: Outcome;
  reexecuted: Outcome;
}

export interface CheckReport {
  records: number;
  /** Calls per mode (see the module comment). */
  modes: Record<Mode, number>;
  /** The functions of the `pin`, `partial` and `record` calls, with counts. */
  byMode: Record<Exclude<Mode, "exact">, Record<string, number>>;
  divergences: Divergence[];
  /** The sequences of the calls applied from the record, not decided again (the first 10,000). */
  unchecked: number[];
  /** The check could not go on (recorded facts did not apply to the re-executed state). */
  stopped?: { seq: number; reason: string };
}

export interface CheckOptions {
  /** The options and simulator key the log was written with (simulator.json). */
  simulator: Omit<SimulatorOptions, "store" | "clock" | "randomBytes" | "shell">;
  /** Called after each record (progress). */
  progress?: (seq: number) => void;
  /** Stop after this many divergences (default: all). */
  maxDivergences?: number;
}

const zeros = (n: number) => new Uint8Array(n);
const lenOf = (v: unknown): number | null =>
  v !== null && typeof v === "object" && typeof (v as { len?: unknown }).len === "number" ? (v as { len: number }).len : null;

/** A JSON value as the log holds it, so re-executed and recorded values compare as text. */
const json = (v: unknown): string => {
  if (v === undefined) return "undefined";
  try {
    return canonicalJson(v);
  } catch {
    return canonicalJson(JSON.parse(JSON.stringify(v)));
  }
};

interface Rebuilt {
  call?: Call;
  mode: Mode;
  /** Why the call is applied from the record (mode "record"). */
  why?: string;
}

/** Template values from the attributes a successful call stored (sealed ones opened with the simulator key). */
function templateFrom(
  tpl: { type: number; len: number | null }[],
  stored: StoredAttribute[] | undefined,
  openSealed: (sealed: string) => Uint8Array,
): Template[] | undefined {
  const by = new Map((stored ?? []).map((a) => [a.type, a]));
  const out: Template[] = [];
  for (const t of tpl) {
    if (t.len === null) {
      out.push({ type: t.type, value: null });
      continue;
    }
    const a = by.get(t.type);
    const value = a === undefined ? undefined : "sealed" in a ? openSealed(a.sealed) : hexToBytes(a.value);
    if (value === undefined || value.length !== t.len) return undefined;
    out.push({ type: t.type, value });
  }
  return out;
}

/** The call a record describes, with arguments rebuilt as the module comment says, or why it cannot be. */
function rebuild(r: CallRecord, openSealed: (sealed: string) => Uint8Array): Rebuilt {
  const a = r.args as Record<string, unknown>;
  if (!isKnownFunction(r.fn)) return { call: { fn: r.fn } as unknown as Call, mode: "exact" };
  const fn: FnName = r.fn;
  // A call whose arguments had the wrong shape was answered CKR_ARGUMENTS_BAD without being decided: any malformed
  // arguments reproduce that.
  if (a.invalid === true) return { call: { fn, args: "invalid" } as unknown as Call, mode: "exact" };
  const ok = r.rv === CK.CKR_OK;
  const fact = <T extends Fact["type"]>(type: T) => r.facts.find((f) => f.type === type) as Extract<Fact, { type: T }> | undefined;
  let mode: Mode = "exact";
  const args: Record<string, unknown> = {};
  for (const [name, kind] of Object.entries(CALL_SCHEMA[fn])) {
    const v = a[name];
    if (v === undefined) continue;
    switch (kind) {
      case "pin":
        mode = "pin";
        args[name] = v === null ? null : zeros(lenOf(v) ?? 0);
        break;
      case "bytes": {
        if (v === null) {
          args[name] = null;
          break;
        }
        const n = lenOf(v) ?? 0;
        // An update's data is in its fact, sealed: opened, it is the argument itself.
        const sealed = fn.endsWith("Update") ? (fact("DigestUpdated") ?? fact("CryptoUpdated"))?.sealed : undefined;
        if (sealed !== undefined) {
          args[name] = openSealed(sealed);
          break;
        }
        if (DECIDED_BY_INPUT.has(fn)) return { mode: "record", why: "its input (data, signature, wrapped key or saved state) is not in the log and decides the outcome" };
        if (ok && PARTIAL.has(fn)) mode = "partial";
        args[name] = zeros(n);
        break;
      }
      case "label":
        // A label given as bytes is recorded as their latin1 text; one given as a JS string, as itself. A character
        // above U+00FF can only have come from a string; otherwise the bytes are taken (the pkcs11js face's Buffers).
        args[name] = v === null ? null : /[^\u0000-\u00ff]/.test(String(v)) ? String(v) : new Uint8Array(Buffer.from(String(v), "latin1"));
        break;
      case "mechanism": {
        const p = v === null ? null : (v as { parameter?: unknown }).parameter;
        // A failed init's parameter is in no fact, and its value (a MAC length, a GCM tag size) may decide the rv.
        const hasValue = p !== null && p !== undefined && (lenOf(p) ?? 1) > 0;
        if (hasValue && !ok && fn !== "C_DigestInit" && !r.facts.some((f) => f.type === "CryptoStarted")) {
          return { mode: "record", why: "the mechanism parameter's value is not in the log (the call failed, so no fact holds it)" };
        }
        args[name] = v === null ? null : { mechanism: (v as { mechanism: number }).mechanism, parameter: parameterOf(p, r, openSealed) };
        break;
      }
      case "template": {
        if (v === null) {
          args[name] = null;
          break;
        }
        const tpl = v as { type: number; len: number | null }[];
        if (fn === "C_GetAttributeValue") {
          // Only the buffers' presence and size matter: the values come from the object.
          args[name] = tpl.map((t) => ({ type: t.type, value: t.len === null ? null : zeros(t.len) }));
          break;
        }
        if (tpl.length === 0) {
          args[name] = [];
          break;
        }
        let values: Template[] | undefined;
        if (ok && (fn === "C_CreateObject" || fn === "C_CopyObject" || fn === "C_GenerateKey" || fn === "C_UnwrapKey")) values = templateFrom(tpl, fact("ObjectCreated")?.object.attrs, openSealed);
        else if (ok && fn === "C_SetAttributeValue") values = templateFrom(tpl, fact("AttributesChanged")?.attrs, openSealed);
        if (!values) {
          return {
            mode: "record",
            why: fn === "C_FindObjectsInit" ? "the search template's values are not in the log" : "the template's values are not in the log (the call failed, so no fact holds them)",
          };
        }
        args[name] = values;
        break;
      }
      default:
        // Numbers, booleans, NULL output pointers and opaque values (C_Initialize's pInitArgs) are recorded as given.
        args[name] = v;
    }
  }
  return { call: { fn, args } as Call, mode };
}

/** Single-part calls whose input is not in the log but decides only the output's bytes (compared by length). */
const PARTIAL = new Set<string>(["C_Digest", "C_Encrypt", "C_Sign"]);
/** Calls whose input is not in the log and decides the return code too: applied from the record. */
const DECIDED_BY_INPUT = new Set<string>(["C_Decrypt", "C_Verify", "C_VerifyFinal", "C_UnwrapKey", "C_SetOperationState"]);

const ulongLE = (n: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
};

/**
 * A mechanism parameter: a successful C_*Init keeps its plain form (IV, counter block, GCM IV and AAD, MAC length) in
 * its CryptoStarted fact, so it is rebuilt from there; otherwise zero bytes of the recorded lengths.
 */
function parameterOf(p: unknown, r: CallRecord, openSealed: (sealed: string) => Uint8Array): unknown {
  if (p === null || p === undefined) return null;
  const started = r.facts.find((f) => f.type === "CryptoStarted") as { params?: unknown; aad?: string; sealed?: string } | undefined;
  type Plain = { kind: string; iv?: string | null; counterBits?: number; cb?: string; aad?: string; macLength?: number };
  let plain: Plain | undefined;
  if (started?.params && typeof started.params === "object") {
    // The parameters in clear, GCM's additional authenticated data sealed beside them.
    plain = started.params as Plain;
    if (plain.kind === "gcm" && started.aad) plain = { ...plain, aad: bytesToHex(openSealed(started.aad)) };
  } else if (started?.sealed) {
    // Logs written before the parameters were kept in clear: key and parameters sealed together.
    try {
      plain = (JSON.parse(new TextDecoder().decode(openSealed(started.sealed))) as { params?: Plain }).params;
    } catch {
      plain = undefined;
    }
  }
  const gcm = p as { type?: string; iv?: unknown; aad?: unknown; ivBits: number; tagBits: number; size: number };
  if (gcm.type === "gcm") {
    const aad = lenOf(gcm.aad);
    return {
      type: "gcm",
      iv: plain?.kind === "gcm" && plain.iv ? hexToBytes(plain.iv) : zeros(lenOf(gcm.iv) ?? 0),
      aad: aad === null ? null : plain?.kind === "gcm" ? hexToBytes(plain.aad ?? "") : zeros(aad),
      ivBits: gcm.ivBits,
      tagBits: gcm.tagBits,
      size: gcm.size,
    };
  }
  const n = lenOf(p) ?? 0;
  if (plain?.kind === "iv" && plain.iv) return hexToBytes(plain.iv);
  if (plain?.kind === "ctr" && plain.cb !== undefined) {
    const b = new Uint8Array(24);
    b.set(ulongLE(plain.counterBits ?? 0), 0);
    b.set(hexToBytes(plain.cb), 8);
    return b;
  }
  if (plain?.kind === "mac-length") return ulongLE(plain.macLength ?? 0);
  return zeros(n);
}

/** What the record's facts say the decider drew, in the order it drew them. */
interface Draws {
  serials: string[];
  verifiers: PinVerifier[];
  sealed: string[];
  pinRejected: boolean;
}

function drawsOf(r: CallRecord): Draws {
  const d: Draws = { serials: [], verifiers: [], sealed: [], pinRejected: false };
  for (const f of r.facts) {
    if (f.type === "TokenInitialized" && !f.reinit) {
      d.serials.push(f.serial);
      d.verifiers.push(f.soPin);
    } else if (f.type === "UserPinSet" || f.type === "SoPinSet") d.verifiers.push(f.pin);
    else if (f.type === "PinRejected") d.pinRejected = true;
    collectSealed(f, d.sealed);
  }
  return d;
}

/**
 * The key pair a recorded C_GenerateKeyPair drew: the modulus and exponent from its public key's ObjectCreated, the
 * private components (opened) from its private key's. Undefined when the record made no public key.
 */
function recordedRsa(record: CallRecord | undefined, opened: (sealed: string) => Uint8Array): RsaComponents | undefined {
  if (record?.fn !== "C_GenerateKeyPair") return undefined;
  const attrsOf = (cls: number) => {
    const f = record.facts.find((x) => x.type === "ObjectCreated" && x.object.attrs.some((a) => a.type === CK.CKA_CLASS && "value" in a && a.value === bytesToHex(ulongBytes(cls))));
    if (!f || f.type !== "ObjectCreated") return undefined;
    const m = new Map<number, Uint8Array>();
    for (const a of f.object.attrs) m.set(a.type, "value" in a ? hexToBytes(a.value) : opened(a.sealed));
    return m;
  };
  const pub = attrsOf(CK.CKO_PUBLIC_KEY);
  if (!pub) return undefined;
  const priv = attrsOf(CK.CKO_PRIVATE_KEY) ?? new Map<number, Uint8Array>();
  const get = (m: Map<number, Uint8Array>, t: number) => m.get(t) ?? new Uint8Array(0);
  return {
    n: get(pub, CK.CKA_MODULUS),
    e: get(pub, CK.CKA_PUBLIC_EXPONENT),
    d: get(priv, CK.CKA_PRIVATE_EXPONENT),
    p: get(priv, CK.CKA_PRIME_1),
    q: get(priv, CK.CKA_PRIME_2),
    dp: get(priv, CK.CKA_EXPONENT_1),
    dq: get(priv, CK.CKA_EXPONENT_2),
    qi: get(priv, CK.CKA_COEFFICIENT),
  };
}

/** Every sealed value a fact holds (`sealed` fields, at any depth: digest data now, key material later), in order. */
function collectSealed(v: unknown, out: string[]): void {
  if (v === null || typeof v !== "object") return;
  for (const [k, x] of Object.entries(v)) {
    // `sealed` values, GCM's additional authenticated data (`aad`, sealed beside a CryptoStarted's parameters), and
    // an RSA operation's key (`key`, sealed by its init: functions/rsa.ts).
    if ((k === "sealed" || k === "aad" || k === "key") && typeof x === "string" && x.length >= 48) out.push(x);
    else collectSealed(x, out);
  }
}

export function checkRecords(records: Iterable<CallRecord>, opts: CheckOptions): CheckReport {
  let current: CallRecord | undefined;
  let draws: Draws = drawsOf({ facts: [] } as unknown as CallRecord);
  let pinAsked = false;
  // The random source: empty, except for the nonce a replayed seal is about to draw.
  let nonce: Uint8Array | undefined;
  const feed = (n: number): Uint8Array => {
    if (nonce && nonce.length === n) {
      const x = nonce;
      nonce = undefined;
      return x;
    }
    return zeros(n);
  };
  const shell = (base: Shell): Shell => ({
    ...base,
    pinMatches: () => {
      pinAsked = true;
      return !draws.pinRejected;
    },
    newPinVerifier: (pin) => {
      pinAsked = true;
      return draws.verifiers.shift() ?? base.newPinVerifier(pin);
    },
    newSerial: () => draws.serials.shift() ?? base.newSerial(),
    // A generated key's bytes are in its fact, sealed; a saved operation state's nonce is in the record's output;
    // C_GenerateRandom's bytes are recorded by their length only (zeros).
    randomBytes: (n) => {
      const recordedNonce = current?.fn === "C_GetOperationState" ? (current.out as { nonce?: unknown } | undefined)?.nonce : undefined;
      if (typeof recordedNonce === "string" && recordedNonce.length === 2 * n) return hexToBytes(recordedNonce);
      return draws.sealed.map(opened).find((b) => b.length === n && n > 0) ?? base.randomBytes(n);
    },
    // A generated RSA key pair is in the record's ObjectCreated facts (the private components sealed).
    generateRsa: (bits, exponent) => recordedRsa(current, opened) ?? base.generateRsa(bits, exponent),
    seal: (data) => {
      // The recorded sealed value that holds these bytes: sealing them again with its nonce gives it back exactly.
      // (Found by content, not position: a fact may also carry sealed values copied from an earlier one.)
      const i = draws.sealed.findIndex((s) => equalBytes(opened(s), data));
      nonce = i < 0 ? undefined : hexToBytes(draws.sealed.splice(i, 1)[0]!.slice(0, 48));
      return base.seal(data);
    },
  });
  if (!opts.simulator.simulatorKey) throw new RangeError(`"simulator.simulatorKey" is needed to re-execute a log`);
  const keys = deriveKeys(opts.simulator.simulatorKey);
  // Opened sealed values of the current record (rebuilding the arguments and re-sealing both open them).
  const openedNow = new Map<string, Uint8Array>();
  const opened = (sealed: string): Uint8Array => {
    let v = openedNow.get(sealed);
    if (v === undefined) {
      try {
        v = unseal(keys.seal, sealed);
      } catch {
        v = new Uint8Array(0);
      }
      openedNow.set(sealed, v);
    }
    return v;
  };
  const sim = new Simulator({ ...opts.simulator, clock: () => current?.time ?? 0, randomBytes: feed, shell });
  let captured: CallRecord | undefined;
  sim.subscribe((rec) => (captured = rec));

  const apps = new Map<number, Application>();
  const report: CheckReport = {
    records: 0,
    modes: { exact: 0, pin: 0, partial: 0, record: 0 },
    byMode: { pin: {}, partial: {}, record: {} },
    divergences: [],
    unchecked: [],
  };
  const max = opts.maxDivergences ?? Infinity;
  const count = (mode: Mode, fn: string) => {
    report.modes[mode]++;
    if (mode !== "exact") report.byMode[mode][fn] = (report.byMode[mode][fn] ?? 0) + 1;
  };

  for (const r of records) {
    report.records++;
    current = r;
    openedNow.clear();
    const rebuilt = rebuild(r, opened);
    if (!rebuilt.call) {
      count("record", r.fn);
      if (report.unchecked.length < 10_000) report.unchecked.push(r.seq);
      try {
        sim.ingest(r);
      } catch (e) {
        report.stopped = { seq: r.seq, reason: `its recorded facts do not apply to the re-executed state: ${(e as Error).message}` };
        break;
      }
      opts.progress?.(r.seq);
      continue;
    }
    draws = drawsOf(r);
    pinAsked = false;
    captured = undefined;
    const caller = (r.app !== 0 && apps.get(r.app)) || sim.application();
    sim.dispatch(caller, rebuilt.call);
    // "pin" only when the decider compared a PIN or made a verifier: a PIN call refused before that (a bad session, a
    // PIN of the wrong length) was decided from recorded facts alone.
    const mode: Mode = pinAsked ? "pin" : rebuilt.mode === "pin" ? "exact" : rebuilt.mode;
    count(mode, r.fn);
    if (r.fn === "C_Initialize") {
      const recordedApp = (r.out as { app?: number } | undefined)?.app;
      if (typeof recordedApp === "number") apps.set(recordedApp, caller);
    }
    const again = captured as CallRecord | undefined;
    if (!again) {
      report.stopped = { seq: r.seq, reason: "the re-executed call was not recorded (the check's store refused it)" };
      break;
    }
    const differs: Divergence["differs"] = [];
    if (again.rv !== r.rv) differs.push("rv");
    const outOf = (x: CallRecord) => (mode === "partial" && x.out ? { ...(x.out as object), digest: "(not compared)", sha256: "(not compared)" } : x.out);
    if (json(outOf(again)) !== json(outOf(r))) differs.push("out");
    if (json(again.facts) !== json(r.facts)) differs.push("facts");
    if (json(again.args) !== json(r.args)) differs.push("args");
    if (differs.length && report.divergences.length < max) {
      report.divergences.push({
        seq: r.seq,
        fn: r.fn,
        app: r.app,
        mode,
        differs,
        recorded: outcome(r),
        reexecuted: outcome(again),
      });
    }
    opts.progress?.(r.seq);
  }
  return report;
}

const outcome = (r: CallRecord): Outcome => ({ rv: r.rv, ...(r.out !== undefined ? { out: JSON.parse(JSON.stringify(r.out)) } : {}), facts: JSON.parse(JSON.stringify(r.facts)) });
