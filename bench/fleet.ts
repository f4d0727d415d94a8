/**
 * `npm run bench:fleet [-- --folders N --rows N] [--no-write]`: a fleet of 10,000 small real
 * accounts on this machine — 7,000 folder accounts (a maildir-like folder each) and 3,000 rows
 * accounts (contacts in one shared PostgreSQL table, started here on 127.0.0.1) — backed up
 * through the built CLI in one simulated night (`fleet run --now`), checked again the next night
 * (nothing changed: change detection only), looked at (`fleet status`, `snapshots --account`),
 * then everything deleted and brought back by a whole-service restore (`fleet restore --all`):
 * the RTO. Figures go into docs/fleet.md between its fleet-bench markers.
 */
import { spawnSync } from "node:child_process";
import { existsSync, promises as fs, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { startPostgres } from "../test/support/db-servers.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, "..", "..");
const cli = path.join(projectRoot, "dist", "src", "cli", "main.js");
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const FOLDERS = arg("--folders", 7000);
const ROWS = arg("--rows", 3000);
const write = !process.argv.includes("--no-write");

interface Measure {
  wall: number;
  cpu: number;
  maxRssMiB: number;
  stdout: string;
}

function measure(env: Record<string, string>, args: string[]): Measure {
  const out = path.join(os.tmpdir(), `lifeboat-fleet-bench-${process.pid}`);
  const t0 = Date.now();
  const r = spawnSync("/usr/bin/time", ["-f", "%e %U %S %M", "-o", out, process.execPath, cli, ...args], {
    env,
    encoding: "utf8",
    maxBuffer: 1 << 30,
  });
  const wall = (Date.now() - t0) / 1000;
  if (r.status !== 0)
    throw new Error(`lifeboat ${args.join(" ")} failed (${r.status}):\n${r.stderr.slice(-2000)}`);
  const [, u, s, m] = readFileSync(out, "utf8").trim().split("\n").at(-1)!.split(" ").map(Number);
  return { wall, cpu: u! + s!, maxRssMiB: m! / 1024, stdout: r.stdout };
}

async function dirBytes(d: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(d, { withFileTypes: true, recursive: true }))
    if (e.isFile())
      n += (await fs.stat(path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))).size;
  return n;
}

