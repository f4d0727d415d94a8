/**
 * A mail fleet whose accounts log in with OAuth2, through the built CLI against a real dovecot
 * offering OAUTHBEARER and XOAUTH2 (imapflow picks OAUTHBEARER), and a second one offering
 * XOAUTH2 alone. What it proves: each account's login is AUTHENTICATE with a
 * bearer token that is exactly the first line the fleet's `oauth2TokenCommand` printed for that
 * account (run with the account id as $1 and its login name as $2), never a LOGIN with a
 * password; dovecot (2.3) checks the bearer token against its passdb like a password, so the
 * right token logs in and a wrong one is refused — failing that account alone, with one line.
 * It does not prove a token issuer's introspection (no OAuth2 server runs here). The token
 * appears neither in the snapshots' documents, nor in the fleet's state, nor in the restored
 * files; `restore --account` into the server logs in with a fresh token too.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { recordingProxy } from "../mail/proxy.js";
import { makeMessage } from "../mail/seed.js";
import { jsonLines, removeTempDir, repoEnv, run, show, tempDir } from "../support/cli.js";
import { type Dovecot, startDovecot } from "../support/dovecot.js";

/** Each account's "access token" is its dovecot password (dovecot verifies bearer tokens so). */
const TOKENS: Record<string, string> = {
  ann: "ya29.ann-token_lifeboat~1",
  bob: "ya29.bob-token_lifeboat~2",
  cy: "ya29.cy-token_lifeboat~3",
};

let base: string;
let env: Record<string, string>;
let cfg: string;
let dove: Dovecot;
let proxy: Awaited<ReturnType<typeof recordingProxy>>;

const cli = (args: string[]) => run(["--config", cfg, ...args], { env, timeoutMs: 300_000 });
const ok = async (args: string[]) => {
  const r = await cli(args);
  assert.equal(r.code, 0, show(r));
  return r;
};

/** The SASL payloads of the recorded AUTHENTICATE lines, decoded: [mechanism, payload]. */
const logins = (lines = proxy.lines) =>
  lines
    .map((l) => /^\S+ AUTHENTICATE (XOAUTH2|OAUTHBEARER) (\S+)$/i.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [m[1]!.toUpperCase(), Buffer.from(m[2]!, "base64").toString("latin1")] as const);

before(async () => {
  base = await tempDir("lifeboat-fleet-oauth2-");
  env = repoEnv(path.join(base, "repo"), "fleet-pw", { XDG_STATE_HOME: path.join(base, "xdg") });
  assert.equal((await run(["init"], { env })).code, 0);
  dove = await startDovecot({
    user: "ann",
    password: TOKENS.ann!,
    users: { bob: TOKENS.bob!, cy: TOKENS.cy! },
    extraConfig: "auth_mechanisms = plain login xoauth2 oauthbearer\n",
  });
  for (const u of Object.keys(TOKENS)) {
    const c = await dove.clientAs(u);
    for (let i = 0; i < 2; i++)
      await c.append(
        "INBOX",
        makeMessage(`${u}-m${i}`, "plain", i),
        ["\\Seen"],
        new Date(Date.UTC(2026, 0, 1, 10, i)),
      );
    await c.logout();
  }
  proxy = await recordingProxy(dove.port);
  // The token command: one file per account, named by the login name it is given as $2; cy's
  // token is wrong for the first night.
  await fs.mkdir(path.join(base, "tokens"));
  for (const [u, t] of Object.entries(TOKENS))
    await fs.writeFile(
      path.join(base, "tokens", u),
      u === "cy" ? "expired-token\n" : `${t}\nsecond line ignored\n`,
    );
  await fs.writeFile(
    path.join(base, "mail.jsonl"),
    `${Object.keys(TOKENS)
      .map((id) => JSON.stringify({ id, timezone: "UTC" }))
      .join("\n")}\n`,
  );
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
            url: `imap://127.0.0.1:${proxy.port}`,
            // $1 is the account id, $2 its login name (also in the environment).
            oauth2TokenCommand: `test "$1" = "$LIFEBOAT_ACCOUNT" && test "$2" = "$LIFEBOAT_ACCOUNT_USER" && cat "${base}/tokens/$2"`,
          },
          drillSample: 0,
        },
      ],
    }),
  );
});

after(async () => {
  await proxy?.close();
  await dove?.stop();
  if (base) await removeTempDir(base);
});

