import type { Measure } from "./measure.js";
import type { ToolName } from "./tools.js";

/** Every sample of one profile in one cache state: per step, per tool, one Measure per pair. */
export class Results {
  readonly steps: string[] = [];
  readonly samples = new Map<string, Map<ToolName, (Measure | undefined)[]>>();
  /** Numbers that are not timings (repository size, restored size), in MiB, per pair. */
  readonly extras = new Map<string, Map<ToolName, (number | undefined)[]>>();

  record(step: string, tool: ToolName, pair: number, m: Measure): void {
    if (!this.samples.has(step)) {
      this.steps.push(step);
      this.samples.set(step, new Map());
    }
    const byTool = this.samples.get(step)!;
    if (!byTool.has(tool)) byTool.set(tool, []);
    byTool.get(tool)![pair] = m;
  }

  recordExtra(label: string, tool: ToolName, pair: number, mib: number): void {
    if (!this.extras.has(label)) this.extras.set(label, new Map());
    const byTool = this.extras.get(label)!;
    if (!byTool.has(tool)) byTool.set(tool, []);
    byTool.get(tool)![pair] = mib;
  }

  /** The successful measures of a tool at a step. */
  ok(step: string, tool: ToolName): Measure[] {
    return (this.samples.get(step)?.get(tool) ?? []).filter((m): m is Measure => m?.ok === true);
  }

  failures(): string[] {
    const out: string[] = [];
    for (const step of this.steps)
      for (const [tool, ms] of this.samples.get(step)!)
        ms.forEach((m, i) => {
          if (m && !m.ok) out.push(`${tool}, ${step}, pair ${i + 1}: ${m.note ?? "failed"}`);
        });
    return out;
  }
}

export function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * The median over pairs of a/b, each pair's two figures measured one right after the other: a
 * load that comes and goes hits both sides of a pair alike, so this is steadier than a ratio of
 * medians. Pairs where either side failed or measured zero are left out.
 */
export function pairedRatio(a: (number | undefined)[], b: (number | undefined)[]): number | undefined {
  const r: number[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x !== undefined && y !== undefined && y > 0) r.push(x / y);
  }
  return median(r);
}

/** One figure per pair (undefined where the step failed). */
export function perPair(
  r: Results,
  step: string,
  tool: ToolName,
  f: (m: Measure) => number,
): (number | undefined)[] {
  return (r.samples.get(step)?.get(tool) ?? []).map((m) => (m?.ok ? f(m) : undefined));
}
