/**
 * Helpers to run the real SoftHSM 2.6.1 (Debian package) with a private, temporary token directory.
 *
 * SoftHSM reads SOFTHSM2_CONF at C_Initialize, so one long-lived process can point at a fresh token directory
 * for every sequence: write a config with `createSoftHsmEnv()`, set `process.env.SOFTHSM2_CONF = env.confPath`
 * (or call `env.activate()`), then C_Initialize.
 */
import { createRequire } from "node:module";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const SOFTHSM_LIB = "/usr/lib/softhsm/libsofthsm2.so";

const require = createRequire(import.meta.url);

/** The subset of the pkcs11js module this harness uses (pkcs11js is CJS and untyped here). */
export interface Pkcs11jsModule {
  PKCS11: new () => Pkcs11Like;
  Pkcs11Error: new (...args: never[]) => Error;
  [constant: string]: unknown;
}

/** A pkcs11js-compatible object: `load` plus `C_*` methods. */
export interface Pkcs11Like {
  load(arg: unknown): void;
  [method: string]: unknown;
}

let cachedModule: Pkcs11jsModule | undefined;

/** The real pkcs11js module (native addon). */
export function pkcs11js(): Pkcs11jsModule {
  cachedModule ??= require("pkcs11js") as Pkcs11jsModule;
  return cachedModule;
}

export function softHsmAvailable(): boolean {
  return existsSync(SOFTHSM_LIB);
}

export interface SoftHsmEnv {
  /** Root temp directory (holds the config and `tokens/`). */
  readonly dir: string;
  readonly tokenDir: string;
  readonly confPath: string;
  /** Point this process at the env: sets process.env.SOFTHSM2_CONF (effective at the next C_Initialize). */
  activate(): void;
  /** Delete the directory tree. */
  remove(): void;
}

export interface SoftHsmConfOptions {
  /** slots.removable (default false). */
  removable?: boolean;
  /** log.level (default ERROR). */
  logLevel?: string;
}

export function softHsmConfText(tokenDir: string, opts: SoftHsmConfOptions = {}): string {
  return [
    `directories.tokendir = ${tokenDir}`,
    "objectstore.backend = file",
    `log.level = ${opts.logLevel ?? "ERROR"}`,
    `slots.removable = ${opts.removable === true ? "true" : "false"}`,
    "",
  ].join("\n");
}

/** Create a fresh temporary SoftHSM environment: `<tmp>/softhsm2.conf` and an empty `<tmp>/tokens`. */
export function createSoftHsmEnv(opts: SoftHsmConfOptions = {}): SoftHsmEnv {
  const dir = mkdtempSync(join(tmpdir(), "hsmsim-softhsm-"));
  const tokenDir = join(dir, "tokens");
  mkdirSync(tokenDir);
  const confPath = join(dir, "softhsm2.conf");
  writeFileSync(confPath, softHsmConfText(tokenDir, opts));
  return {
    dir,
    tokenDir,
    confPath,
    activate() {
      process.env.SOFTHSM2_CONF = confPath;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `new PKCS11()` from the real pkcs11js, loaded with libsofthsm2.so. Call `activate()` on an env first. */
export function loadSoftHsm(): Pkcs11Like {
  const { PKCS11 } = pkcs11js();
  const p = new PKCS11();
  p.load(SOFTHSM_LIB);
  return p;
}
