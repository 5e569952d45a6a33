/**
 * One token replays alone (issue 4, item 1; docs/notes/nats-design.md §11): for random call sequences, the records a
 * JetStream store puts on a token's subject (events/token-subjects.ts `subjectToken` of the record and the
 * dispatcher's hint, as the store routes them) folded alone (model/token-fold.ts)
 * give exactly that token's persistent state in the full rebuild (write model), in both profiles, every token.
 * In memory: the routing and the fold are pure; test/integration/nats-token-subjects.int.spec.ts reads the subjects
 * from a real nats-server.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { ProfileName } from "../../src/pkcs11/profiles.js";
import { subjectToken } from "../../src/events/token-subjects.js";
import { MemoryEventStore } from "../../src/events/memory-store.js";
import type { CallRecord } from "../../src/events/types.js";
import { TokenFold, tokenEnv } from "../../src/model/token-fold.js";
import { tokenPicture } from "../../src/model/snapshot.js";
import { runSteps, Seen, stepsArb } from "../support/arbitraries.js";
import { testSimulator, TEST_KEY } from "../support/sim.js";

/** A memory store that keeps the dispatcher's routing hint of each record, as the JetStream store receives it. */
class HintedStore extends MemoryEventStore {
  readonly hints = new Map<number, string | undefined>();
  override append(record: CallRecord, token?: string): void {
    super.append(record);
    this.hints.set(record.seq, token);
  }
}

describe.each<ProfileName>(["default", "softhsm2"])("a token replayed from its own records (profile %s)", (profile) => {
  it("equals the token's part of the full state", () => {
    let tokenRecords = 0;
    let severalTokens = 0;
    fc.assert(
      fc.property(stepsArb(60), (steps) => {
        const store = new HintedStore();
        const live = testSimulator({ profile, store, ...(profile === "default" ? { slots: 2 } : {}) });
        runSteps([live.application(), live.application()], steps, [new Seen(), new Seen()]);
        const folds = new Map<string, TokenFold>();
        for (const r of live.store.read()) {
          const t = subjectToken(r, store.hints.get(r.seq));
          if (t === undefined) continue;
          let f = folds.get(t);
          if (!f) folds.set(t, (f = new TokenFold(t, live.profile.processCaches, tokenEnv(TEST_KEY))));
          f.apply(r);
          tokenRecords++;
        }
        if (folds.size > 1) severalTokens++;
        for (const [id, t] of live.state.tokens) {
          const fold = folds.get(id) ?? new TokenFold(id, live.profile.processCaches, tokenEnv(TEST_KEY));
          expect(tokenPicture(fold.token), `token ${id}`).toEqual(tokenPicture(t));
        }
        // Every token a record names exists in the full state.
        for (const id of folds.keys()) expect(live.state.tokens.has(id)).toBe(true);
      }),
      { numRuns: 150 },
    );
    // The property is not vacuous: records did go to token subjects.
    expect(tokenRecords).toBeGreaterThan(200);
    expect(severalTokens).toBeGreaterThan(0);
  });
});
