/**
 * The lifeboat CLI with the torture campaign's storage hook (docs/reliability.md): run as
 * `node dist/test/torture/hooked-cli.js ARGS...` instead of `dist/src/cli/main.js ARGS...`.
 * It wraps every backend the command opens (src/backend/open.ts `setOpenedBackendHook`) as the
 * environment says, then runs the real CLI unchanged:
 *
 * - `LIFEBOAT_TORTURE_KILL_AFTER_WRITES=N`: SIGKILL this process as soon as the Nth storage write
 *   (put or delete, counted over every repository the command opened, or only those whose URL
 *   contains `LIFEBOAT_TORTURE_KILL_URL`) has completed. The other writes in flight at that
 *   moment are cut wherever they are, as a real kill cuts them.
 * - `LIFEBOAT_TORTURE_FAULTS={"seed":..,"rules":[..]}`: a faultyBackend plan (src/backend/faulty.ts)
 *   for repositories whose URL contains `LIFEBOAT_TORTURE_FAULT_URL` (default: all);
 *   `LIFEBOAT_TORTURE_RETRIES=1` puts withRetries around it, as the sftp and rest backends have.
 * - `LIFEBOAT_TORTURE_COUNT_FILE=PATH`: at exit, the number of writes (and of puts per folder)
 *   as JSON, so a test knows how many deterministic kill points a command has.
 * - `LIFEBOAT_TORTURE_FAULT_LOG=PATH`: at exit, the faults injected, as JSON lines.
 */
import { writeFileSync } from "node:fs";
import type { Backend } from "../../src/backend/backend.js";
import { type FaultPlan, type FaultyBackend, faultyBackend } from "../../src/backend/faulty.js";
import { setOpenedBackendHook } from "../../src/backend/open.js";
import { withRetries } from "../../src/backend/retry.js";

const env = process.env;
const killAfter = env.LIFEBOAT_TORTURE_KILL_AFTER_WRITES ? Number(env.LIFEBOAT_TORTURE_KILL_AFTER_WRITES) : 0;
const killUrl = env.LIFEBOAT_TORTURE_KILL_URL ?? "";
const faultUrl = env.LIFEBOAT_TORTURE_FAULT_URL ?? "";
const plan = env.LIFEBOAT_TORTURE_FAULTS ? (JSON.parse(env.LIFEBOAT_TORTURE_FAULTS) as FaultPlan) : undefined;

let writes = 0;
const byFolder: Record<string, number> = {};
const faulty: FaultyBackend[] = [];

function wrote(name: string): void {
  writes++;
  const folder = name.split("/")[0] ?? "";
  byFolder[folder] = (byFolder[folder] ?? 0) + 1;
  if (killAfter > 0 && writes >= killAfter) process.kill(process.pid, "SIGKILL");
}

/** Counts completed puts, streamed objects and deletes (and kills at the chosen one). */
function counting(inner: Backend): Backend {
  return {
    ...inner,
    location: inner.location,
    capabilities: inner.capabilities,
    exists: () => inner.exists(),
    create: () => inner.create(),
    get: (n, o) => inner.get(n, o),
    stat: (n) => inner.stat(n),
    list: (p) => inner.list(p),
    close: () => inner.close(),
    async put(name, data, opts) {
      await inner.put(name, data, opts);
      wrote(name);
    },
    // A streamed pack (local storage) is written when it is committed, as a put is when done.
    openWriter: inner.openWriter
      ? async (folder) => {
          const w = await inner.openWriter!(folder);
          return {
            write: (d) => w.write(d),
            abort: () => w.abort(),
            async commit(name) {
              await w.commit(name);
              wrote(name);
            },
          };
        }
      : undefined,
    async delete(name) {
      await inner.delete(name);
      wrote(name);
    },
  };
}

setOpenedBackendHook((backend, url) => {
  let b = backend;
  if (plan && url.includes(faultUrl)) {
    const f = faultyBackend(b, plan);
    faulty.push(f);
    b = env.LIFEBOAT_TORTURE_RETRIES === "1" ? withRetries(f, { delays: [20, 50, 100, 200] }) : f;
  }
  return url.includes(killUrl) ? counting(b) : b;
});

process.on("exit", () => {
  if (env.LIFEBOAT_TORTURE_COUNT_FILE)
    writeFileSync(env.LIFEBOAT_TORTURE_COUNT_FILE, JSON.stringify({ writes, byFolder }));
  if (env.LIFEBOAT_TORTURE_FAULT_LOG)
    writeFileSync(
      env.LIFEBOAT_TORTURE_FAULT_LOG,
      faulty
        .flatMap((f) => f.log)
        .map((r) => `${JSON.stringify(r)}\n`)
        .join(""),
    );
});

await import("../../src/cli/main.js");
