/**
 * `lifeboat pull dav://`, `export contacts|calendars` and `push dav://` against a real Radicale:
 * first pull (every item byte-equal to a GET), the server left untouched (only PROPFIND/REPORT
 * sent, storage files unchanged), a no-change pull, an incremental pull after an add, a change
 * and a delete (sync-collection), the same without sync-collection (ETags), exports parsed back,
 * push into an empty account, and the documented errors.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { LifeboatError } from "../../src/core/errors.js";
import { baseEnv, jsonLines, run, tempDir } from "../support/cli.js";
import { type Radicale, startRadicale } from "../support/radicale.js";
import { eventInstants } from "./ical-instants.js";
import { recordingProxy } from "./proxy.js";
import {
  ALLDAY_UID,
  event,
  outlookEvents,
  putItem,
  RECURRING_UID,
  type SeededCollection,
  seedAccount,
  seedOutlook,
  vcard,
} from "./seed.js";

let rad: Radicale;
let proxy: Awaited<ReturnType<typeof recordingProxy>>;
let base: string;
let env: Record<string, string>;
let cols: SeededCollection[];
let url: string;
const snapshots: string[] = [];

before(async () => {
  rad = await startRadicale({ users: { ann: "dav-secret", bob: "bob-secret", olga: "olga-secret" } });
  cols = await seedAccount(rad, "ann");
  proxy = await recordingProxy(rad.port);
  url = `dav://ann@127.0.0.1:${proxy.port}/`;
  base = await tempDir("lb-dav-");
  env = baseEnv({
    LIFEBOAT_REPOSITORY: path.join(base, "repo"),
    LIFEBOAT_PASSWORD: "repo-pw",
    LIFEBOAT_SOURCE_PASSWORD: "dav-secret",
  });
  const r = await run(["init"], { env });
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  await proxy?.close();
  await rad?.stop();
  if (base) await fs.rm(base, { recursive: true, force: true });
});

const total = () => cols.reduce((n, c) => n + c.items.length, 0);

async function pull(e = env, u = url): Promise<Record<string, unknown>> {
  const started = Date.now();
  const r = await run(["--json", "pull", u], { env: e });
  assert.equal(r.code, 0, `pull failed: ${r.stderr}`);
  const summary = jsonLines(r.stdout).find((l) => l.message_type === "summary");
  assert.ok(summary, r.stdout);
  summary.wall_ms = Date.now() - started;
  if (e === env) snapshots.push(summary.snapshot_id as string);
  return summary;
}

async function restoreAll(snap: string): Promise<string> {
  const target = await tempDir("lb-dav-restore-");
  const r = await run(["restore", snap, "--target", target], { env });
  assert.equal(r.code, 0, r.stderr);
  return target;
}

const dirOf = (c: SeededCollection) => `${c.kind === "addressbook" ? "addressbooks" : "calendars"}/${c.name}`;
const fileOf = (href: string) => decodeURIComponent(href.split("/").at(-1)!);
const uidIn = (text: string) => /^UID:(.*)\r?$/m.exec(text)?.[1];

/** Every request method the CLI sent through the relay. */
const methods = () => [...new Set(proxy.lines.map((l) => l.split(" ")[0]!))].sort();

