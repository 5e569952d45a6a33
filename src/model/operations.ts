/**
 * How facts build a keyed operation's plain-data state (model/state.ts CryptoOp), for `evolve`: CryptoStarted runs
 * the mechanism's `init` on the key it names and the parameters it carries, CryptoUpdated its `update` on the sealed input,
 * OperationRestored installs a saved operation. The cryptography is the registry's (src/crypto/mechanisms): pure and
 * deterministic, so replaying the facts rebuilds the same state byte for byte.
 */
import type { HmacParams } from "../crypto/mechanisms/index.js";
import { cipherPair, digestStream, macStream } from "../crypto/mechanisms/lookup.js";
import type { DigestState } from "../crypto/mechanisms/index.js";
import type { Fact } from "../events/types.js";
import { keyOf, paramsFromFact, rememberKey, runtimeParams, type PlainParams } from "../functions/crypto-op.js";
import { parseSavedOperation } from "../functions/operation-state.js";
import { isRsaMechanism, isRsaOp, startRsaState, updateRsaState, type RsaState } from "../functions/rsa.js";
import { CK } from "../pkcs11/constants.js";
import { keyValueOf } from "./key-material.js";
import { liveObject, type AppState, type CryptoOp, type DigestOp, type OperationState, type SimState } from "./state.js";

interface Env {
  unseal(sealed: string): Uint8Array;
}

/**
 * The key a CryptoStarted fact names: the live object's clear CKA_VALUE when the object still holds that very sealed
 * value (no unsealing), else the sealed value opened; undefined when it cannot be opened (a log replayed without its
 * simulator key: the operation is rebuilt without a state, and its steps answer CKR_GENERAL_ERROR).
 */
function keyOfFact(state: SimState, app: AppState, object: string, sealed: string, env: Env): Uint8Array | undefined {
  const o = liveObject(state, app, object);
  if (o && o.sealed?.get(CK.CKA_VALUE) === sealed) return keyValueOf(o);
  try {
    return env.unseal(sealed);
  } catch {
    return undefined;
  }
}

const MAC_STARTS = new WeakMap<Uint8Array, Map<number, unknown>>();

export function startCrypto(state: SimState, app: AppState, fact: Extract<Fact, { type: "CryptoStarted" }>, env: Env): CryptoOp {
  const { kind, mechanism } = fact;
  const key = isRsaMechanism(kind, mechanism) ? undefined : keyOfFact(state, app, fact.object, fact.key, env);
  let params = fact.params as PlainParams;
  let aadOk = true;
  try {
    params = paramsFromFact(params, fact.aad, env.unseal);
  } catch {
    aadOk = false;
  }
  const op: CryptoOp = { kind, mechanism, object: fact.object, sealed: fact.key, params, state: null, updated: false };
  // An RSA operation keeps its key sealed until a step needs it (functions/rsa.ts); its state is the data so far.
  if (isRsaMechanism(kind, mechanism)) {
    op.state = startRsaState(mechanism);
    return op;
  }
  if (!key || !aadOk) return op;
  const runtime = runtimeParams(params);
  const mac = kind === "sign" || kind === "verify";
  // A MAC's initial state (the inner context after K0 ⊕ ipad) depends on the key and the mechanism only: memoised per
  // key value object (a pure function's result; states are replaced by every step, never changed in place).
  const memo = mac && params.kind === "none" ? MAC_STARTS.get(key)?.get(mechanism) : undefined;
  if (memo) {
    op.state = memo;
    rememberKey(op, key);
    return op;
  }
  const r = mac
    ? macStream(mechanism).init(key, runtime as HmacParams | undefined)
    : (kind === "encrypt" ? cipherPair(mechanism).encrypt : cipherPair(mechanism).decrypt).init(key, runtime);
  if (!r.ok) throw new Error(`CryptoStarted for an init that fails (${r.rv})`);
  op.state = r.state;
  if (mac && params.kind === "none") {
    let m = MAC_STARTS.get(key);
    if (!m) MAC_STARTS.set(key, (m = new Map()));
    m.set(mechanism, Object.freeze(r.state));
  }
  rememberKey(op, key);
  return op;
}

