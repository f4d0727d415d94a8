import type { Backend } from "../../backend/backend.js";
import { isLifeboatError, LifeboatError } from "../../core/errors.js";

const HOW =
  "create the bucket with Object Lock (`aws s3api create-bucket --object-lock-enabled-for-bucket`, `mc mb --with-lock`)";

/**
 * Before a repository takes a retention: the storage must be able to lock objects, and an S3
 * bucket must have Object Lock on (a bucket without it refuses every locked put; a missing one
 * would be created by init without it). A bucket that does not say is given the benefit of the
 * doubt: the first locked put then fails with the server's own answer.
 */
export async function requireObjectLock(backend: Backend): Promise<void> {
  if (!backend.capabilities.retention || !backend.versions)
    throw new LifeboatError(
      "USAGE",
      `${backend.location} cannot keep objects under retention (Object Lock is an S3 feature)`,
      "use an s3: repository whose bucket has Object Lock enabled, or drop the retention",
    );
  let state: Awaited<ReturnType<NonNullable<Backend["versions"]>["state"]>>;
  try {
    state = await backend.versions.state();
  } catch (e) {
    if (isLifeboatError(e) && e.code === "NOT_FOUND")
      throw new LifeboatError("USAGE", `${backend.location}: the bucket does not exist`, HOW, e);
    throw e;
  }
  if (state.objectLock === false)
    throw new LifeboatError(
      "USAGE",
      `${backend.location}: the bucket has no Object Lock, so objects cannot be locked there`,
      `${HOW}, and put the repository there`,
    );
}
