/**
 * A server without CONDSTORE: flags are refreshed with one FETCH (UID FLAGS) of every message,
 * and still only new messages are downloaded.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ImapFlow } from "imapflow";
import { baseEnv, jsonLines, run, tempDir } from "../support/cli.js";
import { type Dovecot, startDovecot } from "../support/dovecot.js";
import { appendTo, flagsFor, makeMessage, type SeededMessage, serverState } from "./seed.js";

let dv: Dovecot;
let admin: ImapFlow;
let base: string;
let env: Record<string, string>;
const seeded: SeededMessage[] = [];

before(async () => {
  dv = await startDovecot({
    extraConfig: "imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE NAMESPACE UIDPLUS",
  });
  admin = await dv.client();
  assert.ok(!admin.capabilities.has("CONDSTORE"), "the server must not offer CONDSTORE here");
  for (let i = 0; i < 30; i++)
    seeded.push(
      await appendTo(
        admin,
        "INBOX",
        makeMessage(`nc${i}`, "plain", i),
        flagsFor(i),
        new Date(2020, 0, i + 1),
      ),
    );
  base = await tempDir("lb-mail-nocs-");
  env = baseEnv({
    LIFEBOAT_REPOSITORY: path.join(base, "repo"),
    LIFEBOAT_PASSWORD: "repo-pw",
    LIFEBOAT_SOURCE_PASSWORD: dv.password,
  });
  assert.equal((await run(["init"], { env })).code, 0);
});

after(async () => {
  await admin?.logout().catch(() => {});
  await dv?.stop();
  if (base) await fs.rm(base, { recursive: true, force: true });
});

async function pull(): Promise<Record<string, unknown>> {
  const r = await run(["--json", "pull", dv.url], { env });
  assert.equal(r.code, 0, r.stderr);
  return jsonLines(r.stdout).find((l) => l.message_type === "summary")!;
}

test("without CONDSTORE: full flag refresh, only new messages fetched, server untouched", async () => {
  const before1 = await serverState(admin);
  const first = await pull();
  assert.equal(first.messages_fetched, 30);
  assert.deepEqual(await serverState(admin), before1);

  const unchanged = await pull();
  assert.equal(unchanged.messages_fetched, 0);
  assert.equal(unchanged.condstore_folders, 0);
  assert.equal(unchanged.flags_changed, 0);

  const lock = await admin.getMailboxLock("INBOX");
  try {
    await admin.messageFlagsAdd(String(seeded[0]!.uid), ["\\Seen"], { uid: true });
    await admin.messageFlagsRemove(String(seeded[1]!.uid), ["\\Seen"], { uid: true });
    await admin.messageDelete(String(seeded[2]!.uid), { uid: true });
  } finally {
    lock.release();
  }
  await appendTo(admin, "INBOX", makeMessage("nc-new", "8bit", 1), [], new Date(2021, 0, 1));
  const before2 = await serverState(admin);
  const s = await pull();
  assert.equal(s.messages_fetched, 1);
  assert.equal(s.messages_removed, 1);
  assert.equal(s.flags_changed, 2);
  assert.equal(s.condstore_folders, 0);
  assert.equal(s.messages, 30);
  assert.deepEqual(await serverState(admin), before2);
});
