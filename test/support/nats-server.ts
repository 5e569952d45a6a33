/**
 * Private nats-server processes for integration tests: a single JetStream server, or a three-node JetStream cluster,
 * each on free loopback ports with its own temporary store directory. No mocks: the Debian `nats-server` binary
 * (2.9.10, /usr/sbin/nats-server; `NATS_SERVER` overrides the path), as `.ci/run` installs it.
 *
 * - Readiness is "Server is ready" on stderr (7–36 ms after the spawn). In a cluster that is not JetStream readiness:
 *   the meta leader is elected about a second later; `waitForJetStream` retries until the account answers.
 * - `stop()` sends SIGINT (exit code 0; SIGTERM exits 1) and SIGKILLs after a grace period; `kill()` is SIGKILL.
 * - A single server or cluster node can be stopped and started again on the same ports and store directory.
 * - Every server this process started is SIGKILLed from a `process.on("exit")` hook, so a crashed test leaves no
 *   orphan. Temporary directories are removed by `stop()`/`stopAll()` (not by `kill()`, so a restart can reuse them).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll } from "vitest";

export const NATS_SERVER = process.env.NATS_SERVER ?? "/usr/sbin/nats-server";

/** A free loopback TCP port (bind to 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const LIVE = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of LIVE) {
    try {
      p.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

/** Spawn nats-server with `args`; resolves once stderr says "Server is ready". */
export function spawnServer(args: string[], opts: { name?: string; readyTimeoutMs?: number; log?: boolean } = {}): Promise<{ proc: ChildProcess; stderr: () => string }> {
  const name = opts.name ?? "nats";
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  const proc = spawn(NATS_SERVER, args, { stdio: ["ignore", "ignore", "pipe"] });
  LIVE.add(proc);
  proc.once("exit", () => LIVE.delete(proc));
  let stderr = "";
  return new Promise((resolve, reject) => {
    const onEarlyExit = (code: number | null, sig: string | null): void => {
      clearTimeout(timer);
      reject(new Error(`${name}: ${NATS_SERVER} exited ${code ?? sig} before it was ready\n${stderr}`));
    };
    const timer = setTimeout(() => {
      proc.removeListener("exit", onEarlyExit);
      proc.kill("SIGKILL");
      reject(new Error(`${name}: not ready in ${readyTimeoutMs} ms\n${stderr}`));
    }, readyTimeoutMs);
    proc.on("exit", onEarlyExit);
    proc.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`${name}: cannot start ${NATS_SERVER} (apt-get install nats-server)`, { cause: e }));
    });
    proc.stderr!.setEncoding("utf8");
    let ready = false;
    proc.stderr!.on("data", (chunk: string) => {
      if (stderr.length < 200_000) stderr += chunk;
      if (opts.log) process.stderr.write(chunk.replace(/^/gm, `[${name}] `));
      if (!ready && stderr.includes("Server is ready")) {
        ready = true;
        clearTimeout(timer);
        proc.removeListener("exit", onEarlyExit);
        resolve({ proc, stderr: () => stderr });
      }
    });
  });
}

/** Stop a server: `signal` (default SIGINT, exit code 0), SIGKILL after `graceMs`. Resolves once it exited. */
export function stopProcess(proc: ChildProcess, signal: NodeJS.Signals = "SIGINT", graceMs = 5000): Promise<{ code: number | null; signal: string | null }> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  return new Promise((resolve) => {
    const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
    proc.once("exit", (code, sig) => {
      clearTimeout(t);
      resolve({ code, signal: sig });
    });
    proc.kill(signal);
  });
}

export interface NatsServer {
  port: number;
  url: string;
  /** The JetStream store directory. */
  storeDir: string;
  proc: ChildProcess;
  stderr(): string;
  /** Start again on the same port and store directory (after `kill()` or `halt()`). */
  restart(): Promise<void>;
  /** SIGKILL, keep the store directory. */
  kill(): Promise<void>;
  /** SIGINT, keep the store directory. */
  halt(): Promise<void>;
  /** SIGINT and remove the store directory. */
  stop(): Promise<void>;
}

export interface ServerOptions {
  /** Require this user and password (`--user`/`--pass`). */
  user?: string;
  pass?: string;
  log?: boolean;
}

