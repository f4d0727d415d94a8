import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { nativeUnavailable } from "./native.js";

/** Frees half of 80 MiB held in 256 KiB blocks (holes inside the heap, which no trimming of
 * its top reaches), then trims; prints resident MiB before and after the trim. */
const PROBE = `
import { release } from ${JSON.stringify(new URL("../core/buffers.js", import.meta.url).href)};
import { trimMemory } from ${JSON.stringify(new URL("./native.js", import.meta.url).href)};
const rss = () => process.memoryUsage().rss / 1048576;
const blocks = Array.from({ length: 320 }, () => Buffer.allocUnsafeSlow(256 * 1024).fill(2));
for (let i = 0; i < blocks.length; i += 2) release(blocks[i]);
await new Promise((r) => setImmediate(r));
const freed = rss();
trimMemory();
const intact = blocks.every((b, i) => i % 2 === 0 || b[100] === 2);
console.log(JSON.stringify({ freed, trimmed: rss(), intact }));
`;

test(
  "trimMemory gives memory the allocator holds free back to the system",
  { skip: nativeUnavailable() },
  () => {
    // Blocks of this size come from the heap once glibc has raised its threshold for fresh
    // mappings (as scrypt's 32 MiB does in every command); the probe sets it so at start.
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", PROBE], {
      env: { ...process.env, MALLOC_MMAP_THRESHOLD_: String(64 * 1024 * 1024) },
      encoding: "utf8",
    });
    const { freed, trimmed, intact } = JSON.parse(out) as { freed: number; trimmed: number; intact: boolean };
    assert.ok(
      freed - trimmed > 20,
      `40 MiB freed: resident ${freed.toFixed(0)} MiB, after the trim ${trimmed.toFixed(0)}`,
    );
    assert.ok(intact, "what is still held is intact");
  },
);
