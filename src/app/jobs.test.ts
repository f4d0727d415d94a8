import assert from "node:assert/strict";
import { test } from "node:test";
import { processIdentity } from "../core/process-identity.js";
import { isRunningElsewhere } from "./jobs.js";

test("a job's running mark holds only while the process that set it runs", () => {
  const parent = processIdentity(process.ppid);
  assert.ok(parent, "this test needs /proc");
  const since = new Date().toISOString();
  assert.equal(
    isRunningElsewhere({ runningSince: since, runningPid: process.ppid, runningProc: parent }),
    true,
  );
  // The pid is alive but belongs to another process than the one that marked the job (reused).
  const reused = `${parent.split(":")[0]}:1`;
  assert.equal(
    isRunningElsewhere({ runningSince: since, runningPid: process.ppid, runningProc: reused }),
    false,
  );
  // Marks written before the identity was recorded: the pid alone decides.
  assert.equal(isRunningElsewhere({ runningSince: since, runningPid: process.ppid }), true);
  assert.equal(isRunningElsewhere({ runningSince: since, runningPid: process.pid }), false);
});
