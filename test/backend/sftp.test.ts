/**
 * The SFTP backend against a real OpenSSH server (sshd on 127.0.0.1 with a generated host key
 * and client key): URL forms, known_hosts matching, the backend contract, atomic puts and
 * reconnection when the connection drops, clear errors, and the CLI round trip.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { checkHostKey, fingerprint, parseKnownHosts } from "../../src/backend/known-hosts.js";
import { withRetries } from "../../src/backend/retry.js";
import { parseSftpUrl, sftpBackend } from "../../src/backend/sftp.js";
import { baseEnv, describeTree, jsonLines, run, tempDir, writeRandomFile } from "../support/cli.js";
import { freePort, type SshServer, startProxy, startSshd } from "../support/servers.js";
import { assertRejectsWith, backendContract, collect, forgetPruneRoundTrip } from "./contract.js";

const MiB = 1024 * 1024;
let ssh: SshServer;
let dir: string;

const backend = (url: string, extra: Partial<Parameters<typeof sftpBackend>[0]> = {}) =>
  sftpBackend({
    ...parseSftpUrl(url),
    url,
    keyFile: ssh.clientKey,
    knownHostsFile: ssh.knownHosts,
    agent: "",
    ...extra,
  });

before(async () => {
  ssh = await startSshd();
  dir = await tempDir("lifeboat-sftp-test-");
});
after(async () => {
  await ssh?.stop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe("sftp: URLs and known_hosts", () => {
  test("URL forms", () => {
    assert.deepEqual(parseSftpUrl("sftp:backup@nas.lan:/srv/repo"), {
      user: "backup",
      host: "nas.lan",
      port: 22,
      path: "/srv/repo",
    });
    assert.deepEqual(parseSftpUrl("sftp:backup@nas.lan:relative/repo").path, "relative/repo");
    assert.deepEqual(parseSftpUrl("sftp://backup@nas.lan:2222/srv/repo"), {
      user: "backup",
      host: "nas.lan",
      port: 2222,
      path: "/srv/repo",
    });
    assert.equal(parseSftpUrl("sftp://u@[::1]:2200/r").host, "::1");
    assert.equal(parseSftpUrl("sftp:u@[::1]:/r").host, "::1");
    assert.ok(parseSftpUrl("sftp:nas.lan:/r").user.length > 0, "user defaults to the local one");
    for (const bad of ["sftp:host", "sftp://host", "sftp://host/", "sftp://u:pw@host/r", "sftp:u@host:"]) {
      assert.throws(
        () => parseSftpUrl(bad),
        (e: Error & { code?: string }) => e.code === "USAGE",
        bad,
      );
    }
  });

  test("known_hosts: plain, [host]:port, wildcards, negation, hashed by ssh-keygen -H, revoked", async () => {
    const key = Buffer.from(ssh.hostKey.split(" ")[1]!, "base64");
    const other = Buffer.from(
      "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
      "base64",
    );
    const b64 = key.toString("base64");
    const plain = parseKnownHosts(
      `# comment\nnas.lan,10.0.0.2 ssh-ed25519 ${b64}\n[nas.lan]:2222 ssh-ed25519 ${b64}\n`,
    );
    assert.equal(checkHostKey(plain, "nas.lan", 22, key), "trusted");
    assert.equal(checkHostKey(plain, "10.0.0.2", 22, key), "trusted");
    assert.equal(checkHostKey(plain, "NAS.lan", 2222, key), "trusted");
    assert.equal(checkHostKey(plain, "nas.lan", 2223, key), "unknown");
    assert.equal(checkHostKey(plain, "nas.lan", 22, other), "changed");
    const wild = parseKnownHosts(`*.lan,!evil.lan ssh-ed25519 ${b64}\n`);
    assert.equal(checkHostKey(wild, "box.lan", 22, key), "trusted");
    assert.equal(checkHostKey(wild, "evil.lan", 22, key), "unknown");
    const revoked = parseKnownHosts(`@revoked * ssh-ed25519 ${b64}\nnas.lan ssh-ed25519 ${b64}\n`);
    assert.equal(checkHostKey(revoked, "nas.lan", 22, key), "revoked");

    const file = path.join(dir, "hashed_known_hosts");
    await fs.writeFile(file, `nas.lan ssh-ed25519 ${b64}\n[127.0.0.1]:2222 ssh-ed25519 ${b64}\n`);
    execFileSync("ssh-keygen", ["-q", "-H", "-f", file], { stdio: "ignore" });
    const text = await fs.readFile(file, "utf8");
    assert.ok(!text.includes("nas.lan") && text.includes("|1|"), "ssh-keygen hashed the names");
    const hashed = parseKnownHosts(text);
    assert.equal(checkHostKey(hashed, "nas.lan", 22, key), "trusted");
    assert.equal(checkHostKey(hashed, "127.0.0.1", 2222, key), "trusted");
    assert.equal(checkHostKey(hashed, "127.0.0.1", 22, key), "unknown");
    assert.equal(checkHostKey(hashed, "nas.lan", 22, other), "changed");

    const printed = execFileSync("ssh-keygen", ["-l", "-f", `${path.join(ssh.dir, "host_ed25519")}.pub`], {
      encoding: "utf8",
    });
    assert.ok(printed.includes(fingerprint(key)), `${printed} has ${fingerprint(key)}`);
  });
});

describe("sftp: backend", () => {
  test("contract: put, get, ranges, stat, list, delete", async () => {
    const be = backend(ssh.url("contract"));
    try {
      await backendContract(be);
    } finally {
      await be.close();
    }
    // Folders on the server were made on demand, with private modes; no temporary file is left.
    const st = await fs.stat(path.join(ssh.root, "contract", "data"));
    assert.equal(st.mode & 0o777, 0o700);
    const leftovers = execFileSync("find", [path.join(ssh.root, "contract"), "-name", ".tmp-*"], {
      encoding: "utf8",
    });
    assert.equal(leftovers, "");
  });

  test("a dropped connection: the failed put leaves nothing visible, the next one reconnects", async () => {
    const proxy = await startProxy(ssh.port);
    await ssh.trustPort(proxy.port);
    try {
      const url = ssh.url("drops", proxy.port);
      const be = backend(url);
      await be.create();
      await be.put("config", Buffer.from("first, on the first connection"));
      proxy.setCuts(1, MiB);
      const data = Buffer.alloc(3 * MiB, 3);
      await assertRejectsWith(be.put("data/aa/cut", data), "UNREACHABLE", /connection was lost/);
      assert.equal(proxy.cut, 1);
      // The same backend opens a new connection for the next operation.
      assert.equal(await be.stat("data/aa/cut"), undefined, "a cut upload is not visible under its name");
      assert.deepEqual(
        (await collect(be.list(""))).map((o) => o.name),
        ["config"],
      );
      const tmp = execFileSync("find", [path.join(ssh.root, "drops"), "-name", ".tmp-*"], {
        encoding: "utf8",
      });
      assert.notEqual(tmp, "", "the partial upload stayed under its temporary name");
      assert.equal(proxy.connections, 2);
      // With retries (as open.ts sets it up), the same cut is invisible to the caller.
      proxy.setCuts(1, MiB);
      const retrying = withRetries(backend(url), { delays: [50, 100] });
      await retrying.put("data/bb/retried", data);
      assert.equal(proxy.cut, 2);
      assert.ok((await retrying.get("data/bb/retried")).equals(data));
      await be.close();
      await retrying.close();
    } finally {
      await proxy.stop();
    }
  });

  test("errors: unreachable, host key mismatch, unknown host, refused key", async () => {
    const port = await freePort();
    const down = backend(`sftp://${ssh.user}@127.0.0.1:${port}/x`);
    await assertRejectsWith(down.exists(), "UNREACHABLE", /127\.0\.0\.1:\d+.*ECONNREFUSED/);

    const wrongHosts = path.join(dir, "wrong_known_hosts");
    await fs.writeFile(
      wrongHosts,
      `[127.0.0.1]:${ssh.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`,
    );
    const key = Buffer.from(ssh.hostKey.split(" ")[1]!, "base64");
    const mismatch = await assertRejectsWith(
      backend(ssh.url("x"), { knownHostsFile: wrongHosts }).exists(),
      "AUTH_FAILED",
      /does not match/,
    );
    assert.ok(mismatch.message.includes(fingerprint(key)), mismatch.message);
    assert.match(mismatch.hint ?? "", new RegExp(`ssh-keyscan -p ${ssh.port} 127\\.0\\.0\\.1 >> `));

    const unknown = await assertRejectsWith(
      backend(ssh.url("x"), { knownHostsFile: path.join(dir, "no-such-file") }).exists(),
      "AUTH_FAILED",
      /is not in/,
    );
    assert.ok(unknown.message.includes(fingerprint(key)));
    assert.match(unknown.hint ?? "", /ssh-keyscan -p \d+ 127\.0\.0\.1 >> /);

    const otherKey = path.join(dir, "other_key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", otherKey], { stdio: "ignore" });
    await assertRejectsWith(
      backend(ssh.url("x"), { keyFile: otherKey }).exists(),
      "AUTH_FAILED",
      /refused the SSH login/,
    );
  });
});

describe("sftp: CLI", () => {
  test("init, backup, snapshots --json, restore --verify, check --read-data, forget --prune", async () => {
    const src = path.join(dir, "src");
    await fs.mkdir(path.join(src, "sub", "deeper"), { recursive: true });
    await writeRandomFile(path.join(src, "random.bin"), 3, 12);
    await fs.writeFile(path.join(src, "small.txt"), "hello sftp\n");
    await fs.writeFile(path.join(src, "sub", "deeper", "note.md"), "# note\n");
    await fs.writeFile(path.join(src, "empty"), "");
    await fs.symlink("small.txt", path.join(src, "link"));
    const env = baseEnv({
      ...ssh.env(),
      LIFEBOAT_PASSWORD: "sftp password",
      LIFEBOAT_REPOSITORY: ssh.url("cli"),
    });
    const init = await run(["init"], { env });
    assert.equal(init.code, 0, init.stderr);
    assert.equal((await run(["init"], { env })).code, 11);
    const b = await run(["backup", src], { env });
    assert.equal(b.code, 0, b.stderr);
    const snaps = await run(["snapshots", "--json"], { env });
    assert.equal(snaps.code, 0, snaps.stderr);
    const list = JSON.parse(snaps.stdout) as unknown;
    assert.equal((Array.isArray(list) ? list : jsonLines(snaps.stdout)).length, 1, snaps.stdout);
    const target = path.join(dir, "restored");
    const r = await run(["restore", "latest", "--target", target, "--verify"], { env });
    assert.equal(r.code, 0, r.stderr);
    const nested = path.join(target, path.relative("/", src));
    const restored = (await fs.stat(nested).catch(() => undefined)) ? nested : target;
    assert.deepEqual(await describeTree(restored), await describeTree(src));
    const c = await run(["check", "--read-data"], { env });
    assert.equal(c.code, 0, c.stdout + c.stderr);
    await forgetPruneRoundTrip(env, src, path.join(dir, "restored-after-prune"));
  });

  test("a backup whose connection drops mid-upload is retried and the repository checks clean", async () => {
    const src = path.join(dir, "src-drop");
    await fs.mkdir(src);
    await writeRandomFile(path.join(src, "a.bin"), 3, 22);
    const proxy = await startProxy(ssh.port);
    await ssh.trustPort(proxy.port);
    try {
      const env = baseEnv({
        ...ssh.env(),
        LIFEBOAT_PASSWORD: "drop",
        LIFEBOAT_REPOSITORY: ssh.url("cli-drop", proxy.port),
      });
      assert.equal((await run(["init"], { env })).code, 0);
      proxy.setCuts(1, MiB);
      const b = await run(["backup", src], { env });
      assert.equal(b.code, 0, b.stderr);
      assert.equal(proxy.cut, 1, "the upload's connection was cut once");
      const c = await run(["check", "--read-data"], { env });
      assert.equal(c.code, 0, c.stdout + c.stderr);
      const target = path.join(dir, "restored-drop");
      assert.equal((await run(["restore", "latest", "--target", target, "--verify"], { env })).code, 0);
      assert.deepEqual(
        await describeTree(path.join(target, path.relative("/", src))),
        await describeTree(src),
      );
    } finally {
      await proxy.stop();
    }
  });

  test("errors: unreachable exits 16 with one line; a changed host key says what to do", async () => {
    const port = await freePort();
    const down = await run(["snapshots", "--json"], {
      env: baseEnv({
        ...ssh.env(),
        LIFEBOAT_PASSWORD: "x",
        LIFEBOAT_REPOSITORY: `sftp://${ssh.user}@127.0.0.1:${port}/repo`,
      }),
    });
    assert.equal(down.code, 16, down.stderr);
    assert.equal(down.stderr.trim().split("\n").length, 1, down.stderr);
    assert.equal(JSON.parse(down.stderr).code, "UNREACHABLE");

    const wrongHosts = path.join(dir, "cli_wrong_known_hosts");
    await fs.writeFile(
      wrongHosts,
      `[127.0.0.1]:${ssh.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`,
    );
    const mismatch = await run(["snapshots"], {
      env: baseEnv({
        ...ssh.env(),
        LIFEBOAT_SFTP_KNOWN_HOSTS: wrongHosts,
        LIFEBOAT_PASSWORD: "x",
        LIFEBOAT_REPOSITORY: ssh.url("cli"),
      }),
    });
    assert.equal(mismatch.code, 16, mismatch.stderr);
    const lines = mismatch.stderr.trim().split("\n");
    assert.equal(lines.length, 2, mismatch.stderr);
    assert.match(lines[0]!, /^error: the SSH host key of 127\.0\.0\.1:\d+ does not match .* SHA256:/);
    assert.match(lines[1]!, /hint: .*ssh-keyscan -p \d+ 127\.0\.0\.1 >> /);
  });
});
