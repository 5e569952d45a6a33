/**
 * NATS connection settings from the environment (src/remote/connect-options.ts): what `hsmsim serve`, `hsmsim
 * project`, the remote clients and the compose healthcheck read. (The compose test uses them against a real TLS
 * server with a user and password.)
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nkeys } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { natsConnectOptions, serverList } from "../../src/remote/connect-options.js";

describe("natsConnectOptions", () => {
  it("takes a comma-separated server list and nothing else by default", () => {
    expect(serverList("nats://a:4222, tls://b:4222,")).toEqual(["nats://a:4222", "tls://b:4222"]);
    expect(natsConnectOptions("nats://a:4222", {})).toEqual({ servers: ["nats://a:4222"] });
    expect(() => serverList(" , ")).toThrow(TypeError);
  });

  it("user and password, token, TLS files from HSMSIM_NATS_*", () => {
    expect(natsConnectOptions("nats://a:1", { HSMSIM_NATS_USER: "u", HSMSIM_NATS_PASSWORD: "p" })).toMatchObject({ user: "u", pass: "p" });
    expect(natsConnectOptions("nats://a:1", { HSMSIM_NATS_TOKEN: "t" })).toMatchObject({ token: "t" });
    expect(natsConnectOptions("nats://a:1", { HSMSIM_NATS_CA: "/ca.pem", HSMSIM_NATS_CERT: "/c.pem", HSMSIM_NATS_KEY: "/k.pem" }).tls).toEqual({
      caFile: "/ca.pem",
      certFile: "/c.pem",
      keyFile: "/k.pem",
    });
    // empty values count as unset (compose passes "" for an unset optional variable)
    expect(natsConnectOptions("nats://a:1", { HSMSIM_NATS_USER: "", HSMSIM_NATS_CA: "" })).toEqual({ servers: ["nats://a:1"] });
  });

  it("an nkey seed file becomes an authenticator; two kinds of credentials at once are refused", () => {
    const dir = mkdtempSync(join(tmpdir(), "hsmsim-nkey-"));
    const seed = join(dir, "seed");
    const user = nkeys.createUser();
    writeFileSync(seed, new TextDecoder().decode(user.getSeed()) + "\n");
    const o = natsConnectOptions("nats://a:1", { HSMSIM_NATS_NKEY_SEED: seed });
    expect(typeof o.authenticator).toBe("function");
    const auth = (o.authenticator as (nonce?: string) => { nkey?: string; sig?: string })("nonce");
    expect(auth.nkey).toBe(user.getPublicKey());
    expect(user.verify(new TextEncoder().encode("nonce"), new Uint8Array(Buffer.from(auth.sig!, "base64url")))).toBe(true);
    expect(() => natsConnectOptions("nats://a:1", { HSMSIM_NATS_USER: "u", HSMSIM_NATS_TOKEN: "t" })).toThrow(/only one of/);
  });
});
