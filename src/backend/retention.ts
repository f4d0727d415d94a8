import { LifeboatError } from "../core/errors.js";
import type { Backend, PutOptions } from "./backend.js";

export interface Retention {
  days: number;
  mode: "governance" | "compliance";
}

/**
 * Names that are never locked: the markers of running backups (`sessions/`) and prune's plans
 * (`gc/`). They are short-lived bookkeeping that must be deletable at once: a session whose
 * delete is refused would hold every prune back, and a plan is replaced as it is carried out.
 * Losing one to a malicious delete costs nothing (a missing plan dooms nothing; a missing
 * session lets a prune plan packs a backup writes, whose deletion then waits for it anyway).
 */
export const UNLOCKED_PREFIXES: readonly string[] = ["sessions/", "gc/"];

export const isUnlocked = (name: string) => UNLOCKED_PREFIXES.some((p) => name.startsWith(p));

/** The refusal to write into a repository with retention through storage that cannot lock. */
export function cannotLock(location: string, r: Retention): LifeboatError {
  return new LifeboatError(
    "USAGE",
    `the repository keeps every object under Object Lock retention (${r.days} days, ${r.mode}), which ${location} cannot do, so nothing is written`,
    "write to it through the S3 bucket with Object Lock where it lives (reading from here is fine)",
  );
}

/**
 * Puts objects under S3 Object Lock retention for `retention().days` from now (the bucket must
 * have Object Lock enabled), except `sessions/` and `gc/` (UNLOCKED_PREFIXES). Until then nobody
 * — not a stolen key, not a buggy prune — can delete or overwrite them; in compliance mode not
 * even the account's root user. `retention` is asked at every put (the repository config may
 * gain one while open); when it says none, puts pass through unlocked. On storage that cannot
 * lock, a put that should be locked is refused: an unlocked object never enters a repository
 * that keeps its objects locked.
 */
export function lockedBackend(inner: Backend, retention: () => Retention | undefined): Backend {
  return {
    ...inner,
    exists: () => inner.exists(),
    create: () => inner.create(),
    get: (name, o) => inner.get(name, o),
    stat: (name) => inner.stat(name),
    list: (prefix) => inner.list(prefix),
    delete: (name) => inner.delete(name),
    close: () => inner.close(),
    put(name: string, data: Buffer, options?: PutOptions) {
      const r = retention();
      if (!r || isUnlocked(name)) return inner.put(name, data, options);
      if (!inner.capabilities.retention) return Promise.reject(cannotLock(inner.location, r));
      const retainUntil = new Date(Date.now() + r.days * 86_400_000);
      return inner.put(name, data, { ...options, retainUntil, retentionMode: r.mode });
    },
    // Only storage without retention streams objects (backend.ts): a locked one must be put.
    openWriter: inner.openWriter
      ? (folder: string) => {
          const r = retention();
          if (r && !isUnlocked(`${folder}/`)) return Promise.reject(cannotLock(inner.location, r));
          return inner.openWriter!(folder);
        }
      : undefined,
  };
}

/** `lockedBackend` with a fixed retention; refuses storage without Object Lock at once. */
export function withRetention(inner: Backend, r: Retention): Backend {
  if (!inner.capabilities.retention)
    throw new LifeboatError(
      "USAGE",
      `${inner.location} cannot keep objects under retention (Object Lock is an S3 feature)`,
      "use an s3: repository whose bucket has Object Lock enabled, or drop --retention-days",
    );
  return lockedBackend(inner, () => r);
}

export function parseRetention(days: string | undefined, mode: string | undefined): Retention | undefined {
  if (days === undefined || days === "") return undefined;
  const n = Number(days);
  if (!Number.isInteger(n) || n <= 0)
    throw new LifeboatError(
      "USAGE",
      `--retention-days ${JSON.stringify(days)} is not a whole number of days`,
      "e.g. --retention-days 30",
    );
  const m = (mode ?? "governance").toLowerCase();
  if (m !== "governance" && m !== "compliance")
    throw new LifeboatError(
      "USAGE",
      `--retention-mode ${JSON.stringify(mode)} is not governance or compliance`,
      "governance can be lifted by an administrator; compliance by nobody",
    );
  return { days: n, mode: m };
}

/**
 * The S3 lifecycle configuration that goes with a retention (docs/backends.md): abort
 * multipart uploads a killed process left; remove delete markers nothing is behind; and drop
 * versions that are not current (hidden by someone's delete marker) only `days` after they were
 * hidden — never earlier than the lock ends anyway, and late enough to notice and run
 * `lifeboat repair undelete`. No `Expiration` of current versions: on a versioned bucket it would
 * hide every object behind a marker.
 */
export function lifecycleRule(r: Retention, graceDays = r.days) {
  return {
    Rules: [
      {
        ID: "lifeboat",
        Status: "Enabled",
        Filter: {},
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
        Expiration: { ExpiredObjectDeleteMarker: true },
        NoncurrentVersionExpiration: { NoncurrentDays: Math.max(r.days, graceDays) },
      },
    ],
  };
}
