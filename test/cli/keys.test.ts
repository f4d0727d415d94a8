import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { baseEnv, jsonLines, run, tempDir } from "../support/cli.js";

test("key add, list, remove and passwd", async () => {
  const dir = await tempDir();
  try {
    const repo = path.join(dir, "repo");
    const first = baseEnv({ LIFEBOAT_REPOSITORY: repo, LIFEBOAT_PASSWORD: "first" });
    const second = baseEnv({ LIFEBOAT_REPOSITORY: repo, LIFEBOAT_PASSWORD: "second" });
    const third = baseEnv({ LIFEBOAT_REPOSITORY: repo, LIFEBOAT_PASSWORD: "third" });
    assert.equal((await run(["init"], { env: first })).code, 0);
    await fs.writeFile(path.join(dir, "data.txt"), "data\n");
    assert.equal((await run(["backup", path.join(dir, "data.txt")], { env: first })).code, 0);
    const pwFile = path.join(dir, "new-password");
    await fs.writeFile(pwFile, "second\n");
    // No new password given: refused rather than silently reusing the current one.
    const none = await run(["key", "add"], { env: first });
    assert.equal(none.code, 12);
    assert.match(none.stderr, /new-password-file/);
    assert.equal((await run(["key", "add", "--new-password-file", pwFile], { env: first })).code, 0);
    const list = JSON.parse((await run(["key", "list", "--json"], { env: second })).stdout) as {
      id: string;
      current: boolean;
    }[];
    assert.equal(list.length, 2);
    const firstId = list.find((k) => !k.current)!.id;
    // The key in use cannot be removed; another one can.
    const self = list.find((k) => k.current)!.id;
    assert.equal((await run(["key", "remove", self.slice(0, 8)], { env: second })).code, 1);
    assert.equal((await run(["key", "remove", firstId.slice(0, 8)], { env: second })).code, 0);
    assert.equal((await run(["snapshots"], { env: first })).code, 12);
    assert.equal((await run(["snapshots"], { env: second })).code, 0);
    // passwd: the old password stops working, the new one opens the same data.
    const p = await run(["key", "passwd", "--json"], { env: { ...second, LIFEBOAT_NEW_PASSWORD: "third" } });
    assert.equal(p.code, 0, p.stderr);
    assert.equal(jsonLines(p.stdout)[0]!.message_type, "key_changed");
    assert.equal((await run(["snapshots"], { env: second })).code, 12);
    const s = await run(["snapshots", "--json"], { env: third });
    assert.equal(JSON.parse(s.stdout).length, 1);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
