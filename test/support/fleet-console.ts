/**
 * A small fleet for the console's tests: folder accounts backed up by the real CLI (`fleet run
 * --now`) over two nights, the second after one account's mail changed, so each account has a
 * history and a time to restore to. The accounts live in a timezone whose night is now, so the
 * newest snapshots are fresh (protected) whatever the hour the test runs at.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { baseEnv, runOk } from "./cli.js";

export interface FleetFixture {
  env: Record<string, string>;
  config: string;
  /** Each account's folder. */
  folder: (id: string) => string;
  ids: string[];
  /** Between the two nights: ann's first version is the newest snapshot at this time. */
  between: Date;
  firstAnn: string;
  secondAnn: string;
  restores: string;
}

/** `Etc/GMT±N` whose local time is about 04:00 at `t` (in the second half of 01:00-05:00 windows). */
export function zoneAtFourAm(t: Date): string {
  let h = (4 - t.getUTCHours() + 24) % 24; // local = utc + h
  if (h > 14) h -= 24;
  // Etc/GMT's sign is inverted: Etc/GMT-3 is UTC+3.
  return h === 0 ? "Etc/GMT" : h > 0 ? `Etc/GMT-${h}` : `Etc/GMT+${-h}`;
}

export async function makeFleetFixture(
  base: string,
  o: { accounts?: number; extraConfig?: Record<string, unknown> } = {},
): Promise<FleetFixture> {
  const now = new Date(Math.floor(Date.now() / 60_000) * 60_000);
  // 04:00 local at the start of this minute: both nights start at once (start times fall in
  // the window's first half).
  const zone = zoneAtFourAm(now);
  const ids = ["ann", "bob", "carla", "dan", "eve", "finn"].slice(0, o.accounts ?? 6);
  const folder = (id: string) => path.join(base, "mail", id);
  const lines: string[] = [];
  for (const id of ids) {
    await fs.mkdir(path.join(folder(id), "Maildir", "cur"), { recursive: true });
    await fs.writeFile(path.join(folder(id), "Maildir", "cur", "1.eml"), `From: ${id}\n\nhello ${id}\n`);
    await fs.writeFile(
      path.join(folder(id), "photo.bin"),
      Buffer.alloc(4096 + ids.indexOf(id), ids.indexOf(id)),
    );
    lines.push(JSON.stringify({ id, timezone: zone, path: folder(id) }));
  }
  const accountsFile = path.join(base, "accounts.jsonl");
  await fs.writeFile(accountsFile, `${lines.join("\n")}\n`);
  const restores = path.join(base, "restores");
  await fs.mkdir(restores, { recursive: true });
  const config = path.join(base, "config.json");
  await fs.writeFile(
    config,
    JSON.stringify({
      jobs: [],
      console: { restoreRoots: [restores] },
      fleets: [
        {
          name: "mail",
          accounts: { file: accountsFile },
          window: "01:00-05:00",
          rpo: "24h",
          drillSample: 0.5,
          state: path.join(base, "state", "fleet-mail.db"),
        },
      ],
      ...o.extraConfig,
    }),
  );
  const env = baseEnv({
    LIFEBOAT_REPOSITORY: path.join(base, "repo"),
    LIFEBOAT_PASSWORD: "pw",
    LIFEBOAT_CONFIG: config,
    XDG_STATE_HOME: path.join(base, "state"),
  });
  await runOk(["init"], { env });
  const night1 = new Date(now.getTime() - 86_400_000);
  await runOk(["fleet", "run", "--now", night1.toISOString()], { env });
  const firstAnn = await fs.readFile(path.join(folder("ann"), "Maildir", "cur", "1.eml"), "utf8");
  const secondAnn = "From: ann\n\nhello again, ann: the second night's mail\n";
  await fs.writeFile(path.join(folder("ann"), "Maildir", "cur", "1.eml"), secondAnn);
  await fs.writeFile(path.join(folder("ann"), "Maildir", "cur", "2.eml"), "From: bob\n\nnew mail\n");
  await runOk(["fleet", "run", "--now", now.toISOString(), "--no-drills"], { env });
  return {
    env,
    config,
    folder,
    ids,
    between: new Date(night1.getTime() + 3_600_000),
    firstAnn,
    secondAnn,
    restores,
  };
}
