import { spawn } from "node:child_process";
import type { Repository } from "../../repo/repository.js";
import { type BackupResult, backup } from "../backup/backup.js";
import { acknowledge } from "./acks.js";
import type { AnomalyThresholds } from "./anomaly.js";

export interface GuardOptions {
  /** Files and folders the command may change. */
  sources: string[];
  command: string[];
  tags?: string[];
  anomaly?: AnomalyThresholds;
  onPhase?: (phase: "before" | "command" | "after") => void;
}

export interface GuardResult {
  before: BackupResult;
  after: BackupResult;
  /** The command's exit code (null when it was killed by a signal). */
  exitCode: number | null;
  signal: string | null;
  ok: boolean;
  reasons: string[];
}

/**
 * An upgrade with a safety net: snapshot the sources, run the command, snapshot again and
 * compare the two. A failed command or an anomalous result pins both snapshots (kept by every
 * retention policy until acknowledged).
 */
export async function guard(repo: Repository, options: GuardOptions): Promise<GuardResult> {
  const tags = options.tags ?? [];
  options.onPhase?.("before");
  const before = await backup(repo, options.sources, { tags: [...tags, "guard-before"], anomaly: false });
  options.onPhase?.("command");
  const { code, signal } = await runCommand(options.command);
  options.onPhase?.("after");
  const after = await backup(repo, options.sources, {
    tags: [...tags, "guard-after"],
    parent: before.snapshotId,
    ...(options.anomaly ? { anomaly: options.anomaly } : {}),
  });
  const reasons: string[] = [];
  if (code !== 0)
    reasons.push(signal ? `the command was killed by ${signal}` : `the command exited with ${code}`);
  reasons.push(...(after.snapshot.anomalies ?? []));
  if (before.errors.length > 0)
    reasons.push(`${before.errors.length} file(s) could not be read before the command`);
  const ok = reasons.length === 0;
  if (!ok) {
    const note = `guard: ${reasons.join("; ")}`;
    await acknowledge(repo, before.snapshotId, note, "pin");
    await acknowledge(repo, after.snapshotId, note, "pin");
  }
  return { before, after, exitCode: code, signal, ok, reasons };
}

function runCommand(argv: string[]): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: "inherit" });
    child.on("error", () => resolve({ code: 127, signal: null }));
    child.on("close", (code, signal) => resolve({ code, signal }));
  });
}
