import { readFileSync } from "node:fs";
import ignore, { type Ignore } from "ignore";
import { LifeboatError } from "../core/errors.js";
import { nameFromBytes } from "../core/names.js";

/**
 * Exclude rules in gitignore syntax, matched against the path relative to the backup argument it
 * was found under (so `*.log`, `node_modules/` and `/build` mean what they mean in .gitignore).
 * Paths are in the form of core/names.ts: `?` matches one byte that is not UTF-8, and an exclude
 * file may hold such bytes as they are.
 */
export class Excludes {
  private readonly ig: Ignore;
  readonly patterns: string[];

  constructor(patterns: string[]) {
    this.patterns = patterns.filter((p) => p.trim() !== "" && !p.startsWith("#"));
    this.ig = ignore().add(this.patterns);
  }

  static fromFiles(patterns: string[], files: string[]): Excludes {
    const all = [...patterns];
    for (const f of files) {
      let text: string;
      try {
        // As bytes: a pattern may name a file whose name is not UTF-8 (core/names.ts).
        text = nameFromBytes(readFileSync(f));
      } catch (e) {
        throw new LifeboatError(
          "USAGE",
          `cannot read exclude file ${f}: ${(e as Error).message}`,
          "check --exclude-file",
        );
      }
      for (const line of text.split(/\r?\n/)) all.push(line);
    }
    return new Excludes(all);
  }

  /** `rel` is a relative POSIX path below a backup argument; never empty. */
  excluded(rel: string, isDir: boolean): boolean {
    if (this.patterns.length === 0 || rel === "") return false;
    return this.ig.ignores(isDir ? `${rel}/` : rel);
  }
}
