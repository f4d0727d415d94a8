/**
 * `lifeboat push imap://... SNAPSHOT` against a real dovecot: a pulled account restored into a
 * second, empty user (folders, bytes, flags and dates compared with imapflow), a second push that
 * appends nothing, a message deleted in the target that the next push puts back, folder globs,
 * the documented errors, and OAuth2 logins (OAUTHBEARER and XOAUTH2) for pull and push: dovecot
 * checks the bearer token against its passdb like a password, so a token command printing the
 * right "token" logs in and any other is refused; a recording relay shows the SASL payload.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ImapFlow } from "imapflow";
import { LifeboatError } from "../../src/core/errors.js";
import { baseEnv, jsonLines, run, tempDir } from "../support/cli.js";
import { type Dovecot, startDovecot } from "../support/dovecot.js";
import { recordingProxy } from "./proxy.js";
import { appendTo, type SeededMessage, seedMailbox } from "./seed.js";

const TOKEN = "ya29.a0-test_token.lifeboat~42";
let dv: Dovecot;
let ann: ImapFlow;
let base: string;
let env: Record<string, string>;
let seeded: SeededMessage[];
let snapshot: string;

const authFailed = new LifeboatError("AUTH_FAILED", "").exitCode;

before(async () => {
  dv = await startDovecot({
    users: { bob: "bob-secret", carol: "carol-secret", tok: TOKEN },
    // dovecot 2.3 verifies an OAUTHBEARER/XOAUTH2 bearer token against the passdb like a password.
    extraConfig: "auth_mechanisms = plain login xoauth2 oauthbearer\n",
  });
  ann = await dv.client();
  seeded = await seedMailbox(ann, 60);
  // Two messages without Message-ID (one of them twice, as a real duplicate in one folder), so
  // the fallback key (size, INTERNALDATE, first KiB) is needed to recognise them.
  const noId = (n: number) =>
    Buffer.from(
      `From: x@example.org\r\nSubject: no id ${n}\r\nDate: Tue, 03 Mar 2020 10:00:00 +0000\r\n\r\nbody ${n}\r\n`,
      "latin1",
    );
  const d = new Date(Date.UTC(2019, 5, 1, 12, 30, 15));
  seeded.push(await appendTo(ann, "INBOX", noId(1), ["\\Seen", "$Important"], d));
  seeded.push(await appendTo(ann, "INBOX", noId(2), [], d));
  seeded.push(await appendTo(ann, "INBOX", noId(2), [], d));
  base = await tempDir("lb-mail-push-");
  env = baseEnv({
    LIFEBOAT_REPOSITORY: path.join(base, "repo"),
    LIFEBOAT_PASSWORD: "repo-pw",
    LIFEBOAT_SOURCE_PASSWORD: dv.password,
  });
  assert.equal((await run(["init"], { env })).code, 0);
  const r = await run(["--json", "pull", dv.url], { env });
  assert.equal(r.code, 0, r.stderr);
  snapshot = jsonLines(r.stdout).find((l) => l.message_type === "summary")!.snapshot_id as string;
});

after(async () => {
  await ann?.logout().catch(() => {});
  await dv?.stop();
  if (base) await fs.rm(base, { recursive: true, force: true });
});

async function push(user: string, password: string, ...extra: string[]): Promise<Record<string, unknown>> {
  const r = await run(["--json", "push", dv.urlFor(user), snapshot, ...extra], {
    env: { ...env, LIFEBOAT_SOURCE_PASSWORD: password },
  });
  assert.equal(r.code, 0, `push failed: ${r.stderr}`);
  const s = jsonLines(r.stdout).find((l) => l.message_type === "summary");
  assert.ok(s, r.stdout);
  return s;
}

/** Every selectable folder: each message as bytes (base64), sorted flags and INTERNALDATE, sorted. */
async function account(c: ImapFlow): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const f of await c.list()) {
    if (f.flags.has("\\Noselect") || f.flags.has("\\NonExistent")) continue;
    const lock = await c.getMailboxLock(f.path, { readOnly: true });
    try {
      const msgs =
        c.mailbox && c.mailbox.exists > 0
          ? await c.fetchAll(
              "1:*",
              { uid: true, flags: true, internalDate: true, source: true },
              { uid: true },
            )
          : [];
      out[f.path] = msgs
        .map((m) =>
          JSON.stringify([
            [...(m.flags ?? [])].filter((x) => x !== "\\Recent").sort(),
            new Date(m.internalDate!).toISOString(),
            m.source!.toString("base64"),
          ]),
        )
        .sort();
    } finally {
      lock.release();
    }
  }
  return out;
}

