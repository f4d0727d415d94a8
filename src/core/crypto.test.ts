import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { NONCE_SIZE, open, seal, sealParts } from "./crypto.js";

test("every sealed object gets its own nonce, across refills of the nonce pool", () => {
  const key = randomBytes(32);
  const seen = new Set<string>();
  const sealed: Buffer[] = [];
  for (let i = 0; i < 2000; i++) {
    const s = seal(key, Buffer.from(`message ${i}`), Buffer.from("aad"));
    sealed.push(s);
    seen.add(s.subarray(0, NONCE_SIZE).toString("hex"));
  }
  assert.equal(seen.size, 2000);
  // Nonces handed out earlier are not overwritten by later refills.
  for (const [i, s] of sealed.entries()) {
    assert.equal(open(key, s, Buffer.from("aad"), "t").toString(), `message ${i}`);
  }
});

test("sealParts joins to what open accepts", () => {
  const key = randomBytes(32);
  const parts = sealParts(key, Buffer.from("hello"), Buffer.from("x"));
  assert.equal(open(key, Buffer.concat(parts), Buffer.from("x"), "t").toString(), "hello");
  assert.throws(() => open(key, Buffer.concat(parts), Buffer.from("y"), "t"), /authentication failed/);
});
