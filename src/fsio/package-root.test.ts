import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { packageRoot } from "./package-root.js";

test("packageRoot is the folder of lifeboat's package.json, whatever the depth of the caller", () => {
  const root = packageRoot();
  const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
  assert.equal(pkg.name, "lifeboat");
  assert.equal(packageRoot(), root);
});