test("push into an empty account: same folders, bytes, flags and dates; a second push appends nothing", async () => {
  const original = await account(ann);
  const folders = Object.keys(original);
  assert.equal(folders.length, 5); // INBOX, Archive/2024, Entwürfe, Sent, Empty
  const started = Date.now();
  const s = await push("bob", "bob-secret");
  const wall = Date.now() - started;
  console.log(
    `push: ${s.messages_appended} messages, ${((s.bytes as number) / 1e6).toFixed(1)} MB in ${s.duration_ms} ms = ${s.messages_per_second} messages/s (wall ${wall} ms)`,
  );
  assert.equal(s.folders, 5);
  assert.equal(s.folders_created, 4); // INBOX exists in every account
  assert.equal(s.messages_appended, seeded.length);
  assert.equal(s.messages_skipped, 0);
  const bob = await dv.clientAs("bob");
  try {
    const restored = await account(bob);
    assert.deepEqual(Object.keys(restored).sort(), folders.sort());
    for (const f of folders) assert.deepEqual(restored[f], original[f], `folder ${f}`);
    // Flags really travelled (not just "both empty"): keywords, \Deleted and \Draft among them.
    const all = Object.values(restored).flat().join("");
    for (const flag of ["$Label1", "$Important", "\\\\Deleted", "\\\\Draft", "\\\\Flagged", "\\\\Answered"])
      assert.ok(all.includes(flag), flag);
    // Created folders are subscribed, so mail clients show them.
    const subscribed = (await bob.list()).filter((f) => f.subscribed).map((f) => f.path);
    for (const f of ["Archive/2024", "Entwürfe", "Sent", "Empty"]) assert.ok(subscribed.includes(f), f);

    const again = await push("bob", "bob-secret");
    assert.equal(again.messages_appended, 0);
    assert.equal(again.messages_skipped, seeded.length);
    assert.equal(again.folders_created, 0);
    assert.deepEqual(await account(bob), restored);

    // A message deleted in the target (one with a Message-ID, one of the id-less duplicates) is
    // put back by the next push, and nothing else is.
    const lock = await bob.getMailboxLock("INBOX");
    try {
      const msgs = await bob.fetchAll(
        "1:*",
        { uid: true, headers: ["message-id"], size: true },
        { uid: true },
      );
      const withId = msgs.find((m) => m.headers?.toString().includes("<in7@example.org>"))!;
      const noIdDup = msgs.filter((m) => !/message-id/i.test(m.headers?.toString() ?? "")).at(-1)!;
      assert.ok(withId && noIdDup);
      await bob.messageDelete(`${withId.uid},${noIdDup.uid}`, { uid: true });
    } finally {
      lock.release();
    }
    const third = await push("bob", "bob-secret");
    assert.equal(third.messages_appended, 2);
    assert.equal(third.messages_skipped, seeded.length - 2);
    assert.deepEqual(await account(bob), restored);
  } finally {
    await bob.logout().catch(() => {});
  }
});

test("--folder and --exclude-folder select the folders pushed", async () => {
  const s = await push("carol", "carol-secret", "--folder", "Archive/*", "--folder", "S?nt");
  assert.equal(s.folders, 2);
  assert.equal(s.folders_created, 2);
  const n = seeded.filter((m) => m.folder === "Archive/2024" || m.folder === "Sent").length;
  assert.equal(s.messages_appended, n);
  const t = await push("carol", "carol-secret", "--exclude-folder", "INBOX", "--exclude-folder", "Archive*");
  assert.equal(t.folders, 3); // Entwürfe, Sent, Empty
  assert.equal(t.folders_created, 2);
  assert.equal(t.messages_skipped, seeded.filter((m) => m.folder === "Sent").length);
  const carol = await dv.clientAs("carol");
  try {
    const paths = (await carol.list()).filter((f) => !f.flags.has("\\Noselect")).map((f) => f.path);
    assert.deepEqual(paths.sort(), ["Archive/2024", "Empty", "Entwürfe", "INBOX", "Sent"].sort());
    const st = await carol.status("INBOX", { messages: true });
    assert.ok(st);
    assert.equal(st.messages, 0);
  } finally {
    await carol.logout().catch(() => {});
  }
});