test("each account logs in with the token its command printed; a wrong token fails that account alone", async () => {
  const r = await cli(["--json", "fleet", "run", "--now", "2026-03-02T03:30:00Z"]);
  assert.equal(r.code, 1, show(r)); // cy failed, the others went on
  const sum = jsonLines(r.stdout).find((m) => m.message_type === "fleet_summary")!;
  assert.equal(sum.snapshot, 2);
  assert.equal(sum.failed, 1);
  assert.match(
    r.stderr,
    /fleet mail: account cy: IMAP login as cy at 127\.0\.0\.1:\d+ failed: the server refused the OAuth2/,
  );
  const seen = logins();
  assert.ok(seen.length >= 3, proxy.lines.join("\n"));
  for (const u of ["ann", "bob"]) {
    const mine = seen.filter(([, p]) => p.includes(`user=${u}\x01`) || p.includes(`a=${u},`));
    assert.ok(mine.length >= 1, `${u} logged in with OAuth2`);
    for (const [mech, p] of mine)
      assert.ok(
        mech === "OAUTHBEARER"
          ? p.includes(`\x01auth=Bearer ${TOKENS[u]}\x01\x01`)
          : p === `user=${u}\x01auth=Bearer ${TOKENS[u]}\x01\x01`,
        JSON.stringify(p),
      );
  }
  assert.ok(
    seen.some(([, p]) => p.includes("Bearer expired-token")),
    "cy tried her (wrong) token",
  );
  assert.ok(!proxy.lines.some((l) => /^\S+ LOGIN /i.test(l)), "no password login");
});

test("the token is stored nowhere: not in snapshots, the fleet's state or the restored files", async () => {
  // cy's token is fixed; her account runs in the next night.
  await fs.writeFile(path.join(base, "tokens", "cy"), `${TOKENS.cy}\n`);
  await ok(["fleet", "run", "--now", "2026-03-03T03:30:00Z"]);
  const snaps = (await ok(["--json", "snapshots"])).stdout;
  assert.equal((jsonLines(snaps)[0] as unknown as unknown[]).length, 3, snaps);
  const stateDir = path.join(base, "xdg", "lifeboat");
  // Every file of the state folder (the state store, its WAL), whatever its name.
  const stateFiles = (await fs.readdir(stateDir, { withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => e.name);
  assert.ok(stateFiles.length > 0);
  for (const f of stateFiles) {
    const state = await fs.readFile(path.join(stateDir, f));
    for (const t of Object.values(TOKENS)) assert.ok(!state.includes(t), `token in the fleet's state (${f})`);
  }
  const all = Buffer.concat(await Promise.all(stateFiles.map((f) => fs.readFile(path.join(stateDir, f)))));
  assert.ok(
    all.includes("oauth2TokenCommand"),
    "the state keeps the command (the definition), not its output",
  );
  for (const t of Object.values(TOKENS)) assert.ok(!snaps.includes(t));
  const dir = path.join(base, "restored-cy");
  await ok(["restore", "--account", "cy", "--target", dir]);
  for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true }))
    if (e.isFile()) {
      const text = await fs.readFile(path.join(e.parentPath, e.name), "latin1");
      for (const t of Object.values(TOKENS)) assert.ok(!text.includes(t), `token in ${e.name}`);
    }
});

test("restore --account into the server logs in with a fresh token", async () => {
  const c = await dove.clientAs("bob");
  await c.mailboxOpen("INBOX");
  await c.messageDelete("1:*");
  await c.logout();
  proxy.lines.length = 0;
  const r = await ok(["--json", "restore", "--account", "bob"]);
  const s = jsonLines(r.stdout).find((m) => m.message_type === "summary")!;
  assert.equal(s.items, 2);
  assert.ok(logins().some(([, p]) => p.includes(`Bearer ${TOKENS.bob}\x01`)));
  assert.ok(!proxy.lines.some((l) => /^\S+ LOGIN /i.test(l)));
});

test("a server offering XOAUTH2 alone gets the token in an XOAUTH2 payload", async () => {
  const only = await startDovecot({
    user: "ann",
    password: TOKENS.ann!,
    users: { bob: TOKENS.bob!, cy: TOKENS.cy! },
    extraConfig: "auth_mechanisms = plain login xoauth2\n",
  });
  const relay = await recordingProxy(only.port);
  try {
    const cfg2 = path.join(base, "fleet2.json");
    const def = JSON.parse(await fs.readFile(cfg, "utf8")) as { fleets: Record<string, unknown>[] };
    const f = def.fleets[0]!;
    await fs.writeFile(
      cfg2,
      JSON.stringify({
        fleets: [
          { ...f, name: "mail2", imap: { ...(f.imap as object), url: `imap://127.0.0.1:${relay.port}` } },
        ],
      }),
    );
    const r = await run(["--config", cfg2, "--json", "fleet", "run", "--now", "2026-03-02T03:30:00Z"], {
      env,
      timeoutMs: 300_000,
    });
    assert.equal(r.code, 0, show(r));
    assert.equal(jsonLines(r.stdout).find((m) => m.message_type === "fleet_summary")!.snapshot, 3);
    const seen = logins(relay.lines);
    for (const u of Object.keys(TOKENS))
      assert.ok(
        seen.some(([mech, p]) => mech === "XOAUTH2" && p === `user=${u}\x01auth=Bearer ${TOKENS[u]}\x01\x01`),
        `${u}: ${JSON.stringify(seen)}`,
      );
    assert.ok(!seen.some(([mech]) => mech !== "XOAUTH2"));
  } finally {
    await relay.close();
    await only.stop();
  }
});
