import { promises as fs } from "node:fs";
import path from "node:path";
import type { AuditEntry } from "./api-types.js";
import { consoleStateDir } from "./users.js";

export type { AuditEntry } from "./api-types.js";

/**
 * The audit log: one JSON line per restoring or destructive action (restores, downloads, runs,
 * drills, acknowledgements, retention, cancellations, user changes) and per sign-in, appended
 * to `$XDG_STATE_HOME/lifeboat/console/audit.log` (mode 0600) before the action starts and again
 * with its outcome.
 */
export class AuditLog {
  private chain: Promise<void> = Promise.resolve();

  constructor(readonly file: string = path.join(consoleStateDir(), "audit.log")) {}

  /** Appends one entry; entries are written in the order they were logged. */
  write(entry: Omit<AuditEntry, "time">): Promise<void> {
    const line = `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`;
    this.chain = this.chain.then(async () => {
      await fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      await fs.appendFile(this.file, line, { mode: 0o600 });
    });
    return this.chain;
  }

  /** The newest entries, newest first. */
  async recent(limit: number): Promise<AuditEntry[]> {
    await this.chain;
    let text: string;
    try {
      text = await fs.readFile(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
    const lines = text.split("\n").filter((l) => l.trim() !== "");
    return lines
      .slice(-limit)
      .reverse()
      .map((l) => JSON.parse(l) as AuditEntry);
  }
}
