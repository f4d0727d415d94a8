// No imports from Node: the console's page compiles this type too (src/app/console/api-types.ts).

import type { ItemError } from "../../core/item-error.js";

/** What a restore did (`restore --json`'s summary). */
export interface RestoreResult {
  files: number;
  /** Files already present with the right content (a resumed restore skips them). */
  filesSkipped: number;
  dirs: number;
  symlinks: number;
  /** FIFOs and device nodes. */
  special: number;
  bytes: number;
  verified: number;
  /** What failed, by path relative to the target (`.` for the target itself). */
  errors: ItemError[];
  /** What was left out on purpose (device nodes and privileged attributes when not root). */
  warnings: string[];
}
