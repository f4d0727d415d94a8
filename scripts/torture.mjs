#!/usr/bin/env node
// The full torture campaign (docs/reliability.md): kill points, storage faults, damaged objects,
// the concurrency soak, the reliability tests and the fuzz tests, at full size.
// Usage: npm run torture [-- SUBSTRING...]   (only the campaign files whose path contains one)
// LIFEBOAT_TORTURE_SEED replays a run; LIFEBOAT_FUZZ_RUNS (default here 1000) sizes the fuzzing;
// figures are appended to LIFEBOAT_TORTURE_FIGURES (default /tmp/lifeboat-torture-full.jsonl)
// and summed up at the end. The quick profile of the same files runs inside `npm test`.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

const figures = process.env.LIFEBOAT_TORTURE_FIGURES ?? "/tmp/lifeboat-torture-full.jsonl";
const env = {
  ...process.env,
  LIFEBOAT_TORTURE: process.env.LIFEBOAT_TORTURE ?? "full",
  LIFEBOAT_TORTURE_FIGURES: figures,
  LIFEBOAT_FUZZ_RUNS: process.env.LIFEBOAT_FUZZ_RUNS ?? "1000",
};
const areas = ["dist/test/torture/", "dist/test/reliability/", "dist/test/fuzz/"];
const filters = process.argv.slice(2);
const started = Date.now();
const seenBefore = existsSync(figures) ? readFileSync(figures, "utf8").split("\n").length - 1 : 0;
const r = spawnSync(process.execPath, ["scripts/run-tests.mjs", ...(filters.length > 0 ? filters : areas)], {
  stdio: "inherit",
  env,
});
const minutes = ((Date.now() - started) / 60000).toFixed(1);

// What this run measured: kills per command, and the other rows by name.
const rows = existsSync(figures)
  ? readFileSync(figures, "utf8")
      .split("\n")
      .slice(seenBefore)
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l))
  : [];
let kills = 0;
console.log(`\ntorture (${env.LIFEBOAT_TORTURE}): ${minutes} min, exit ${r.status}; figures in ${figures}`);
for (const row of rows) {
  if (row.row.startsWith("kill/")) {
    kills += row.killed ?? row.kills ?? 0;
    console.log(`  ${row.row}: ${row.killed ?? row.kills} kills in ${row.runs ?? row.rounds} runs`);
  } else if (row.row === "damage") console.log(`  damage: ${row.cases} cases`);
  else if (row.row === "faults") console.log(`  faults: ${row.cases} cases, ${row.injected} faults injected`);
  else if (row.row.startsWith("soak/")) console.log(`  ${row.row}: ${row.rounds} rounds in ${row.seconds} s`);
  else console.log(`  ${row.row}`);
}
console.log(`  kill points in total: ${kills}`);
process.exit(r.status ?? 1);