export function updateCrypto(op: CryptoOp, data: Uint8Array, env: Env): void {
  if (op.state === null) return; // rebuilt without its key (see keyOfFact)
  if (isRsaOp(op)) {
    op.state = updateRsaState(op.mechanism, op.state as RsaState, data);
  } else if (op.kind === "sign" || op.kind === "verify") {
    op.state = macStream(op.mechanism).update(op.state as never, data);
  } else {
    const pair = cipherPair(op.mechanism);
    const r = (op.kind === "encrypt" ? pair.encrypt : pair.decrypt).update(keyOf(op, env.unseal), op.state, data);
    if (!r.ok) throw new Error(`CryptoUpdated for an update that fails (${r.rv})`);
    op.state = r.state;
  }
  op.updated = true;
}

/**
 * Digests rebuilt from recorded facts are lazy: DigestStarted and DigestUpdated only note what happened, and the
 * state (the registry's init, then an update per sealed input opened) is computed the first time anything reads
 * `op.state`: the next live step, C_GetOperationState, a state snapshot, `hsmsim replay --until`. A digest that
 * starts and ends within the replayed log (the common case) never opens its inputs nor hashes them; opening a sealed
 * input (XChaCha20-Poly1305 in @noble/ciphers) is the costliest step of replaying a digest.
 *
 * The fold is the eager steps in order, so the state read is the one eager evolution gives: init, then for each input
 * `state = opened ? update(state, opened) : null` (an input that does not open, in a log replayed without its key,
 * leaves the digest without a state for good; later inputs are not opened).
 *
 * A class, with `state` an accessor on its prototype: an own accessor (defineProperty on a plain object) cost ~400 ns
 * a digest here, where this costs ~25 ns. So `state` is not an own member until it is folded: the snapshot codec
 * carries an instance as the plain object an eager replay builds (`plain`, registered in events/snapshot.ts), and
 * JSON does too (`toJSON`). Once folded, `state` is an own data property, and the inputs are let go.
 */
export class DeferredDigest implements DigestOp {
  readonly kind = "digest";
  #inputs: string[] | undefined = [];
  readonly #env: Env;

  constructor(
    public mechanism: number,
    public updated: boolean,
    env: Env,
  ) {
    this.#env = env;
  }

  get state(): unknown {
    const stream = digestStream(this.mechanism);
    let state: unknown = stream.init();
    for (const sealed of this.#inputs!) {
      let data: Uint8Array | undefined;
      if (state !== null) {
        try {
          data = this.#env.unseal(sealed);
        } catch {
          data = undefined;
        }
      }
      state = data ? stream.update(state as DigestState, data) : null;
    }
    this.state = state;
    return state;
  }

  /** The folded state, as an own data property in the accessor's place (found before the prototype's from then on). */
  set state(v: unknown) {
    Object.defineProperty(this, "state", { value: v, writable: true, enumerable: true, configurable: true });
    this.#inputs = undefined;
  }

  /** Note a recorded input; false once the state is folded (it is then fed like an eager digest's). */
  defer(sealed: string): boolean {
    if (!this.#inputs) return false;
    this.#inputs.push(sealed);
    return true;
  }

  /** The plain object an eager replay builds for this one: kind, mechanism, state, updated. */
  plain(): DigestOp {
    return { kind: "digest", mechanism: this.mechanism, state: this.state, updated: this.updated };
  }

  toJSON(): DigestOp {
    return this.plain();
  }
}

/** A digest started by a recorded DigestStarted; `defer`: its state is computed when first read (see above). */
export function startDigest(mechanism: number, defer: boolean, env: Env): DigestOp {
  if (!defer) return { kind: "digest", mechanism, state: digestStream(mechanism).init(), updated: false };
  return new DeferredDigest(mechanism, false, env);
}

/** Feed a recorded DigestUpdated's sealed input to a digest: noted when the digest is deferred, else applied now. */
export function feedDigest(op: DigestOp, sealed: string, env: Env): void {
  if (!(op instanceof DeferredDigest && op.defer(sealed))) {
    let data: Uint8Array | undefined;
    if (op.state !== null) {
      try {
        data = env.unseal(sealed);
      } catch {
        data = undefined;
      }
    }
    // Replayed without the simulator key, the data does not open: the digest goes on without a state, and its
    // steps answer CKR_GENERAL_ERROR (functions/digest.ts).
    op.state = data ? digestStream(op.mechanism).update(op.state as DigestState, data) : null;
  }
  op.updated = true;
}

export function restoreOperation(bytes: Uint8Array): OperationState {
  const op = parseSavedOperation(bytes);
  if (!op) throw new Error("OperationRestored with an operation that does not parse");
  return op;
}