/** One JetStream server on a free loopback port with a fresh store directory. */
export async function startNatsServer(opts: ServerOptions = {}): Promise<NatsServer> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), "hsmsim-nats-"));
  const args = ["-js", "-sd", storeDir, "-a", "127.0.0.1", "-p", String(port)];
  if (opts.user !== undefined) args.push("--user", opts.user, "--pass", opts.pass ?? "");
  let s = await spawnServer(args, { name: `nats:${port}`, log: opts.log });
  const server: NatsServer = {
    port,
    url: `nats://127.0.0.1:${port}`,
    storeDir,
    proc: s.proc,
    stderr: () => s.stderr(),
    async restart() {
      s = await spawnServer(args, { name: `nats:${port}`, log: opts.log });
      server.proc = s.proc;
    },
    async kill() {
      await stopProcess(server.proc, "SIGKILL");
    },
    async halt() {
      await stopProcess(server.proc);
    },
    async stop() {
      await stopProcess(server.proc);
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
  return server;
}

export interface ClusterNode {
  index: number;
  name: string;
  port: number;
  url: string;
  conf: string;
  proc: ChildProcess | undefined;
  stderr(): string;
}

export interface NatsCluster {
  nodes: ClusterNode[];
  /** Every node's client URL. */
  servers: string[];
  /** Start node `i` again (same ports and store directory). */
  start(i: number): Promise<void>;
  /** Stop node `i` (SIGINT by default; "SIGKILL" for a crash). */
  stop(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Stop every node and remove the directories. */
  stopAll(): Promise<void>;
}

/**
 * A JetStream cluster of `n` (default 3) nodes on loopback, named n0…, one config file each with routes to the
 * others. Resolves once every node said "Server is ready" and (unless `waitForJetStream: false`) the JetStream account
 * answers through node 0.
 */
export async function startNatsCluster(n = 3, opts: { log?: boolean; waitForJetStream?: boolean; name?: string } = {}): Promise<NatsCluster> {
  const base = mkdtempSync(join(tmpdir(), "hsmsim-nats-cluster-"));
  const ports: number[] = [];
  const routePorts: number[] = [];
  for (let i = 0; i < n; i++) {
    ports.push(await freePort());
    routePorts.push(await freePort());
  }
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < n; i++) {
    const conf = join(base, `n${i}.conf`);
    const routes = routePorts.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`);
    writeFileSync(
      conf,
      [
        `server_name: n${i}`,
        `listen: 127.0.0.1:${ports[i]}`,
        `jetstream { store_dir: "${join(base, `js${i}`)}" }`,
        `cluster {`,
        `  name: ${opts.name ?? "hsmsim"}`,
        `  listen: 127.0.0.1:${routePorts[i]}`,
        `  routes: [${routes.join(", ")}]`,
        `}`,
        ``,
      ].join("\n"),
    );
    nodes.push({ index: i, name: `n${i}`, port: ports[i]!, url: `nats://127.0.0.1:${ports[i]}`, conf, proc: undefined, stderr: () => "" });
  }
  const startNode = async (node: ClusterNode): Promise<void> => {
    const s = await spawnServer(["-c", node.conf], { name: node.name, log: opts.log });
    node.proc = s.proc;
    node.stderr = s.stderr;
  };
  await Promise.all(nodes.map(startNode));
  const cluster: NatsCluster = {
    nodes,
    servers: nodes.map((x) => x.url),
    start: (i) => startNode(nodes[i]!),
    async stop(i, signal = "SIGINT") {
      const p = nodes[i]!.proc;
      if (p) await stopProcess(p, signal);
    },
    async stopAll() {
      await Promise.all(nodes.map((x) => (x.proc ? stopProcess(x.proc) : undefined)));
      rmSync(base, { recursive: true, force: true });
    },
  };
  if (opts.waitForJetStream !== false) await waitForJetStream(cluster.servers);
  return cluster;
}

/**
 * Retry until JetStream answers on `servers` (a cluster's meta leader is elected about 1 s after the nodes are ready;
 * until then `jetstreamManager` times out).
 */
export async function waitForJetStream(servers: string | string[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const nc: NatsConnection = await connect({ servers });
  try {
    for (;;) {
      try {
        await jetstreamManager(nc, { timeout: 1000 });
        return;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`JetStream not ready on ${String(servers)} in ${timeoutMs} ms`, { cause: e });
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    await nc.close();
  }
}

/**
 * One private server for a test file, started before its tests and stopped after them, with a connection to it; and
 * `fresh()`: a stream name and subject prefix unique in the file (`<P><n>`, `<p><n>`), so tests do not see each
 * other's messages. Call at the top of the file (it registers vitest's beforeAll / afterAll).
 */
export function natsPerFile(letter = "T"): { readonly server: NatsServer; readonly nc: NatsConnection; fresh(): { stream: string; prefix: string } } {
  let server: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  let n = 0;
  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });
  return {
    get server() {
      return server!;
    },
    get nc() {
      return nc!;
    },
    fresh: () => {
      n++;
      return { stream: `${letter.toUpperCase()}${n}`, prefix: `${letter.toLowerCase()}${n}` };
    },
  };
}
