import { median, pairedRatio, perPair, type Results } from "./results.js";
import type { ToolName } from "./tools.js";
import type { TreeSummary } from "./tree.js";

/** What every section says about how and where it was measured. */
export interface RunInfo {
  command: string;
  date: string;
  machine: string;
  versions: string;
  pairs: number;
}

export interface Section {
  key: string;
  text: string;
}

const CACHE_TEXT = {
  warm: "warm page cache (the source read once before each pair; `sync` before every command)",
  cold: "cold page cache (`sync; echo 3 > /proc/sys/vm/drop_caches` before every command)",
};

const f2 = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(2));
/** A ratio: two decimals, or two significant digits when tiny (a repository of zeroes against another). */
const ratio2 = (x: number | undefined) =>
  x === undefined || Number.isNaN(x) ? "–" : x > 0 && x < 0.1 ? x.toPrecision(2) : x.toFixed(2);
const f0 = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(0));
/** MiB: one decimal, or three significant digits below 10 (a repository of zeroes is tiny). */
const mib = (x: number | undefined) =>
  x === undefined || Number.isNaN(x) ? "–" : x >= 10 || x === 0 ? x.toFixed(1) : x.toPrecision(3);

function row(cells: string[]): string {
  return `| ${cells.join(" | ")} |`;
}

/** A header row; the first `left` columns are labels, the rest numbers (right-aligned). */
function head(cells: string[], left = 1): string[] {
  return [row(cells), `|${cells.map((_, i) => (i < left ? "---" : "--:")).join("|")}|`];
}

/** Median of a figure over a tool's successful pairs, with a mark when some pairs failed. */
function cell(
  r: Results,
  step: string,
  tool: ToolName,
  f: (m: { wall: number; cpu: number; rssKiB: number }) => number,
  fmt: (x: number | undefined) => string,
): string {
  const all = r.samples.get(step)?.get(tool) ?? [];
  const ok = r.ok(step, tool);
  if (all.length === 0) return "–";
  if (ok.length === 0) return "failed";
  return fmt(median(ok.map(f))) + (ok.length < all.filter(Boolean).length ? " †" : "");
}

export function renderSection(
  key: string,
  title: string,
  describe: string,
  summary: TreeSummary,
  cache: "warm" | "cold",
  r: Results,
  tools: ToolName[],
  info: RunInfo,
  load: { start: string; end: string },
  findPattern?: string,
): Section {
  const others = tools.filter((t) => t !== "lifeboat");
  const ratios = tools.includes("lifeboat") ? others : [];
  const lines: string[] = [
    `### ${title}, ${cache} cache`,
    "",
    `\`${info.command}\`, ${info.date}: ${info.pairs} pair${info.pairs === 1 ? "" : "s"}, ${CACHE_TEXT[cache]}; load average ${load.start} at the start, ${load.end} at the end.`,
    `${info.machine}; ${info.versions}.`,
    `Dataset: ${describe}; ${summary.files.toLocaleString("en")} files in ${summary.dirs.toLocaleString("en")} folders, ${(summary.bytes / 2 ** 20).toFixed(1)} MiB${findPattern ? `; \`find\` looks for \`${findPattern}\`` : ""}.`,
    "",
    ...head([
      "step",
      ...tools.map((t) => `${t} s`),
      ...ratios.map((o) => `wall ÷ ${o}`),
      ...tools.map((t) => `${t} MiB`),
      ...ratios.map((o) => `mem ÷ ${o}`),
      ...tools.map((t) => `${t} cpu s`),
    ]),
  ];
  for (const step of r.steps) {
    const ratio = (o: ToolName, f: (m: { wall: number; rssKiB: number }) => number) =>
      ratio2(pairedRatio(perPair(r, step, "lifeboat", f), perPair(r, step, o, f)));
    lines.push(
      row([
        step,
        ...tools.map((t) => cell(r, step, t, (m) => m.wall, f2)),
        ...ratios.map((o) => ratio(o, (m) => m.wall)),
        ...tools.map((t) => cell(r, step, t, (m) => m.rssKiB / 1024, f0)),
        ...ratios.map((o) => ratio(o, (m) => m.rssKiB)),
        ...tools.map((t) => cell(r, step, t, (m) => m.cpu, f2)),
      ]),
    );
  }
  if (r.extras.size > 0) {
    lines.push("", ...head(["MiB", ...tools, ...ratios.map((o) => `÷ ${o}`)]));
    for (const [label, byTool] of r.extras) {
      const vals = (t: ToolName) => byTool.get(t) ?? [];
      lines.push(
        row([
          label,
          ...tools.map((t) => mib(median(vals(t).filter((x): x is number => x !== undefined)))),
          ...ratios.map((o) => ratio2(pairedRatio(vals("lifeboat"), vals(o)))),
        ]),
      );
    }
  }
  const failures = r.failures();
  if (failures.length > 0)
    lines.push(
      "",
      "† some pairs failed; the median is over the others. Failures:",
      "",
      ...failures.map((f) => `- ${f}`),
    );
  return { key: `${key}:${cache}`, text: lines.join("\n") };
}

/** How time and memory grow with the number of files: one row per step and tool. */
export function renderGrowth(
  key: string,
  cache: "warm" | "cold",
  runs: { count: number; results: Results }[],
  tools: ToolName[],
  info: RunInfo,
): Section {
  const counts = runs.map((x) => x.count);
  const n = (c: number) => (c >= 1e6 ? `${c / 1e6}M` : c >= 1e3 ? `${c / 1e3}k` : String(c));
  const lines = [
    `### Growth with the number of files, ${cache} cache`,
    "",
    `Medians from the tables above (\`${info.command}\`, ${info.date}). Seconds, then peak MiB.`,
    "",
    ...head(["step", "tool", ...counts.map((c) => `${n(c)} s`), ...counts.map((c) => `${n(c)} MiB`)], 2),
  ];
  for (const step of runs[0]!.results.steps) {
    for (const t of tools) {
      lines.push(
        row([
          step,
          t,
          ...runs.map((x) => cell(x.results, step, t, (m) => m.wall, f2)),
          ...runs.map((x) => cell(x.results, step, t, (m) => m.rssKiB / 1024, f0)),
        ]),
      );
    }
  }
  return { key: `${key}:${cache}`, text: lines.join("\n") };
}

/** A section's text between its markers, so that the next run can find and replace it. */
export function fence(s: Section): string {
  return `<!-- bench:${s.key} -->\n${s.text}\n<!-- /bench:${s.key} -->`;
}

/**
 * Puts sections into the document: in place of the same key's previous section, or else before
 * the `## Where the time goes` heading (or at the end). Everything else in the document stays.
 */
export function mergeSections(doc: string, sections: Section[]): string {
  let out = doc;
  for (const s of sections) {
    const open = `<!-- bench:${s.key} -->`;
    const close = `<!-- /bench:${s.key} -->`;
    const a = out.indexOf(open);
    const b = out.indexOf(close);
    if (a >= 0 && b > a) out = out.slice(0, a) + fence(s) + out.slice(b + close.length);
    else {
      const at = out.indexOf("\n## Where the time goes");
      out =
        at >= 0 ? `${out.slice(0, at)}\n${fence(s)}\n${out.slice(at)}` : `${out.trimEnd()}\n\n${fence(s)}\n`;
    }
  }
  return out;
}
