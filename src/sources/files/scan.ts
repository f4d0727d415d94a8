import { promises as fs } from "node:fs";
import path from "node:path";
import { fsPath } from "../../core/names.js";
import { listNames } from "../../fsio/list-names.js";
import type { Excludes } from "../../snapshot/excludes.js";

/**
 * Walks the backup paths with lstat only, to learn the totals the progress ETA needs. It runs
 * beside the backup; its numbers are an estimate (files may change in between).
 */
export async function scanTotals(
  roots: string[],
  excludes: Excludes,
  oneFs: boolean,
): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  async function walk(p: string, root: string, dev: bigint | undefined): Promise<void> {
    let st: import("node:fs").BigIntStats;
    try {
      st = await fs.lstat(fsPath(p), { bigint: true });
    } catch {
      return;
    }
    const rel = path.relative(root, p).split(path.sep).join("/");
    if (excludes.excluded(rel, st.isDirectory())) return;
    if (st.isFile()) {
      files++;
      bytes += Number(st.size);
    } else if (st.isDirectory()) {
      if (oneFs && dev !== undefined && st.dev !== dev) return;
      let names: string[] = [];
      try {
        names = await listNames(p);
      } catch {
        return;
      }
      for (const n of names) await walk(path.join(p, n), root, dev ?? st.dev);
    }
  }
  for (const r of roots) await walk(r, r, undefined);
  return { files, bytes };
}
