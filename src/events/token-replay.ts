/**
 * One token replayed alone from JetStream (issue 4, item 1: "subjects per token so one token replays alone"; design:
 * docs/notes/nats-design.md §11). Reads only `<prefix>.<sim>.events.tok.<token>`: the records that changed the
 * token's persistent state, and the other calls on the token (events/token-subjects.ts), and folds their facts about
 * the token (model/token-fold.ts) into that state:
 * initialised, serial, label, PIN verifiers, failure counters (hence the token flags of C_GetTokenInfo that depend on
 * them), the token objects with their attributes, SoftHSM's generation counter.
 *
 * "Alone" means: no other subject is read, not `.sim` and not another token's. What that cannot give, because it is
 * not the token's: who is logged in and which sessions are open (application state; SoftHSM keeps it per process;
 * their ends by C_Finalize are on `.sim`), so the open-session counts are not in the result. For those, replay the
 * whole log (`<prefix>.<sim>.events.>`), or ask a projection.
 *
 * Checks: every line's own hash holds (the chain's `hash` over seq, prev and the record's canonical text), the record
 * seqs rise, and no record changes another token (routing rule 1). The links between records (`prev`) point
 * into other subjects and are not checked here: `hsmsim audit`-style verification of the whole chain needs the whole
 * log (JetStreamEventStore.open verifies it on every replay).
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { entryProblem } from "./chain.js";
import { messageEntries, readSubject, StreamCorruptError, LegacyLayoutError } from "./jetstream-store.js";
import { factToken } from "./token-subjects.js";
import { TokenFold, tokenEnv } from "../model/token-fold.js";
import type { TokenState } from "../model/state.js";
import { DEFAULT_PREFIX, DEFAULT_STREAM, subjects } from "../remote/protocol.js";

export interface TokenReplayOptions {
  nc: NatsConnection;
  sim: string;
  /** The token id (`slot<n>` in the default profile, `tok<n>` in softhsm2): the subject's last token. */
  token: string;
  stream?: string;
  prefix?: string;
  /** The simulator's profile has `processCaches` (softhsm2): token-object writes move the generation counter. */
  processCaches: boolean;
  /** Opens sealed attribute values; without it they stay sealed (the picture shows them sealed either way). */
  simulatorKey?: Uint8Array;
}

export interface TokenReplay {
  token: TokenState;
  subject: string;
  records: number;
  messages: number;
  /** The seq of the token's last record (0: none). */
  lastSeq: number;
  /** The stream sequence of the subject's last message (0: none). */
  streamSeq: number;
}

/** Rebuild one token's persistent state from its own subject. */
export async function replayToken(o: TokenReplayOptions): Promise<TokenReplay> {
  const stream = o.stream ?? DEFAULT_STREAM;
  const s = subjects(o.sim, o.prefix ?? DEFAULT_PREFIX);
  const subject = s.eventsToken(o.token);
  const jsm = await jetstreamManager(o.nc);
  const legacy = await jsm.streams.getMessage(stream, { last_by_subj: s.eventsLegacy });
  if (legacy) throw new LegacyLayoutError(stream, s.eventsLegacy, legacy.seq);
  const fold = new TokenFold(o.token, o.processCaches, tokenEnv(o.simulatorKey));
  let messages = 0;
  const streamSeq = await readSubject(jetstream(o.nc), stream, subject, (m) => {
    messages++;
    for (const e of messageEntries(subject, m)) {
      const problem = e.verified ? undefined : entryProblem(e, e.seq, e.prev);
      if (problem) throw new StreamCorruptError(subject, e.seq, m.streamSeq, problem);
      if (e.seq <= fold.lastSeq) throw new StreamCorruptError(subject, e.seq, m.streamSeq, `record ${e.seq} after record ${fold.lastSeq}`);
      // A token's subject holds its persistent facts and calls on it; never another token's persistent facts.
      const other = e.record.facts.map(factToken).find((t) => t !== undefined && t !== o.token);
      if (other !== undefined) throw new StreamCorruptError(subject, e.seq, m.streamSeq, `the record changes token ${other}`);
      fold.apply(e.record);
    }
  });
  return { token: fold.token, subject, records: fold.records, messages, lastSeq: fold.lastSeq, streamSeq };
}
