/**
 * Guards through the CLI: a backup that looks like a wipe (files deleted, zeroed, turned
 * random) is saved but flagged, exits 4 and notifies; forget keeps the last good snapshots
 * until `ack`; `guard` around a destructive command pins both snapshots and prints a rollback
 * command that works.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import { baseEnv, describeTree, jsonLines, prng, run, tempDir } from "../support/cli.js";

let dir: string;
let server: http.Server;
let url: string;
const received: Record<string, unknown>[] = [];

before(async () => {
  dir = await tempDir("lifeboat-guard-");
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      received.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook?token=secret`;
});
after(async () => {
  await new Promise((resolve) => server.close(resolve));
  await fs.rm(dir, { recursive: true, force: true });
});

/** 20 compressible text files of ~20 KB each, like real documents (no long repeats). */
async function writeDocs(src: string): Promise<void> {
  await fs.mkdir(src, { recursive: true });
  const words = ["invoice", "customer", "amount", "due", "paid", "EUR", "order", "ship", "tax", "total"];
  for (let i = 0; i < 20; i++) {
    const r = prng(4000, 7 + i);
    let text = "";
    for (let k = 0; k < 4000; k++) text += `${words[r[k]! % 10]}${r[k]! % 3 === 0 ? ` ${r[k]}` : ""} `;
    await fs.writeFile(path.join(src, `doc${i}.txt`), text);
  }
}

async function setup(name: string): Promise<{ env: Record<string, string>; src: string }> {
  const env = baseEnv({ LIFEBOAT_REPOSITORY: path.join(dir, name), LIFEBOAT_PASSWORD: "guard" });
  const src = path.join(dir, `${name}-src`);
  await writeDocs(src);
  assert.equal((await run(["init"], { env })).code, 0);
  const b = await run(["backup", src], { env });
  assert.equal(b.code, 0, b.stderr);
  return { env, src };
}

type Snap = { id: string; flagged: boolean; anomalies: string[]; acknowledged: boolean };
async function snapshots(env: Record<string, string>): Promise<Snap[]> {
  const r = await run(["snapshots", "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test("ordinary changes are not flagged", async () => {
  const { env, src } = await setup("normal");
  await fs.appendFile(path.join(src, "doc1.txt"), "one more line\n");
  await fs.rm(path.join(src, "doc2.txt"));
  const r = await run(["backup", src], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await snapshots(env)).every((s) => !s.flagged));
});

test("deleting most files: saved, flagged with the reason, exit 4, webhook notified", async () => {
  const { env, src } = await setup("wipe");
  for (let i = 0; i < 15; i++) await fs.rm(path.join(src, `doc${i}.txt`));
  const before = received.length;
  const r = await run(["--notify-url", url, "backup", src, "--json"], { env });
  assert.equal(r.code, 4, r.stdout + r.stderr);
  assert.match(r.stderr, /75% of the files are gone \(15 of 20\)/);
  assert.match(r.stderr, /lifeboat ack /);
  const anomaly = jsonLines(r.stdout).find((l) => l.message_type === "anomaly");
  assert.ok(anomaly, "an anomaly line in --json output");
  const snaps = await snapshots(env);
  assert.equal(snaps.length, 2, "the flagged snapshot is kept");
  assert.equal(snaps[1]!.flagged, true);
  assert.equal(received.length, before + 1, "one notification");
  const n = received.at(-1)!;
  assert.equal(n.event, "anomaly");
  assert.equal(n.snapshot, snaps[1]!.id);
  assert.match(String(n.message), /files are gone/);
  const table = await run(["snapshots"], { env });
  assert.match(table.stdout, /FLAGGED/);
});

test("files overwritten with zeroes, and files turned random, are flagged", async () => {
  const zero = await setup("zeroed");
  for (let i = 0; i < 5; i++) await fs.writeFile(path.join(zero.src, `doc${i}.txt`), Buffer.alloc(20_000));
  const z = await run(["backup", zero.src], { env: zero.env });
  assert.equal(z.code, 4, z.stderr);
  assert.match(z.stderr, /only zeroes or one repeated byte \(5\)/);

  const enc = await setup("encrypted");
  for (let i = 0; i < 10; i++) await fs.writeFile(path.join(enc.src, `doc${i}.txt`), prng(20_000, 100 + i)); // "encrypted" in place
  const e = await run(["backup", enc.src], { env: enc.env });
  assert.equal(e.code, 4, e.stderr);
  assert.match(e.stderr, /now look random/);
});

