/**
 * How many consumers follow a simulator's event subject (each remote client's projection, while it follows, has one):
 * the remote-client tests check that a projection follows only while its application reads.
 */
import type { JetStreamManager } from "@nats-io/jetstream";
import { DEFAULT_STREAM } from "../../src/remote/protocol.js";

export function followerCount(jsm: JetStreamManager, events: string) {
  const count = async (): Promise<number> => {
    let k = 0;
    for await (const c of jsm.consumers.list(DEFAULT_STREAM)) if (c.config.filter_subject === events) k++;
    return k;
  };
  /** The count once it is `want`, or whatever it is after 5 s (consumers come and go asynchronously). */
  const until = async (want: number): Promise<number> => {
    const deadline = Date.now() + 5000;
    let got = await count();
    while (got !== want && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      got = await count();
    }
    return got;
  };
  return { count, until };
}
