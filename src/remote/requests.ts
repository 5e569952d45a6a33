/**
 * Requests and their replies on one inbox subscription of the caller's own (`<inbox>.<n>`): the way nats.js
 * multiplexes `nc.request`, without its per-request costs. nats-core 3.3.1's RequestOne builds an Error, stack trace
 * and all, for every request that *succeeds* (its resolver then rejects the already settled promise with a fresh
 * RequestError("cancelled")): about a tenth of a drop-in client's CPU per call, and ~65 µs per JetStream publish of
 * `hsmsim serve` on this machine (nats-design.md § "open+close throughput"). Used by the remote client's calls
 * (client.ts) and the JetStream store's publishes (events/jetstream-store.ts).
 *
 * `request` resolves with the reply, or with the reason there is none, as a string: no responders (the server's 503
 * status reply, sent because nats.js connects with `no_responders`), a timeout, a closed connection. It never rejects.
 */
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";

export const NO_RESPONDERS = "NoResponders: no responders";

export class Requests {
  private sub: Subscription | undefined;
  private readonly prefix = `${createInbox()}.`;
  private readonly pending = new Map<string, (m: Msg | string) => void>();
  private next = 0;

  constructor(private readonly nc: NatsConnection) {}

  request(subject: string, body: Uint8Array, timeoutMs: number, headers?: MsgHdrs): Promise<Msg | string> {
    this.sub ??= this.nc.subscribe(`${this.prefix}*`, {
      callback: (err, m) => {
        if (err) return;
        const settle = this.pending.get(m.subject.slice(this.prefix.length));
        if (settle) settle(m.data.length === 0 && m.headers?.code === 503 ? NO_RESPONDERS : m);
      },
    });
    const token = (this.next++).toString(36);
    return new Promise((resolve) => {
      const t = setTimeout(() => settle(`TimeoutError: no reply in ${timeoutMs} ms`), timeoutMs);
      const settle = (m: Msg | string) => {
        clearTimeout(t);
        this.pending.delete(token);
        resolve(m);
      };
      this.pending.set(token, settle);
      try {
        this.nc.publish(subject, body, { reply: this.prefix + token, headers });
      } catch (e) {
        settle(`${(e as Error).name}: ${(e as Error).message}`);
      }
    });
  }

  /** Stop listening: requests still waiting are answered "closed". */
  close(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
    for (const settle of [...this.pending.values()]) settle("ClosedConnectionError: closed");
  }
}
