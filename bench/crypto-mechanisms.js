// Mechanism micro-benchmark: the pure mechanism modules (src/crypto/mechanisms) on the node engine (OpenSSL) and
// on the noble engine, single-part (C_Encrypt / C_Digest / C_Sign) and multi-part through the plain-data states,
// with bare node:crypto as the floor. No PKCS#11 layer: this measures what the deciders will call.
//
//   npm run build && node --expose-gc bench/crypto-mechanisms.js      (imports dist/)
//   npx tsx bench/crypto-mechanisms.js --src                           (imports src/, no build)
//   add --quick for short rounds
import { createCipheriv, createHash, createHmac } from "node:crypto";
import { measure } from "./lib/measure.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const from = args.includes("--src") ? "../src" : "../dist";
const m = await import(`${from}/crypto/mechanisms/index.js`);
const { CK } = await import(`${from}/pkcs11/constants.js`);

const cfg = quick ? { warmupMs: 100, minMs: 200, rounds: 3 } : { warmupMs: 300, minMs: 600, rounds: 5 };
const MiB = 1 << 20;
const fill = (n, v) => new Uint8Array(n).fill(v);
const key = fill(32, 7);
const iv = fill(16, 1);
const gcmParams = { iv: fill(12, 2), aad: new Uint8Array(0), tagBits: 128 };
const small = fill(64, 3);
const big = fill(MiB, 3);
/** 1 MiB as 16 parts of 64 KiB. */
const parts = Array.from({ length: 16 }, (_, i) => big.subarray(i * 65536, (i + 1) * 65536));

const registries = { node: m.createMechanisms(m.NODE_ENGINES), noble: m.createMechanisms(m.NOBLE_ENGINES) };
const cipher = (reg, name) => registries[reg].get(CK[name]).cipher;
const okOut = (r) => {
  if (!r.ok) throw new Error(`${r.rv} (${r.reason})`);
  return r.out;
};

function multi(stream, params, chunks) {
  let { state } = stream.init(key, params);
  for (const c of chunks) state = stream.update(key, state, c).state;
  return okOut(stream.final(key, state));
}

const rows = [];
function bench(name, bytes, op) {
  op(); // once outside the timer: a failure throws here
  const r = measure(op, cfg);
  rows.push({ name, us: r.usPerOp, mibs: bytes ? (bytes / MiB) * r.opsPerSec : undefined });
  const mibs = bytes ? `${((bytes / MiB) * r.opsPerSec).toFixed(0).padStart(7)} MiB/s` : "";
  console.log(`${name.padEnd(66)} ${r.usPerOp.toFixed(2).padStart(10)} µs ${mibs}`);
}

console.log(`node ${process.version}, ${quick ? "quick" : "full"} rounds, modules from ${from}\n`);

// AES-CBC-PAD
const cbcFloor = (data) => {
  const c = createCipheriv("aes-256-cbc", key, iv);
  return Buffer.concat([c.update(data), c.final()]);
};
const cbcCt = okOut(cipher("node", "CKM_AES_CBC_PAD").encrypt.once(key, { iv }, big));
for (const [label, data] of [["64 B", small], ["1 MiB", big]]) {
  bench(`AES-256-CBC-PAD encrypt ${label}  bare node:crypto`, data.length, () => cbcFloor(data));
  for (const reg of ["node", "noble"]) {
    const s = cipher(reg, "CKM_AES_CBC_PAD");
    bench(`AES-256-CBC-PAD encrypt ${label}  ${reg} single-part`, data.length, () => okOut(s.encrypt.once(key, { iv }, data)));
  }
}
for (const reg of ["node", "noble"]) {
  const s = cipher(reg, "CKM_AES_CBC_PAD");
  bench(`AES-256-CBC-PAD decrypt 1 MiB  ${reg} single-part`, MiB, () => okOut(s.decrypt.once(key, { iv }, cbcCt)));
  bench(`AES-256-CBC-PAD encrypt 1 MiB  ${reg} 16 parts, state between`, MiB, () => multi(s.encrypt, { iv }, parts));
}
{
  const s = cipher("node", "CKM_AES_CBC_PAD");
  bench("AES-256-CBC-PAD encrypt 64 B  node init+update+final", 64, () => multi(s.encrypt, { iv }, [small]));
}

// AES-GCM
// C_Encrypt's output is ciphertext || tag in one buffer, so the floor joins them too. (Joining costs far more than a
// memcpy at 1 MiB + 16 bytes on this VM: a fresh allocation of that size faults its pages in, ~1.2 ms a MiB.)
const gcmFloor = (data) => {
  const c = createCipheriv("aes-256-gcm", key, gcmParams.iv);
  const body = c.update(data);
  c.final();
  return Buffer.concat([body, c.getAuthTag()]);
};
const gcmCt = okOut(cipher("node", "CKM_AES_GCM").encrypt.once(key, gcmParams, big));
for (const [label, data] of [["64 B", small], ["1 MiB", big]]) {
  bench(`AES-256-GCM encrypt ${label}  bare node:crypto`, data.length, () => gcmFloor(data));
  for (const reg of ["node", "noble"]) {
    const s = cipher(reg, "CKM_AES_GCM");
    bench(`AES-256-GCM encrypt ${label}  ${reg} single-part`, data.length, () => okOut(s.encrypt.once(key, gcmParams, data)));
  }
}
for (const reg of ["node", "noble"]) {
  const s = cipher(reg, "CKM_AES_GCM");
  bench(`AES-256-GCM decrypt 1 MiB  ${reg} single-part`, MiB, () => okOut(s.decrypt.once(key, gcmParams, gcmCt)));
  bench(`AES-256-GCM encrypt 1 MiB  ${reg} 16 parts (CTR per part, GCM tag at final)`, MiB, () => multi(s.encrypt, gcmParams, parts));
  bench(`AES-256-GCM decrypt 1 MiB  ${reg} 16 parts (buffered)`, MiB, () =>
    multi(s.decrypt, gcmParams, Array.from({ length: 16 }, (_, i) => gcmCt.subarray(i * 65537, (i + 1) * 65537))),
  );
}
{
  const s = cipher("node", "CKM_AES_GCM");
  bench("AES-256-GCM encrypt 64 B  node init+update+final", 64, () => multi(s.encrypt, gcmParams, [small]));
}

// SHA-256 and HMAC-SHA256, 64 B
bench("SHA-256 64 B  bare node:crypto", 64, () => createHash("sha256").update(small).digest());
for (const reg of ["node", "noble"]) {
  const d = registries[reg].get(CK.CKM_SHA256).digest;
  bench(`SHA-256 64 B  ${reg} single-part`, 64, () => d.once(small));
}
{
  const d = registries.node.get(CK.CKM_SHA256).digest;
  bench("SHA-256 64 B  init+update+final (saveable noble context)", 64, () => d.final(d.update(d.init(), small)));
}
bench("HMAC-SHA256 64 B  bare node:crypto", 64, () => createHmac("sha256", key).update(small).digest());
for (const reg of ["node", "noble"]) {
  const h = registries[reg].get(CK.CKM_SHA256_HMAC).mac;
  bench(`HMAC-SHA256 64 B  ${reg} single-part`, 64, () => okOut(h.once(key, undefined, small)));
}
{
  const h = registries.node.get(CK.CKM_SHA256_HMAC).mac;
  bench("HMAC-SHA256 64 B  init+update+final (saveable)", 64, () => {
    const { state } = h.init(key, undefined);
    return h.final(key, h.update(state, small));
  });
}
