#!/usr/bin/env node
// The hsmsim container's healthcheck: a real round trip to the simulator service over NATS.
//   node deploy/healthcheck.mjs <servers> <sim>     (servers: a comma-separated list of NATS URLs)
// Asks `<prefix>.<sim>.info` (src/remote/protocol.ts) with the credentials and TLS settings of the HSMSIM_NATS_*
// environment (src/remote/connect-options.ts). Exit 0 when the service answers, 1 when it does not (no responders,
// timeout, a failed store), 2 for usage. Prints one line either way.
import { connect } from "@nats-io/transport-node";
import { natsConnectOptions } from "../dist/remote/connect-options.js";
import { decodeWire, subjects } from "../dist/remote/protocol.js";

const [servers, sim, prefix] = process.argv.slice(2);
if (!servers || !sim) {
  console.error("usage: healthcheck.mjs <servers> <sim> [prefix]");
  process.exit(2);
}
let nc;
try {
  nc = await connect({ ...natsConnectOptions(servers), timeout: 3000, maxReconnectAttempts: 0 });
  const m = await nc.request(subjects(sim, prefix).info, new Uint8Array(0), { timeout: 3000 });
  const info = decodeWire(m.data);
  console.log(`hsmsim "${info.sim}": serving, last seq ${info.lastSeq}, durable ${info.durableSeq}`);
  await nc.close();
  process.exit(0);
} catch (e) {
  console.log(`hsmsim "${sim}": not healthy: ${e?.message ?? e}`);
  await nc?.close().catch(() => {});
  process.exit(1);
}
