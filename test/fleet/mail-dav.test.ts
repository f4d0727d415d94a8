/**
 * Mail and DAV fleets end to end, through the built CLI: three IMAP accounts on a real dovecot
 * (passwords from a `passwordCommand` run with the account id) and two CardDAV/CalDAV accounts
 * on a real Radicale (passwords from a `passwordFile` per account), both on 127.0.0.1. Night 1
 * backs each account up once (one account's bad password is one line for that account, the
 * others go on); night 2 skips the unchanged accounts by their IMAP folder status and DAV
 * sync-tokens and picks up the changed ones; `restore --account` gives an account's mail and
 * contacts back, as files and into the account on its server.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { vcard } from "../dav/seed.js";
import { makeMessage } from "../mail/seed.js";
import { jsonLines, removeTempDir, repoEnv, run, show, tempDir } from "../support/cli.js";
import { type Dovecot, startDovecot } from "../support/dovecot.js";
import { type Radicale, startRadicale } from "../support/radicale.js";

const MAIL_PW: Record<string, string> = { ann: "pw-ann-1", bob: "pw-bob-2", cy: "pw-cy-3" };
const DAV_PW: Record<string, string> = { dan: "pw-dan-4", eve: "pw-eve-5" };

let base: string;
let env: Record<string, string>;
let cfg: string;
let dove: Dovecot;
let rad: Radicale;
/** What each mail account holds on the server (raw messages) and each DAV account (vCards). */
const mail = new Map<string, Buffer[]>();
const cards = new Map<string, string[]>();

const cli = (args: string[]) => run(["--config", cfg, ...args], { env, timeoutMs: 120_000 });
const ok = async (args: string[]) => {
  const r = await cli(args);
  assert.equal(r.code, 0, show(r));
  return r;
};
const byFleet = (stdout: string) =>
  new Map(
    jsonLines(stdout)
      .filter((m) => m.message_type === "fleet_summary")
      .map((m) => [m.fleet as string, m]),
  );
const events = (stdout: string) => jsonLines(stdout).filter((m) => m.message_type === "fleet_account");

async function appendMail(user: string, id: string, n: number): Promise<void> {
  const c = await dove.clientAs(user);
  try {
    const raw = makeMessage(`${user}-${id}`, "plain", n);
    await c.append("INBOX", raw, ["\\Seen"], new Date(Date.UTC(2026, 0, 1, 10, n)));
    mail.set(user, [...(mail.get(user) ?? []), raw]);
  } finally {
    await c.logout();
  }
}

async function putCard(user: string, uid: string, i: number): Promise<void> {
  const body = vcard(uid, i);
  const r = await rad.request(user, "PUT", `/${user}/contacts/${uid}.vcf`, body, {
    "Content-Type": "text/vcard; charset=utf-8",
  });
  assert.ok(r.status === 201 || r.status === 204, `PUT ${uid}: ${r.status} ${r.text}`);
  cards.set(user, [...(cards.get(user) ?? []), body]);
}

/** Every file under `dir` with one of the extensions, as text. */
async function filesUnder(dir: string, ext: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true }))
    if (e.isFile() && e.name.endsWith(ext)) out.push(await fs.readFile(path.join(e.parentPath, e.name)));
  return out;
}
const sorted = (bufs: (Buffer | string)[], enc: BufferEncoding = "latin1") =>
  bufs.map((b) => (typeof b === "string" ? b : b.toString(enc))).sort();