test("first pull: every collection and item, byte-equal to a GET, and the server untouched", async () => {
  const storageBefore = await rad.storageHashes();
  proxy.lines.length = 0;
  const s = await pull();
  const secs = (s.duration_ms as number) / 1000;
  console.log(
    `first pull: ${s.items_fetched} items, ${s.bytes_fetched} bytes in ${secs.toFixed(2)} s = ${s.items_per_second} items/s (wall ${s.wall_ms} ms); requests ${JSON.stringify(s.requests)}`,
  );
  assert.equal(s.addressbooks, 2);
  assert.equal(s.calendars, 2);
  assert.equal(s.items, total());
  assert.equal(s.items_fetched, total());
  assert.equal(s.items_reused, 0);
  assert.equal(s.collections_new, 4);

  // Read-only: nothing but PROPFIND, REPORT (GET allowed) went out, and no stored file changed.
  assert.deepEqual(
    methods().filter((m) => !["GET", "PROPFIND", "REPORT"].includes(m)),
    [],
    proxy.lines.join("\n"),
  );
  assert.ok(proxy.lines.some((l) => l.includes("[sync-collection]")));
  assert.deepEqual(await rad.storageHashes(), storageBefore);

  const restored = await restoreAll(snapshots[0]!);
  try {
    for (const c of cols) {
      const state = JSON.parse(await fs.readFile(path.join(restored, dirOf(c), ".collection.json"), "utf8"));
      assert.equal(state.kind, c.kind);
      assert.equal(state.displayname, c.displayname);
      assert.equal(state.items.length, c.items.length);
      assert.ok(state.syncToken && state.ctag, "sync-token and ctag recorded");
      const files = (await fs.readdir(path.join(restored, dirOf(c)))).filter((f) => f !== ".collection.json");
      assert.equal(files.length, c.items.length);
      for (const it of c.items) {
        const served = await rad.request("ann", "GET", it.href);
        assert.equal(served.status, 200);
        const stored = await fs.readFile(path.join(restored, dirOf(c), fileOf(it.href)));
        assert.ok(stored.equals(served.body), `${it.href} differs from what the server serves`);
        const entry = state.items.find((x: { href: string }) => x.href === it.href);
        assert.ok(entry, `${it.href} in .collection.json`);
        assert.equal(entry.etag, served.headers.get("etag"));
        assert.equal(entry.file, fileOf(it.href));
      }
    }
  } finally {
    await fs.rm(restored, { recursive: true, force: true });
  }
});

test("no-change pull: nothing listed or fetched, every item reused", async () => {
  proxy.lines.length = 0;
  const s = await pull();
  console.log(
    `no-change pull: ${s.duration_ms} ms in the backup, wall ${s.wall_ms} ms; requests ${JSON.stringify(s.requests)}`,
  );
  assert.equal(s.items, total());
  assert.equal(s.items_fetched, 0);
  assert.equal(s.items_reused, total());
  assert.equal(s.items_removed, 0);
  assert.equal(s.collections_unchanged, 4);
  assert.ok(!proxy.lines.some((l) => l.startsWith("REPORT")), proxy.lines.join("\n"));
  assert.equal(s.data_blobs_added, 0);
});

test("incremental pull after an add, a change and a delete (sync-collection)", async () => {
  const contacts = cols[0]!;
  const work = cols[2]!;
  const added = {
    href: `${contacts.path}contact-new.vcf`,
    uid: "contact-new",
    body: vcard("contact-new", 999),
  };
  await putItem(rad, "ann", "addressbook", added.href, added.body);
  contacts.items.push(added);
  const changed = work.items.find((i) => i.uid === "event-5")!;
  changed.body = event("event-5", 5, "Verschoben: Budgetrunde");
  await putItem(rad, "ann", "calendar", changed.href, changed.body);
  const gone = contacts.items.find((i) => i.uid === "contact-10")!;
  assert.equal((await rad.request("ann", "DELETE", gone.href)).status, 200);
  contacts.items.splice(contacts.items.indexOf(gone), 1);

  const storageBefore = await rad.storageHashes();
  proxy.lines.length = 0;
  const s = await pull();
  assert.equal(s.items, total());
  assert.equal(s.items_fetched, 2);
  assert.equal(s.items_removed, 1);
  assert.equal(s.items_reused, total() - 2);
  assert.equal(s.collections_synced, 2);
  assert.equal(s.collections_unchanged, 2);
  assert.deepEqual(await rad.storageHashes(), storageBefore);
  assert.deepEqual(
    methods().filter((m) => !["GET", "PROPFIND", "REPORT"].includes(m)),
    [],
  );

  const restored = await restoreAll(snapshots.at(-1)!);
  const first = await restoreAll(snapshots[0]!);
  try {
    const cdir = path.join(restored, dirOf(contacts));
    assert.ok(!(await fs.readdir(cdir)).includes("contact-10.vcf"), "deleted item left the new snapshot");
    assert.ok(
      (await fs.readdir(path.join(first, dirOf(contacts)))).includes("contact-10.vcf"),
      "kept in the old one",
    );
    const newBody = await fs.readFile(path.join(cdir, "contact-new.vcf"));
    assert.ok(newBody.equals((await rad.request("ann", "GET", added.href)).body));
    const ev = await fs.readFile(path.join(restored, dirOf(work), "event-5.ics"), "utf8");
    assert.match(ev, /Verschoben: Budgetrunde/);
    const state = JSON.parse(await fs.readFile(path.join(cdir, ".collection.json"), "utf8"));
    assert.equal(state.items.length, contacts.items.length);
  } finally {
    await fs.rm(restored, { recursive: true, force: true });
    await fs.rm(first, { recursive: true, force: true });
  }
});