test("forget keeps the last good snapshots before a flagged one until ack", async () => {
  const { env, src } = await setup("retention");
  // Two more good snapshots, then the wipe, then several snapshots of the wiped state.
  for (let k = 0; k < 2; k++) {
    await fs.appendFile(path.join(src, "doc0.txt"), `edit ${k}\n`);
    assert.equal((await run(["backup", src], { env })).code, 0);
  }
  for (let i = 0; i < 18; i++) await fs.rm(path.join(src, `doc${i}.txt`));
  assert.equal((await run(["backup", src], { env })).code, 4);
  for (let k = 0; k < 4; k++) {
    await fs.appendFile(path.join(src, "doc19.txt"), `after ${k}\n`);
    assert.equal((await run(["backup", src], { env })).code, 0);
  }
  const all = await snapshots(env);
  assert.equal(all.length, 8);
  const flagged = all.find((s) => s.flagged)!;
  const dry = await run(["forget", "--keep-last", "2", "--keep-before-anomaly", "2", "--dry-run", "--json"], {
    env,
  });
  assert.equal(dry.code, 0, dry.stderr);
  const groups = (
    jsonLines(dry.stdout).find((l) => l.action === "forget") as {
      groups: { keep: { id: string; reasons: string[] }[] }[];
    }
  ).groups;
  const keep = groups[0]!.keep;
  const reasons = new Map(keep.map((k) => [k.id, k.reasons.join(", ")]));
  assert.equal(keep.length, 5, [...reasons.values()].join(" | "));
  assert.match(reasons.get(flagged.id)!, /flagged as anomalous/);
  const idx = all.findIndex((s) => s.id === flagged.id);
  assert.match(reasons.get(all[idx - 1]!.id)!, /last good before flagged/);
  assert.match(reasons.get(all[idx - 2]!.id)!, /last good before flagged/);

  const ack = await run(["ack", flagged.id.slice(0, 8), "--note", "test"], { env });
  assert.equal(ack.code, 0, ack.stderr);
  assert.equal((await snapshots(env)).find((s) => s.id === flagged.id)!.acknowledged, true);
  const real = await run(["forget", "--keep-last", "2"], { env });
  assert.equal(real.code, 0, real.stderr);
  assert.equal((await snapshots(env)).length, 2, "after ack the policy alone decides");
});

test("guard around a destructive command: exit 4, both snapshots pinned, the rollback command works", async () => {
  const { env, src } = await setup("upgrade");
  const original = await describeTree(src);
  const r = await run(
    [
      "guard",
      "--source",
      src,
      "--json",
      "--",
      "sh",
      "-c",
      `rm -f ${src}/doc1*.txt ${src}/doc2*.txt ${src}/doc3.txt`,
    ],
    { env },
  );
  assert.equal(r.code, 4, r.stdout + r.stderr);
  const s = jsonLines(r.stdout).find((l) => l.action === "guard") as {
    ok: boolean;
    rollback: string;
    before: string;
  };
  assert.equal(s.ok, false);
  assert.match(s.rollback, /^lifeboat (-r \S+ )?restore [0-9a-f]{8} --target \/$/);
  // Pinned: a policy that keeps only the newest snapshot keeps both guard snapshots.
  const f = await run(["forget", "--keep-last", "1", "--keep-before-anomaly", "0", "--json"], { env });
  assert.equal(f.code, 0, f.stderr);
  assert.equal((await snapshots(env)).length, 3 - 1, "the plain first snapshot goes, the two pinned stay");
  // Roll back as printed.
  const args = s.rollback.split(" ").slice(1);
  const back = await run(args, { env });
  assert.equal(back.code, 0, back.stderr);
  assert.deepEqual(
    (await describeTree(src)).filter((l) => l.startsWith("F ")),
    original.filter((l) => l.startsWith("F ")),
  );
});

test("guard: a failing command exits with its code; a harmless one passes", async () => {
  const { env, src } = await setup("failing");
  const bad = await run(["guard", "--source", src, "--", "sh", "-c", "exit 7"], { env });
  assert.equal(bad.code, 7, bad.stderr);
  assert.match(bad.stdout, /guard: FAILED — the command exited with 7/);
  const good = await run(["guard", "--source", src, "--", "sh", "-c", `echo hi >> ${src}/doc0.txt`], { env });
  assert.equal(good.code, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /guard: OK/);
});
