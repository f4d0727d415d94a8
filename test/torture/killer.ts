/**
 * Kill points: runs a command through the hooked CLI and SIGKILLs it either after the Nth
 * storage write (deterministic) or after a random delay, N and the delay drawn from what earlier
 * runs of the same command took. Tallies what was killed where, for docs/reliability.md.
 */
import { between, type HookedRun, type HookOptions, lb } from "./support.js";

export type KillMode = "writes" | "delay" | "none";

export interface KillStats {
  runs: number;
  killed: number;
  byWrites: number;
  byDelay: number;
  /** Runs that finished before their kill point. */
  finishedFirst: number;
  /** The Nth-write kill points used (N), and the delays (ms). */
  points: number[];
  delays: number[];
}

export class Killer {
  readonly stats = new Map<string, KillStats>();
  private readonly estWrites = new Map<string, number>();
  private readonly estMs = new Map<string, number>();

  constructor(private readonly r: () => number) {}

  private stat(what: string): KillStats {
    let s = this.stats.get(what);
    if (!s) {
      s = { runs: 0, killed: 0, byWrites: 0, byDelay: 0, finishedFirst: 0, points: [], delays: [] };
      this.stats.set(what, s);
    }
    return s;
  }

  /** Picks a mode: half the kills by write count, half by delay; `killShare` of runs are killed. */
  mode(killShare: number): KillMode {
    if (this.r() >= killShare) return "none";
    return this.r() < 0.5 ? "writes" : "delay";
  }

  /**
   * Runs `args` (named `what` in the figures) with a kill point of `mode`; an unkilled run
   * teaches the estimates. `countsWrites`: whether the command writes to storage at all (a
   * restore does not: it is only killed by delay).
   */
  async run(
    what: string,
    args: string[],
    o: HookOptions,
    mode: KillMode,
    countsWrites = true,
  ): Promise<HookedRun> {
    const s = this.stat(what);
    s.runs++;
    const opts: HookOptions = { ...o };
    let m = mode;
    if (m === "writes" && !countsWrites) m = "delay";
    if (m === "writes") {
      const n = between(this.r, 1, Math.max(1, this.estWrites.get(what) ?? 10));
      opts.killAfterWrites = n;
      s.points.push(n);
    } else if (m === "delay") {
      const est = this.estMs.get(what) ?? 1500;
      const ms = between(this.r, 50, Math.max(100, Math.round(est * 1.1)));
      opts.killAfterMs = ms;
      s.delays.push(ms);
    }
    const r = await lb(args, opts);
    if (r.killed) {
      s.killed++;
      if (m === "writes") s.byWrites++;
      else s.byDelay++;
    } else {
      if (m !== "none") s.finishedFirst++;
      if (r.code === 0) {
        if (r.writes !== undefined && r.writes > 0) this.estWrites.set(what, r.writes);
        this.estMs.set(what, r.ms);
      }
    }
    return r;
  }

  /** Learns from a run made elsewhere (a rerun after a kill). */
  learn(what: string, r: HookedRun): void {
    if (r.killed || r.code !== 0) return;
    if (r.writes !== undefined && r.writes > 0) this.estWrites.set(what, r.writes);
    this.estMs.set(what, r.ms);
  }

  totals(): { runs: number; killed: number; byWrites: number; byDelay: number } {
    let runs = 0;
    let killed = 0;
    let byWrites = 0;
    let byDelay = 0;
    for (const s of this.stats.values()) {
      runs += s.runs;
      killed += s.killed;
      byWrites += s.byWrites;
      byDelay += s.byDelay;
    }
    return { runs, killed, byWrites, byDelay };
  }

  /** Per command: runs, kills and how (for the figures). */
  summary(): Record<string, Omit<KillStats, "points" | "delays"> & { maxPoint: number; maxDelay: number }> {
    const out: Record<string, Omit<KillStats, "points" | "delays"> & { maxPoint: number; maxDelay: number }> =
      {};
    for (const [k, s] of this.stats) {
      const { points, delays, ...rest } = s;
      out[k] = { ...rest, maxPoint: Math.max(0, ...points), maxDelay: Math.max(0, ...delays) };
    }
    return out;
  }
}
