/**
 * The simulator and its dispatcher: the one path every C_* call takes, whichever face it came through.
 *
 *   validate shape → decide (pure, per function family) → evolve the write model with the facts
 *   → append the call record to the event store → fold it into the read model → answer { rv, out }
 *
 * The shell lives here: the clock, the random source and the simulator key are read only in this file, and whatever
 * they produce reaches the state only through recorded facts. So `Simulator.replay` can rebuild a simulator from its
 * log without a clock or a random source, and the rebuilt state is the live one (test/property/replay). A simulator
 * constructed on a store that already holds records (a file store reopened) rebuilds itself the same way first.
 *
 * An `Application` is one C_Initialize…C_Finalize lifetime's caller: login state and sessions belong to it; tokens
 * belong to the simulator and are shared by all its applications, like processes sharing a SoftHSM token directory.
 */
import { pooledRandomSource } from "../crypto/random.js";
import { generateRsa, generateRsaFrom } from "../crypto/rsa.js";
import type { Call, CallOut, FnName } from "../events/calls.js";
import type { Answer, CallRecord, Fact } from "../events/types.js";
import type { EventStore, ReplayItem } from "../events/store.js";
import { tokenOfCall } from "../events/token-subjects.js";
import { MemoryEventStore } from "../events/memory-store.js";
import { invalidArgument, isKnownFunction, recordOut, redactArgs } from "../events/call-schema.js";
import { CK } from "../pkcs11/constants.js";
import { resolveProfile, type Profile, type ProfileOptions } from "../pkcs11/profiles.js";
import { newSimState, type SimState } from "../model/state.js";
import { evolve, type EvolveEnv } from "../model/evolve.js";
import { ReadModel } from "../projections/read-model.js";
import { deriveKeys, type SimulatorKeys } from "../crypto/keys.js";
import { makePinVerifier, pinMatches } from "../crypto/pins.js";
import { seal, unseal } from "../crypto/seal.js";
import { openOperation, operationStateKey, sealOperation } from "../crypto/operation-blob.js";
import { bytesToHex } from "../crypto/encoding.js";
import { restoreSnapshot, snapshotCapture } from "../events/snapshot.js";
import type { DecideContext, Decision, Shell } from "../functions/context.js";
import * as general from "../functions/general.js";
import * as slotToken from "../functions/slot-token.js";
import * as session from "../functions/session.js";
import * as objects from "../functions/objects.js";
import * as digest from "../functions/digest.js";
import * as encrypt from "../functions/encrypt.js";
import * as sign from "../functions/sign.js";
import * as mechanisms from "../functions/mechanisms.js";
import * as randomFns from "../functions/random.js";
import * as keys from "../functions/keys.js";

type Decider = (ctx: DecideContext, args: never) => Decision;

/** Every function the dispatcher knows, by its PKCS#11 name. */
const DECIDERS: Record<FnName, Decider> = {
  ...pick(general, ["C_Initialize", "C_Finalize", "C_GetInfo", "C_WaitForSlotEvent", "C_GetFunctionStatus", "C_CancelFunction"]),
  ...pick(slotToken, ["C_GetSlotList", "C_GetSlotInfo", "C_GetTokenInfo", "C_InitToken", "C_InitPIN", "C_SetPIN"]),
  ...pick(mechanisms, ["C_GetMechanismList", "C_GetMechanismInfo"]),
  ...pick(session, [
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetOperationState",
    "C_SetOperationState",
    "C_Login",
    "C_Logout",
  ]),
  ...pick(objects, [
    "C_CreateObject",
    "C_DestroyObject",
    "C_CopyObject",
    "C_GetObjectSize",
    "C_GetAttributeValue",
    "C_SetAttributeValue",
    "C_FindObjectsInit",
    "C_FindObjects",
    "C_FindObjectsFinal",
  ]),
  ...pick(digest, ["C_DigestInit", "C_Digest", "C_DigestUpdate", "C_DigestKey", "C_DigestFinal"]),
  ...pick(encrypt, [
    "C_EncryptInit",
    "C_Encrypt",
    "C_EncryptUpdate",
    "C_EncryptFinal",
    "C_DecryptInit",
    "C_Decrypt",
    "C_DecryptUpdate",
    "C_DecryptFinal",
  ]),
  ...pick(sign, ["C_SignInit", "C_Sign", "C_SignUpdate", "C_SignFinal", "C_VerifyInit", "C_Verify", "C_VerifyUpdate", "C_VerifyFinal"]),
  ...pick(randomFns, ["C_SeedRandom", "C_GenerateRandom"]),
  ...pick(keys, ["C_GenerateKey", "C_GenerateKeyPair", "C_WrapKey", "C_UnwrapKey"]),
} as Record<FnName, Decider>;

