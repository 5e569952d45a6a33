/**
 * The deployment files: docker-compose.yml (one JetStream NATS + hsmsim), docker-compose.cluster.yml (three nodes),
 * deploy/nats/*.conf and the Dockerfile. This machine has no Docker engine, so the containers are not started; what
 * can be checked without one is checked for real:
 * - the compose files parse, and their structure holds what the README promises (persistent JetStream volume,
 *   healthchecks on the monitoring port, hsmsim waiting for a healthy NATS, credentials only from the environment,
 *   TLS, three nodes with their own volumes and routes to each other);
 * - each NATS service's own command and environment, taken from the compose file (interpolated as compose does, with
 *   the container paths mapped through its volumes onto this checkout), run on the real nats-server: `-t` accepts the
 *   configuration, the server serves JetStream over TLS to the configured user only, /healthz answers;
 * - the hsmsim service's own command and environment, mapped the same way, serve on that server, and the compose
 *   healthcheck (deploy/healthcheck.mjs, run from dist/: `npm test` builds first) passes, and fails once it stopped;
 * - the cluster file's three nodes form a JetStream cluster that holds a stream at three replicas.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, NATS_SERVER, spawnServer, stopProcess } from "../support/nats-server.js";
import { startCli } from "../support/serve-process.js";

const ROOT = resolve(import.meta.dirname, "../..");

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const raw = (file: string) => readFileSync(join(ROOT, file), "utf8");
const load = (file: string): Compose => parse(raw(file), { merge: true }) as Compose;

/** Compose's variable interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\{(\w+)(?::([-?])([^}]*))?\}/g, (m, name: string | undefined, op: string | undefined, arg: string | undefined) => {
    if (m === "$$") return "$";
    const v = env[name!];
    if (v !== undefined && v !== "") return v;
    if (op === "-") return arg!;
    if (op === "?") throw new Error(`required variable ${name}: ${arg}`);
    return "";
  });
}

function deepInterpolate<T>(x: T, env: Record<string, string>): T {
  if (typeof x === "string") return interpolate(x, env) as T;
  if (Array.isArray(x)) return x.map((y) => deepInterpolate(y, env)) as T;
  if (x && typeof x === "object") return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, deepInterpolate(v, env)])) as T;
  return x;
}

/** A bind mount's host path for a container path (`./host:/container[:ro]`), or the named volume's directory. */
function hostPath(svc: Service, containerPath: string, namedVolumes: Record<string, string>): string {
  for (const v of svc.volumes ?? []) {
    const [src, dst] = v.split(":") as [string, string];
    if (containerPath === dst || containerPath.startsWith(dst + "/")) {
      const base = src.startsWith(".") || src.startsWith("/") ? resolve(ROOT, src) : namedVolumes[src];
      if (!base) throw new Error(`no directory for volume ${src}`);
      return base + containerPath.slice(dst.length);
    }
  }
  throw new Error(`${containerPath} is not mounted`);
}

const SECRETS = { NATS_PASSWORD: "pw-for-the-test-1", NATS_ROUTE_PASSWORD: "route-pw-for-the-test-2" };

let work: string;
let tls: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "hsmsim-compose-"));
  tls = join(work, "tls");
  execFileSync("sh", [join(ROOT, "deploy/tls/gen-certs.sh"), tls]);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * A NATS service of a compose file as this machine runs it: the compose environment, interpolated, with container
 * paths mapped onto this checkout (config), the generated certificates (TLS) and a temporary store (the volume), and
 * the listen addresses moved to free loopback ports. `hosts` maps compose host names (route targets) to host:port.
 */