test("a server without sync-collection: ctag to skip, ETags to find what changed", async () => {
  const env2 = { ...env, LIFEBOAT_REPOSITORY: path.join(base, "repo-nosync") };
  assert.equal((await run(["init"], { env: env2 })).code, 0);
  proxy.state.noSync = true;
  try {
    proxy.lines.length = 0;
    const s1 = await pull(env2);
    assert.equal(s1.items_fetched, total());
    assert.equal(s1.collections_listed, 4);
    const work = cols[2]!;
    const changed = work.items.find((i) => i.uid === "event-7")!;
    changed.body = event("event-7", 7, "Neu: Quartalsplanung");
    await putItem(rad, "ann", "calendar", changed.href, changed.body);
    const s2 = await pull(env2);
    assert.equal(s2.items_fetched, 1);
    assert.equal(s2.items_reused, total() - 1);
    assert.equal(s2.collections_unchanged, 3);
    assert.equal(s2.collections_listed, 1);
    assert.equal(s2.collections_synced, 0);
    assert.ok(!proxy.lines.some((l) => l.includes("[sync-collection]")), "no sync-collection was tried");
  } finally {
    proxy.state.noSync = false;
  }
  // Bring the main chain up to date for the export and push tests (one item changed).
  const s = await pull();
  assert.equal(s.items_fetched, 1);
});

/** BEGIN/END balance on unfolded lines; returns the component names in order of BEGIN. */
function structure(text: string): string[] {
  const lines = text.replace(/\r?\n[ \t]/g, "").split(/\r?\n/);
  const stack: string[] = [];
  const begun: string[] = [];
  for (const l of lines) {
    const m = /^(BEGIN|END):(.*)$/i.exec(l.trim());
    if (!m) continue;
    const name = m[2]!.toUpperCase();
    if (m[1]!.toUpperCase() === "BEGIN") {
      stack.push(name);
      begun.push(name);
    } else assert.equal(stack.pop(), name, `END:${name} does not close the open component`);
  }
  assert.equal(stack.length, 0, `unclosed: ${stack.join(",")}`);
  return begun;
}

