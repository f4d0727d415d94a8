/**
 * A fleet in real time: `lifeboat daemon` runs the config file's fleet (no jobs) and backs up
 * accounts whose window is open now; `fleet run --metrics` serves the status figures to
 * Prometheus. Both stop cleanly on SIGTERM.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { jsonLines, removeTempDir, repoEnv, run, show, startCli, tempDir, waitFor } from "../support/cli.js";
import { freePort } from "../support/servers.js";

let base: string;
let env: Record<string, string>;
let cfg: string;

/** A window around now (UTC) whose first half has passed: every account is due at once. */
function windowAroundNow(): string {
  const h = new Date().getUTCHours();
  const pad = (n: number) => String((n + 24) % 24).padStart(2, "0");
  return `${pad(h - 3)}:00-${pad(h + 2)}:00`;
}

before(async () => {
  base = await tempDir("lifeboat-fleet-daemon-");
  env = repoEnv(path.join(base, "repo"), "pw", { XDG_STATE_HOME: path.join(base, "state") });
  assert.equal((await run(["init"], { env })).code, 0);
  const lines = [];
  for (const id of ["ann", "bob", "cy"]) {
    const dir = path.join(base, "srv", id);
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, "note.txt"), `${id}\n`);
    lines.push(JSON.stringify({ id, timezone: "Etc/UTC", path: dir }));
  }
  await fs.writeFile(path.join(base, "a.jsonl"), `${lines.join("\n")}\n`);
  cfg = path.join(base, "config.json");
  await fs.writeFile(
    cfg,
    JSON.stringify({
      fleets: [{ name: "mini", accounts: { file: path.join(base, "a.jsonl") }, window: windowAroundNow() }],
    }),
  );
});

after(async () => {
  if (base) await removeTempDir(base);
});

test("lifeboat daemon runs the config's fleet: every account backed up in its open window", async () => {
  const d = startCli(["--config", cfg, "--json", "daemon", "--tick", "1s"], { env });
  const backedUp = async () => {
    const r = await run(["--json", "snapshots", "--host", "mini"], { env });
    return r.code === 0 && (jsonLines(r.stdout)[0] as unknown as unknown[]).length === 3;
  };
  const ok = await waitFor(backedUp, 60_000, 500);
  d.child.kill("SIGTERM");
  const out = await d.done;
  assert.ok(ok, show(out));
  assert.equal(out.code, 0, show(out));
  const events = jsonLines(out.stdout).filter((m) => m.message_type === "fleet_account");
  assert.deepEqual(events.map((e) => e.account).sort(), ["ann", "bob", "cy"]);
});

test("fleet run --metrics serves the status figures for Prometheus", async () => {
  const port = await freePort();
  const r = startCli(["--config", cfg, "fleet", "run", "--metrics", `127.0.0.1:${port}`, "--tick", "1"], {
    env,
  });
  let body = "";
  await waitFor(
    async () => {
      try {
        body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return body.includes("lifeboat_fleet_accounts");
      } catch {
        return false;
      }
    },
    30_000,
    200,
  );
  r.child.kill("SIGTERM");
  const out = await r.done;
  assert.equal(out.code, 0, show(out));
  assert.match(body, /lifeboat_fleet_accounts\{fleet="mini",status="protected"\} 3/);
  assert.match(body, /lifeboat_fleet_backlog\{fleet="mini",state="done"\} 3/);
  assert.match(body, /lifeboat_fleet_drilled_fraction_30d\{fleet="mini"\} /);
});
