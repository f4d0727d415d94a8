import path from "node:path";
import { FILE_COUNTS } from "./dataset-files.js";
import type { CacheState } from "./pairs.js";
import { PROFILE_NAMES } from "./profiles.js";
import { TOOL_NAMES, type ToolName } from "./tools.js";

export const USAGE = `npm run bench [-- OPTIONS]

  --profile LIST   ${PROFILE_NAMES.join(", ")} (comma-separated; default: default)
  --files LIST     file counts for the files profile: ${Object.keys(FILE_COUNTS).join(", ")} (default: all)
  --pairs N        times every step runs for every tool, interleaved (default: 3)
  --cache LIST     warm, cold or both (default: warm,cold)
  --scale X        multiplies the dataset sizes (smoke runs: 0.02; default: 1)
  --tools LIST     lifeboat, restic, borg (default: all three, in that order)
  --lifeboat DIR   the checkout whose dist/ is measured as lifeboat (default: this one); to
                   compare two versions, run each in turn against restic and compare the ratios
  --data DIR       generated datasets, kept for the next run (default: /var/tmp/lifeboat-bench/datasets)
  --dir DIR        scratch folder for repositories and restores (default: /var/tmp/lifeboat-bench/work)
  --out FILE       document to put the tables in (default: docs/benchmarks.md)
  --no-write       print the tables only`;

/** A mistake on the command line: printed as one line with the usage, not as a stack trace. */
export class UsageError extends Error {}

export interface Options {
  profiles: string[];
  files: string[];
  pairs: number;
  caches: CacheState[];
  scale: number;
  tools: ToolName[];
  data: string;
  work: string;
  out: string | undefined;
  /** The checkout measured as lifeboat. */
  lifeboatRoot: string;
}

export function parseOptions(args: string[], projectRoot: string): Options {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("--")) throw new UsageError(`unexpected argument ${a}\n\n${USAGE}`);
    const eq = a.indexOf("=");
    if (eq > 0) values.set(a.slice(2, eq), a.slice(eq + 1));
    else if (a === "--no-write" || a === "--help") flags.add(a.slice(2));
    else if (i + 1 < args.length) values.set(a.slice(2), args[++i]!);
    else throw new UsageError(`${a} needs a value\n\n${USAGE}`);
  }
  if (flags.has("help")) {
    console.log(USAGE);
    process.exit(0);
  }
  for (const k of values.keys())
    if (
      !["profile", "files", "pairs", "cache", "scale", "tools", "data", "dir", "out", "lifeboat"].includes(k)
    )
      throw new UsageError(`unknown option --${k}\n\n${USAGE}`);
  const list = (k: string, def: string, allowed: readonly string[]) => {
    const xs = (values.get(k) ?? def)
      .split(",")
      .map((x) => x.trim().toLowerCase())
      .filter(Boolean);
    for (const x of xs)
      if (!allowed.includes(x)) throw new UsageError(`--${k}: ${x} is not one of ${allowed.join(", ")}`);
    if (xs.length === 0) throw new UsageError(`--${k} is empty`);
    return xs;
  };
  const pairs = Number(values.get("pairs") ?? 3);
  if (!Number.isInteger(pairs) || pairs < 1)
    throw new UsageError("--pairs takes a whole number of at least 1");
  const scale = Number(values.get("scale") ?? 1);
  if (!(scale > 0 && scale <= 100)) throw new UsageError("--scale takes a number above 0 (up to 100)");
  const base = "/var/tmp/lifeboat-bench";
  return {
    profiles: list("profile", "default", PROFILE_NAMES),
    files: list("files", Object.keys(FILE_COUNTS).join(","), Object.keys(FILE_COUNTS)),
    pairs,
    caches: list("cache", "warm,cold", ["warm", "cold"]) as CacheState[],
    scale,
    tools: list("tools", TOOL_NAMES.join(","), TOOL_NAMES) as ToolName[],
    data: path.resolve(values.get("data") ?? path.join(base, "datasets")),
    work: path.resolve(values.get("dir") ?? path.join(base, "work")),
    out: flags.has("no-write")
      ? undefined
      : path.resolve(values.get("out") ?? path.join(projectRoot, "docs", "benchmarks.md")),
    lifeboatRoot: path.resolve(values.get("lifeboat") ?? projectRoot),
  };
}