test("export contacts and calendars: per-item files and combined files that parse back", async () => {
  const out = await tempDir("lb-dav-export-");
  try {
    for (const what of ["contacts", "calendars"]) {
      const r = await run(["--json", "export", what, "latest", "--dir", out], { env });
      assert.equal(r.code, 0, r.stderr);
      const sum = jsonLines(r.stdout).find((l) => l.message_type === "summary")!;
      assert.equal(sum.malformed, 0);
    }
    // ical.js is not available: structural checks of our own.
    for (const c of cols) {
      const dir = path.join(out, c.name);
      const files = (await fs.readdir(dir)).sort();
      assert.equal(files.length, c.items.length, c.name);
      for (const it of c.items) {
        const text = await fs.readFile(path.join(dir, fileOf(it.href)), "utf8");
        assert.equal(uidIn(text), it.uid);
        if (c.kind === "calendar") assert.equal(structure(text)[0], "VCALENDAR");
      }
      if (c.kind === "addressbook") {
        const all = await fs.readFile(path.join(out, `${c.name}.vcf`), "utf8");
        const cards = all.split(/(?<=END:VCARD\r\n)/).filter((x) => x.trim() !== "");
        assert.equal(cards.length, c.items.length);
        for (const card of cards) {
          assert.deepEqual(structure(card), ["VCARD"]);
          assert.match(card, /^FN:.+$/m);
          assert.match(card, /^UID:.+$/m);
        }
        assert.deepEqual(new Set(cards.map(uidIn)), new Set(c.items.map((i) => i.uid)));
      } else {
        const all = await fs.readFile(path.join(out, `${c.name}.ics`), "utf8");
        const comps = structure(all);
        assert.equal(comps.filter((x) => x === "VCALENDAR").length, 1, "one VCALENDAR");
        const kind = c.name === "tasks" ? "VTODO" : "VEVENT";
        assert.equal(comps.filter((x) => x === kind).length, c.items.length);
        assert.equal(all.match(/^UID:/gm)?.length, c.items.length);
        if (c.name === "work") {
          assert.deepEqual(
            (all.match(/^TZID:.*$/gm) ?? []).map((l) => l.trim()).sort(),
            ["TZID:America/New_York", "TZID:Europe/Berlin"],
            "each VTIMEZONE once",
          );
          const weekly = all.split("BEGIN:VEVENT").find((b) => b.includes(`UID:${RECURRING_UID}`))!;
          assert.match(weekly, /^RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=20\r$/m);
          assert.match(weekly, /^EXDATE;TZID=Europe\/Berlin:20240115T090000,20240122T090000\r$/m);
          assert.match(weekly, /^DTSTART;TZID=Europe\/Berlin:20240108T090000\r$/m);
          const allDay = all.split("BEGIN:VEVENT").find((b) => b.includes(`UID:${ALLDAY_UID}`))!;
          assert.match(allDay, /^DTSTART;VALUE=DATE:20241003\r$/m);
          assert.match(all, /^X-WR-CALNAME:Arbeit ✓\r$/m);
        }
      }
    }
    assert.match(await fs.readFile(path.join(out, "Familie Müller.vcf"), "utf8"), /Søren/);
    // No temporary files are left behind.
    const leftovers = (await fs.readdir(out, { recursive: true })).filter((f) => String(f).includes(".tmp-"));
    assert.deepEqual(leftovers, []);
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
});

test("export calendars: two Outlook zones named alike keep every event's time in the combined .ics", async () => {
  // Its own repository, so the snapshots of the main chain stay as the other tests count them.
  const oenv = {
    ...env,
    LIFEBOAT_REPOSITORY: path.join(base, "repo-olga"),
    LIFEBOAT_SOURCE_PASSWORD: "olga-secret",
  };
  assert.equal((await run(["init"], { env: oenv })).code, 0);
  const c = await seedOutlook(rad, "olga");
  const out = await tempDir("lb-dav-outlook-");
  try {
    const p = await run(["--json", "pull", `dav://olga@127.0.0.1:${rad.port}/`], { env: oenv });
    assert.equal(p.code, 0, p.stderr);
    const r = await run(["--json", "export", "calendars", "latest", "--dir", out], { env: oenv });
    assert.equal(r.code, 0, r.stderr);
    const sum = jsonLines(r.stdout).find((l) => l.message_type === "summary")!;
    assert.equal(sum.timezones_renamed, 1);
    const all = await fs.readFile(path.join(out, `${c.name}.ics`), "utf8");
    const combined = eventInstants(all);
    for (const e of outlookEvents()) {
      // As Radicale serves the item, as exported on its own, and in the combined file.
      const served = await rad.request("olga", "GET", c.items.find((i) => i.uid === e.uid)!.href);
      assert.deepEqual(eventInstants(served.text).get(e.uid), e.instants, `${e.uid} as served`);
      assert.deepEqual(combined.get(e.uid), e.instants, `${e.uid} in ${c.name}.ics`);
    }
    assert.equal(all.match(/^BEGIN:VTIMEZONE\r$/gm)?.length, 2);
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
});

/** UID → body of every item in one of `user`'s collections, straight from the server. */
async function itemsOf(user: string, collectionPath: string): Promise<Map<string, string>> {
  const r = await rad.request(
    user,
    "PROPFIND",
    collectionPath,
    '<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
    { Depth: "1" },
  );
  assert.equal(r.status, 207, `${collectionPath}: ${r.status}`);
  const hrefs = [...r.text.matchAll(/<href>([^<]+)<\/href>/g)]
    .map((m) => m[1]!)
    .filter((h) => !h.endsWith("/"));
  const out = new Map<string, string>();
  for (const h of hrefs) {
    const g = await rad.request(user, "GET", h);
    out.set(uidIn(g.text)!, g.text);
  }
  return out;
}

test("push into an empty account reproduces every collection and item; a second push adds nothing", async () => {
  const target = `dav://bob@127.0.0.1:${rad.port}/`;
  const penv = { ...env, LIFEBOAT_SOURCE_PASSWORD: "bob-secret" };
  const r = await run(["--json", "push", target, snapshots.at(-1)!], { env: penv });
  assert.equal(r.code, 0, r.stderr);
  const s = jsonLines(r.stdout).find((l) => l.message_type === "summary")!;
  console.log(`push: ${s.items_put} items in ${s.duration_ms} ms; requests ${JSON.stringify(s.requests)}`);
  assert.equal(s.collections, 4);
  assert.equal(s.collections_created, 4);
  assert.equal(s.items_put, total());
  // What bob's account serves now, compared with the snapshot's files (checked against ann's
  // server in the first test) and with the seeded UIDs.
  const restored = await restoreAll(snapshots.at(-1)!);
  try {
    for (const c of cols) {
      const bobPath = c.path.replace("/ann/", "/bob/");
      const theirs = await itemsOf("bob", bobPath);
      assert.deepEqual([...theirs.keys()].sort(), c.items.map((i) => i.uid).sort(), c.name);
      for (const it of c.items) {
        const mine = await fs.readFile(path.join(restored, dirOf(c), fileOf(it.href)), "utf8");
        assert.equal(theirs.get(it.uid), mine, `${c.name} ${it.uid}`);
      }
      const p = await rad.request(
        "bob",
        "PROPFIND",
        bobPath,
        '<propfind xmlns="DAV:"><prop><displayname/></prop></propfind>',
        { Depth: "0" },
      );
      assert.ok(p.text.includes(`<displayname>${c.displayname}</displayname>`), p.text);
    }
  } finally {
    await fs.rm(restored, { recursive: true, force: true });
  }
  const again = await run(["--json", "push", target, snapshots.at(-1)!], { env: penv });
  assert.equal(again.code, 0, again.stderr);
  const s2 = jsonLines(again.stdout).find((l) => l.message_type === "summary")!;
  assert.equal(s2.collections_created, 0);
  assert.equal(s2.items_put, 0);
  assert.equal(s2.items_skipped, total());
});

test("errors: wrong password, unreachable server, no password", async () => {
  const wrong = await run(["pull", url], { env: { ...env, LIFEBOAT_SOURCE_PASSWORD: "nope" } });
  assert.equal(wrong.code, new LifeboatError("AUTH_FAILED", "").exitCode, wrong.stderr);
  assert.match(
    wrong.stderr,
    /^error: DAV login as ann at 127\.0\.0\.1:\d+ failed: wrong user name or password/,
  );
  assert.equal(wrong.stderr.split("\n").filter((l) => l.startsWith("error:")).length, 1);
  const closed = await run(["pull", "dav://ann@127.0.0.1:1/"], { env });
  assert.equal(closed.code, 16, closed.stderr);
  assert.match(closed.stderr, /cannot reach the DAV server 127\.0\.0\.1:1/);
  const { LIFEBOAT_SOURCE_PASSWORD: _, ...noPw } = env;
  const none = await run(["pull", url], { env: noPw });
  assert.equal(none.code, 12, none.stderr);
  assert.match(none.stderr, /LIFEBOAT_SOURCE_PASSWORD.*--source-password-file.*--source-password-command/);
  const inUrl = await run(["pull", `dav://ann:secret@127.0.0.1:${rad.port}/`], { env });
  assert.equal(inUrl.code, 2, inUrl.stderr);
  // No snapshot was written by any of these.
  const list = await run(["--json", "snapshots"], { env });
  assert.equal((JSON.parse(list.stdout) as unknown[]).length, snapshots.length);
});
