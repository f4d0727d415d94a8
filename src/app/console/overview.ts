import type { RepositoryCard, SourceRow } from "./api-types.js";
import { type ConsoleRepo, displayLocation } from "./repos.js";
import { sizeHistory } from "./sources.js";

export type { RepositoryCard } from "./api-types.js";

/**
 * The card of one repository, from the sources already built for the overview: its sources'
 * snapshots (read once each, and kept), the count of the fleets' account snapshots (from the
 * listing and the fleets' runs, never their documents: repos.ts) and its packs (one listing,
 * kept 30 s). Its cost does not grow with a fleet's account snapshots beyond their ids.
 */
export async function repositoryCard(
  r: ConsoleRepo,
  rows: SourceRow[],
  error: string | undefined,
): Promise<RepositoryCard> {
  const base = { id: r.spec.id, location: displayLocation(r.spec.url), jobs: r.spec.jobs };
  if (error) return { ...base, error };
  try {
    const snaps = await r.snapshots();
    const counts = await r.counts();
    const storage = await r.storage();
    const mine = rows.filter((x) => x.repo === r.spec.id);
    return {
      ...base,
      error: null,
      snapshots: counts.snapshots,
      accountSnapshots: counts.accountSnapshots,
      sources: mine.length,
      logicalBytes: mine.reduce((a, x) => a + x.logicalBytes, 0),
      packs: storage.packs,
      packBytes: storage.bytes,
      sizeHistory: sizeHistory(snaps),
    };
  } catch (e) {
    return { ...base, error: e instanceof Error ? e.message : String(e) };
  }
}