test("push errors: wrong password, a snapshot that is not a mail snapshot, dav options", async () => {
  const wrong = await run(["push", dv.urlFor("bob"), snapshot], {
    env: { ...env, LIFEBOAT_SOURCE_PASSWORD: "nope" },
  });
  assert.equal(wrong.code, authFailed, wrong.stderr);
  assert.match(wrong.stderr, /^error: IMAP login as bob at 127\.0\.0\.1:\d+ failed/);
  assert.equal(wrong.stderr.split("\n").filter((l) => l.startsWith("error:")).length, 1);

  const files = path.join(base, "files");
  await fs.mkdir(files, { recursive: true });
  await fs.writeFile(path.join(files, "a.txt"), "not mail");
  const b = await run(["--json", "backup", files], { env });
  assert.equal(b.code, 0, b.stderr);
  const fileSnap = jsonLines(b.stdout).find((l) => l.message_type === "summary")!.snapshot_id as string;
  const notMail = await run(["push", dv.urlFor("bob"), fileSnap], {
    env: { ...env, LIFEBOAT_SOURCE_PASSWORD: "bob-secret" },
  });
  assert.equal(notMail.code, 2, notMail.stderr);
  assert.match(notMail.stderr, /^error: snapshot [0-9a-f]{8} is not a mail snapshot \(source: files\)/);
  assert.equal(notMail.stderr.split("\n").filter((l) => l.startsWith("error:")).length, 1);

  const davFlags = await run(["push", "dav://bob@127.0.0.1:1/", snapshot, "--folder", "INBOX"], { env });
  assert.equal(davFlags.code, 2, davFlags.stderr);
  const other = await run(["push", "ftp://bob@127.0.0.1/", snapshot], { env });
  assert.equal(other.code, 2, other.stderr);
  assert.match(other.stderr, /imap:\/\/, imaps:\/\/, dav:\/\/ and davs:\/\//);
});

test("OAuth2: the token command's output reaches the server (OAUTHBEARER), for pull and push", async () => {
  const proxy = await recordingProxy(dv.port);
  const { LIFEBOAT_SOURCE_PASSWORD: _, ...noPw } = env;
  try {
    const url = `imap://tok@127.0.0.1:${proxy.port}`;
    const tokenFile = path.join(base, "token");
    await fs.writeFile(tokenFile, `${TOKEN}\n`);
    const pushed = await run(
      ["--json", "push", url, snapshot, "--oauth2-token-command", `cat '${tokenFile}'`],
      {
        env: noPw,
      },
    );
    assert.equal(pushed.code, 0, pushed.stderr);
    const s = jsonLines(pushed.stdout).find((l) => l.message_type === "summary")!;
    assert.equal(s.messages_appended, seeded.length);
    // One login per connection (push uses up to --connections of them), each with the token.
    const auth = proxy.lines.filter((l) => / AUTHENTICATE /i.test(l));
    assert.ok(auth.length >= 1, proxy.lines.join("\n"));
    for (const line of auth) {
      const m = /^\S+ AUTHENTICATE OAUTHBEARER (\S+)$/.exec(line);
      assert.ok(m, line);
      const sasl = Buffer.from(m[1]!, "base64").toString("latin1");
      assert.ok(sasl.startsWith("n,a=tok,\x01"), JSON.stringify(sasl));
      assert.ok(sasl.includes(`\x01auth=Bearer ${TOKEN}\x01\x01`), JSON.stringify(sasl));
    }
    assert.ok(!proxy.lines.some((l) => / LOGIN /i.test(l)));

    // Pull with the token from the environment variable.
    proxy.lines.length = 0;
    const pulled = await run(["--json", "pull", url], {
      env: { ...noPw, LIFEBOAT_SOURCE_OAUTH2_COMMAND: `printf '%s\\n' '${TOKEN}'` },
    });
    assert.equal(pulled.code, 0, pulled.stderr);
    const p = jsonLines(pulled.stdout).find((l) => l.message_type === "summary")!;
    assert.equal(p.messages, seeded.length);
    assert.ok(proxy.lines.some((l) => /^\S+ AUTHENTICATE OAUTHBEARER /.test(l)));

    // A token the server does not accept: the AUTH_FAILED exit code, one line.
    const refused = await run(["pull", url, "--oauth2-token-command", "echo not-the-token"], { env: noPw });
    assert.equal(refused.code, authFailed, refused.stderr);
    assert.match(
      refused.stderr,
      /^error: IMAP login as tok at 127\.0\.0\.1:\d+ failed: the server refused the OAuth2/,
    );
    assert.equal(refused.stderr.split("\n").filter((l) => l.startsWith("error:")).length, 1);

    // A failing or silent token command: exit 12, one line, and nothing is sent to the server.
    proxy.lines.length = 0;
    const failing = await run(
      ["push", url, snapshot, "--oauth2-token-command", "echo 'no refresh token stored' >&2; exit 3"],
      { env: noPw },
    );
    assert.equal(failing.code, 12, failing.stderr);
    assert.match(
      failing.stderr,
      /^error: --oauth2-token-command failed \(exit status 3\): no refresh token stored/,
    );
    assert.equal(failing.stderr.split("\n").filter((l) => l.startsWith("error:")).length, 1);
    const silent = await run(["pull", url], { env: { ...noPw, LIFEBOAT_SOURCE_OAUTH2_COMMAND: "true" } });
    assert.equal(silent.code, 12, silent.stderr);
    assert.match(silent.stderr, /^error: LIFEBOAT_SOURCE_OAUTH2_COMMAND printed nothing/);
    assert.deepEqual(proxy.lines, []);

    const both = await run(
      ["pull", url, "--oauth2-token-command", "echo x", "--source-password-file", tokenFile],
      { env: noPw },
    );
    assert.equal(both.code, 2, both.stderr);
  } finally {
    await proxy.close();
  }
});

test("OAuth2 on a server offering only XOAUTH2, and on one offering no OAuth2 at all", async () => {
  const only = await startDovecot({
    user: "tok",
    password: TOKEN,
    extraConfig: "auth_mechanisms = plain xoauth2\n",
  });
  const plain = await startDovecot({ user: "tok", password: TOKEN });
  const proxy = await recordingProxy(only.port);
  const { LIFEBOAT_SOURCE_PASSWORD: _, ...noPw } = env;
  try {
    const r = await run(
      ["--json", "push", `imap://tok@127.0.0.1:${proxy.port}`, snapshot, "--folder", "Sent"],
      { env: { ...noPw, LIFEBOAT_SOURCE_OAUTH2_COMMAND: `echo '${TOKEN}'` } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      jsonLines(r.stdout).find((l) => l.message_type === "summary")!.messages_appended,
      seeded.filter((m) => m.folder === "Sent").length,
    );
    const line = proxy.lines.find((l) => / AUTHENTICATE /i.test(l))!;
    const m = /^\S+ AUTHENTICATE XOAUTH2 (\S+)$/.exec(line);
    assert.ok(m, line);
    assert.equal(Buffer.from(m[1]!, "base64").toString("latin1"), `user=tok\x01auth=Bearer ${TOKEN}\x01\x01`);

    const none = await run(["pull", plain.url, "--oauth2-token-command", `echo '${TOKEN}'`], { env: noPw });
    assert.equal(none.code, authFailed, none.stderr);
    assert.match(
      none.stderr,
      /^error: IMAP server 127\.0\.0\.1:\d+ offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2/,
    );
  } finally {
    await proxy.close();
    await only.stop();
    await plain.stop();
  }
});
