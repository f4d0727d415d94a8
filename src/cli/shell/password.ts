import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import { promisify } from "node:util";
import { LifeboatError } from "../../core/errors.js";
import { promptHidden } from "./prompt.js";

const run = promisify(execFile);

export interface PasswordSources {
  passwordFile?: string | undefined;
  passwordCommand?: string | undefined;
  /** Password file to fall back on (the default repository's generated one). */
  fallbackFile?: string | undefined;
}

async function fromFile(file: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (e) {
    throw new LifeboatError(
      "NO_PASSWORD",
      `cannot read the password file ${file} (${what}): ${(e as Error).message}`,
      "check the path and its permissions",
    );
  }
  const pw = text.replace(/\r?\n$/, "");
  if (pw === "")
    throw new LifeboatError(
      "NO_PASSWORD",
      `the password file ${file} is empty`,
      "write the password into it",
    );
  return pw;
}

async function fromCommand(cmd: string): Promise<string> {
  try {
    const { stdout } = await run("/bin/sh", ["-c", cmd], { maxBuffer: 1024 * 1024 });
    const pw = stdout.replace(/\r?\n$/, "");
    if (pw === "") throw new Error("it printed nothing");
    return pw;
  } catch (e) {
    throw new LifeboatError(
      "NO_PASSWORD",
      `--password-command failed: ${(e as Error).message.split("\n")[0]}`,
      "run the command by hand to see why",
    );
  }
}

/**
 * Finds the repository password, first match wins: --password-command, --password-file,
 * LIFEBOAT_PASSWORD_COMMAND, LIFEBOAT_PASSWORD, LIFEBOAT_PASSWORD_FILE, the default repository's
 * password file, then a prompt when stdin is a terminal.
 */
export async function resolvePassword(
  src: PasswordSources,
  prompt = "enter password for repository: ",
): Promise<string> {
  if (src.passwordCommand) return fromCommand(src.passwordCommand);
  if (src.passwordFile) return fromFile(src.passwordFile, "--password-file");
  const env = process.env;
  if (env.LIFEBOAT_PASSWORD_COMMAND) return fromCommand(env.LIFEBOAT_PASSWORD_COMMAND);
  if (env.LIFEBOAT_PASSWORD) return env.LIFEBOAT_PASSWORD;
  if (env.LIFEBOAT_PASSWORD_FILE) return fromFile(env.LIFEBOAT_PASSWORD_FILE, "LIFEBOAT_PASSWORD_FILE");
  if (src.fallbackFile) {
    const ok = await fs.stat(src.fallbackFile).then(
      () => true,
      () => false,
    );
    if (ok) return fromFile(src.fallbackFile, "the default repository's password file");
  }
  if (process.stdin.isTTY) {
    const pw = await promptHidden(prompt);
    if (pw) return pw;
  }
  throw new LifeboatError(
    "NO_PASSWORD",
    "no repository password given",
    "use --password-file FILE, --password-command CMD, LIFEBOAT_PASSWORD or LIFEBOAT_PASSWORD_FILE",
  );
}

/**
 * A new password: --new-password-file, LIFEBOAT_NEW_PASSWORD, or asked twice on a terminal.
 * `init` passes `fallback` so the usual password options name the first password too; `key add`
 * and `key passwd` pass none, so the current password is never silently reused as the new one.
 */
export async function resolveNewPassword(
  newPasswordFile: string | undefined,
  fallback?: PasswordSources,
): Promise<string> {
  if (newPasswordFile) return fromFile(newPasswordFile, "--new-password-file");
  if (process.env.LIFEBOAT_NEW_PASSWORD) return process.env.LIFEBOAT_NEW_PASSWORD;
  const env = process.env;
  const hasFallback =
    fallback &&
    (fallback.passwordFile ||
      fallback.passwordCommand ||
      env.LIFEBOAT_PASSWORD ||
      env.LIFEBOAT_PASSWORD_FILE ||
      env.LIFEBOAT_PASSWORD_COMMAND);
  if (hasFallback) return resolvePassword(fallback);
  if (process.stdin.isTTY) {
    const a = await promptHidden("enter new password: ");
    const b = await promptHidden("enter the new password again: ");
    if (a !== b) throw new LifeboatError("USAGE", "the two passwords differ", "run the command again");
    if (!a) throw new LifeboatError("USAGE", "an empty password is not allowed");
    return a;
  }
  throw new LifeboatError(
    "NO_PASSWORD",
    "no new password given",
    fallback
      ? "use --password-file FILE, --password-command CMD, LIFEBOAT_PASSWORD or LIFEBOAT_PASSWORD_FILE"
      : "use --new-password-file FILE or LIFEBOAT_NEW_PASSWORD",
  );
}

/** The other repository's password (copy, repair packs): --from-password-file/-command, or
 * LIFEBOAT_FROM_PASSWORD, LIFEBOAT_FROM_PASSWORD_FILE, LIFEBOAT_FROM_PASSWORD_COMMAND. */
export async function fromRepoPassword(f: {
  fromPasswordFile?: string | undefined;
  fromPasswordCommand?: string | undefined;
}): Promise<string> {
  const env = process.env;
  if (!f.fromPasswordFile && !f.fromPasswordCommand && env.LIFEBOAT_FROM_PASSWORD)
    return env.LIFEBOAT_FROM_PASSWORD;
  const file = f.fromPasswordFile ?? env.LIFEBOAT_FROM_PASSWORD_FILE;
  const command = f.fromPasswordCommand ?? env.LIFEBOAT_FROM_PASSWORD_COMMAND;
  if (!file && !command)
    throw new LifeboatError(
      "NO_PASSWORD",
      "no password for the other repository (--from-repo)",
      "use --from-password-file, --from-password-command or LIFEBOAT_FROM_PASSWORD",
    );
  return resolvePassword(
    { passwordFile: file, passwordCommand: command },
    "enter password for the other repository: ",
  );
}
