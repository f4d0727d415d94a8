import { LifeboatError } from "../core/errors.js";
import type { Backend } from "./backend.js";
import { localBackend } from "./local.js";
import { withRetries } from "./retry.js";

/**
 * Turns a repository URL into a backend. A plain path (or `local:PATH`) is a local folder.
 * Each scheme is one module under src/backend/; this switch is the only place that knows them all.
 *
 * - `s3:https://HOST[:PORT]/BUCKET[/PREFIX]`, `s3:http://HOST:PORT/BUCKET[/PREFIX]`,
 *   `s3:s3.amazonaws.com/BUCKET[/PREFIX]` (the AWS SDK retries failed requests itself)
 * - `sftp:USER@HOST:/PATH`, `sftp://USER@HOST[:PORT]/PATH` (retried here after a dropped
 *   connection)
 * - `rest:http(s)://[USER[:PASSWORD]@]HOST:PORT/[REPO]` (a `lifeboat serve`; retried here)
 * See docs/backends.md.
 */
export async function openBackend(url: string): Promise<Backend> {
  const backend = await openPlain(url);
  return openedHook ? openedHook(backend, url) : backend;
}

/**
 * Set only by the torture tests' CLI entry (test/torture/hooked-cli.ts, docs/reliability.md),
 * which wraps every backend a command opens (a fault plan, a kill after the Nth write). Normal
 * runs never set it; its cost is one comparison per opened repository.
 */
let openedHook: ((backend: Backend, url: string) => Backend) | undefined;

/** Test hook (see `openedHook`): `hook` wraps every backend `openBackend` returns from now on. */
export function setOpenedBackendHook(hook: ((backend: Backend, url: string) => Backend) | undefined): void {
  openedHook = hook;
}

async function openPlain(url: string): Promise<Backend> {
  const m = /^([a-z][a-z0-9+]*):(.*)$/s.exec(url);
  // Windows-style drive letters are not supported; a one-letter scheme is treated as a path.
  if (!m || m[1]!.length === 1) return localBackend({ path: url });
  const [, scheme, rest] = m as unknown as [string, string, string];
  switch (scheme) {
    case "local":
      return localBackend({ path: rest });
    // Remote backends are loaded on first use: their SDKs cost ~0.1 s of start-up per command.
    case "s3": {
      const { parseS3Url, s3Backend } = await import("./s3.js");
      return s3Backend({ ...parseS3Url(rest), url });
    }
    case "rest": {
      const { parseRestUrl, restBackend } = await import("./rest.js");
      return withRetries(restBackend(parseRestUrl(rest)));
    }
    case "sftp": {
      const { parseSftpUrl, sftpBackend } = await import("./sftp.js");
      return withRetries(sftpBackend({ ...parseSftpUrl(url), url }));
    }
    default:
      throw new LifeboatError(
        "USAGE",
        `unknown repository URL scheme "${scheme}:" in ${JSON.stringify(url)}`,
        "use a local path, local:PATH, s3:..., sftp:... or rest:... (see `lifeboat help repository`)",
      );
  }
}
