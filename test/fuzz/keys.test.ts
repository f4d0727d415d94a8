import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  createKeyFile,
  generateMasterKeys,
  type KeyFile,
  parseKeyFile,
  unwrapKeyFile,
} from "../../src/repo/keys.js";
import { hostileJson } from "./mutate.js";
import { expectDecodes, expectDecodesAsync, fuzz, fuzzAsync } from "./support.js";

/**
 * Key files (src/repo/keys.ts): parsing, and unwrapping a damaged file with the right
 * password or a good file with a wrong one. A parsed file must be safe to hand to scrypt: a
 * cost that is a power of two and a memory need that is bounded (a garbled file must not make
 * the program try to allocate gigabytes or fail inside node:crypto).
 */
const PASSWORD = "correct horse";
process.env.LIFEBOAT_KDF_N = "1024";
const keys = generateMasterKeys();
const files = await Promise.all([createKeyFile(PASSWORD, keys), createKeyFile("other", keys)]);
const docs = files.map((f) => JSON.parse(f.bytes.toString("utf8")) as KeyFile);

/** scrypt needs 128·N·r bytes; a key file asking for more than 1 GiB is not one we wrote. */
function validKdf(f: KeyFile): void {
  const { N, r, p } = f.kdf;
  assert.ok(Number.isSafeInteger(N) && N >= 2 && (N & (N - 1)) === 0, `N = ${N}`);
  assert.ok(Number.isSafeInteger(r) && r >= 1 && Number.isSafeInteger(p) && p >= 1, `r = ${r}, p = ${p}`);
  assert.ok(128 * N * r <= 2 ** 30, `scrypt memory ${128 * N * r}`);
  assert.ok(p <= 16, `p = ${p}`);
}

test("fuzz key file: a usable key file or a LifeboatError", () => {
  fuzz("parseKeyFile", [hostileJson(docs)], (buf) => {
    expectDecodes("parseKeyFile", buf, () => parseKeyFile(buf, "keys/fuzz"), validKdf);
  });
});

test("fuzz key file: unwrapping a damaged file gives the keys, nothing, or a LifeboatError", async () => {
  await fuzzAsync(
    "unwrapKeyFile",
    [hostileJson(docs), fc.constantFrom(PASSWORD, "wrong", "")],
    async (buf, password) => {
      const file = expectDecodes("parseKeyFile", buf, () => parseKeyFile(buf, "keys/fuzz"), validKdf);
      if (!file) return;
      await expectDecodesAsync(
        "unwrapKeyFile",
        buf,
        () => unwrapKeyFile(file, password),
        (k) => {
          if (k === undefined) return;
          for (const name of ["id", "chunker", "data", "meta"] as const)
            assert.ok(k[name].equals(keys[name]), `unwrapped a different ${name} key`);
        },
      );
    },
    0.5,
  );
});

test("key file: the right password opens it, a wrong one does not", async () => {
  const f = parseKeyFile(files[0]!.bytes, "k");
  assert.ok((await unwrapKeyFile(f, PASSWORD))?.meta.equals(keys.meta));
  assert.equal(await unwrapKeyFile(f, "wrong"), undefined);
});
