import { spawn, spawnSync } from "node:child_process";
import fsSync from "node:fs";
import path from "node:path";
import { LifeboatError } from "../../core/errors.js";
import { displayName, fsPath } from "../../core/names.js";

/**
 * Snapshots made by the user's own commands (`--fs-snapshot-command`, `--fs-snapshot-cleanup`),
 * for LVM, ZFS, a storage array or anything else. Each runs with `sh -c` and learns what to do
 * from its environment:
 *
 *   LIFEBOAT_FS_SNAPSHOT_ACTION  `create` or `cleanup`
 *   LIFEBOAT_FS_SNAPSHOT_SOURCE  the path being backed up (absolute)
 *   LIFEBOAT_FS_SNAPSHOT_NAME    a name for the snapshot, unique and recognisable
 *                                (`lifeboat-fs-...`): create names the snapshot so, cleanup
 *                                finds it by it
 *   LIFEBOAT_FS_SNAPSHOT_PATH    cleanup: what create printed (empty if lifeboat stopped before
 *                                it printed anything)
 *
 * The create command prints the path to read the source from (its last line on stdout). The
 * cleanup command removes the snapshot, and succeeds when there is nothing left to remove: it
 * runs again after a crash.
 */

export interface HookTarget {
  source: string;
  name: string;
  /** What create printed. */
  path?: string;
}

function env(action: "create" | "cleanup", t: HookTarget): NodeJS.ProcessEnv {
  return {
    ...process.env,
    LIFEBOAT_FS_SNAPSHOT_ACTION: action,
    LIFEBOAT_FS_SNAPSHOT_SOURCE: t.source,
    LIFEBOAT_FS_SNAPSHOT_NAME: t.name,
    LIFEBOAT_FS_SNAPSHOT_PATH: t.path ?? "",
  };
}

const lastLine = (s: string) =>
  s
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1) ?? "";

function run(
  command: string,
  e: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn("/bin/sh", ["-c", command], { env: e, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (x) => resolve({ code: 127, out: "", err: x.message }));
    child.on("close", (code, signal) =>
      resolve({
        code: signal ? 128 : code,
        out: Buffer.concat(out).toString("utf8"),
        err: Buffer.concat(err).toString("utf8") || (signal ? `killed by ${signal}` : ""),
      }),
    );
  });
}

/** Runs the create command for one source; the path it printed, checked. */
export async function runCreate(command: string, t: HookTarget): Promise<string> {
  const r = await run(command, env("create", t));
  const where = displayName(t.source);
  if (r.code !== 0)
    throw new LifeboatError(
      "FS_SNAPSHOT",
      `--fs-snapshot-command failed for ${where} (exit ${r.code})${lastLine(r.err) ? `: ${lastLine(r.err)}` : ""}`,
      "fix the command (it gets LIFEBOAT_FS_SNAPSHOT_SOURCE and LIFEBOAT_FS_SNAPSHOT_NAME; docs/fs-snapshots.md); nothing was backed up",
    );
  const printed = lastLine(r.out);
  if (!printed)
    throw new LifeboatError(
      "FS_SNAPSHOT",
      `--fs-snapshot-command printed no path for ${where}`,
      "the command must print the path to read the source from in the snapshot, as its last line",
    );
  let st: fsSync.Stats;
  try {
    if (!path.isAbsolute(printed)) throw new Error("relative");
    st = fsSync.lstatSync(fsPath(printed));
  } catch {
    throw new LifeboatError(
      "FS_SNAPSHOT",
      `--fs-snapshot-command printed ${JSON.stringify(printed)} for ${where}, which is not an absolute path that exists`,
      "the command must print the path to read the source from in the snapshot, as its last line",
    );
  }
  const source = fsSync.lstatSync(fsPath(t.source));
  if (st.isDirectory() !== source.isDirectory())
    throw new LifeboatError(
      "FS_SNAPSHOT",
      `--fs-snapshot-command printed ${printed} for ${where}, but one is a folder and the other is not`,
      "print the path of the source itself inside the snapshot",
    );
  return path.resolve(printed);
}

/** Runs the cleanup command for one snapshot. */
export async function runCleanup(command: string, t: HookTarget): Promise<void> {
  const r = await run(command, env("cleanup", t));
  if (r.code !== 0)
    throw new LifeboatError(
      "FS_SNAPSHOT_CLEANUP",
      `--fs-snapshot-cleanup failed for snapshot ${t.name} of ${displayName(t.source)} (exit ${r.code})${lastLine(r.err) ? `: ${lastLine(r.err)}` : ""}`,
      "fix the command; the snapshot stays recorded and the next lifeboat backup or guard with a file-system snapshot runs the cleanup again (docs/fs-snapshots.md)",
    );
}

/** The same, synchronously, for the exit hook; whether it succeeded. */
export function runCleanupSync(command: string, t: HookTarget): boolean {
  const r = spawnSync("/bin/sh", ["-c", command], { env: env("cleanup", t), stdio: "ignore" });
  return r.status === 0;
}
