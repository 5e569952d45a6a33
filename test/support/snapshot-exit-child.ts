/**
 * For snapshot-thread.int.spec.ts: `node --import tsx snapshot-exit-child.ts <dir> <snapshotEvery>`. Opens a file
 * store (background snapshots, no closing snapshot), makes calls until the append after record `snapshotEvery` has
 * posted a snapshot to the background writer, prints `posted <seq>` and calls process.exit(0) at once, without closing
 * the store: the store's exit hook must still wait for that snapshot.
 */
import { FileEventStore } from "../../src/events/file-store.js";
import { CK } from "../../src/pkcs11/constants.js";
import { testSimulator, userSession } from "./sim.js";
import { writeLine } from "./ack.js";

const [dir, every] = process.argv.slice(2);
const store = new FileEventStore(dir!, { durability: "group", snapshotEvery: Number(every), snapshotOnClose: false });
const sim = testSimulator({ store });
const a = sim.application();
const h = userSession(a, "exit");
const template = [
  { type: CK.CKA_CLASS, value: new Uint8Array(8) }, // CKO_DATA (0)
  { type: CK.CKA_TOKEN, value: Uint8Array.of(1) },
  { type: CK.CKA_VALUE, value: new Uint8Array(256).fill(1) },
];
while (sim.lastSeq <= Number(every)) {
  const rv = a.call({ fn: "C_CreateObject", args: { hSession: h, template } }).rv;
  if (rv !== CK.CKR_OK) throw new Error(`C_CreateObject answered ${rv}`);
}
// `written`: 0 unless the writer was done already (then the exit had nothing to wait for; the test still holds).
writeLine(`posted ${every} written ${store.snapshotStats.written}`);
process.exit(0);
