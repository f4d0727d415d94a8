/**
 * The rest backend against `lifeboat serve` (the built CLI, on 127.0.0.1 with a user from an
 * htpasswd file): the backend contract, and the append-only contract against a server started
 * with --append-only — the same refusals memoryBackend({ appendOnly }) imitates.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { parseRestUrl, restBackend } from "../../src/backend/rest.js";
import { baseEnv, CLI, run, tempDir } from "../support/cli.js";
import { appendOnlyContract, backendContract } from "./contract.js";

let dir: string;
const servers: ChildProcess[] = [];

before(async () => {
  dir = await tempDir("lifeboat-rest-test-");
  const h = await run(["serve", "--hash-password"], { env: baseEnv({ LIFEBOAT_NEW_PASSWORD: "pw" }) });
  assert.equal(h.code, 0, h.stderr);
  await fs.writeFile(path.join(dir, "users"), `tester:${h.stdout.trim()}\n`);
});
after(async () => {
  await Promise.all(
    servers.map(
      (s) =>
        new Promise((resolve) => {
          if (s.exitCode !== null || s.signalCode !== null) return resolve(undefined);
          s.once("exit", resolve);
          s.kill("SIGTERM");
        }),
    ),
  );
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** Starts `lifeboat serve` on a free port; resolves with its base URL (`http://127.0.0.1:N/`). */
async function serve(root: string, ...args: string[]): Promise<string> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      "--json",
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--path",
      root,
      "--htpasswd",
      path.join(dir, "users"),
      ...args,
    ],
    { env: baseEnv(), stdio: ["ignore", "pipe", "pipe"] },
  );
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

const backend = (base: string, repo: string) =>
  restBackend(parseRestUrl(`${base.replace("://", "://tester:pw@")}${repo}`));

test("contract: put, get, ranges, stat, list, delete", async () => {
  const root = path.join(dir, "plain");
  const base = await serve(root);
  const be = backend(base, "contract");
  try {
    await backendContract(be);
  } finally {
    await be.close();
  }
  // The server stored the objects in the repository's folder, and no temporary file.
  assert.ok((await fs.stat(path.join(root, "contract", "config"))).isFile());
  const names = await fs.readdir(path.join(root, "contract"), { recursive: true });
  assert.deepEqual(
    names.filter((n) => n.includes(".tmp-")),
    [],
  );
});

test("append-only server: deletes and overwrites refused, sessions/ deletable", async () => {
  const root = path.join(dir, "vault");
  const base = await serve(root, "--append-only");
  const be = backend(base, "bob");
  await appendOnlyContract(be);
  assert.equal((await fs.readFile(path.join(root, "bob", "snapshots", "kept"))).toString(), "kept forever");
});
