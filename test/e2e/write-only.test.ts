/**
 * Write-only keys through the built CLI (docs/format.md, "Write-only keys"): `key add
 * --write-only`; a host that backs up through `lifeboat serve --append-only` with such a key,
 * incrementally from its host cache, and can neither read nor delete (exit 19, and the server
 * refuses its credentials any delete); the owner, with a full key on the server's folder,
 * restores, checks and prunes what the host wrote; guard and an SQLite database from the host.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import Database from "better-sqlite3";
import { ExitCode } from "../../src/core/errors.js";
import {
  assertCleanError,
  assertTreesEqual,
  baseEnv,
  CLI,
  jsonLines,
  PROJECT_ROOT,
  run,
  runOk,
  show,
  summaryOf,
  tempDir,
  writeRandomFile,
} from "../support/cli.js";

const FULL = "the owner's full password";
const WO = "the host's write-only password";

let dir = "";
let vault = ""; // the repository folder the server serves (the owner works on it directly)
let src = ""; // the host's files
let url = ""; // rest: URL of the append-only server
let server: ChildProcess | undefined;

const owner = (extra: Record<string, string> = {}) =>
  baseEnv({ LIFEBOAT_REPOSITORY: vault, LIFEBOAT_PASSWORD: FULL, ...extra });
const host = (extra: Record<string, string> = {}) =>
  baseEnv({
    LIFEBOAT_REPOSITORY: url,
    LIFEBOAT_PASSWORD: WO,
    LIFEBOAT_CACHE_DIR: path.join(dir, "host-cache"),
    ...extra,
  });

async function serveAppendOnly(root: string): Promise<string> {
  const child = spawn(
    process.execPath,
    [CLI, "--json", "serve", "--listen", "127.0.0.1:0", "--no-auth", "--append-only", "--path", root],
    { env: baseEnv(), stdio: ["ignore", "pipe", "pipe"] },
  );
  server = child;
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n").find((l) => l.includes('"listening"'));
      if (line) resolve(JSON.parse(line).url as string);
    });
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("exit", (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

/** Every object of the repository folder with the SHA-256 of its bytes. */
async function objects(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const f of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
    if (!f.isFile() || f.name.startsWith(".")) continue;
    const full = path.join(f.parentPath, f.name);
    out.set(
      path.relative(root, full),
      createHash("sha256")
        .update(await fs.readFile(full))
        .digest("hex"),
    );
  }
  return out;
}

before(async () => {
  dir = await tempDir("lifeboat-wo-");
  vault = path.join(dir, "vault");
  src = path.join(dir, "src");
  await fs.mkdir(path.join(src, "docs"), { recursive: true });
  await writeRandomFile(path.join(src, "big.bin"), 3, 7);
  for (let i = 0; i < 20; i++)
    await fs.writeFile(path.join(src, "docs", `doc${i}.txt`), `document ${i}\n`.repeat(200));
  await runOk(["init"], { env: owner() });
  // The owner backed up the same big file before: the host deduplicates against it.
  const mine = path.join(dir, "owner-src");
  await fs.mkdir(mine);
  await fs.copyFile(path.join(src, "big.bin"), path.join(mine, "big.bin"));
  await runOk(["backup", mine], { env: owner() });
  url = `rest:${await serveAppendOnly(vault)}`;
});

