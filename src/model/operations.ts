/**
 * How facts build a keyed operation's plain-data state (model/state.ts CryptoOp), for `evolve`: CryptoStarted runs
 * the mechanism's `init` on the key and parameters it carries sealed, CryptoUpdated its `update` on the sealed input,
 * OperationRestored installs a saved operation. The cryptography is the registry's (src/crypto/mechanisms): pure and
 * deterministic, so replaying the facts rebuilds the same state byte for byte.
 */
import type { HmacParams } from "../crypto/mechanisms/index.js";
import { cipherPair, macStream } from "../crypto/mechanisms/lookup.js";
import { keyOf, openInit, rememberKey, runtimeParams } from "../functions/crypto-op.js";
import { parseSavedOperation } from "../functions/operation-state.js";
import type { CryptoKind, CryptoOp, OperationState } from "./state.js";

interface Env {
  unseal(sealed: string): Uint8Array;
}

export function startCrypto(kind: CryptoKind, mechanism: number, object: string, sealed: string, env: Env): CryptoOp {
  const { key, params } = openInit(env.unseal(sealed));
  const runtime = runtimeParams(params);
  const r =
    kind === "sign" || kind === "verify"
      ? macStream(mechanism).init(key, runtime as HmacParams | undefined)
      : (kind === "encrypt" ? cipherPair(mechanism).encrypt : cipherPair(mechanism).decrypt).init(key, runtime);
  if (!r.ok) throw new Error(`CryptoStarted for an init that fails (${r.rv})`);
  const op: CryptoOp = { kind, mechanism, object, sealed, params, state: r.state, updated: false };
  rememberKey(op, key);
  return op;
}

export function updateCrypto(op: CryptoOp, data: Uint8Array, env: Env): void {
  if (op.kind === "sign" || op.kind === "verify") {
    op.state = macStream(op.mechanism).update(op.state as never, data);
  } else {
    const pair = cipherPair(op.mechanism);
    const r = (op.kind === "encrypt" ? pair.encrypt : pair.decrypt).update(keyOf(op, env.unseal), op.state, data);
    if (!r.ok) throw new Error(`CryptoUpdated for an update that fails (${r.rv})`);
    op.state = r.state;
  }
  op.updated = true;
}

export function restoreOperation(bytes: Uint8Array): OperationState {
  const op = parseSavedOperation(bytes);
  if (!op) throw new Error("OperationRestored with an operation that does not parse");
  return op;
}
