import { errnoCode, LifeboatError } from "../core/errors.js";

/** Maps a file-system or network error to one clear LifeboatError naming the place. */
export function storageError(e: unknown, where: string): LifeboatError {
  if (e instanceof LifeboatError) return e;
  const code = errnoCode(e);
  const msg = e instanceof Error ? e.message : String(e);
  switch (code) {
    case "ENOENT":
      return new LifeboatError("NOT_FOUND", `${where} does not exist`, undefined, e);
    case "ENOSPC":
    case "EDQUOT":
      return new LifeboatError(
        "STORAGE_FULL",
        `no space left on the repository storage while writing ${where}`,
        "free space on the repository disk (or run `lifeboat prune`), then run the command again; nothing was damaged",
        e,
      );
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return new LifeboatError(
        "PERMISSION_DENIED",
        `permission denied for ${where}`,
        "check the owner and mode of the repository folder, or run as a user who may write there",
        e,
      );
    case "ECONNREFUSED":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ENOTFOUND":
    case "ETIMEDOUT":
    case "ECONNRESET":
      return new LifeboatError(
        "UNREACHABLE",
        `cannot reach ${where}: ${msg}`,
        "check the host name, port and network",
        e,
      );
    default:
      return new LifeboatError("STORAGE_ERROR", `storage error at ${where}: ${msg}`, undefined, e);
  }
}
