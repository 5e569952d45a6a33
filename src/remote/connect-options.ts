/**
 * How every hsmsim process reaches NATS: the server list of a `--nats` value (or of a `nats://host:port/<name>`
 * target) and the credentials and TLS settings, which are configuration, never arguments (so they stay out of `ps`
 * and shell history). The environment:
 *
 * | variable                 | meaning                                                         |
 * |--------------------------|-----------------------------------------------------------------|
 * | `HSMSIM_NATS_USER`       | user name (with `HSMSIM_NATS_PASSWORD`)                         |
 * | `HSMSIM_NATS_PASSWORD`   | its password                                                    |
 * | `HSMSIM_NATS_TOKEN`      | a token, instead of user and password                           |
 * | `HSMSIM_NATS_NKEY_SEED`  | a file holding an nkey seed (`SU…`), instead of either          |
 * | `HSMSIM_NATS_CA`         | PEM file of the CA that signed the server: implies TLS          |
 * | `HSMSIM_NATS_CERT`, `HSMSIM_NATS_KEY` | a client certificate and key (servers that verify clients) |
 *
 * docker-compose.yml sets them for `hsmsim serve`; a drop-in user sets them before `load("nats://…")`.
 */
import { readFileSync } from "node:fs";
import { nkeyAuthenticator, type NodeConnectionOptions } from "@nats-io/transport-node";

/** `a:4222,tls://b:4222` → the server URLs (a comma-separated list, as the compose files and `--nats` take it). */
export function serverList(servers: string | readonly string[]): string[] {
  const list = (typeof servers === "string" ? servers.split(",") : [...servers]).map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new TypeError(`"servers" expected at least one NATS URL, got ${JSON.stringify(servers)}`);
  return list;
}

/** Connection options for `servers` with the credentials and TLS settings of `env` (default: process.env). */
export function natsConnectOptions(servers: string | readonly string[], env: NodeJS.ProcessEnv = process.env): NodeConnectionOptions {
  const opts: NodeConnectionOptions = { servers: serverList(servers) };
  const get = (k: string) => (env[k] === undefined || env[k] === "" ? undefined : env[k]);
  const user = get("HSMSIM_NATS_USER");
  const token = get("HSMSIM_NATS_TOKEN");
  const seedFile = get("HSMSIM_NATS_NKEY_SEED");
  if ([user, token, seedFile].filter((x) => x !== undefined).length > 1) {
    throw new TypeError("set only one of HSMSIM_NATS_USER, HSMSIM_NATS_TOKEN and HSMSIM_NATS_NKEY_SEED");
  }
  if (user !== undefined) {
    opts.user = user;
    opts.pass = get("HSMSIM_NATS_PASSWORD") ?? "";
  }
  if (token !== undefined) opts.token = token;
  if (seedFile !== undefined) opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(readFileSync(seedFile, "utf8").trim()));
  const ca = get("HSMSIM_NATS_CA");
  const cert = get("HSMSIM_NATS_CERT");
  const key = get("HSMSIM_NATS_KEY");
  if (ca !== undefined || cert !== undefined) {
    opts.tls = {};
    if (ca !== undefined) opts.tls.caFile = ca;
    if (cert !== undefined) opts.tls.certFile = cert;
    if (key !== undefined) opts.tls.keyFile = key;
  }
  return opts;
}
