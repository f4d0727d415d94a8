import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

let root: string | undefined;

/**
 * The folder of lifeboat's package.json. The command runs bundled (dist/cli/, see
 * scripts/bundle.mjs) and the library as tsc wrote it (dist/src/...): files of the package (the
 * native helper, the console's page) are found from its root, not by counting folders up from
 * the module that asks, which differs between the two.
 */
export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`lifeboat's package.json is not above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  root = dir;
  return dir;
}
