import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { defaultLocations } from "../app/default-repo.js";
import { deriveAhead, plausibleKdf } from "../repo/kdf.js";

/** Commands that open the repository with its password as they start. */
const OPENING = new Set([
  "ack",
  "backup",
  "cat",
  "check",
  "copy",
  "diff",
  "drill",
  "dump",
  "export",
  "find",
  "forget",
  "guard",
  "key",
  "ls",
  "mount",
  "pg",
  "prune",
  "pull",
  "push",
  "repair",
  "replicate",
  "restore",
  "retention",
  "snapshots",
  "stats",
  "status",
]);

/** The global options that take a value (as program.ts declares them). */
const VALUED = new Set([
  "-r",
  "--repo",
  "--password-file",
  "--password-command",
  "--config",
  "--retention-days",
  "--retention-mode",
  "--limit-upload",
  "--limit-download",
  "--notify-url",
  "--notify-email",
  "--notify-command",
]);

/**
 * Starts the scrypt of a local repository's key file before the program has loaded: its ~0.1 s
 * on the thread pool then overlaps the ~0.1 s of loading modules instead of following it. Only
 * where the answer is cheap and certain to be asked for: a command that opens the repository, a
 * local one (-r, LIFEBOAT_REPOSITORY or the default one) with one key file, and a password from
 * LIFEBOAT_PASSWORD or a password file, taken in the order resolvePassword takes them. It is a
 * guess: Repository.open takes the result only for the same password and key file, and anything
 * that fails here is met again, and reported, where the repository is opened.
 */
export function unlockEarly(argv: readonly string[], env: NodeJS.ProcessEnv): void {
  try {
    const found = guess(argv, env);
    if (!found) return;
    const keys = path.join(found.repo, "keys");
    const ids = readdirSync(keys).filter((n) => /^[0-9a-f]{64}$/.test(n));
    if (ids.length !== 1) return;
    const file = JSON.parse(readFileSync(path.join(keys, ids[0]!), "utf8")) as { kdf?: unknown };
    if (!plausibleKdf(file.kdf)) return;
    const password = found.password();
    if (password !== undefined) deriveAhead(password, file.kdf);
  } catch {
    // Nothing to start: the repository is opened as usual.
  }
}

function guess(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): { repo: string; password: () => string | undefined } | undefined {
  let command: string | undefined;
  const given = new Map<string, string>();
  for (let i = 2; i < argv.length; i++) {
    const t = argv[i]!;
    if (t === "--") break;
    if (t === "-h" || t === "--help" || t === "-V" || t === "--version") return undefined;
    if (!t.startsWith("-")) {
      command ??= t;
      continue;
    }
    const eq = t.indexOf("=");
    const name = eq > 0 ? t.slice(0, eq) : t;
    if (!VALUED.has(name)) continue;
    const value = eq > 0 ? t.slice(eq + 1) : argv[++i];
    if (value !== undefined) given.set(name === "-r" ? "--repo" : name, value);
  }
  if (!command || !OPENING.has(command)) return undefined;
  // An empty LIFEBOAT_REPOSITORY means the default repository, as for the command itself.
  const url = given.get("--repo") ?? (env.LIFEBOAT_REPOSITORY || undefined);
  const repo = url === undefined ? defaultLocations().repo : localPath(url);
  if (repo === undefined) return undefined;
  // Read last, once the key file is known to be there: reading a file costs little, but a
  // password command is never run and a pipe never read here (see fromFile).
  return { repo, password: () => passwordOf(given, env, url === undefined) };
}

/** The folder of a local repository URL (as openBackend reads it), or undefined for another kind. */
function localPath(url: string): string | undefined {
  const m = /^([a-z][a-z0-9+]*):(.*)$/s.exec(url);
  if (!m || m[1]!.length === 1) return url;
  return m[1] === "local" ? m[2] : undefined;
}

/** The password resolvePassword would find without running a command or asking. */
function passwordOf(given: Map<string, string>, env: NodeJS.ProcessEnv, defaultRepo: boolean) {
  if (given.has("--password-command")) return undefined;
  const file = given.get("--password-file");
  if (file !== undefined) return fromFile(file);
  if (env.LIFEBOAT_PASSWORD_COMMAND) return undefined;
  if (env.LIFEBOAT_PASSWORD) return env.LIFEBOAT_PASSWORD;
  if (env.LIFEBOAT_PASSWORD_FILE) return fromFile(env.LIFEBOAT_PASSWORD_FILE);
  return defaultRepo ? fromFile(defaultLocations().passwordFile) : undefined;
}

/** A regular file's password: a pipe (`--password-file <(pass show x)`, /dev/stdin) is left
 * for the command to read, once. */
function fromFile(file: string): string | undefined {
  if (!statSync(file).isFile()) return undefined;
  const pw = readFileSync(file, "utf8").replace(/\r?\n$/, "");
  return pw === "" ? undefined : pw;
}
