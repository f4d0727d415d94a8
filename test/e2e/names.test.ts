/**
 * Names are bytes and metadata is kept: a tree with Latin-1 names, invalid UTF-8, NFC/NFD twins,
 * 255-byte names, extended attributes (set with setfattr), POSIX ACLs (setfacl), a FIFO, device
 * nodes and a socket backs up and restores exactly, on the CLI and through the library, and
 * every command shows the names without losing them.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fsSync, { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import { test } from "node:test";
import { nameToBytes } from "../../src/core/names.js";
import { backup, localBackend, memoryBackend, Repository, restore, walkTree } from "../../src/index.js";
import { ensurePackages } from "../support/apt.js";
import { jsonLines, run, runOk, show, summaryOf, useWorkspace } from "../support/cli.js";

const b = (...parts: (string | Buffer)[]) =>
  Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : p)));
const LATIN1 = b("caf", Buffer.of(0xe9), ".txt");
const RESUMES = b("r", Buffer.of(0xe9), "sum", Buffer.of(0xe9), "s");
const CUT = b("cut", Buffer.of(0xe2, 0x82));
const LINK = b("link", Buffer.of(0xff));
const LONG_BYTES = Buffer.alloc(255, 0xe9); // 255 bytes, none of them UTF-8
const CAPABILITY = "0x0100000200200000000000000000000000000000"; // cap_net_raw+ep, as setcap writes it

/** setfattr/setfacl take paths as arguments (UTF-8 from Node): attributes are set on an ASCII
 * name, which is then renamed to its bytes (a rename keeps them). */
function withAttrs(dir: string, finalName: Buffer, make: (p: string) => void, attrs: (p: string) => void) {
  const tmp = path.join(dir, "tmp-ascii-name");
  make(tmp);
  attrs(tmp);
  fsSync.renameSync(tmp, b(dir, "/", finalName));
}

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });

/** Builds the tree every test here uses. */
function makeTree(src: string): void {
  fsSync.mkdirSync(src, { recursive: true });
  fsSync.writeFileSync(path.join(src, "plain.txt"), "hello\n");
  sh("setfattr", "-n", "user.comment", "-v", "kept", path.join(src, "plain.txt"));
  sh("setfattr", "-n", "security.capability", "-v", CAPABILITY, path.join(src, "plain.txt"));
  sh("setfattr", "-n", "trusted.note", "-v", "root only", path.join(src, "plain.txt"));
  withAttrs(
    src,
    LATIN1,
    (p) => fsSync.writeFileSync(p, "written by a Latin-1 system\n"),
    (p) => sh("setfacl", "-m", "u:1234:rwx,g:2345:r", p),
  );
  withAttrs(
    src,
    RESUMES,
    (p) => fsSync.mkdirSync(p),
    (p) => {
      sh("setfacl", "-d", "-m", "u:1234:rx", p);
      sh("setfattr", "-n", "user.folder", "-v", "0x00ff10", p);
    },
  );
  fsSync.writeFileSync(b(src, "/", RESUMES, "/cv.txt"), "inside a Latin-1 folder\n");
  fsSync.writeFileSync(b(src, "/", CUT), "a name cut inside a UTF-8 sequence\n");
  fsSync.writeFileSync(b(src, "/", LONG_BYTES), "255 bytes of Latin-1\n");
  fsSync.writeFileSync(path.join(src, `${"a".repeat(251)}.txt`), "255 ASCII bytes\n");
  fsSync.writeFileSync(path.join(src, `${"é".repeat(127)}x`), "255 bytes of UTF-8\n");
  fsSync.writeFileSync(path.join(src, "caf\u00e9-twin"), "NFC\n");
  fsSync.writeFileSync(path.join(src, "cafe\u0301-twin"), "NFD\n");
  fsSync.symlinkSync(LATIN1, b(src, "/", LINK));
  fsSync.mkdirSync(path.join(src, "empty"));
  fsSync.writeFileSync(path.join(src, "first-link"), "hard linked\n");
  fsSync.linkSync(path.join(src, "first-link"), b(src, "/", "second-link-", Buffer.of(0xe9)));
  sh("mkfifo", path.join(src, "fifo"));
  sh("mknod", path.join(src, "null"), "c", "1", "3");
  sh("mknod", path.join(src, "loop9"), "b", "7", "9");
  fsSync.writeFileSync(path.join(src, "noise.log"), "excluded by the user\n");
  fsSync.chmodSync(path.join(src, "plain.txt"), 0o640);
  // Times last, so the ones the tree shows are those restore must bring back.
  for (const [p, t] of [
    [b(src, "/", LATIN1), 1_600_000_000],
    [b(src, "/", RESUMES), 1_600_000_100],
    [path.join(src, "plain.txt"), 1_600_000_200],
  ] as const)
    fsSync.utimesSync(p, t, t);
}

