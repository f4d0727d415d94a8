import { promises as fs } from "node:fs";
import path from "node:path";
import { LifeboatError } from "../../core/errors.js";
import { expandHome } from "../config.js";

/**
 * The console runs as root, so it restores onto the host only below the folders the config
 * allows (`console.restoreRoots`). A target is judged by its real path: a symlink inside a root
 * that points outside it does not lead out.
 */
export function normalizeRoots(roots: string[]): string[] {
  return roots.map((r) => path.resolve(expandHome(r)));
}

const inside = (root: string, p: string) =>
  p === root || p.startsWith(root.endsWith("/") ? root : `${root}/`);

/** The real path of `p`, following what exists and appending what does not yet. */
async function realpathSoFar(p: string): Promise<string> {
  const rest: string[] = [];
  let at = p;
  for (;;) {
    try {
      return path.join(await fs.realpath(at), ...rest.reverse());
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      const up = path.dirname(at);
      if (up === at) throw e;
      rest.push(path.basename(at));
      at = up;
    }
  }
}

function refused(target: string, roots: string[]): LifeboatError {
  return new LifeboatError(
    "PERMISSION_DENIED",
    roots.length === 0
      ? "restoring onto this host is off: the config allows no restore roots"
      : `${target} is not under a restore root (${roots.join(", ")})`,
    "add the folder to console.restoreRoots in the config file (docs/config.md), or download instead",
  );
}

/**
 * Checks a restore target before anything is written: an absolute path whose real path lies
 * under a root. Returns that real path (create it, then check again with `confirmTarget`).
 */
export async function checkTarget(target: string, roots: string[]): Promise<string> {
  if (typeof target !== "string" || !path.isAbsolute(target) || target.includes("\0"))
    throw new LifeboatError("USAGE", "the restore target must be an absolute path", "e.g. /srv/restore/x");
  const real = await realpathSoFar(path.resolve(target));
  for (const root of roots) {
    const realRoot = await realpathSoFar(root);
    if (inside(realRoot, real)) return real;
  }
  throw refused(target, roots);
}

/** Creates the target folder and checks its real path again (nothing swapped in since). */
export async function prepareTarget(target: string, roots: string[]): Promise<string> {
  const planned = await checkTarget(target, roots);
  await fs.mkdir(planned, { recursive: true });
  return checkTarget(await fs.realpath(planned), roots);
}

/** For a file target (an SQLite database): creates its folder, checks the file's real path. */
export async function prepareFileTarget(target: string, roots: string[]): Promise<string> {
  await checkTarget(target, roots);
  const dir = await prepareTarget(path.dirname(path.resolve(target)), roots);
  return checkTarget(path.join(dir, path.basename(target)), roots);
}