function pick<M extends object, K extends keyof M & string>(m: M, keys: K[]): Record<K, Decider> {
  return Object.fromEntries(keys.map((k) => [k, m[k] as Decider])) as Record<K, Decider>;
}

export interface SimulatorOptions extends ProfileOptions {
  /** Token slots for the default profile's fixed numbering (default 1). SoftHSM numbering has no such option. */
  slots?: number;
  /**
   * Where call records go (default: a new in-memory store). A store that already holds records is replayed first:
   * the simulator starts in the state its log describes (pass the options and `simulatorKey` it was written with).
   */
  store?: EventStore;
  /** 32 bytes. Keys PIN verifiers and sealed values; needed again to replay a log that holds sealed values. */
  simulatorKey?: Uint8Array;
  /** Milliseconds since the epoch (default Date.now). Read once per call, by the dispatcher only. */
  clock?: () => number;
  /** Random bytes (default node:crypto). Inject a seeded one to make whole runs repeatable. */
  randomBytes?: (n: number) => Uint8Array;
  /**
   * Wrap the shell the deciders get (re-execution only: `hsmsim replay --check` and `--spy` answer PIN checks and
   * draws from a record or a trace through it). Whatever it returns is still only reached through recorded facts.
   */
  shell?: (base: Shell) => Shell;
}

export type Listener = (record: CallRecord) => void;

export class Simulator {
  readonly profile: Profile;
  readonly store: EventStore;
  readonly state: SimState;
  readonly read: ReadModel;
  private readonly keys: SimulatorKeys;
  private readonly clock: () => number;
  private readonly random: (n: number) => Uint8Array;
  private readonly shell: Shell;
  private readonly env: EvolveEnv;
  /** `env` for recorded facts (replay, ingest): digest steps are folded in when the digest is next read (evolve.ts). */
  private readonly replayEnv: EvolveEnv;
  /** Values sealed while deciding the current call (see `env.unseal`); emptied after each call. */
  private justSealed: Map<string, Uint8Array>;
  private readonly listeners = new Set<Listener>();
  /** Why appends failed (each failed call answered CKR_DEVICE_ERROR); for operators and tests. */
  readonly storeFailures: unknown[] = [];
  private seq: number;

