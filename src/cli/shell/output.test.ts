import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("./output.js", import.meta.url));

/** Runs a script in a child with this module loaded; returns its stdout and stderr as one
 * stream (stderr redirected into stdout), in the order written. */
function run(script: string): string {
  const r = spawnSync("sh", ["-c", `"${process.execPath}" --input-type=module -e "$SCRIPT" 2>&1`], {
    env: { ...process.env, SCRIPT: `import { Output } from ${JSON.stringify(here)};\n${script}` },
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test("results are written in blocks, in order, before a warning and before the process exits", () => {
  const out = run(`
    const o = new Output({ json: false, quiet: false, verbose: 0 });
    o.result("one");
    o.result("two");
    o.warn("careful");
    for (let i = 0; i < 20000; i++) o.result("line " + i);
    o.result("last");
    process.exit(0); // before the event loop turns: the exit hook writes what is held
  `);
  const lines = out.trimEnd().split("\n");
  assert.deepEqual(lines.slice(0, 3), ["one", "two", "warning: careful"]);
  assert.equal(lines.length, 3 + 20000 + 1);
  assert.equal(lines[3 + 12345], "line 12345");
  assert.equal(lines.at(-1), "last");
});

test("a result reaches stdout when the event loop turns, not only at exit", () => {
  const out = run(`
    const writes = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = (s) => { writes.push(String(s)); return true; };
    const o = new Output({ json: true, quiet: false, verbose: 0 });
    o.emit({ a: 1 });
    o.emit({ b: 2 });
    const before = writes.length;
    setImmediate(() => {
      process.stdout.write = write;
      write(JSON.stringify({ before, writes }) + "\\n");
    });
  `);
  const r = JSON.parse(out) as { before: number; writes: string[] };
  assert.equal(r.before, 0, "held until the loop turns");
  assert.deepEqual(r.writes, ['{"a":1}\n{"b":2}\n'], "one write for both");
});