after(async () => {
  server?.kill("SIGTERM");
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test("key add --write-only converts the repository once (nothing re-encrypted) and key list tells the kinds apart", async () => {
  const before = await objects(vault);
  const r = await run(["key", "add", "--write-only", "--json"], {
    env: owner({ LIFEBOAT_NEW_PASSWORD: WO }),
  });
  assert.equal(r.code, 0, show(r));
  const added = jsonLines(r.stdout).find((l) => l.message_type === "key_added")!;
  assert.equal(added.kind, "write-only");
  assert.equal(added.index_files_resealed, 1);
  const after = await objects(vault);
  for (const [name, hash] of before)
    if (/^(data|snapshots|keys)\//.test(name)) assert.equal(after.get(name), hash, `${name} was rewritten`);
  const keys = JSON.parse((await runOk(["key", "list", "--json"], { env: owner() })).stdout) as {
    kind: string;
    current: boolean;
  }[];
  assert.deepEqual(keys.map((k) => k.kind).sort(), ["full", "write-only"]);
  // The write-only password opens it too, through the server, and knows itself.
  const own = JSON.parse((await runOk(["key", "list", "--json"], { env: host() })).stdout) as typeof keys;
  assert.equal(own.find((k) => k.current)!.kind, "write-only");
});

test("a write-only host backs up through an append-only server, deduplicating; the second backup reads no unchanged file", async () => {
  const first = await run(["backup", src, "--json"], { env: host() });
  assert.equal(first.code, 0, show(first));
  const s1 = summaryOf(first);
  assert.ok(Number(s1.data_added) < 1024 * 1024, `the big file is deduplicated: ${JSON.stringify(s1)}`);
  const second = await run(["backup", src, "--json"], { env: host() });
  assert.equal(second.code, 0, show(second));
  const s2 = summaryOf(second);
  assert.equal(s2.files_unmodified, 21, JSON.stringify(s2));
  assert.equal(s2.files_new, 0);
  assert.equal(s2.files_changed, 0);
  // (data_added is not 0: the folders above src, such as /tmp, change between runs.)
  // Its own snapshots are what it lists (from its cache).
  const snaps = JSON.parse((await runOk(["snapshots", "--json"], { env: host() })).stdout) as {
    paths: string[];
  }[];
  assert.equal(snaps.length, 2);
  assert.ok(snaps.every((s) => s.paths[0] === src));
});

test("a write-only host cannot read or delete: restore, check, forget, prune, cat, key add exit 19; the server refuses its credentials any delete", async () => {
  const before = await objects(vault);
  const target = path.join(dir, "nope");
  for (const args of [
    ["restore", "latest", "--target", target],
    ["check"],
    ["forget", "--keep-last", "1"],
    ["prune"],
    ["key", "add"],
  ]) {
    const r = await run(args, { env: host({ LIFEBOAT_NEW_PASSWORD: "x" }) });
    assertCleanError(r, ExitCode.needsFullKey, /write-only key/);
  }
  await assert.rejects(fs.access(target));
  // The host's storage credentials: the server refuses deletes and overwrites.
  const base = url.slice("rest:".length);
  const snap = (await fs.readdir(path.join(vault, "snapshots")))[0]!;
  for (const name of [`snapshots/${snap}`, "config", "config.wo"]) {
    const del = await fetch(`${base}objects/${name}`, { method: "DELETE" });
    assert.equal(del.status, 403, name);
  }
  const put = await fetch(`${base}objects/config.wo`, { method: "PUT", body: Buffer.from("evil") });
  assert.equal(put.status, 403);
  assert.deepEqual(await objects(vault), before, "nothing changed");
});

test("the owner restores what the write-only host wrote (verified), checks all data, forgets and prunes; the host keeps going", async () => {
  const out = path.join(dir, "restored");
  const r = await run(["restore", `latest:${src}`, "--target", out, "--verify"], { env: owner() });
  assert.equal(r.code, 0, show(r));
  await assertTreesEqual(src, out);
  const snaps = JSON.parse((await runOk(["snapshots", "--json"], { env: owner() })).stdout) as {
    id: string;
    writer?: string;
    paths: string[];
  }[];
  assert.equal(snaps.filter((s) => s.writer).length, 2, "the host's snapshots say who wrote them");
  await runOk(["check", "--read-data"], { env: owner() });
  const f = await run(["forget", "--keep-last", "1", "--prune"], { env: owner() });
  assert.equal(f.code, 0, show(f));
  await runOk(["prune"], { env: owner() });
  await runOk(["check", "--read-data"], { env: owner() });
  // The host's next backup still works (and takes its remaining snapshot as parent).
  await fs.appendFile(path.join(src, "docs", "doc3.txt"), "changed\n");
  const again = await run(["backup", src, "--json"], { env: host() });
  assert.equal(again.code, 0, show(again));
  const s = summaryOf(again);
  assert.equal(s.files_changed, 1, JSON.stringify(s));
  await runOk(["check", "--read-data"], { env: owner() });
});

test("guard from a write-only host: a command that deletes most files fails the guard (exit 4) and pins both snapshots for the owner", async () => {
  const app = path.join(dir, "app");
  await fs.mkdir(app);
  for (let i = 0; i < 30; i++) await fs.writeFile(path.join(app, `f${i}.txt`), `file ${i}\n`.repeat(100));
  const r = await run(
    ["guard", "--source", app, "--json", "--", "sh", "-c", `rm -f ${app}/f1*.txt ${app}/f2*.txt`],
    {
      env: host(),
    },
  );
  assert.equal(r.code, 4, show(r));
  const s = jsonLines(r.stdout).find((l) => l.action === "guard") as {
    before: string;
    after: string;
    rollback_needs_full_key?: boolean;
  };
  assert.equal(s.rollback_needs_full_key, true);
  const pins = JSON.parse((await runOk(["snapshots", "--json"], { env: owner() })).stdout) as {
    id: string;
    flagged: boolean;
  }[];
  assert.ok(pins.find((p) => p.id === s.after)?.flagged, "the after snapshot is flagged");
  // Pinned: a policy keeping one snapshot keeps both guard snapshots.
  await runOk(["forget", "--keep-last", "1", "--keep-before-anomaly", "0"], { env: owner() });
  const left = JSON.parse((await runOk(["snapshots", "--json"], { env: owner() })).stdout) as {
    id: string;
  }[];
  assert.ok(left.some((x) => x.id === s.before) && left.some((x) => x.id === s.after));
});

test("an SQLite database from a write-only host: backup and guard; the owner restores it", async () => {
  const db = path.join(dir, "app.db");
  const d = new Database(db);
  d.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
  const ins = d.prepare("INSERT INTO t(v) VALUES (?)");
  for (let i = 0; i < 500; i++) ins.run(`row ${i}`);
  d.close();
  const b = await run(["backup", `sqlite:${db}`, "--json"], { env: host() });
  assert.equal(b.code, 0, show(b));
  const wipe = `require("better-sqlite3")(${JSON.stringify(db)}).exec("DELETE FROM t WHERE id > 50")`;
  const g = await run(["guard", "--source", `sqlite:${db}`, "--", process.execPath, "-e", wipe], {
    env: host(),
    cwd: PROJECT_ROOT,
  });
  assert.equal(g.code, 4, show(g));
  assert.match(g.stdout, /lost \d+% of its rows/);
  assert.match(g.stdout, /with a full key/);
  const all = JSON.parse((await runOk(["snapshots", "--json"], { env: owner() })).stdout) as {
    id: string;
    tags: string[];
    source?: string;
  }[];
  const before = all.find((s) => s.source === "sqlite" && s.tags.includes("guard-before"))!;
  const out = path.join(dir, "restored.db");
  await runOk(["restore", before.id, "--target", out], { env: owner() });
  const r = new Database(out, { readonly: true });
  assert.equal((r.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n, 500);
  r.close();
});