function localNats(svc: Service, env: Record<string, string>, ports: { client: number; http: number; route?: number }, hosts: Record<string, string>) {
  const named: Record<string, string> = {};
  for (const v of svc.volumes ?? []) {
    const src = v.split(":")[0]!;
    if (!src.startsWith(".") && !src.startsWith("/")) named[src] = join(work, src);
  }
  const e = { ...svc.environment! };
  for (const k of ["NATS_TLS_CERT", "NATS_TLS_KEY", "NATS_TLS_CA"]) {
    // the bind mount ./deploy/tls holds no committed keys: the generated ones stand in for it
    e[k] = hostPath(svc, e[k]!, named).replace(join(ROOT, "deploy/tls"), tls);
  }
  e.NATS_STORE_DIR = hostPath(svc, e.NATS_STORE_DIR!, named);
  e.NATS_LISTEN = `127.0.0.1:${ports.client}`;
  e.NATS_HTTP = `127.0.0.1:${ports.http}`;
  if (ports.route !== undefined) e.NATS_CLUSTER_LISTEN = `127.0.0.1:${ports.route}`;
  if (e.NATS_ROUTES) e.NATS_ROUTES = e.NATS_ROUTES.replace(/@([\w-]+):6222/g, (_, h: string) => `@${hosts[h]}`);
  const [bin, ...args] = svc.command!;
  expect(bin).toBe("nats-server");
  const mapped = args.map((a) => (a.startsWith("/") ? hostPath(svc, a, named) : a));
  return { env: { ...env, ...e }, args: mapped };
}

async function healthz(port: number): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: r.status, body: await r.text() };
}

async function connectTls(port: number | number[], user: string, pass: string): Promise<NatsConnection> {
  const ports = Array.isArray(port) ? port : [port];
  return connect({ servers: ports.map((p) => `tls://127.0.0.1:${p}`), user, pass, tls: { caFile: join(tls, "ca.pem") }, timeout: 5000 });
}

