/** The hsmsim command line: `hsmsim <command> [options]`. Exit codes: 0 done, 1 failed, 2 usage. */
import { demo } from "./demo.js";

const USAGE = `usage: hsmsim <command> [--json]

commands:
  demo     run the documented example (open, log in, use, inspect, log out, close) on the embedded default,
           printing each step's session state from the read model and the audit trail
  help     this text`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const json = rest.includes("--json");
  const unknown = rest.filter((a) => a !== "--json");
  switch (cmd) {
    case "demo":
      if (unknown.length) return usage(`hsmsim demo: unknown option ${unknown[0]}`);
      return demo({ json });
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return 0;
    default:
      return usage(`hsmsim: unknown command "${cmd}"`);
  }
}

function usage(msg: string): number {
  console.error(`${msg}\n\n${USAGE}`);
  return 2;
}