  constructor(opts: SimulatorOptions = {}) {
    this.profile = resolveProfile(opts);
    const slots = opts.slots ?? 1;
    if (opts.slots !== undefined && this.profile.slotNumbering !== "fixed") {
      throw new RangeError(`"slots" is not available with profile softhsm2: SoftHSM always adds one uninitialised slot`);
    }
    if (!Number.isSafeInteger(slots) || slots < 1 || slots > 1024) {
      throw new RangeError(`"slots" expected an integer from 1 to 1024, got ${opts.slots}`);
    }
    this.random = opts.randomBytes ?? pooledRandomSource();
    this.clock = opts.clock ?? Date.now;
    const simulatorKey = opts.simulatorKey ?? this.random(32);
    this.keys = deriveKeys(simulatorKey);
    this.store = opts.store ?? new MemoryEventStore();
    this.state = newSimState(this.profile, slots);
    this.read = new ReadModel(this.profile, this.state.fixedSlots);
    this.seq = 0;
    const keys = this.keys;
    const random = this.random;
    const opStateKey = operationStateKey(keys.seal);
    const justSealed = (this.justSealed = new Map<string, Uint8Array>());
    const base: Shell = {
      pinMatches: (verifier, pin) => pinMatches(keys.pin, verifier, pin),
      newPinVerifier: (pin) => makePinVerifier(keys.pin, pin, random(16)),
      newSerial: () => bytesToHex(random(8)),
      seal: (data) => {
        const sealed = seal(keys.seal, random(24), data);
        justSealed.set(sealed, data.slice());
        return sealed;
      },
      unseal: (sealed) => unseal(keys.seal, sealed),
      sealOperation: (plain, nonce) => sealOperation(opStateKey, nonce, plain),
      openOperation: (blob) => openOperation(opStateKey, blob),
      randomBytes: (n) => new Uint8Array(random(n)),
      // node's generator (OpenSSL) by default; drawn from the injected random source when one is given, so that a
      // seeded simulator repeats its whole run (crypto/rsa.ts generateRsaFrom).
      generateRsa: opts.randomBytes ? (bits, exponent) => generateRsaFrom(bits, exponent, random) : generateRsa,
    };
    this.shell = opts.shell ? opts.shell(base) : base;
    this.env = {
      // What this call's decider just sealed, evolve gets back without opening it again: the same bytes (sealing is
      // authenticated encryption of exactly them), half the cost of a sealed fact (noble's XChaCha20-Poly1305 takes
      // ~30-60 µs a small value here). The map holds one call's values: dispatch clears it after evolve.
      unseal: (sealed) => {
        const plain = justSealed.get(sealed);
        return plain ? plain.slice() : unseal(keys.seal, sealed);
      },
    };
    this.replayEnv = { unseal: this.env.unseal, deferDigests: true, lazyAttributes: true };
    // A store that already holds records (a file store reopened) is the simulator's past: rebuild the state from it
    // before serving, so that the next call is decided on the state the log describes. A store with snapshots hands
    // over the newest one that opens (src/events/snapshot.ts), and only the records after it are replayed.
    const snapshots = this.store.snapshots;
    const restored = snapshots && this.store.lastSeq > 0 ? restoreSnapshot(snapshots, this.keys.snapshot, this.state) : undefined;
    if (restored) {
      this.state = restored.state;
      this.read = restored.read;
      this.seq = restored.seq;
    }
    // Only the sequence and facts of each record are needed: a store that can hand over just those (the file store
    // decodes only the facts of each line) is read that way.
    this.catchUp();
    if (this.seq !== this.store.lastSeq) {
      throw new RangeError(`"store" read ${this.seq} records but its lastSeq is ${this.store.lastSeq}`);
    }
    // From here on the store may keep its facts cache (the file store's), keyed by this simulator's key.
    this.store.cacheFacts?.(this.keys.factsCache);
    // What a replica of this simulator is built with (a store's background snapshot writer): the options that shape
    // the state (profile, slots: not the shell's clock, random source or wrappers, which replay never uses), the key.
    const { store: _store, clock: _clock, randomBytes: _random, shell: _shell, simulatorKey: _key, ...options } = opts;
    snapshots?.attach(snapshotCapture(this.keys.snapshot, () => ({ state: this.state, read: this.read })), {
      options,
      simulatorKey,
      restored: restored?.seq ?? 0,
    });
  }

  /**
   * Fold in the records its store holds past this simulator's state (a replica following a log that another writer
   * appends to: the file store's background snapshot writer, src/events/snapshot-writer.ts).
   */
  catchUp(): void {
    const store = this.store;
    if (store.eachFacts) store.eachFacts(this.seq + 1, this.keys.factsCache, (seq, facts) => this.applyFacts(seq, facts));
    else for (const r of store.readFacts?.(this.seq + 1) ?? store.read(this.seq + 1)) this.apply(r);
  }

  /** A new caller: an application once it calls C_Initialize. */
  application(): Application {
    return new Application(this);
  }

