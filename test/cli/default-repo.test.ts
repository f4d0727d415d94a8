import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { baseEnv, describeTree, run, tempDir } from "../support/cli.js";

test("with no repository given, backup creates the default one and says where the password is", async () => {
  const home = await tempDir("lifeboat-home-");
  try {
    const env = baseEnv({ HOME: home, XDG_DATA_HOME: "", XDG_CONFIG_HOME: "" });
    const src = path.join(home, "Documents");
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, "notes.txt"), "remember the milk\n");
    const b = await run(["backup", src], { env });
    assert.equal(b.code, 0, b.stderr);
    const repo = path.join(home, ".local", "share", "lifeboat", "repo");
    const pw = path.join(home, ".config", "lifeboat", "password");
    assert.ok(b.stdout.includes(repo), b.stdout);
    assert.ok(b.stdout.includes(pw), b.stdout);
    assert.match(b.stdout, /keep a copy/i);
    assert.equal((await fs.stat(pw)).mode & 0o777, 0o600);
    assert.ok((await fs.stat(path.join(repo, "config"))).isFile());
    // Second run: no "created" message, and every command finds the default repository alone.
    const b2 = await run(["backup", src], { env });
    assert.equal(b2.code, 0, b2.stderr);
    assert.doesNotMatch(b2.stdout, /created/);
    const s = await run(["snapshots", "--json"], { env });
    assert.equal(JSON.parse(s.stdout).length, 2);
    const target = path.join(home, "restored");
    assert.equal((await run(["restore", "latest", "--target", target], { env })).code, 0);
    assert.deepEqual(await describeTree(path.join(target, src)), await describeTree(src));
    // XDG variables move both places.
    const env2 = baseEnv({
      HOME: home,
      XDG_DATA_HOME: path.join(home, "data"),
      XDG_CONFIG_HOME: path.join(home, "cfg"),
    });
    assert.equal((await run(["backup", src], { env: env2 })).code, 0);
    assert.ok((await fs.stat(path.join(home, "data", "lifeboat", "repo", "config"))).isFile());
    assert.ok((await fs.stat(path.join(home, "cfg", "lifeboat", "password"))).isFile());
    // Other commands do not create it.
    const env3 = baseEnv({ HOME: path.join(home, "nobody") });
    const none = await run(["snapshots"], { env: env3 });
    assert.equal(none.code, 10);
    assert.match(none.stderr, /default repository .* does not exist yet/);
  } finally {
    await fs.rm(home, { recursive: true, force: true });
  }
});