before(async () => {
  base = await tempDir("lifeboat-fleet-remote-");
  env = repoEnv(path.join(base, "repo"), "fleet-pw", { XDG_STATE_HOME: path.join(base, "state") });
  const init = await run(["init"], { env });
  assert.equal(init.code, 0, show(init));
  [dove, rad] = await Promise.all([
    startDovecot({ user: "ann", password: MAIL_PW.ann!, users: { bob: MAIL_PW.bob!, cy: MAIL_PW.cy! } }),
    startRadicale({ users: DAV_PW }),
  ]);
  for (const [u, n] of [
    ["ann", 3],
    ["bob", 2],
    ["cy", 1],
  ] as const)
    for (let i = 0; i < n; i++) await appendMail(u, `m${i}`, i);
  for (const u of Object.keys(DAV_PW)) {
    const r = await rad.request(
      u,
      "MKCOL",
      `/${u}/contacts/`,
      `<?xml version="1.0" encoding="utf-8"?><d:mkcol xmlns:d="DAV:" xmlns:a="urn:ietf:params:xml:ns:carddav"><d:set><d:prop><d:resourcetype><d:collection/><a:addressbook/></d:resourcetype><d:displayname>Kontakte</d:displayname></d:prop></d:set></d:mkcol>`,
      { "Content-Type": "application/xml; charset=utf-8" },
    );
    assert.equal(r.status, 201, r.text);
    for (let i = 0; i < 3; i++) await putCard(u, `${u}-c${i}`, i);
  }
  // Mail passwords come from a command given the account id; cy's is wrong for night 1.
  await fs.mkdir(path.join(base, "mail-pw"));
  for (const [u, pw] of Object.entries(MAIL_PW))
    await fs.writeFile(path.join(base, "mail-pw", u), u === "cy" ? "not-her-password\n" : `${pw}\n`);
  await fs.mkdir(path.join(base, "dav-pw"));
  for (const [u, pw] of Object.entries(DAV_PW)) await fs.writeFile(path.join(base, "dav-pw", u), `${pw}\n`);
  await fs.writeFile(
    path.join(base, "mail.jsonl"),
    `${["ann", "bob", "cy"].map((id) => JSON.stringify({ id, timezone: "UTC" })).join("\n")}\n`,
  );
  await fs.writeFile(path.join(base, "dav.csv"), "id,timezone\ndan,UTC\neve,Europe/Berlin\n");
  cfg = path.join(base, "fleet.json");
  await fs.writeFile(
    cfg,
    JSON.stringify({
      fleets: [
        {
          name: "mail",
          kind: "imap",
          accounts: { file: path.join(base, "mail.jsonl") },
          imap: {
            url: `imap://127.0.0.1:${dove.port}`,
            passwordCommand: `cat "${base}/mail-pw/$1"`,
          },
          drillSample: 0,
        },
        {
          name: "contacts",
          kind: "dav",
          accounts: { file: path.join(base, "dav.csv") },
          dav: { url: `dav://127.0.0.1:${rad.port}/`, passwordFile: path.join(base, "dav-pw", "{id}") },
          drillSample: 0,
        },
      ],
    }),
  );
});

after(async () => {
  await dove?.stop();
  await rad?.stop();
  if (base) await removeTempDir(base);
});

test("night 1: each mail and DAV account backed up once; a bad password fails that account alone, in one line", async () => {
  const r = await cli(["--json", "fleet", "run", "--now", "2026-01-14T03:30:00Z"]);
  assert.equal(r.code, 1, show(r));
  const s = byFleet(r.stdout);
  assert.equal(s.get("mail")?.snapshot, 2, show(r));
  assert.equal(s.get("mail")?.failed, 1, show(r));
  assert.equal(s.get("contacts")?.snapshot, 2, show(r));
  assert.equal(s.get("contacts")?.failed, 0, show(r));
  const failures = r.stderr.split("\n").filter((l) => /account cy/.test(l));
  assert.equal(failures.length, 1, r.stderr);
  assert.match(
    failures[0]!,
    new RegExp(
      `fleet mail: account cy: IMAP login as cy at 127\\.0\\.0\\.1:${dove.port} failed: wrong user name or password`,
    ),
  );
  const snaps = jsonLines((await ok(["--json", "snapshots"])).stdout)[0] as unknown as Record<
    string,
    unknown
  >[];
  assert.deepEqual(snaps.map((x) => `${x.fleet}/${x.account}`).sort(), [
    "contacts/dan",
    "contacts/eve",
    "mail/ann",
    "mail/bob",
  ]);
  // Credentials are used to log in, never recorded.
  const all = JSON.stringify(snaps);
  for (const pw of [...Object.values(MAIL_PW), ...Object.values(DAV_PW)]) assert.ok(!all.includes(pw));
  const st = JSON.parse(
    (
      await cli([
        "--json",
        "fleet",
        "status",
        "--name",
        "mail",
        "--account",
        "cy",
        "--now",
        "2026-01-14T03:31:00Z",
      ])
    ).stdout,
  );
  assert.match(st.last_error, /wrong user name or password/);
});

