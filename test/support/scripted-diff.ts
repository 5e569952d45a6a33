/**
 * Running one pkcs11js script through the real SoftHSM 2.6.1 (npm pkcs11js on the Debian library, a fresh token
 * directory) and through the drop-in on a softhsm2-profile simulator, each step traced as a line: its label and its
 * value (or the error's class, message, code and method). `show` maps a value to what is compared (a signature's
 * length and whether it verifies, say, where the bytes are random by nature).
 */
import { PKCS11 as DropIn } from "../../src/pkcs11/pkcs11js.js";
import { createSoftHsmEnv, loadSoftHsm, type SoftHsmEnv } from "./softhsm.js";

export type P = Record<string, (...a: unknown[]) => any>;
export type Trace = (name: string, f: () => unknown, show?: (r: any) => unknown) => any;

/**
 * Run a script and trace it; the module is finalised afterwards, whatever happened, unless the script finalises it
 * itself (`finalize: false`).
 */
export function observe(p: P, script: (p: P, t: Trace) => void, { finalize = true } = {}): string[] {
  const out: string[] = [];
  const t: Trace = (name, f, show = (r) => r) => {
    try {
      const r = f();
      out.push(`${name} OK ${JSON.stringify(show(r), (_k, v) => (v?.type === "Buffer" ? Buffer.from(v.data).toString("hex") : typeof v === "bigint" ? String(v) : v))}`);
      return r;
    } catch (e) {
      const x = e as Error & { code?: number; method?: string };
      out.push(`${name} ERR ${x.constructor.name} ${x.message} code=${x.code} method=${x.method}`);
      return undefined;
    }
  };
  try {
    script(p, t);
  } finally {
    if (finalize) p.C_Finalize();
  }
  return out;
}

/** The script's trace on real SoftHSM and on hsmsim; the token directory goes on the list given, for removal. */
export function bothSides(script: (p: P, t: Trace) => void, envs: SoftHsmEnv[], opts: { finalize?: boolean } = {}): { real: string[]; ours: string[] } {
  const env = createSoftHsmEnv();
  envs.push(env);
  env.activate();
  const real = observe(loadSoftHsm() as unknown as P, script, opts);
  const sim = new DropIn();
  sim.load("memory:?profile=softhsm2");
  return { real, ours: observe(sim as unknown as P, script, opts) };
}