async function main(): Promise<void> {
  if (!existsSync("/usr/bin/time")) {
    spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
    spawnSync("apt-get", ["install", "-y", "-qq", "time"], { stdio: "inherit" });
  }
  const base = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-fleet-bench-"));
  const server = await startPostgres();
  try {
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      LIFEBOAT_REPOSITORY: path.join(base, "repo"),
      LIFEBOAT_PASSWORD: "bench",
      XDG_STATE_HOME: path.join(base, "state"),
    };
    for (const k of Object.keys(env)) if (k.startsWith("LIFEBOAT_CONFIG")) delete env[k];
    console.error(`creating ${FOLDERS} folder accounts and ${ROWS} rows accounts in ${base}`);
    const lines: string[] = [];
    for (let i = 0; i < FOLDERS; i++) {
      const id = `m${i}`;
      const dir = path.join(base, "srv", id);
      await fs.mkdir(path.join(dir, "cur"), { recursive: true });
      for (let j = 0; j < 3; j++)
        await fs.writeFile(
          path.join(dir, "cur", `${j}.eml`),
          `From: ${id}@example.org\nSubject: ${j}\n\n${"lorem ipsum ".repeat(40 + ((i * 7 + j) % 80))}${i}\n`,
        );
      await fs.writeFile(path.join(dir, "signature.txt"), "-- \nsent by sidekick\n");
      lines.push(JSON.stringify({ id, timezone: "Europe/Berlin", path: dir }));
    }
    await fs.writeFile(path.join(base, "mail.jsonl"), `${lines.join("\n")}\n`);
    const admin = new pg.Client({ connectionString: server.url("postgres") });
    await admin.connect();
    await admin.query("CREATE DATABASE sidekick");
    await admin.end();
    const c = new pg.Client({ connectionString: server.url("sidekick") });
    await c.connect();
    await c.query(`CREATE TABLE users (id text PRIMARY KEY, tz text NOT NULL);
      CREATE TABLE contacts (id serial PRIMARY KEY, owner text NOT NULL, name text, phone text, note text);
      CREATE INDEX ON contacts (owner)`);
    await c.query(
      "INSERT INTO users SELECT 'c' || n, 'Europe/Berlin' FROM generate_series(0, $1::int - 1) n",
      [ROWS],
    );
    await c.query(`INSERT INTO contacts (owner, name, phone, note)
      SELECT u.id, 'contact ' || k, '+49 30 ' || k, repeat('n', 50 + k) FROM users u, generate_series(1, 5) k`);
    await c.end();
    const cfg = path.join(base, "fleet.json");
    writeFileSync(
      cfg,
      JSON.stringify({
        fleets: [
          {
            name: "mail",
            accounts: { file: path.join(base, "mail.jsonl") },
            concurrency: 4,
            drillSample: 0.01,
          },
          {
            name: "contacts",
            kind: "rows",
            accounts: { sql: server.url("sidekick"), query: "SELECT id, tz AS timezone FROM users" },
            rows: { url: server.url("sidekick"), tables: [{ table: "contacts", owner: "owner" }] },
            concurrency: 4,
            drillSample: 0.01,
          },
        ],
      }),
    );
    spawnSync(process.execPath, [cli, "init"], { env: { ...env, LIFEBOAT_KDF_N: "1024" } });
    const L = (args: string[]) => measure(env, ["--config", cfg, ...args]);
    const night1 = "2026-01-14T02:30:00Z";
    const night2 = "2026-01-15T02:30:00Z";
    console.error("night 1: backing up every account");
    const mail1 = L(["fleet", "run", "--name", "mail", "--now", night1]);
    const rows1 = L(["fleet", "run", "--name", "contacts", "--now", night1]);
    console.error(`  mail ${mail1.wall.toFixed(1)}s, contacts ${rows1.wall.toFixed(1)}s`);
    const repoBytes = await dirBytes(path.join(base, "repo"));
    const srcBytes = await dirBytes(path.join(base, "srv"));
    console.error("night 2: nothing changed");
    const mail2 = L(["fleet", "run", "--name", "mail", "--now", night2, "--no-drills"]);
    const rows2 = L(["fleet", "run", "--name", "contacts", "--now", night2, "--no-drills"]);
    const status = L(["--json", "fleet", "status", "--name", "mail", "--now", night2]);
    const one = L(["--json", "snapshots", "--account", `m${Math.floor(FOLDERS / 2)}`]);
    const all = L(["--json", "snapshots"]);
    console.error("deleting everything, then fleet restore --all");
    await fs.rm(path.join(base, "srv"), { recursive: true });
    const c2 = new pg.Client({ connectionString: server.url("sidekick") });
    await c2.connect();
    await c2.query("DELETE FROM contacts");
    await c2.end();
    const rMail = L(["--json", "fleet", "restore", "--all", "--name", "mail", "--parallel", "8"]);
    const rRows = L(["--json", "fleet", "restore", "--all", "--name", "contacts", "--parallel", "8"]);
    const restoredOk = [rMail, rRows].map(
      (m) =>
        JSON.parse(
          m.stdout
            .trim()
            .split("\n")
            .find((l) => l.includes("fleet_restore_summary"))!,
        ) as { restored: number; failed: number },
    );
    const fmt = (m: Measure) =>
      `${m.wall.toFixed(1)} s (CPU ${m.cpu.toFixed(1)} s, ${m.maxRssMiB.toFixed(0)} MiB)`;
    const perAcc = (m: Measure, n: number) => `${((m.wall / n) * 1000).toFixed(1)} ms`;
    const cpu = os.cpus()[0]?.model ?? "unknown CPU";
    const table = [
      `Measured by \`npm run bench:fleet\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, local repository on the same disk, PostgreSQL on 127.0.0.1, one host, concurrency 4 per fleet. ${FOLDERS.toLocaleString("en")} folder accounts (4 files, ${(srcBytes / FOLDERS / 1024).toFixed(1)} KiB each) and ${ROWS.toLocaleString("en")} rows accounts (5 contacts each in one shared table). Times are wall clock through the CLI (\`/usr/bin/time\`), with the machine shared.`,
      "",
      "| step | result | per account |",
      "|---|---:|---:|",
      `| night 1: back up ${FOLDERS.toLocaleString("en")} folder accounts | ${fmt(mail1)} | ${perAcc(mail1, FOLDERS)} |`,
      `| night 1: back up ${ROWS.toLocaleString("en")} rows accounts | ${fmt(rows1)} | ${perAcc(rows1, ROWS)} |`,
      `| night 2: nothing changed, folder accounts checked (mtime tree) | ${fmt(mail2)} | ${perAcc(mail2, FOLDERS)} |`,
      `| night 2: nothing changed, rows accounts checked (server-side digest) | ${fmt(rows2)} | ${perAcc(rows2, ROWS)} |`,
      `| \`fleet status\` (${FOLDERS.toLocaleString("en")} accounts, SQLite state) | ${fmt(status)} | |`,
      `| \`snapshots --account ID\` (catalogue: one account's folder) | ${fmt(one)} | |`,
      `| \`snapshots\` (every snapshot listed and read, for comparison) | ${fmt(all)} | |`,
      `| whole-service restore, ${FOLDERS.toLocaleString("en")} folder accounts (\`fleet restore --all --parallel 8\`) | ${fmt(rMail)}; ${restoredOk[0]!.restored} restored, ${restoredOk[0]!.failed} failed | ${perAcc(rMail, FOLDERS)} |`,
      `| whole-service restore, ${ROWS.toLocaleString("en")} rows accounts into the shared table | ${fmt(rRows)}; ${restoredOk[1]!.restored} restored, ${restoredOk[1]!.failed} failed | ${perAcc(rRows, ROWS)} |`,
      `| **RTO, all ${(FOLDERS + ROWS).toLocaleString("en")} accounts** | **${(rMail.wall + rRows.wall).toFixed(1)} s** | |`,
      `| repository size after night 1 (source: ${(srcBytes / 2 ** 20).toFixed(1)} MiB of folders + rows) | ${(repoBytes / 2 ** 20).toFixed(1)} MiB | ${(repoBytes / (FOLDERS + ROWS) / 1024).toFixed(1)} KiB |`,
    ].join("\n");
    console.log(table);
    if (write) {
      const doc = path.join(projectRoot, "docs", "fleet.md");
      const md = readFileSync(doc, "utf8");
      const begin = "<!-- fleet-bench:begin -->";
      const end = "<!-- fleet-bench:end -->";
      const a = md.indexOf(begin);
      const b = md.indexOf(end);
      if (a < 0 || b < 0) throw new Error("docs/fleet.md has no fleet-bench markers");
      writeFileSync(doc, `${md.slice(0, a + begin.length)}\n${table}\n${md.slice(b)}`);
      console.error("written into docs/fleet.md");
    }
  } finally {
    await server.stop();
    await fs.rm(base, { recursive: true, force: true });
  }
}

await main();
