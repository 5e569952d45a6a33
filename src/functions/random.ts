/**
 * Random number generation (PKCS#11 v2.40 §5.15): C_SeedRandom and C_GenerateRandom. Fact sheet §14.
 *
 *   | # | C_SeedRandom(hSession, pSeed, ulSeedLen)  | C_GenerateRandom(hSession, pRandomData, ulRandomLen) |
 *   |---|-------------------------------------------|------------------------------------------------------|
 *   | 1 | not initialised → CRYPTOKI_NOT_INITIALIZED | not initialised → CRYPTOKI_NOT_INITIALIZED           |
 *   | 2 | pSeed NULL → ARGUMENTS_BAD                 | pRandomData NULL → ARGUMENTS_BAD                     |
 *   | 3 | bad session → SESSION_HANDLE_INVALID       | bad session → SESSION_HANDLE_INVALID                 |
 *   | 4 | OK                                         | OK, ulRandomLen bytes (0 is fine)                    |
 *
 * No login is needed and any session state will do (SoftHSM checks neither); no operation is started or ended.
 *
 * What the log keeps, and why:
 * - C_GenerateRandom's bytes come from the simulator's injected random source through `ctx.shell.randomBytes` (the
 *   decider draws nothing itself). They are output, not state: no fact carries them and nothing in the write or read
 *   model depends on them, so replay is exact without them and never draws again. The record keeps only their length
 *   (`out: { length }`): random output is what callers turn into keys, IVs, nonces and salts, so an audit log holding
 *   it would hold their secrets, and it would grow by every byte handed out. The length, the session and the time
 *   are enough to audit who drew how much.
 * - C_SeedRandom's seed is caller data: the record keeps its length only (`args.seed: { len }`). Seeding has no
 *   observable effect, as on SoftHSM (its RAND_seed only mixes entropy into OpenSSL's pool): the injected source is
 *   not reseeded, so a seeded simulator's stream stays the one its seed defines.
 *
 * hsmsim's one limit of its own: more than MAX_RANDOM_LEN bytes in one call answers CKR_HOST_MEMORY instead of
 * trying to allocate them (SoftHSM would try; no caller through pkcs11js can ask for more than its Buffer holds).
 */
import type { CallArgs } from "../events/calls.js";
import { answer, findSession, firstFailure, reject, type DecideContext, type Decision } from "./context.js";

/** 1 GiB: the most one C_GenerateRandom hands out. */
export const MAX_RANDOM_LEN = 2 ** 30;

/** C_SeedRandom — §5.15.1. */
export function C_SeedRandom(ctx: DecideContext, args: CallArgs["C_SeedRandom"]): Decision {
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.seed === null, "CKR_ARGUMENTS_BAD"],
    [() => !findSession(ctx, args.hSession), "CKR_SESSION_HANDLE_INVALID"],
  ]);
  return rv ? reject(rv) : answer("CKR_OK");
}

/** C_GenerateRandom — §5.15.2. */
export function C_GenerateRandom(ctx: DecideContext, args: CallArgs["C_GenerateRandom"]): Decision {
  const rv = firstFailure([
    [ctx.appId === 0, "CKR_CRYPTOKI_NOT_INITIALIZED"],
    [args.pRandomData === null, "CKR_ARGUMENTS_BAD"],
    [() => !findSession(ctx, args.hSession), "CKR_SESSION_HANDLE_INVALID"],
    [args.ulRandomLen > MAX_RANDOM_LEN, "CKR_HOST_MEMORY"],
  ]);
  if (rv) return reject(rv);
  return answer("CKR_OK", { random: ctx.shell.randomBytes(args.ulRandomLen) });
}
