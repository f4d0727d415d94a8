#!/usr/bin/env node
// Builds the small Node-API addon in native/ (extended attributes, FIFOs and device nodes:
// see native/lifeboat_fs.c) with node-gyp. Node-API is ABI-stable, so one build serves every
// Node version. Runs on `npm install`/`npm ci` (the package's install script) and before
// `npm run build` (`--if-missing`: see below).
// Without a C compiler the build fails with a warning and lifeboat still works: backups then
// say that extended attributes, FIFOs and device nodes are not stored (docs/format.md).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dir = path.join(root, "native");
const built = path.join(dir, "build", "Release", "lifeboat_fs.node");
// `--if-missing`: only when no build is there, or the one there predates a function the source
// now exports (a checkout that gained one keeps working copies fresh without a rebuild by hand).
if (process.argv.includes("--if-missing") && existsSync(built) && upToDate()) process.exit(0);
function upToDate() {
  const wanted = [
    ...readFileSync(path.join(dir, "lifeboat_fs.c"), "utf8").matchAll(/^\s*\{"(\w+)", NULL,/gm),
  ];
  try {
    const binding = createRequire(import.meta.url)(built);
    return wanted.every((m) => typeof binding[m[1]] === "function");
  } catch {
    return false;
  }
}
if (process.platform !== "linux") {
  console.error(`lifeboat: the native helper is built on Linux only (this is ${process.platform})`);
  process.exit(0);
}

// npm hands install scripts its own node-gyp; run by hand, use the one npm ships with.
const candidates = [
  process.env.npm_config_node_gyp,
  path.join(
    path.dirname(process.execPath),
    "..",
    "lib",
    "node_modules",
    "npm",
    "node_modules",
    "node-gyp",
    "bin",
    "node-gyp.js",
  ),
].filter(Boolean);
const gyp = candidates.find((c) => existsSync(c));
// Headers installed with Node (most packages ship them) spare node-gyp a download.
const prefix = path.join(path.dirname(process.execPath), "..");
const nodedir =
  !process.env.npm_config_nodedir && existsSync(path.join(prefix, "include", "node", "node_api.h"))
    ? [`--nodedir=${prefix}`]
    : [];
const r = gyp
  ? spawnSync(process.execPath, [gyp, "rebuild", ...nodedir], { cwd: dir, encoding: "utf8" })
  : { status: 1, error: new Error("node-gyp not found") };
if (r.status !== 0 || !existsSync(built)) {
  const log = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n");
  if (log) console.error(log);
  console.error(
    `lifeboat: could not build the native helper (${r.error?.message ?? `node-gyp exited ${r.status}`}); ` +
      "extended attributes, FIFOs and device nodes will not be backed up or restored. " +
      "Install a C compiler, make and python3, then run `npm rebuild lifeboat`.",
  );
}