/** Every entry below `root`, by its path's bytes (hex): type, mode, owner, mtime, size,
 * content hash, link text, device number. Listed as bytes, so nothing is mangled. */
function describeTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: Buffer, rel: Buffer) => {
    for (const name of fsSync.readdirSync(dir, { encoding: "buffer" })) {
      const p = b(dir, "/", name);
      const r = rel.length ? b(rel, "/", name) : name;
      const st = fsSync.lstatSync(p, { bigint: true });
      const type = st.isDirectory()
        ? "dir"
        : st.isSymbolicLink()
          ? "symlink"
          : st.isFIFO()
            ? "fifo"
            : st.isCharacterDevice()
              ? "chardev"
              : st.isBlockDevice()
                ? "blockdev"
                : st.isFile()
                  ? "file"
                  : "other";
      const extra = st.isFile()
        ? createHash("sha256").update(fsSync.readFileSync(p)).digest("hex")
        : st.isSymbolicLink()
          ? fsSync.readlinkSync(p, { encoding: "buffer" }).toString("hex")
          : st.isCharacterDevice() || st.isBlockDevice()
            ? String(st.rdev)
            : "";
      // Folders' times are set last by restore; links' times are not compared (lutimes).
      const time = st.isSymbolicLink() ? "" : String(st.mtimeMs);
      out.set(
        r.toString("hex"),
        `${type} ${st.mode & 0o7777n} ${st.uid}:${st.gid} ${time} ${st.size} ${extra}`,
      );
      if (st.isDirectory()) walk(p, r);
    }
  };
  walk(Buffer.from(root), Buffer.alloc(0));
  return out;
}

/** `getfattr -R` (every namespace, values in hex, never through a link) or `getfacl -R`, one
 * record per file, sorted, with `root` cut off the paths (names stay escaped as the tools print
 * them, byte for byte). */
