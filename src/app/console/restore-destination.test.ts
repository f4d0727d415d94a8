import assert from "node:assert/strict";
import { test } from "node:test";
import { fleetDef } from "../fleet/fleet-config.js";
import { accountDestination, restoreInto, restoreServer } from "./restore-destination.js";

const accounts = { file: "/etc/lifeboat/accounts.jsonl" };

test("a whole-service restore sends mail and DAV accounts back onto their server, not into folders", () => {
  const imap = fleetDef(
    {
      name: "mail",
      kind: "imap",
      accounts,
      imap: { url: "imaps://mail.example.org", passwordCommand: "pw {id}" },
    },
    "test",
  );
  const dav = fleetDef(
    {
      name: "cal",
      kind: "dav",
      accounts,
      dav: { url: "davs://dav.example.org/dav", passwordCommand: "pw {id}" },
    },
    "test",
  );
  const folders = fleetDef({ name: "home", accounts }, "test");
  const rows = fleetDef(
    {
      name: "shop",
      kind: "rows",
      accounts,
      rows: { url: "postgres://db/shop", tables: [{ table: "orders", owner: "account" }] },
    },
    "test",
  );
  assert.equal(restoreInto(imap, undefined), "servers");
  assert.equal(restoreInto(dav, undefined), "servers");
  assert.equal(restoreInto(folders, undefined), "own-folders");
  assert.equal(restoreInto(rows, undefined), "shared-tables");
  for (const d of [imap, dav, folders, rows]) assert.equal(restoreInto(d, "/restores/all"), "target");

  assert.equal(restoreServer(imap, undefined), "imaps://mail.example.org");
  assert.equal(restoreServer(dav, undefined), "davs://dav.example.org/dav");
  assert.equal(restoreServer(imap, "/restores/all"), null);
  assert.equal(restoreServer(folders, undefined), null);

  // Only a folder account restored in place writes outside the target (so restore roots apply).
  const ann = { source: "imap", paths: ["/ann"] };
  assert.deepEqual(accountDestination(ann, "ann", undefined, "imaps://mail.example.org"), {
    where: "the account ann on imaps://mail.example.org",
    inPlaceFolder: false,
  });
  assert.deepEqual(accountDestination(ann, "ann", "/restores/all", null), {
    where: "/restores/all/ann",
    inPlaceFolder: false,
  });
  assert.deepEqual(
    accountDestination({ source: "files", paths: ["/srv/home/bob"] }, "bob", undefined, null),
    {
      where: "/srv/home/bob",
      inPlaceFolder: true,
    },
  );
  assert.deepEqual(accountDestination({ source: "rows", paths: ["/"] }, "c", undefined, null), {
    where: "the shared tables",
    inPlaceFolder: false,
  });
});
