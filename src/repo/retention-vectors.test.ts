import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { decodeConfig } from "./config.js";
import { FEATURES, hasFeature } from "./features.js";
import { planKind } from "./records-gc.js";
import { ObjectKind, openObject } from "./sealed-object.js";

// The vectors of the `retention` feature live in docs/format.md, beside its specification.
const doc = readFileSync(new URL("../../../docs/format.md", import.meta.url), "utf8");
const block =
  /<!-- vectors:retention:begin -->\s*```json\n([\s\S]*?)```\s*<!-- vectors:retention:end -->/.exec(doc);
if (!block) throw new Error("docs/format.md has no retention vectors block");
const v = JSON.parse(block[1]!);
const meta = Buffer.from(v.meta, "hex");

test("a config with retention opens, decodes, and names the write feature", () => {
  const plain = openObject(meta, ObjectKind.config, Buffer.from(v.config.hex, "hex"), "vector config");
  assert.deepEqual(JSON.parse(plain.toString("utf8")), v.config.json);
  const config = decodeConfig(plain);
  assert.deepEqual(config.retention, { days: 30, mode: "compliance" });
  assert.ok(hasFeature(config.features, "retention"));
  assert.equal(FEATURES.retention.gates, "write", "a lifeboat that does not know it may read, not write");
});

test("a prune plan with retained packs opens and matches the plan schema", () => {
  const plain = openObject(meta, ObjectKind.gcPlan, Buffer.from(v.plan.hex, "hex"), "vector plan");
  const json = JSON.parse(plain.toString("utf8"));
  assert.deepEqual(json, v.plan.json);
  assert.deepEqual(planKind.schema.parse(json), v.plan.json);
});