function attrDump(tool: "getfattr" | "getfacl", root: string): string[] {
  const args =
    tool === "getfattr"
      ? ["-R", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", root]
      : ["-R", "-P", "--absolute-names", root];
  const r = spawnSync(tool, args, { encoding: "latin1", env: { ...process.env, LC_ALL: "C" } });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .split("\n\n")
    .map((rec) => rec.trim().replace(`# file: ${root}`, "# file: ROOT"))
    .filter((rec) => rec !== "" && !rec.startsWith("# file: ROOT/noise.log\n"))
    .sort();
}

const ws = useWorkspace({
  password: "names",
  setup: async (w) => {
    ensurePackages({ "/usr/bin/getfattr": "attr", "/usr/bin/setfacl": "acl" });
    makeTree(w.src);
  },
});

/** A socket that exists while `fn` runs (it is skipped with a warning). */
async function withSocket<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(path.join(dir, "sock"), resolve));
  try {
    return await fn();
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

test("backup and restore on the CLI bring back every name, byte for byte, with contents and metadata", async () => {
  const r = await withSocket(ws.src, () =>
    run(["backup", ws.src, "--exclude", "*.log", "--json"], { env: ws.env }),
  );
  assert.equal(r.code, 0, show(r));
  const s = summaryOf(r);
  assert.deepEqual(s.errors, [], show(r));
  assert.deepEqual(s.warnings, [`skipped socket ${ws.src}/sock`]);
  const out = path.join(ws.base, "out");
  const rr = await run(["restore", "latest", "--target", out, "--verify", "--json"], { env: ws.env });
  assert.equal(rr.code, 0, show(rr));
  assert.deepEqual(summaryOf(rr).errors, []);
  assert.equal(summaryOf(rr).special, 3);
  const restored = path.join(out, ws.src);
  const want = describeTree(ws.src);
  want.delete(Buffer.from("noise.log").toString("hex"));
  assert.deepEqual(describeTree(restored), want);
  assert.deepEqual(attrDump("getfattr", restored), attrDump("getfattr", ws.src));
  assert.deepEqual(attrDump("getfacl", restored), attrDump("getfacl", ws.src));
  // The hard link is one inode again.
  const a = fsSync.statSync(path.join(restored, "first-link"));
  const c = fsSync.statSync(b(restored, "/", "second-link-", Buffer.of(0xe9)));
  assert.equal(a.ino, c.ino);
});

test("ls, find, diff and --json show such names readably and losslessly", async () => {
  const ls = jsonLines((await runOk(["ls", "latest", ws.src, "--json"], { env: ws.env })).stdout);
  const latin = ls.find((l) => l.name === "caf\\xE9.txt");
  assert.ok(latin, "ls --json lists caf\\xE9.txt");
  assert.equal(latin.name_bytes, LATIN1.toString("base64"));
  assert.equal(latin.path, `${ws.src}/caf\\xE9.txt`);
  assert.equal(
    Buffer.from(latin.path_bytes as string, "base64").toString("hex"),
    b(ws.src, "/", LATIN1).toString("hex"),
  );
  const link = ls.find((l) => l.type === "symlink")!;
  assert.equal(link.target_bytes, LATIN1.toString("base64"));
  assert.ok(ls.some((l) => l.name === "null" && l.type === "chardev" && l.rdev === String(259)));
  const plain = ls.find((l) => l.name === "plain.txt")!;
  const names = (plain.xattrs as { name: string }[]).map((x) => x.name).sort();
  assert.deepEqual(names, ["security.capability", "trusted.note", "user.comment"]);

  const long = (await runOk(["ls", "-l", "latest", ws.src], { env: ws.env })).stdout;
  assert.match(long, /^d0755\+ .*\/r\\xE9sum\\xE9s$/m, long);
  const inside = (await runOk(["ls", "latest", `${ws.src}/r\\xE9sum\\xE9s`], { env: ws.env })).stdout;
  assert.equal(inside, `${ws.src}/r\\xE9sum\\xE9s/cv.txt\n`);
  const dev = (await runOk(["ls", "-l", "latest", `${ws.src}/null`], { env: ws.env })).stdout;
  assert.match(dev, /^c0644 .* 1,3 /m);

  const found = jsonLines((await runOk(["find", "caf?.txt", "--json"], { env: ws.env })).stdout).filter(
    (l) => l.message_type === "match",
  );
  assert.deepEqual(
    found.map((m) => m.path_bytes),
    [b(ws.src, "/", LATIN1).toString("base64")],
  );

  // Change one attribute: the next backup notices (ctime) and diff says metadata changed.
  sh("setfattr", "-n", "user.comment", "-v", "changed", path.join(ws.src, "plain.txt"));
  fsSync.writeFileSync(b(ws.src, "/", RESUMES, "/new-", Buffer.of(0xe8), ".txt"), "added\n");
  await runOk(["backup", ws.src, "--exclude", "*.log"], { env: ws.env });
  const d = await runOk(["diff", "--json", await previous(), "latest"], { env: ws.env });
  const changes = jsonLines(d.stdout).filter((l) => l.message_type === "change");
  assert.ok(
    changes.some((c) => c.modifier === "U" && c.path === `${ws.src}/plain.txt`),
    d.stdout,
  );
  const added = changes.find((c) => c.modifier === "+")!;
  assert.equal(added.path, `${ws.src}/r\\xE9sum\\xE9s/new-\\xE8.txt`);
  assert.equal(
    Buffer.from(added.path_bytes as string, "base64").toString("hex"),
    b(ws.src, "/", RESUMES, "/new-", Buffer.of(0xe8), ".txt").toString("hex"),
  );
  const text = (await runOk(["diff", await previous(), "latest"], { env: ws.env })).stdout;
  assert.match(text, /^\+ {2}.*\/r\\xE9sum\\xE9s\/new-\\xE8\.txt$/m);
});

async function previous(): Promise<string> {
  const list = JSON.parse((await runOk(["snapshots", "--json"], { env: ws.env })).stdout) as { id: string }[];
  return list.at(-2)!.id;
}

test("restore --include/--exclude and a SNAPSHOT:PATH reach such names (? matches one byte)", async () => {
  const out = path.join(ws.base, "some");
  await runOk(
    ["restore", `latest:${ws.src}`, "--target", out, "--include", "caf?.txt", "--include", "r?sum?s/"],
    {
      env: ws.env,
    },
  );
  const got = fsSync
    .readdirSync(out, { encoding: "buffer" })
    .map((n) => n.toString("hex"))
    .sort();
  assert.deepEqual(got, [LATIN1.toString("hex"), RESUMES.toString("hex")].sort());
  const one = path.join(ws.base, "one");
  await runOk(["restore", `latest:${ws.src}/r\\xE9sum\\xE9s`, "--target", one, "--exclude", "new-*"], {
    env: ws.env,
  });
  assert.deepEqual(fsSync.readdirSync(one), ["cv.txt"]);
});

test("dump writes names as bytes, attributes, FIFOs and devices into a tar GNU tar extracts", async () => {
  const r = await runOk(["dump", "latest", ws.src], { env: ws.env });
  const x = path.join(ws.base, "untar");
  await fs.mkdir(x);
  const t = spawnSync("tar", ["-x", "--xattrs", "--xattrs-include=*", "-C", x], { input: r.stdoutRaw });
  assert.equal(t.status, 0, t.stderr.toString());
  assert.equal(t.stderr.toString(), "", "tar printed warnings");
  const base = path.join(x, path.basename(ws.src));
  assert.equal(fsSync.readFileSync(b(base, "/", LATIN1), "utf8"), "written by a Latin-1 system\n");
  assert.equal(fsSync.readFileSync(b(base, "/", LONG_BYTES), "utf8"), "255 bytes of Latin-1\n");
  assert.equal(
    fsSync.readlinkSync(b(base, "/", LINK), { encoding: "buffer" }).toString("hex"),
    LATIN1.toString("hex"),
  );
  assert.ok(fsSync.lstatSync(path.join(base, "fifo")).isFIFO());
  assert.equal(
    fsSync.lstatSync(path.join(base, "null")).rdev,
    fsSync.lstatSync(path.join(ws.src, "null")).rdev,
  );
  // The user attributes as the source has them now (an earlier test changed one).
  const userAttrs = (p: string) =>
    sh("getfattr", "-d", "-m", "user.", p).toString().split("\n").slice(1).join("\n");
  assert.match(userAttrs(path.join(base, "plain.txt")), /user\.comment=/);
  assert.equal(userAttrs(path.join(base, "plain.txt")), userAttrs(path.join(ws.src, "plain.txt")));
});

test("the counting invariant: every listed entry is in the snapshot, its errors, its warnings or excluded", async () => {
  // As an ordinary user, so that some entries cannot be read: a file and a folder with mode 0.
  const root = path.join(ws.base, "count");
  await fs.mkdir(root);
  await fs.chmod(root, 0o777);
  await fs.chmod(ws.base, 0o755);
  const src = path.join(root, "src");
  makeTree(src);
  fsSync.writeFileSync(path.join(src, "secret"), "unreadable\n", { mode: 0o000 });
  fsSync.mkdirSync(path.join(src, "closed"));
  fsSync.writeFileSync(path.join(src, "closed", "inside"), "x");
  fsSync.chmodSync(path.join(src, "closed"), 0o000);
  sh("chmod", "-R", "a+rX", src); // what makeTree made, readable by everyone...
  fsSync.chmodSync(path.join(src, "secret"), 0o000); // ...but these two
  fsSync.chmodSync(path.join(src, "closed"), 0o000);
  const repo = path.join(root, "repo");
  const nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
  const env = { ...ws.env, LIFEBOAT_REPOSITORY: repo, HOME: root };
  await runOk(["init"], { env, wrapper: nobody });
  // What the listings return, as bytes, relative to src (the unreadable folder's own entries
  // cannot be listed by anyone but root; its name is what counts).
  const listed = new Set<string>();
  const list = (dir: Buffer, rel: string) => {
    for (const n of fsSync.readdirSync(dir, { encoding: "buffer" })) {
      const p = b(dir, "/", n);
      const r2 = `${rel}/${n.toString("hex")}`;
      listed.add(r2);
      if (fsSync.lstatSync(p).isDirectory() && n.toString() !== "closed") list(p, r2);
    }
  };
  // The socket exists while the backup runs and while the listing above is taken.
  const r = await withSocket(src, async () => {
    const r2 = await run(["backup", src, "--exclude", "*.log", "--json"], { env, wrapper: nobody });
    list(Buffer.from(src), "");
    return r2;
  });
  assert.equal(r.code, 3, show(r)); // incomplete: two entries could not be read
  const s = summaryOf(r);
  const rel = (abs: Buffer) =>
    `/${abs
      .subarray(src.length + 1)
      .toString("latin1")
      .split("/")
      .map((x) => Buffer.from(x, "latin1").toString("hex"))
      .join("/")}`;

  const repoLib = await Repository.open(localBackend({ path: repo }), "names");
  const stored = new Set<string>();
  try {
    const snap = (await repoLib.listSnapshots()).at(-1)!;
    await walkTree(repoLib, snap.tree, {
      node(_n, p) {
        const bytes = nameToBytes(p);
        if (bytes.length > src.length && bytes.subarray(0, src.length).equals(Buffer.from(src)))
          stored.add(rel(bytes));
        return undefined;
      },
    });
  } finally {
    await repoLib.close();
  }
  const errors = new Set(
    (s.errors as { path: string; path_bytes?: string }[]).map((e) =>
      rel(e.path_bytes ? Buffer.from(e.path_bytes, "base64") : Buffer.from(e.path)),
    ),
  );
  const warned = new Set(
    (s.warnings as string[]).map((w) => rel(Buffer.from(w.replace(/^skipped socket /, "")))),
  );
  const excluded = new Set(
    [...listed].filter((p) => Buffer.from(p.split("/").at(-1)!, "hex").toString().endsWith(".log")),
  );
  // A folder that could not be listed is stored (empty, with its metadata) and is an error too.
  const closed = rel(Buffer.from(path.join(src, "closed")));
  assert.ok(stored.has(closed) && errors.has(closed), "the unlistable folder is kept and reported");
  errors.delete(closed);
  const accounted = [...stored, ...errors, ...warned, ...excluded];
  assert.equal(accounted.length, new Set(accounted).size, "an entry is counted twice");
  assert.deepEqual([...new Set(accounted)].sort(), [...listed].sort());
  assert.deepEqual([...errors], [rel(Buffer.from(path.join(src, "secret")))], JSON.stringify(s.errors));
  assert.equal(warned.size, 1);
  assert.ok(stored.size >= 18, `${stored.size} entries stored`);

  // Restored by the same ordinary user: FIFOs yes, device nodes and security. attributes no,
  // each with a warning; user. attributes and ACLs come back.
  const out = path.join(root, "out");
  const rr = await run(["restore", `latest:${src}`, "--target", out, "--json"], { env, wrapper: nobody });
  assert.equal(rr.code, 0, show(rr));
  const warnings = summaryOf(rr).warnings as string[];
  assert.ok(
    warnings.some((w) => /^2 device node\(s\) not restored: creating them needs root$/.test(w)),
    warnings.join("\n"),
  );
  assert.ok(
    warnings.some((w) => /extended attribute\(s\) not restored: .*need root/.test(w)),
    warnings.join("\n"),
  );
  assert.ok(fsSync.lstatSync(path.join(out, "fifo")).isFIFO());
  assert.equal(fsSync.existsSync(path.join(out, "null")), false);
  assert.match(
    sh("getfattr", "-n", "user.comment", path.join(out, "plain.txt")).toString(),
    /user\.comment="kept"/,
  );
  // getfacl prints names as raw bytes (read here as latin1), getfattr with octal escapes.
  const acl = attrDump("getfacl", out).find((r) => r.startsWith("# file: ROOT/caf\u00e9.txt\n"));
  assert.match(acl ?? "none", /user:1234:rwx/);
});

test("through the library: backup and restore keep names and attributes; an old repository gains the features only when a tree needs them", async () => {
  const be = memoryBackend();
  const repo = await Repository.init(be, "pw", { features: { read: [], write: [] } });
  try {
    const plainDir = path.join(ws.base, "lib-plain");
    fsSync.mkdirSync(plainDir);
    fsSync.writeFileSync(path.join(plainDir, "a.txt"), "a");
    await backup(repo, [plainDir], { xattrs: false });
    assert.equal(repo.config.version, 1, "a tree of plain names needs no feature");
    const r = await backup(repo, [ws.src], { excludes: ["*.log"] });
    assert.deepEqual(r.errors, []);
    assert.deepEqual(repo.config.features, { read: ["byte-names", "special-files", "xattrs"], write: [] });
    assert.equal(r.snapshot.xattrs, true);
    const out = path.join(ws.base, "lib-out");
    const rr = await restore(repo, await repo.loadSnapshot(r.snapshotId), { target: out, subpath: ws.src });
    assert.deepEqual(rr.errors, []);
    const want = describeTree(ws.src);
    want.delete(Buffer.from("noise.log").toString("hex"));
    assert.deepEqual(describeTree(out), want);
    assert.deepEqual(attrDump("getfattr", out), attrDump("getfattr", ws.src));
  } finally {
    await repo.close();
  }
});

test("append-only storage that cannot gain a feature: the entries that need it are errors that say what to do", async () => {
  const be = memoryBackend({ appendOnly: true });
  const repo = await Repository.init(be, "pw", { features: { read: [], write: [] } });
  try {
    const r = await backup(repo, [ws.src], { excludes: ["*.log"] });
    const byPath = new Map(r.errors.map((e) => [e.path, e]));
    const latin = byPath.get(`${ws.src}/caf\udce9.txt`);
    assert.equal(latin?.code, "NEEDS_FEATURE", JSON.stringify(r.errors));
    assert.match(latin.message, /byte-names.*append-only.*where the repository is stored/);
    assert.equal(byPath.get(`${ws.src}/fifo`)?.code, "NEEDS_FEATURE");
    assert.match(byPath.get(`${ws.src}/plain.txt`)?.message ?? "", /extended attributes not stored.*xattrs/);
    assert.equal(r.snapshot.incomplete, true);
    assert.equal(repo.config.version, 1);
  } finally {
    await repo.close();
  }
});
