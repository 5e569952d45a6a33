/**
 * `hsmsim serve` as a child process, from the TypeScript sources (through tsx), for tests whose client blocks its
 * own thread (the synchronous pkcs11js drop-in over NATS, graphene on top of it) or that kill the service. Resolves
 * once the service printed its "serving" line; stderr is kept for failure messages. Every process started here is
 * SIGKILLed from a `process.on("exit")` hook.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stopProcess } from "./nats-server.js";

const ROOT = resolve(import.meta.dirname, "../..");
const LIVE = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of LIVE) p.kill("SIGKILL");
});

export interface ServeProcess {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** SIGINT: a clean stop. */
  stop(): Promise<{ code: number | null; signal: string | null }>;
  /** SIGKILL. */
  kill(): Promise<void>;
}

/** Run `hsmsim <command> …args` from the sources; `ready` is the stdout text that says it is up. */
export function startCli(args: string[], opts: { ready: RegExp; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<ServeProcess> {
  const code = `import(${JSON.stringify(join(ROOT, "src/cli/main.ts"))}).then((m) => m.main(process.argv.slice(1))).then((c) => process.exit(c ?? 0), (e) => { console.error(e); process.exit(1); });`;
  const proc = spawn(process.execPath, ["--import", "tsx", "-e", code, ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  LIVE.add(proc);
  proc.once("exit", () => LIVE.delete(proc));
  let out = "";
  let err = "";
  proc.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
  proc.stderr!.setEncoding("utf8").on("data", (c: string) => {
    if (err.length < 100_000) err += c;
  });
  const handle: ServeProcess = {
    proc,
    stdout: () => out,
    stderr: () => err,
    stop: () => stopProcess(proc, "SIGINT", 10_000),
    async kill() {
      await stopProcess(proc, "SIGKILL");
    },
  };
  return new Promise((resolveReady, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`hsmsim ${args[0]}: not ready in ${opts.timeoutMs ?? 30_000} ms\n${out}\n${err}`));
    }, opts.timeoutMs ?? 30_000);
    const onExit = (c: number | null) => {
      clearTimeout(timer);
      reject(new Error(`hsmsim ${args[0]} exited ${c} before it was ready\n${out}\n${err}`));
    };
    proc.once("exit", onExit);
    proc.stdout!.on("data", () => {
      if (opts.ready.test(out)) {
        clearTimeout(timer);
        proc.removeListener("exit", onExit);
        resolveReady(handle);
      }
    });
  });
}

/** `hsmsim serve --nats <servers> --name <sim>` with a fresh key file (or `keyFile`, to restart the same simulator). */
export function startServe(servers: string, sim: string, opts: { keyFile?: string; extra?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<ServeProcess & { keyFile: string }> {
  const keyFile = opts.keyFile ?? join(mkdtempSync(join(tmpdir(), "hsmsim-serve-")), `hsmsim-${sim}.json`);
  return startCli(["serve", "--nats", servers, "--name", sim, "--key-file", keyFile, ...(opts.extra ?? [])], { ready: /hsmsim serve: serving/, env: opts.env }).then((p) => ({ ...p, keyFile }));
}
