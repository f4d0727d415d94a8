import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import { promisify } from "node:util";
import { LifeboatError } from "../../core/errors.js";

const run = promisify(execFile);

/**
 * Where a mail or DAV account's password comes from: a command run per account (the account id
 * is its `$1` and `LIFEBOAT_ACCOUNT`), or a file per account (`{id}` in the path is the account
 * id). The password is used for the login alone: it is never written into a snapshot, the
 * fleet's state or a log line.
 */
export interface AccountCredentials {
  passwordCommand?: string | undefined;
  passwordFile?: string | undefined;
}

/** `{id}` in a template replaced by the account id. */
export const withId = (template: string, id: string) => template.split("{id}").join(id);

export async function accountPassword(c: AccountCredentials, id: string): Promise<string> {
  if (c.passwordCommand) {
    let out: string;
    try {
      out = (
        await run("/bin/sh", ["-c", c.passwordCommand, "lifeboat-password", id], {
          maxBuffer: 1 << 20,
          timeout: 60_000,
          env: { ...process.env, LIFEBOAT_ACCOUNT: id },
        })
      ).stdout;
    } catch (e) {
      const err = e as { code?: number | string; killed?: boolean; stderr?: string };
      const why = err.killed
        ? "it did not finish within 60 s"
        : typeof err.code === "number"
          ? `exit status ${err.code}`
          : String(err.code ?? (e as Error).message);
      const said = (err.stderr ?? "").split("\n").find((l) => l.trim());
      throw new LifeboatError(
        "NO_PASSWORD",
        `passwordCommand for account ${id} failed (${why})${said ? `: ${said.trim().slice(0, 200)}` : ""}`,
        "run the fleet's passwordCommand by hand with the account id as its argument to see why",
      );
    }
    const pw = out.split(/\r?\n/)[0] ?? "";
    if (pw) return pw;
    throw new LifeboatError(
      "NO_PASSWORD",
      `passwordCommand for account ${id} printed nothing`,
      "it must print the account's password on its first line",
    );
  }
  if (c.passwordFile) {
    const file = withId(c.passwordFile, id);
    let text: string;
    try {
      text = await fs.readFile(file, "utf8");
    } catch (e) {
      throw new LifeboatError(
        "NO_PASSWORD",
        `password file ${file} of account ${id} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        'check the fleet\'s passwordFile ({id} stands for the account id, e.g. "/etc/lifeboat/mail/{id}")',
      );
    }
    const pw = text.split(/\r?\n/)[0] ?? "";
    if (pw) return pw;
    throw new LifeboatError("NO_PASSWORD", `password file ${file} of account ${id} is empty`);
  }
  throw new LifeboatError(
    "NO_PASSWORD",
    `no password source for account ${id}`,
    'give the fleet\'s server a "passwordCommand" or a "passwordFile"',
  );
}