describe("docker-compose.yml", () => {
  const c = load("docker-compose.yml");
  const env = { ...SECRETS };
  const s = deepInterpolate(c, env);

  it("has a JetStream NATS with a persistent volume and a healthcheck on its monitoring port", () => {
    const nats = s.services.nats!;
    expect(nats.image).toMatch(/^nats:2\.9/);
    expect(Object.keys(c.volumes ?? {})).toContain("nats-data");
    expect(nats.volumes).toContain("nats-data:/data");
    expect(nats.environment!.NATS_STORE_DIR!.startsWith("/data/")).toBe(true);
    const http = nats.environment!.NATS_HTTP!.split(":")[1];
    expect(nats.healthcheck!.test.join(" ")).toContain(`http://127.0.0.1:${http}/healthz`);
  });

  it("runs hsmsim serve against it over TLS, after NATS is healthy, with its own healthcheck", () => {
    const h = s.services.hsmsim!;
    expect(h.build).toBe(".");
    expect(h.command!.slice(0, 3)).toEqual(["serve", "--nats", "tls://nats:4222"]);
    expect(s.services.nats!.environment!.NATS_LISTEN).toBe("0.0.0.0:4222");
    expect(h.depends_on).toEqual({ nats: { condition: "service_healthy" } });
    expect(h.healthcheck!.test.slice(0, 3)).toEqual(["CMD", "node", "/app/deploy/healthcheck.mjs"]);
    expect(h.environment!.HSMSIM_NATS_PASSWORD).toBe(SECRETS.NATS_PASSWORD);
    expect(h.environment!.HSMSIM_NATS_CA).toBe("/etc/hsmsim/ca.pem");
    expect(h.volumes).toContain("./deploy/tls/ca.pem:/etc/hsmsim/ca.pem:ro");
    expect(h.volumes).toContain("hsmsim-data:/var/lib/hsmsim");
    expect(Object.keys(c.volumes ?? {})).toContain("hsmsim-data");
  });

  it("takes its secrets from the environment: refuses to start without NATS_PASSWORD, commits none", () => {
    expect(() => deepInterpolate(c, {})).toThrow(/NATS_PASSWORD/);
    for (const f of ["docker-compose.yml", "docker-compose.cluster.yml", "deploy/nats/nats.conf", "deploy/nats/cluster.conf"]) {
      expect(raw(f)).not.toMatch(/password:\s*["']?(?!\$)\w/i);
    }
    const ignored = execFileSync("git", ["check-ignore", "deploy/tls/server-key.pem", ".env"], { cwd: ROOT, encoding: "utf8" });
    expect(ignored.trim().split("\n")).toEqual(["deploy/tls/server-key.pem", ".env"]);
  });

  it("its NATS configuration, run by the real nats-server, serves JetStream over TLS to the configured user only", async () => {
    const nats = s.services.nats!;
    const ports = { client: await freePort(), http: await freePort() };
    const { env: e, args } = localNats(nats, process.env as Record<string, string>, ports, {});
    const check = spawnSync(NATS_SERVER, ["-t", ...args], { env: e, encoding: "utf8" });
    expect(check.stderr).toMatch(/configuration file .* is valid/);
    expect(check.status).toBe(0);
    const srv = await spawnServerWithEnv(args, e);
    try {
      expect(await healthz(ports.http)).toEqual({ status: 200, body: expect.stringContaining('"ok"') });
      const nc = await connectTls(ports.client, nats.environment!.NATS_USER!, SECRETS.NATS_PASSWORD);
      try {
        expect(nc.info?.tls_required).toBe(true);
        const jsm = await jetstreamManager(nc);
        const si = await jsm.streams.add({ name: "COMPOSE", subjects: ["compose.>"] });
        expect(si.config.name).toBe("COMPOSE");
      } finally {
        await nc.close();
      }
      await expect(connectTls(ports.client, nats.environment!.NATS_USER!, "wrong")).rejects.toThrow(/[Aa]uthorization/);

      // The hsmsim service as compose runs it (its command and environment, the container paths mapped), on that
      // server: it serves, and the compose healthcheck (deploy/healthcheck.mjs) passes; once it stops, it fails.
      const h = s.services.hsmsim!;
      const named = { "hsmsim-data": join(work, "hsmsim-data") };
      mkdirSync(named["hsmsim-data"]);
      const local = (v: string) => v.replace("tls://nats:4222", `tls://127.0.0.1:${ports.client}`);
      const hEnv = { ...h.environment!, HSMSIM_NATS_CA: join(tls, "ca.pem") };
      expect(hostPath(h, h.environment!.HSMSIM_NATS_CA!, named)).toBe(join(ROOT, "deploy/tls/ca.pem"));
      const argv = h.command!.map((a) => (a.startsWith("/var/lib/hsmsim/") ? hostPath(h, a, named) : local(a)));
      const svc = await startCli(argv, { ready: /hsmsim serve: serving/, env: hEnv });
      try {
        const [, node, script, ...checkArgs] = h.healthcheck!.test;
        expect(node).toBe("node");
        const healthy = spawnSync(process.execPath, [join(ROOT, script!.replace("/app/", "")), ...checkArgs.map(local)], { env: { ...process.env, ...hEnv }, encoding: "utf8" });
        expect(healthy.stdout).toMatch(/hsmsim "demo": serving/);
        expect(healthy.status).toBe(0);
        expect(existsSync(join(named["hsmsim-data"], "hsmsim-demo.json"))).toBe(true); // the key file, on the volume
      } finally {
        expect((await svc.stop()).code).toBe(0);
      }
      const unhealthy = spawnSync(process.execPath, [join(ROOT, "deploy/healthcheck.mjs"), `tls://127.0.0.1:${ports.client}`, "demo"], { env: { ...process.env, ...hEnv }, encoding: "utf8" });
      expect(unhealthy.stdout).toMatch(/not healthy/);
      expect(unhealthy.status).toBe(1);
      // a plain (non-TLS) client is refused: the server requires TLS
      await expect(connect({ servers: `nats://127.0.0.1:${ports.client}`, user: "hsmsim", pass: SECRETS.NATS_PASSWORD, tls: null, timeout: 3000 })).rejects.toThrow();
    } finally {
      await stopProcess(srv);
    }
  });
});

/** spawnServer with an environment (the compose service's). */
async function spawnServerWithEnv(args: string[], env: Record<string, string>) {
  const saved = { ...process.env };
  // spawnServer inherits process.env: set the service's environment for the spawn only.
  Object.assign(process.env, env);
  try {
    return (await spawnServer(args, { name: "compose-nats" })).proc;
  } finally {
    for (const k of Object.keys(env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

describe("docker-compose.cluster.yml", () => {
  const c = load("docker-compose.cluster.yml");
  const s = deepInterpolate(c, { ...SECRETS });
  const nodes = ["nats-1", "nats-2", "nats-3"];

  it("has three JetStream nodes, each with its own volume and a healthcheck, routed to each other", () => {
    for (const n of nodes) {
      const svc = s.services[n]!;
      expect(svc.image).toMatch(/^nats:2\.9/);
      expect(svc.volumes).toContain(`${n}-data:/data`);
      expect(Object.keys(c.volumes ?? {})).toContain(`${n}-data`);
      expect(svc.environment!.NATS_SERVER_NAME).toBe(n);
      expect(svc.healthcheck!.test.join(" ")).toContain("/healthz");
      for (const m of nodes) expect(svc.environment!.NATS_ROUTES).toContain(`@${m}:6222`);
    }
    const h = s.services.hsmsim!;
    expect(h.command).toContain("--replicas");
    expect(h.command![h.command!.indexOf("--replicas") + 1]).toBe("3");
    expect(h.command![h.command!.indexOf("--nats") + 1]).toBe("tls://nats-1:4222,tls://nats-2:4222,tls://nats-3:4222");
    expect(Object.keys(h.depends_on!)).toEqual(nodes);
    expect(() => deepInterpolate(c, { NATS_PASSWORD: "x" })).toThrow(/NATS_ROUTE_PASSWORD/);
  });

  it("its three nodes, run by the real nats-server, form a JetStream cluster that keeps a stream at three replicas", async () => {
    const ports: { client: number; http: number; route: number }[] = [];
    for (let i = 0; i < 3; i++) ports.push({ client: await freePort(), http: await freePort(), route: await freePort() });
    const hosts = Object.fromEntries(nodes.map((n, i) => [n, `127.0.0.1:${ports[i]!.route}`]));
    const procs: Awaited<ReturnType<typeof spawnServerWithEnv>>[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const { env: e, args } = localNats(s.services[nodes[i]!]!, process.env as Record<string, string>, ports[i]!, hosts);
        const check = spawnSync(NATS_SERVER, ["-t", ...args], { env: e, encoding: "utf8" });
        expect(check.status, check.stderr).toBe(0);
        procs.push(await spawnServerWithEnv(args, e));
      }
      // The compose healthcheck: every node's /healthz turns 200 once the cluster has a meta leader.
      const deadline = Date.now() + 30_000;
      for (const p of ports) {
        while ((await healthz(p.http)).status !== 200) {
          if (Date.now() > deadline) throw new Error(`node on ${p.client} never healthy: ${(await healthz(p.http)).body}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      const nc = await connectTls(ports.map((p) => p.client), "hsmsim", SECRETS.NATS_PASSWORD);
      try {
        let si;
        for (;;) {
          try {
            const jsm = await jetstreamManager(nc, { timeout: 2000 });
            si = await jsm.streams.add({ name: "R3", subjects: ["r3.>"], num_replicas: 3 });
            break;
          } catch (e) {
            if (Date.now() > deadline) throw e;
            await new Promise((r) => setTimeout(r, 250));
          }
        }
        expect(si.config.num_replicas).toBe(3);
        expect(nodes).toContain(si.cluster?.leader);
        expect(si.cluster?.replicas?.map((r) => r.name).sort()).toEqual(nodes.filter((n) => n !== si.cluster?.leader).sort());
      } finally {
        await nc.close();
      }
    } finally {
      await Promise.all(procs.map((p) => stopProcess(p)));
    }
  });
});

describe("Dockerfile", () => {
  const d = raw("Dockerfile");
  it("builds hsmsim on node:20-slim with npm ci and runs the CLI", () => {
    expect(d).toMatch(/^FROM node:20-slim AS build$/m);
    expect(d).toMatch(/^RUN npm ci /m);
    expect(d).toMatch(/tsc -p tsconfig\.build\.json/);
    expect(d).toMatch(/^ENTRYPOINT \["node", "\/app\/bin\/hsmsim\.js"\]$/m);
    for (const m of d.matchAll(/^COPY (?!--from)(\S+)/gm)) expect(existsSync(join(ROOT, m[1]!)), m[1]).toBe(true);
  });
});
