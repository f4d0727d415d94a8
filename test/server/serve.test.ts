/**
 * `lifeboat serve` and rest: repositories through the built CLI: a full round trip, users and
 * private repositories, append-only refusing deletes and overwrites (also proven with raw HTTP
 * requests), and clear errors for wrong credentials, --no-auth off loopback, unreachable servers.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { baseEnv, CLI, describeTree, run, tempDir, writeRandomFile } from "../support/cli.js";

let dir: string;
let src: string;
let users: string;
const servers: ChildProcess[] = [];

before(async () => {
  dir = await tempDir("lifeboat-serve-");
  src = path.join(dir, "src");
  await fs.mkdir(src);
  await writeRandomFile(path.join(src, "data.bin"), 3, 21);
  await fs.writeFile(path.join(src, "notes.txt"), "served\n".repeat(500));
  users = path.join(dir, "users");
  const lines: string[] = [];
  for (const [name, pw] of [
    ["alice", "alice pw"],
    ["bob", "bob pw"],
  ]) {
    const h = await run(["serve", "--hash-password"], { env: baseEnv({ LIFEBOAT_NEW_PASSWORD: pw! }) });
    assert.equal(h.code, 0, h.stderr);
    lines.push(`${name}:${h.stdout.trim()}`);
  }
  await fs.writeFile(users, `${lines.join("\n")}\n`);
});
after(async () => {
  for (const s of servers) s.kill("SIGTERM");
  await fs.rm(dir, { recursive: true, force: true });
});

/** Starts `lifeboat serve` on a free port; resolves with its base URL. */
async function serve(args: string[]): Promise<string> {
  const child = spawn(process.execPath, [CLI, "--json", "serve", "--listen", "127.0.0.1:0", ...args], {
    env: baseEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  servers.push(child);
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

const restUrl = (base: string, user: string, pw: string, repo: string) =>
  `rest:${base.replace("://", `://${user}:${encodeURIComponent(pw)}@`)}${repo}`;

test("round trip through a server: init, backup, restore --verify, check, forget --prune", async () => {
  const base = await serve(["--path", path.join(dir, "plain"), "--htpasswd", users]);
  const env = baseEnv({
    LIFEBOAT_REPOSITORY: restUrl(base, "alice", "alice pw", "alice"),
    LIFEBOAT_PASSWORD: "r",
  });
  for (const args of [["init"], ["backup", src], ["backup", src]]) {
    const r = await run(args, { env });
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  }
  const target = path.join(dir, "restored");
  const r = await run(["restore", "latest", "--target", target, "--verify"], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await describeTree(path.join(target, src)), await describeTree(src));
  assert.equal((await run(["check", "--read-data"], { env })).code, 0);
  const f = await run(["forget", "--keep-last", "1", "--prune"], { env });
  assert.equal(f.code, 0, f.stderr);
  assert.equal((JSON.parse((await run(["snapshots", "--json"], { env })).stdout) as unknown[]).length, 1);
  // The data is in a folder named after the repository.
  assert.ok((await fs.stat(path.join(dir, "plain", "alice", "config"))).isFile());
});

test("wrong password, no credentials, another user's private repository", async () => {
  const base = await serve(["--path", path.join(dir, "private"), "--htpasswd", users, "--private-repos"]);
  const wrong = await run(["init"], {
    env: baseEnv({ LIFEBOAT_REPOSITORY: restUrl(base, "alice", "nope", "alice"), LIFEBOAT_PASSWORD: "r" }),
  });
  assert.equal(wrong.code, 16, wrong.stderr);
  assert.match(wrong.stderr, /refused the credentials/);
  assert.equal(wrong.stderr.trim().split("\n").length, 2, "one line and a hint");
  const anon = await fetch(`${base}alice/exists`);
  assert.equal(anon.status, 401);
  const other = await run(["init"], {
    env: baseEnv({ LIFEBOAT_REPOSITORY: restUrl(base, "alice", "alice pw", "bob"), LIFEBOAT_PASSWORD: "r" }),
  });
  assert.notEqual(other.code, 0);
  assert.match(other.stderr, /may only use the repository \/alice\//);
});

test("append-only: backups work; deletes and overwrites are refused, also over raw HTTP", async () => {
  const root = path.join(dir, "vault");
  const base = await serve(["--path", root, "--htpasswd", users, "--append-only"]);
  const env = baseEnv({ LIFEBOAT_REPOSITORY: restUrl(base, "bob", "bob pw", "bob"), LIFEBOAT_PASSWORD: "r" });
  assert.equal((await run(["init"], { env })).code, 0);
  assert.equal((await run(["backup", src], { env })).code, 0, "backups (and their session markers) work");
  await fs.appendFile(path.join(src, "notes.txt"), "more\n");
  assert.equal((await run(["backup", src], { env })).code, 0);

  const before = await describeTree(path.join(root, "bob"));
  const f = await run(["forget", "--keep-last", "1", "--prune"], { env });
  assert.notEqual(f.code, 0);
  assert.match(f.stderr, /append-only/);
  assert.match(f.stderr, /run forget and prune on the server itself/);
  assert.deepEqual(await describeTree(path.join(root, "bob")), before, "nothing was deleted");

  const auth = { authorization: `Basic ${Buffer.from("bob:bob pw").toString("base64")}` };
  const snaps = (await fs.readdir(path.join(root, "bob", "snapshots"))).filter((n) => !n.startsWith("."));
  const del = await fetch(`${base}bob/objects/snapshots/${snaps[0]}`, { method: "DELETE", headers: auth });
  assert.equal(del.status, 403);
  const config = await fs.readFile(path.join(root, "bob", "config"));
  const overwrite = await fetch(`${base}bob/objects/config`, {
    method: "PUT",
    headers: auth,
    body: Buffer.from("evil"),
  });
  assert.equal(overwrite.status, 403);
  const same = await fetch(`${base}bob/objects/config`, { method: "PUT", headers: auth, body: config });
  assert.equal(same.status, 200, "re-uploading identical bytes (a retry) is fine");
  const traversal = await fetch(`${base}bob/objects/..%2Fconfig`, { method: "GET", headers: auth });
  assert.equal(traversal.status, 400);
  assert.deepEqual(await describeTree(path.join(root, "bob")), before);

  // The server's owner prunes locally, on the folder.
  const local = baseEnv({ LIFEBOAT_REPOSITORY: path.join(root, "bob"), LIFEBOAT_PASSWORD: "r" });
  assert.equal((await run(["forget", "--keep-last", "1", "--prune"], { env: local })).code, 0);
  assert.equal((await run(["check", "--read-data"], { env })).code, 0);
});

test("--no-auth is refused off loopback; an unreachable server is exit 16", async () => {
  const r = await run(["serve", "--path", path.join(dir, "x"), "--listen", "0.0.0.0:0", "--no-auth"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /would let anyone on the network/);
  const down = await run(["snapshots"], {
    env: baseEnv({ LIFEBOAT_REPOSITORY: "rest:http://127.0.0.1:9/", LIFEBOAT_PASSWORD: "r" }),
  });
  assert.equal(down.code, 16, down.stderr);
  assert.match(down.stderr, /cannot reach rest:http:\/\/127\.0\.0\.1:9\//);
});
