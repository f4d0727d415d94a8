import { LifeboatError } from "../core/errors.js";
import type { Backend, PutOptions } from "./backend.js";

export interface Retention {
  days: number;
  mode: "governance" | "compliance";
}

/**
 * Puts every object under S3 Object Lock retention for `days` (the bucket must have Object Lock
 * enabled). Until then nobody — not a stolen key, not a buggy prune — can delete or overwrite
 * it; in compliance mode not even the account's root user. Prune skips such objects.
 */
export function withRetention(inner: Backend, r: Retention): Backend {
  if (!inner.capabilities.retention)
    throw new LifeboatError(
      "USAGE",
      `${inner.location} cannot keep objects under retention (Object Lock is an S3 feature)`,
      "use an s3: repository whose bucket has Object Lock enabled, or drop --retention-days",
    );
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
      const retainUntil = new Date(Date.now() + r.days * 86_400_000);
      return inner.put(name, data, { ...options, retainUntil, retentionMode: r.mode });
    },
  };
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
