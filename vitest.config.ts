import { fileURLToPath } from "node:url";
import { configDefaults, defineConfig } from "vitest/config";

/** Tests that run third-party pkcs11js consumers on top of the drop-in (`pkcs11js` aliased to it). */
const DROP_IN_CONSUMERS = ["test/integration/graphene.int.spec.ts", "test/integration/nats-dropin-graphene.int.spec.ts"];

const shared = {
  testTimeout: 60_000,
  hookTimeout: 60_000,
  pool: "forks",
} as const;

export default defineConfig({
  test: {
    include: ["test/**/*.spec.ts"],
    ...shared,
    projects: [
      {
        // Everything else: `pkcs11js` is the real native package (test/support/softhsm.ts, test/differential/*).
        test: {
          name: "hsmsim",
          include: ["test/**/*.spec.ts"],
          exclude: [...configDefaults.exclude, ...DROP_IN_CONSUMERS],
          ...shared,
        },
      },
      {
        // graphene-pk11 on top of hsmsim: graphene's own `pkcs11js` import must resolve to the drop-in.
        // An alias only acts on imports that go through Vite's resolver, never on Node's require (createRequire).
        // graphene's "main" build is CommonJS (`require("pkcs11js")`, which Node would resolve to the native
        // package), so this project resolves packages through their "module" field (vitest sets mainFields to []
        // for its ssr environment) to get graphene's ESM build (`import * as pkcs11 from "pkcs11js"`), and inlines
        // graphene so that Vite, not Node, processes those imports. Scoped to this project: no other test gets the
        // drop-in when it asks for "pkcs11js".
        resolve: {
          alias: [{ find: /^pkcs11js$/, replacement: fileURLToPath(new URL("./src/pkcs11/pkcs11js.ts", import.meta.url)) }],
        },
        environments: { ssr: { resolve: { mainFields: ["module"] } } },
        test: {
          name: "drop-in-consumers",
          include: DROP_IN_CONSUMERS,
          server: { deps: { inline: ["graphene-pk11"] } },
          ...shared,
        },
      },
    ],
  },
});
