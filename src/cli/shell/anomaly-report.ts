import { ExitCode } from "../../core/errors.js";
import type { BackupResult } from "../../snapshot/commit.js";
import type { CliContext } from "./context.js";

/**
 * After a backup: a snapshot flagged as anomalous is kept, but the operator must hear about
 * it — a warning per reason, what to do, exit code 4, and a notification.
 */
export async function reportAnomalies(c: CliContext, r: BackupResult): Promise<void> {
  const reasons = r.snapshot.anomalies ?? [];
  if (reasons.length === 0) return;
  const id = r.snapshotId.slice(0, 8);
  c.out.emit({ message_type: "anomaly", snapshot_id: r.snapshotId, reasons });
  for (const why of reasons) c.out.warn(`snapshot ${id} looks anomalous: ${why}`);
  const parent = r.snapshot.parent?.slice(0, 8);
  c.out.warn(
    `if this change was intended, run \`lifeboat ack ${id}\`; if not, restore${parent ? ` snapshot ${parent}` : " the snapshot before it"} — it is kept until then`,
  );
  process.exitCode = ExitCode.anomaly;
  await c.notify({
    event: "anomaly",
    ok: false,
    command: "backup",
    message: `snapshot ${id} of ${r.snapshot.paths.join(" ")} looks anomalous: ${reasons.join("; ")}`,
    snapshot: r.snapshotId,
    reasons,
    ...(r.snapshot.parent ? { rollback: `lifeboat restore ${parent} --target /` } : {}),
  });
}
