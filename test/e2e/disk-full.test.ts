/**
 * The repository's disk fills up during a backup: exit 15 with a clear message, and everything
 * saved before is still listed and restorable. Needs root to mount a small tmpfs.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { ExitCode } from "../../src/core/errors.js";
import {
  assertCleanError,
  assertJsonError,
  assertTreesEqual,
  findNamed,
  MiB,
  repoEnv,
  run,
  runCmd,
  runOk,
  show,
  useWorkspace,
  writeRandomBytes,
} from "../support/cli.js";

const FS_SIZE = "20m";
const BIG = 60 * MiB;

let mnt: string;
let mounted = false;
let mountError = "";

const ws = useWorkspace({
  setup: async () => {
    mnt = path.join(ws.base, "mnt");
    await fs.mkdir(mnt);
    if (process.getuid?.() !== 0) {
      mountError = "not running as root";
      return;
    }
    const m = await runCmd("mount", ["-t", "tmpfs", "-o", `size=${FS_SIZE}`, "tmpfs", mnt]);
    if (m.code === 0) mounted = true;
    else mountError = m.out.trim();
  },
  teardown: async () => {
    if (!mounted) return;
    const u = await runCmd("umount", [mnt]);
    if (u.code !== 0) await runCmd("umount", ["-l", mnt]);
  },
});

test("backup into a full repository disk: exit 15, earlier snapshots still restore", async (t) => {
  if (!mounted) return t.skip(`cannot mount a ${FS_SIZE} tmpfs for the repository (${mountError})`);
  const repo = path.join(mnt, "repo");
  const env = repoEnv(repo, "full");
  await runOk(["init"], { env });
  const small = path.join(ws.base, "small");
  await fs.mkdir(small);
  await writeRandomBytes(path.join(small, "one.bin"), MiB, "small");
  await fs.writeFile(path.join(small, "note.txt"), "saved before the disk filled up\n");
  await runOk(["backup", small], { env });

  const big = path.join(ws.base, "big");
  await fs.mkdir(big);
  for (let i = 0; i < 3; i++) await writeRandomBytes(path.join(big, `part${i}.bin`), BIG / 3, `full${i}`);

  const r = await run(["backup", big], { env, timeoutMs: 120_000 });
  assertCleanError(r, ExitCode.storageFull, /no space left on the repository storage/);
  assert.match(r.stderr, /hint: free space/);
  assert.doesNotMatch(r.stdout, /snapshot .* saved/, "no snapshot may be reported as saved");

  // --json: the same failure as one JSON line.
  assertJsonError(await run(["backup", "--json", big], { env }), ExitCode.storageFull, "STORAGE_FULL");

  // Everything from before still works.
  const snaps = await run(["snapshots", "--json"], { env });
  assert.equal(snaps.code, 0, show(snaps));
  const list = JSON.parse(snaps.stdout) as { paths: string[] }[];
  assert.equal(list.length, 1, "a failed backup must not leave a snapshot");
  assert.deepEqual(list[0]!.paths, [small]);
  assert.equal((await run(["snapshots"], { env })).code, 0);
  const out = path.join(ws.base, "out");
  const rr = await run(["restore", "latest", "--target", out, "--verify"], { env });
  assert.equal(rr.code, 0, show(rr));
  await assertTreesEqual(small, path.join(out, small));

  // Temporary files: a failed put removes its own; none should be left.
  const tmp = await findNamed(repo, ".tmp-");
  const df = await runCmd("df", ["-k", mnt]);
  t.diagnostic(`after ENOSPC: ${tmp.length} .tmp-* file(s) left; df: ${df.out.trim().split("\n").at(-1)}`);
  assert.deepEqual(tmp, [], "temporary files left behind in the repository");
});
