#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with node's own test runner.
// Usage: node scripts/run-tests.mjs [substring...]  (only files whose path contains one of them)
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk("dist", [])
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error("no test files found under dist/ (did the build run?)");
  process.exit(1);
}
// The real servers the tests start (and FUSE for mount) come from Debian packages. On a fresh
// machine (we are root in CI) install the missing ones once, up front, in one apt run; each
// test's own ensurePackages() then finds them (and still covers a single test run by hand).
const PACKAGES = [
  "openssh-server",
  "openssh-client",
  "dovecot-imapd",
  "radicale",
  "postgresql",
  "mariadb-server",
  "mariadb-client",
  "fuse",
  "libfuse2",
  "attr",
  "acl",
];
function installServers() {
  if (process.getuid?.() !== 0 || process.env.LIFEBOAT_NO_APT) return;
  const missing = PACKAGES.filter((p) => spawnSync("dpkg", ["-s", p], { stdio: "ignore" }).status !== 0);
  if (missing.length === 0) return;
  console.error(`installing test servers: ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const opts = ["-o", "DPkg::Lock::Timeout=900", "-o", "Acquire::Retries=3"];
  try {
    execFileSync("apt-get", [...opts, "update"], { stdio: ["ignore", "ignore", "inherit"], env });
    execFileSync("apt-get", [...opts, "install", "-y", "--no-install-recommends", ...missing], {
      stdio: ["ignore", "ignore", "inherit"],
      env,
    });
  } catch (e) {
    console.error(
      `could not install ${missing.join(" ")}: ${e.message}; the tests that need them will try again`,
    );
  }
}
if (files.some((f) => /test\/(backend|mail|dav|db|cli)\/|test\/e2e\/names/.test(f))) installServers();
// The tests run the command as it ships, bundled (scripts/bundle.mjs): after a bare `tsc` the
// bundle would be older than the modules it is made of, so it is made again first.
const newest = (dir) =>
  readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
    const p = path.join(dir, e.name);
    return Math.max(m, e.isDirectory() ? newest(p) : e.name.endsWith(".js") ? statSync(p).mtimeMs : 0);
  }, 0);
const bundle = path.join("dist", "cli", "main.js");
if (!existsSync(bundle) || statSync(bundle).mtimeMs < newest(path.join("dist", "src"))) {
  console.error("bundling the command (node scripts/bundle.mjs): dist/cli/ is older than dist/src/");
  execFileSync(process.execPath, ["scripts/bundle.mjs"], { stdio: "inherit" });
}
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=2", ...files], { stdio: "inherit" });
process.exit(r.status ?? 1);
