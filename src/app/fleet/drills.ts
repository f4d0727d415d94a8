import { drill } from "../drill.js";
import { stableFraction } from "./hash.js";
import { recordedRepo } from "./repos.js";
import type { FleetRuntime } from "./scheduler.js";

const DAY = 86_400_000;

/**
 * Drills across the fleet: each night a sample of accounts (the fleet's `drillSample`, default
 * 1 %, at least one account) is restored into a scratch folder and verified byte for byte. The
 * sample is chosen by a hash of fleet, account and UTC date, so it changes every night and
 * covers the fleet over time; an account drilled in the last 30 days counts as proven.
 */
export async function drillSample(
  rt: FleetRuntime,
  max = Number.POSITIVE_INFINITY,
): Promise<{ drilled: number; failed: number }> {
  const now = rt.now();
  const day = new Date(now).toISOString().slice(0, 10);
  const rows = (await rt.store.all(rt.def.name)).filter((r) => r.info.lastSnapshot !== undefined);
  if (rows.length === 0 || rt.def.drillSample <= 0) return { drilled: 0, failed: 0 };
  const today = new Set((await rt.store.drills(rt.def.name, now - DAY)).map((d) => d.id));
  let picked = rows.filter(
    (r) => stableFraction(rt.def.name, r.state.account.id, day, "drill") < rt.def.drillSample,
  );
  if (picked.length === 0)
    picked = [
      rows.reduce((a, b) =>
        stableFraction(rt.def.name, a.state.account.id, day) <
        stableFraction(rt.def.name, b.state.account.id, day)
          ? a
          : b,
      ),
    ];
  let drilled = 0;
  let failed = 0;
  for (const r of picked) {
    if (drilled >= max) break;
    const id = r.state.account.id;
    if (today.has(id)) continue;
    const snap = r.info.lastSnapshot!;
    try {
      // Each account from its own repository (several: the one its row records).
      const repo = await rt.repos.open(recordedRepo(rt.def, r.info) ?? rt.repos.keys[0]!);
      const d = await drill(repo, { snapshot: snap });
      await rt.store.addDrill(
        rt.def.name,
        id,
        now,
        snap,
        d.record.ok,
        d.record.ok ? undefined : d.errors[0]?.message,
      );
      if (!d.record.ok) failed++;
    } catch (e) {
      await rt.store.addDrill(rt.def.name, id, now, snap, false, (e as Error).message.split("\n")[0]);
      failed++;
    }
    drilled++;
  }
  return { drilled, failed };
}
