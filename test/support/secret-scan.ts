/** Scanning raw log text for secrets: each secret as hex (both cases), base64 (both alphabets) and, if printable, UTF-8. */
import { expect } from "vitest";

export function encodings(secret: Uint8Array): string[] {
  const b = Buffer.from(secret);
  const e = [b.toString("hex"), b.toString("hex").toUpperCase(), b.toString("base64"), b.toString("base64url")];
  const text = b.toString("utf8");
  if (/^[\x20-\x7e]+$/.test(text)) e.push(text);
  return e;
}

export function expectNoSecrets(raw: string, secrets: Uint8Array[]): void {
  for (const s of secrets) {
    for (const e of encodings(s)) expect(raw.includes(e), `log contains a secret (${s.length} bytes) as ${e.slice(0, 24)}…`).toBe(false);
  }
}