test("night 2: unchanged accounts are checked and skipped (IMAP status, DAV sync-token), changed ones backed up", async () => {
  await fs.writeFile(path.join(base, "mail-pw", "cy"), `${MAIL_PW.cy}\n`);
  await appendMail("bob", "new", 7);
  await putCard("eve", "eve-new", 9);
  const r = await ok(["--json", "fleet", "run", "--now", "2026-01-15T03:30:00Z"]);
  const outcome = new Map(events(r.stdout).map((e) => [e.account as string, e.outcome]));
  assert.deepEqual(Object.fromEntries(outcome), {
    ann: "unchanged",
    bob: "snapshot",
    cy: "snapshot",
    dan: "unchanged",
    eve: "snapshot",
  });
  const count = async (id: string) =>
    (jsonLines((await ok(["--json", "snapshots", "--account", id])).stdout)[0] as unknown as unknown[])
      .length;
  assert.equal(await count("ann"), 1);
  assert.equal(await count("bob"), 2);
  assert.equal(await count("eve"), 2);
  // A flag change alone moves HIGHESTMODSEQ: ann is backed up in night 3.
  const c = await dove.clientAs("ann");
  await c.mailboxOpen("INBOX");
  await c.messageFlagsAdd("1", ["\\Flagged"]);
  await c.logout();
  const n3 = await ok(["--json", "fleet", "run", "--now", "2026-01-16T03:30:00Z"]);
  const o3 = new Map(events(n3.stdout).map((e) => [e.account as string, e.outcome]));
  assert.equal(o3.get("ann"), "snapshot");
  assert.equal(o3.get("bob"), "unchanged");
});

test("restore --account gives an account's mail and contacts back, as files and into the account on its server", async () => {
  const bobDir = path.join(base, "r-bob");
  await ok(["restore", "--account", "bob", "--target", bobDir]);
  assert.deepEqual(sorted(await filesUnder(bobDir, ".eml")), sorted(mail.get("bob")!));
  const eveDir = path.join(base, "r-eve");
  await ok(["restore", "--account", "eve", "--target", eveDir]);
  const got = sorted(await filesUnder(eveDir, ".vcf"), "utf8");
  // The snapshot holds each contact as the server serves it.
  const served: string[] = [];
  for (const body of cards.get("eve")!) {
    const uid = /UID:(.*)\r\n/.exec(body)![1]!;
    const g = await rad.request("eve", "GET", `/eve/contacts/${uid}.vcf`);
    assert.equal(g.status, 200);
    assert.match(g.text, new RegExp(`UID:${uid}\r?\n`));
    served.push(g.text);
  }
  assert.deepEqual(got, served.sort());

  // ann's mailbox emptied on the server, then her newest snapshot pushed back into it.
  const c = await dove.clientAs("ann");
  await c.mailboxOpen("INBOX");
  await c.messageDelete("1:*");
  assert.equal(c.mailbox ? c.mailbox.exists : -1, 0);
  await c.logout();
  const r = await ok(["--json", "restore", "--account", "ann"]);
  assert.match(r.stderr + r.stdout, /"items":3/);
  const back = await dove.clientAs("ann");
  const raws: Buffer[] = [];
  await back.mailboxOpen("INBOX");
  for await (const m of back.fetch("1:*", { source: true })) raws.push(m.source!);
  await back.logout();
  assert.deepEqual(sorted(raws), sorted(mail.get("ann")!));
  // dan loses a contact; restoring puts it back and leaves the others as they are.
  const del = await rad.request("dan", "DELETE", "/dan/contacts/dan-c1.vcf");
  assert.ok(del.status === 200 || del.status === 204, String(del.status));
  const rd = await ok(["--json", "restore", "--account", "dan"]);
  assert.match(rd.stdout, /"items":1,"skipped":2/);
  const get = await rad.request("dan", "GET", "/dan/contacts/dan-c1.vcf");
  assert.equal(get.status, 200);
  assert.match(get.text, /UID:dan-c1/);
});

test("fleet restore --all puts every mail account's messages back on the server, adding only what is missing", async () => {
  const c = await dove.clientAs("bob");
  await c.mailboxOpen("INBOX");
  await c.messageDelete("1:*");
  await c.logout();
  const r = await ok(["--json", "fleet", "restore", "--all", "--name", "mail", "--parallel", "2"]);
  const per = new Map(
    jsonLines(r.stdout)
      .filter((m) => m.message_type === "fleet_restore_account")
      .map((m) => [m.account as string, m]),
  );
  assert.deepEqual([...per.keys()].sort(), ["ann", "bob", "cy"]);
  for (const m of per.values()) assert.equal(m.ok, true, JSON.stringify(m));
  assert.equal(per.get("bob")?.items, 3);
  assert.equal(per.get("ann")?.items, 0, "ann's messages were already there");
  const back = await dove.clientAs("bob");
  const raws: Buffer[] = [];
  await back.mailboxOpen("INBOX");
  for await (const m of back.fetch("1:*", { source: true })) raws.push(m.source!);
  await back.logout();
  assert.deepEqual(sorted(raws), sorted(mail.get("bob")!));
});
