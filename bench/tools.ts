import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { gitDescribe } from "./machine.js";

export const TOOL_NAMES = ["lifeboat", "restic", "borg"] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

/** How each tool does each step. Snapshot refs come from `snapshots()` (ids; borg: archive names). */
export interface Tool {
  name: ToolName;
  version(): string;
  init(repo: string): string[];
  /** The n-th backup (1-based) of `src`. */
  backup(repo: string, src: string, n: number): string[];
  /** Restores snapshot `ref` so that `src` reappears under `target`; `sparse`: write zero runs as holes. */
  restore(repo: string, ref: string, target: string, sparse: boolean): { argv: string[]; cwd?: string };
  /** Long listing of every entry of a snapshot. */
  ls(repo: string, ref: string): string[];
  find(repo: string, ref: string, glob: string): string[];
  diff(repo: string, a: string, b: string): string[];
  check(repo: string): string[];
  /** Lists the snapshot refs, oldest first (not measured). */
  snapshots(repo: string, env: NodeJS.ProcessEnv): string[];
}

/**
 * The environment of one tool in one pair: its own HOME and caches (restic's cache, borg's files
 * and chunks caches, lifeboat's XDG folders) under `home`, so pairs start alike and nothing from
 * an earlier run or the user's own configuration leaks in.
 */
export function toolEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    LANG: "C.UTF-8",
    HOME: home,
    XDG_CACHE_HOME: path.join(home, ".cache"),
    XDG_CONFIG_HOME: path.join(home, ".config"),
    XDG_DATA_HOME: path.join(home, ".local", "share"),
    XDG_STATE_HOME: path.join(home, ".local", "state"),
    RESTIC_PASSWORD: "bench-password",
    RESTIC_CACHE_DIR: path.join(home, ".cache", "restic"),
    BORG_PASSPHRASE: "bench-password",
    BORG_BASE_DIR: home,
    BORG_RELOCATED_REPO_ACCESS_IS_OK: "yes",
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: "yes",
    LIFEBOAT_PASSWORD: "bench-password",
  };
}

/**
 * The Node options on the first line of the `lifeboat` command (`#!/usr/bin/env -S node
 * --max-semi-space-size=2`): the bench runs it as a user's shell does, with the Node that runs
 * the bench (an A/B of an older build without such a line gets none).
 */
export function shebangNodeArgs(cli: string): string[] {
  const first = readFileSync(cli, "utf8").split("\n", 1)[0] ?? "";
  const m = /^#!\S*env -S node((?:\s+\S+)*)\s*$/.exec(first);
  return m?.[1] ? m[1].trim().split(/\s+/) : [];
}

/** The command as it ships (bundled, scripts/bundle.mjs), or as tsc wrote it in a checkout from
 * before the bundle. */
export function cliOf(projectRoot: string): string {
  const bundled = path.join(projectRoot, "dist", "cli", "main.js");
  return existsSync(bundled) ? bundled : path.join(projectRoot, "dist", "src", "cli", "main.js");
}

export function tools(projectRoot: string): Record<ToolName, Tool> {
  const cli = cliOf(projectRoot);
  const node = [process.execPath, ...shebangNodeArgs(cli)];
  const lb = (repo: string, ...args: string[]) => [...node, cli, "-r", repo, ...args];
  return {
    lifeboat: {
      name: "lifeboat",
      version: () =>
        `lifeboat ${JSON.parse(readFileSync(path.join(projectRoot, "package.json"), "utf8")).version} (${gitDescribe(projectRoot)})`,
      init: (repo) => lb(repo, "init", "-q"),
      backup: (repo, src) => lb(repo, "backup", "-q", src),
      // lifeboat always writes runs of zeroes as holes.
      restore: (repo, ref, target) => ({ argv: lb(repo, "restore", ref, "--target", target, "-q") }),
      ls: (repo, ref) => lb(repo, "ls", "-l", ref),
      find: (repo, ref, glob) => lb(repo, "find", "--snapshot", ref, glob),
      diff: (repo, a, b) => lb(repo, "diff", a, b),
      check: (repo) => lb(repo, "check", "--read-data", "-q"),
      snapshots: (repo, env) => {
        const [cmd, ...args] = lb(repo, "snapshots", "--json");
        return oldestFirst(execFileSync(cmd!, args, { env, encoding: "utf8" }));
      },
    },
    restic: {
      name: "restic",
      version: () => execFileSync("restic", ["version"], { encoding: "utf8" }).split(" compiled")[0]!.trim(),
      init: (repo) => ["restic", "-r", repo, "init", "-q"],
      backup: (repo, src) => ["restic", "-r", repo, "backup", "-q", src],
      // restic 0.14 has no restore --sparse (0.15 added it): it writes the zeroes out.
      restore: (repo, ref, target) => ({
        argv: ["restic", "-r", repo, "restore", ref, "--target", target, "-q"],
      }),
      ls: (repo, ref) => ["restic", "-r", repo, "ls", "-l", ref],
      find: (repo, ref, glob) => ["restic", "-r", repo, "find", "--snapshot", ref, glob],
      diff: (repo, a, b) => ["restic", "-r", repo, "diff", a, b],
      check: (repo) => ["restic", "-r", repo, "check", "--read-data", "-q"],
      snapshots: (repo, env) =>
        oldestFirst(execFileSync("restic", ["-r", repo, "snapshots", "--json"], { env, encoding: "utf8" })),
    },
    borg: {
      name: "borg",
      version: () => execFileSync("borg", ["--version"], { encoding: "utf8" }).trim(),
      init: (repo) => ["borg", "init", "-e", "repokey", repo],
      backup: (repo, src, n) => ["borg", "create", "--compression", "zstd,3", `${repo}::s${n}`, src],
      // borg extract writes the archived paths (without the leading /) below its working folder.
      restore: (repo, ref, target, sparse) => ({
        argv: ["borg", "extract", ...(sparse ? ["--sparse"] : []), `${repo}::${ref}`],
        cwd: target,
      }),
      ls: (repo, ref) => ["borg", "list", `${repo}::${ref}`],
      find: (repo, ref, glob) => ["borg", "list", `${repo}::${ref}`, `sh:**/${glob}`],
      diff: (repo, a, b) => ["borg", "diff", `${repo}::${a}`, b],
      check: (repo) => ["borg", "check", "--verify-data", repo],
      snapshots: (repo, env) =>
        execFileSync("borg", ["list", "--short", repo], { env, encoding: "utf8" })
          .trim()
          .split("\n")
          .filter(Boolean),
    },
  };
}

/** Snapshot ids from a `snapshots --json` array (lifeboat and restic print the same shape). */
function oldestFirst(json: string): string[] {
  return (JSON.parse(json) as { id: string; time: string }[])
    .sort((x, y) => Date.parse(x.time) - Date.parse(y.time))
    .map((s) => s.id);
}
