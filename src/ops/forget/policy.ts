/**
 * Retention policies as restic users know them. Within a group (by default host + paths),
 * snapshots are walked newest first; each `--keep-<period> N` keeps the newest snapshot of each
 * of the N most recent periods that have one; `--keep-last N` the N newest; `--keep-within D`
 * everything younger than D before the group's newest snapshot; `--keep-tag T` anything tagged T.
 * Periods use local time (set TZ to change it).
 */
export interface Policy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** Milliseconds. */
  within?: number;
  tags?: string[];
}

export interface PolicySnapshot {
  id: string;
  time: string;
  tags: string[];
}

export interface Decision<S extends PolicySnapshot> {
  snapshot: S;
  keep: boolean;
  reasons: string[];
}

export function isEmptyPolicy(p: Policy): boolean {
  return (
    !p.last &&
    !p.hourly &&
    !p.daily &&
    !p.weekly &&
    !p.monthly &&
    !p.yearly &&
    !p.within &&
    !(p.tags && p.tags.length > 0)
  );
}

const pad = (n: number) => String(n).padStart(2, "0");

/** ISO-8601 week-numbering year and week, e.g. "2026-W05". */
export function isoWeek(d: Date): string {
  const t = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const day = (t.getDay() + 6) % 7; // Monday = 0
  t.setDate(t.getDate() - day + 3); // Thursday of this week decides the year
  const firstThursday = new Date(t.getFullYear(), 0, 4);
  const week =
    1 +
    Math.round(
      ((t.getTime() - firstThursday.getTime()) / 86_400_000 - 3 + ((firstThursday.getDay() + 6) % 7)) / 7,
    );
  return `${t.getFullYear()}-W${pad(week)}`;
}

const buckets: [
  keyof Policy & ("hourly" | "daily" | "weekly" | "monthly" | "yearly"),
  (d: Date) => string,
][] = [
  ["hourly", (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}`],
  ["daily", (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`],
  ["weekly", isoWeek],
  ["monthly", (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}`],
  ["yearly", (d) => `${d.getFullYear()}`],
];

/** Applies a policy to one group of snapshots; returns decisions newest first. */
export function applyPolicy<S extends PolicySnapshot>(snapshots: S[], policy: Policy): Decision<S>[] {
  const sorted = [...snapshots].sort((a, b) =>
    a.time < b.time ? 1 : a.time > b.time ? -1 : a.id < b.id ? 1 : -1,
  );
  const newest = sorted[0] ? new Date(sorted[0].time).getTime() : 0;
  const counts = new Map<string, number>();
  const lastBucket = new Map<string, string>();
  return sorted.map((s, i) => {
    const d = new Date(s.time);
    const reasons: string[] = [];
    if (policy.last && i < policy.last) reasons.push("last snapshot");
    for (const [name, bucketOf] of buckets) {
      const n = policy[name];
      if (!n) continue;
      const b = bucketOf(d);
      if ((counts.get(name) ?? 0) < n && lastBucket.get(name) !== b) {
        counts.set(name, (counts.get(name) ?? 0) + 1);
        lastBucket.set(name, b);
        reasons.push(`${name} snapshot`);
      }
    }
    if (policy.within !== undefined && newest - d.getTime() <= policy.within)
      reasons.push("within the kept period");
    for (const t of policy.tags ?? []) if (s.tags.includes(t)) reasons.push(`tagged ${t}`);
    return { snapshot: s, keep: reasons.length > 0, reasons };
  });
}

/** Parses durations like `7d`, `2w`, `1y6m`, `36h` (y=365d, m=30d, w=7d, d, h). */
export function parseDuration(s: string): number {
  const re = /(\d+)([ymwdh])/g;
  const unit: Record<string, number> = {
    y: 365 * 86_400_000,
    m: 30 * 86_400_000,
    w: 7 * 86_400_000,
    d: 86_400_000,
    h: 3_600_000,
  };
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * unit[m[2]!]!;
    consumed += m[0].length;
  }
  if (consumed !== s.length || consumed === 0)
    throw new Error(`${JSON.stringify(s)} is not a duration like 7d, 2w, 1y6m or 36h`);
  return total;
}

/** How many unflagged snapshots before the first flagged one every policy keeps (default). */
export const KEEP_BEFORE_ANOMALY = 3;

/**
 * Retention that a wipe cannot trick: whatever the policy decided (decisions newest first),
 * flagged and pinned snapshots not yet acknowledged are kept, and so are the newest
 * `keepBefore` unflagged snapshots older than the oldest unacknowledged flagged one — the last
 * good data. A month of daily backups after a wipe cannot push them out.
 */
export function guardDecisions<S extends PolicySnapshot>(
  decisions: Decision<S>[],
  isFlagged: (s: S) => boolean,
  isPinned: (s: S) => boolean,
  keepBefore = KEEP_BEFORE_ANOMALY,
): Decision<S>[] {
  const out = decisions.map((d) => ({ ...d, reasons: [...d.reasons] }));
  let first = -1;
  for (let i = out.length - 1; i >= 0; i--) {
    if (isFlagged(out[i]!.snapshot)) {
      first = i;
      break;
    }
  }
  for (const d of out) {
    if (isFlagged(d.snapshot)) d.reasons.push("flagged as anomalous, not acknowledged");
    else if (isPinned(d.snapshot)) d.reasons.push("pinned, not acknowledged");
  }
  if (first >= 0) {
    const flaggedId = out[first]!.snapshot.id.slice(0, 8);
    let kept = 0;
    for (let i = first + 1; i < out.length && kept < keepBefore; i++) {
      if (isFlagged(out[i]!.snapshot)) continue;
      out[i]!.reasons.push(`last good before flagged ${flaggedId}`);
      kept++;
    }
  }
  for (const d of out) d.keep = d.reasons.length > 0;
  return out;
}
