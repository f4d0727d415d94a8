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
  /**
   * IMAP: a command printing the account's OAuth2 access token (its `$1` and `LIFEBOAT_ACCOUNT`
   * the account id, `$2` and `LIFEBOAT_ACCOUNT_USER` its login name); the login is then
   * AUTHENTICATE OAUTHBEARER or XOAUTH2, never a password. The token is never stored.
   */
  oauth2TokenCommand?: string | undefined;
}

/** `{id}` in a template replaced by the account id. */
export const withId = (template: string, id: string) => template.split("{id}").join(id);

/** The first output line of a per-account command (`what`: the fleet setting it comes from). */
async function commandLine(
  what: "passwordCommand" | "oauth2TokenCommand",
  command: string,
  id: string,
  user?: string,
): Promise<string> {
  const secret = what === "passwordCommand" ? "password" : "OAuth2 access token";
  let out: string;
  try {
    out = (
      await run("/bin/sh", ["-c", command, `lifeboat-${what}`, id, ...(user !== undefined ? [user] : [])], {
        maxBuffer: 1 << 20,
        timeout: 60_000,
        env: {
          ...process.env,
          LIFEBOAT_ACCOUNT: id,
          ...(user !== undefined ? { LIFEBOAT_ACCOUNT_USER: user } : {}),
        },
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
      `${what} for account ${id} failed (${why})${said ? `: ${said.trim().slice(0, 200)}` : ""}`,
      `run the fleet's ${what} by hand with the account id as its argument to see why`,
    );
  }
  const line = out.split(/\r?\n/)[0] ?? "";
  if (line) return line;
  throw new LifeboatError(
    "NO_PASSWORD",
    `${what} for account ${id} printed nothing`,
    `it must print the account's ${secret} on its first line`,
  );
}

/** An IMAP account's OAuth2 access token, fresh from the fleet's `oauth2TokenCommand`. */
export function accountToken(c: AccountCredentials, id: string, user: string): Promise<string> {
  return commandLine("oauth2TokenCommand", c.oauth2TokenCommand!, id, user);
}

export async function accountPassword(c: AccountCredentials, id: string): Promise<string> {
  if (c.passwordCommand) return commandLine("passwordCommand", c.passwordCommand, id);
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
