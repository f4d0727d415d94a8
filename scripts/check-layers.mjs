#!/usr/bin/env node
// Fails when src/ breaks its layering (docs/architecture.md): an import that goes up a layer,
// an import between `sources` and `ops` (they sit side by side), or a cycle between files or
// between folders. Every import counts: `import type`, re-exports and dynamic `import()`.
// Usage: node scripts/check-layers.mjs   (exit 1 with one line per problem)
import fs from "node:fs";
import path from "node:path";

/** Lower layers first; a file may import only from layers strictly below its own, or from
 * its own top-level folder. Layers that share a rank sit side by side and never import each
 * other. */
const RANK = {
  "version.ts": 0,
  core: 0,
  fsio: 1,
  backend: 2,
  repo: 3,
  snapshot: 4,
  sources: 5,
  ops: 5,
  app: 6,
  cli: 7,
  "index.ts": 8,
};

const root = "src";
const files = [];
(function walk(dir) {
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    if (fs.statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".d.ts")) files.push(p);
  }
})(root);

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

/** Import edges between files of src/ (relative specifiers only). */
const edges = new Map();
for (const f of files) {
  const text = fs.readFileSync(f, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, "");
  const out = new Set();
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (!spec.startsWith(".")) continue;
    const target = path.normalize(path.join(path.dirname(f), spec)).replace(/\.js$/, ".ts");
    if (fs.existsSync(target)) out.add(target);
  }
  edges.set(f, out);
}

const top = (f) => path.relative(root, f).split(path.sep)[0];
/** A file's folder unit for folder cycles: `ops/backup`, `sources/dav`, `repo`, ... */
const unit = (f) => {
  const parts = path.relative(root, f).split(path.sep);
  return parts.length > 2 ? parts.slice(0, 2).join("/") : parts.length === 2 ? parts[0] : parts[0];
};

const problems = [];
for (const [f, targets] of edges) {
  const from = top(f);
  if (!(from in RANK)) {
    problems.push(
      `${f}: folder ${from}/ has no layer; add it to scripts/check-layers.mjs and docs/architecture.md`,
    );
    continue;
  }
  for (const t of targets) {
    const to = top(t);
    if (to === from) continue;
    if (!(to in RANK)) continue; // reported for its own files
    if (RANK[to] > RANK[from]) problems.push(`${f} imports ${t}: ${to} is a higher layer than ${from}`);
    else if (RANK[to] === RANK[from])
      problems.push(`${f} imports ${t}: ${from} and ${to} sit side by side and never import each other`);
  }
}

/** Cycles (Tarjan's strongly connected components) in a graph given as Map<node, Set<node>>. */
function cycles(graph) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const out = [];
  const strong = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) strong(v);
  return out;
}

for (const c of cycles(edges)) problems.push(`import cycle between files: ${c.join(" <-> ")}`);

const folders = new Map();
for (const [f, targets] of edges) {
  const a = unit(f);
  if (!folders.has(a)) folders.set(a, new Set());
  for (const t of targets) if (unit(t) !== a) folders.get(a).add(unit(t));
}
for (const c of cycles(folders)) problems.push(`import cycle between folders: ${c.join(" <-> ")}`);

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(`${problems.length} layering problem(s); see docs/architecture.md`);
  process.exit(1);
}
console.log(`layers: ${files.length} files, no upward imports, no cycles`);
