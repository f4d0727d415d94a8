import assert from "node:assert/strict";
import { scryptSync } from "node:crypto";
import { test } from "node:test";
import fc from "fast-check";
import { seal } from "../../src/core/crypto.js";
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

/** The wrapped keys, damaged and sealed again with the right password's key (docs/format.md). */
test("fuzz key file: an authentic file holding damaged keys gives a LifeboatError", async () => {
  const file = docs[0]!;
  const wrapping = scryptSync(PASSWORD.normalize("NFC"), Buffer.from(file.kdf.salt, "base64"), 32, {
    N: file.kdf.N,
    r: file.kdf.r,
    p: file.kdf.p,
  });
  const inner = {
    id: keys.id.toString("base64"),
    chunker: keys.chunker.toString("base64"),
    data: keys.data.toString("base64"),
    meta: keys.meta.toString("base64"),
  };
  await fuzzAsync("unwrapKeyFile (damaged keys)", [hostileJson([inner])], async (buf) => {
    const sealed = seal(wrapping, buf, Buffer.from("lifeboat key v1", "utf8")).toString("base64");
    await expectDecodesAsync(
      "unwrapKeyFile",
      buf,
      () => unwrapKeyFile({ ...file, keys: sealed }, PASSWORD),
      (k) => {
        assert.ok(k, "an authentic file must open");
        for (const name of ["id", "chunker", "data", "meta"] as const) assert.equal(k[name].length, 32);
      },
    );
  });
});

test("key file: the right password opens it, a wrong one does not", async () => {
  const f = parseKeyFile(files[0]!.bytes, "k");
  assert.ok((await unwrapKeyFile(f, PASSWORD))?.meta.equals(keys.meta));
  assert.equal(await unwrapKeyFile(f, "wrong"), undefined);
});