  /** Called with every record after it is stored and projected (audit views, the demo). */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** The dispatcher. Never throws for bad input: every problem with the call is an rv. */
  dispatch(caller: Application, call: Call): Answer {
    const time = this.clock();
    const appId = caller.appId;
    let fn: FnName;
    let decision: Decision;
    let bad = true;
    if (!call || typeof call !== "object" || !isKnownFunction(call.fn)) {
      fn = (call && typeof call === "object" && typeof call.fn === "string" ? call.fn : "unknown") as FnName;
      decision = { rv: "CKR_FUNCTION_NOT_SUPPORTED", facts: [] };
    } else {
      fn = call.fn;
      bad = invalidArgument(call) !== undefined;
      decision = bad
        ? { rv: "CKR_ARGUMENTS_BAD", facts: [] }
        : DECIDERS[fn]({ state: this.state, read: this.read, appId, app: this.state.apps.get(appId), time, shell: this.shell }, (call.args ?? {}) as never);
    }
    const facts = decision.facts;
    const rv = CK[decision.rv];
    const record: CallRecord = {
      seq: ++this.seq,
      time,
      app: appId,
      fn,
      args: bad ? { invalid: true } : redactArgs(call),
      rv,
      facts,
    };
    const out = isKnownFunction(fn) ? recordOut(fn, decision.out) : undefined;
    // The recorded output may be the very object the caller gets. Every store encodes a record as it appends it, so a
    // caller changing that object afterwards cannot rewrite the log; it is not frozen, because JSON.stringify takes a
    // slow path on frozen objects (~50 % longer on a small record here), and the encoding is a fifth of a call.
    if (out !== undefined) record.out = out;
    // The log first: a call is answered, and its facts applied, only once its record is held. A store that cannot
    // take it (disk full, closed) leaves the state untouched and the caller gets CKR_DEVICE_ERROR.
    try {
      // The token the call acts on, before it is applied: the JetStream store's subject per token (token-subjects.ts).
      this.store.append(record, bad ? undefined : tokenOfCall(this.state, appId, call.args));
    } catch (cause) {
      this.seq--;
      this.storeFailures.push(cause);
      this.justSealed.clear();
      return { rv: CK.CKR_DEVICE_ERROR };
    }
    for (const f of facts) evolve(this.state, f, this.env);
    if (this.justSealed.size) this.justSealed.clear();
    this.read.apply(record);
    if (fn === "C_Initialize" && rv === CK.CKR_OK) caller.appId = (decision.out as { app: number }).app;
    if (fn === "C_Finalize" && rv === CK.CKR_OK) caller.appId = 0;
    for (const l of this.listeners) l(record);
    return fn === "C_Initialize" ? { rv } : decision.out === undefined ? { rv } : { rv, out: decision.out };
  }

  /**
   * Rebuild a simulator from a log: the same options (profile, slots, and the simulator key if the log holds sealed
   * values), then every record's facts, in order. No call is decided again; nothing is drawn from a clock or a
   * random source.
   */
  static replay(records: Iterable<CallRecord>, opts: SimulatorOptions = {}): Simulator {
    const sim = new Simulator({ store: new MemoryEventStore(), ...opts });
    for (const r of records) sim.ingest(r);
    return sim;
  }

  /** Apply one recorded call and append it to this simulator's store (replay, or a follower of another's log). */
  ingest(record: CallRecord): void {
    this.apply(record, true);
  }

  /** Fold one recorded call into the write and read models; `append` it to the store unless it came from there. */
  private apply(record: ReplayItem, append = false): void {
    if (record.seq !== this.seq + 1) throw new RangeError(`"record.seq" expected ${this.seq + 1}, got ${record.seq}`);
    // The log first, as in dispatch: a store that takes a snapshot at the start of an append sees the last record's state.
    if (append) this.store.append(record as CallRecord, tokenOfCall(this.state, (record as CallRecord).app, (record as CallRecord).args));
    this.applyFacts(record.seq, record.facts);
  }

  /** Fold one record's facts (replay). */
  private applyFacts(seq: number, facts: readonly Fact[]): void {
    if (seq !== this.seq + 1) throw new RangeError(`"record.seq" expected ${this.seq + 1}, got ${seq}`);
    for (let i = 0; i < facts.length; i++) evolve(this.state, facts[i]!, this.replayEnv);
    this.read.applyFacts(seq, facts);
    this.seq = seq;
  }
}

/** One caller of the simulator; its `appId` is the application it runs as (0 before C_Initialize). */
export class Application {
  appId = 0;
  constructor(readonly simulator: Simulator) {}

  call<F extends FnName>(call: Extract<Call, { fn: F }>): Answer<CallOut[F]> {
    return this.simulator.dispatch(this, call) as Answer<CallOut[F]>;
  }
}
