/**
 * TLS: imaps:// and STARTTLS on imap:// against a dovecot with a self-signed certificate, which
 * is refused (exit 16, hint --insecure) unless --insecure is given.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { baseEnv, jsonLines, run, tempDir } from "../support/cli.js";
import { type Dovecot, startDovecot } from "../support/dovecot.js";
import { appendTo, makeMessage } from "./seed.js";

let dv: Dovecot;
let base: string;
let env: Record<string, string>;

before(async () => {
  dv = await startDovecot({ tls: true });
  const c = await dv.client();
  for (let i = 0; i < 5; i++) await appendTo(c, "INBOX", makeMessage(`tls${i}`, "plain", i), [], new Date());
  await c.logout();
  base = await tempDir("lb-mail-tls-");
  env = baseEnv({
    LIFEBOAT_REPOSITORY: path.join(base, "repo"),
    LIFEBOAT_PASSWORD: "repo-pw",
    LIFEBOAT_SOURCE_PASSWORD: dv.password,
  });
  assert.equal((await run(["init"], { env })).code, 0);
});

after(async () => {
  await dv?.stop();
  if (base) await fs.rm(base, { recursive: true, force: true });
});

const summary = (stdout: string) => jsonLines(stdout).find((l) => l.message_type === "summary")!;

test("imaps:// refuses a self-signed certificate unless --insecure, then pulls over TLS", async () => {
  const url = `imaps://${dv.user}@127.0.0.1:${dv.tlsPort}`;
  const refused = await run(["pull", url], { env });
  assert.equal(refused.code, 16, refused.stderr);
  assert.match(refused.stderr, /certificate .* not trusted[\s\S]*--insecure/);
  const ok = await run(["--json", "pull", url, "--insecure"], { env });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(summary(ok.stdout).tls, true);
  assert.equal(summary(ok.stdout).messages_fetched, 5);
});

test("imap:// upgrades with STARTTLS when the server offers it", async () => {
  const refused = await run(["pull", dv.url], { env });
  assert.equal(refused.code, 16, refused.stderr);
  const ok = await run(["--json", "pull", dv.url, "--insecure"], { env });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(summary(ok.stdout).tls, true);
  assert.equal(summary(ok.stdout).messages, 5);
});
