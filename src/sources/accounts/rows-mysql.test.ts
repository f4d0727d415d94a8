import assert from "node:assert/strict";
import { test } from "node:test";
import { placeholders } from "./rows-mysql.js";

test("? placeholders are counted outside strings, quoted names and comments", () => {
  assert.equal(placeholders("SELECT * FROM t WHERE owner = ?"), 1);
  assert.equal(placeholders("SELECT * FROM t WHERE a = ? OR b = ?"), 2);
  assert.equal(
    placeholders("SELECT '?', \"?\", `a?` FROM t WHERE o = ? -- who?\n AND x <> 'it''s?' # why?"),
    1,
  );
  assert.equal(placeholders("SELECT /* ? */ 'a\\'?' FROM t WHERE o = ?"), 1);
  assert.equal(placeholders("SELECT * FROM t WHERE owner = $1"), 0);
});
