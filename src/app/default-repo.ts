import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";

/** Where the default local repository and its generated password file live (XDG base dirs). */
export function defaultLocations(): { repo: string; passwordFile: string } {
  const home = os.homedir();
  const data = process.env.XDG_DATA_HOME || path.join(home, ".local", "share");
  const config = process.env.XDG_CONFIG_HOME || path.join(home, ".config");
  return {
    repo: path.join(data, "lifeboat", "repo"),
    passwordFile: path.join(config, "lifeboat", "password"),
  };
}

/**
 * Creates the password file for the default repository (mode 0600, never overwritten) and
 * returns the password. The file is written to a temporary name first so a crash cannot leave
 * an empty or partial password file behind.
 */
export async function createPasswordFile(file: string): Promise<string> {
  const password = randomBytes(32).toString("base64url");
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${randomBytes(4).toString("hex")}`;
  await fs.writeFile(tmp, `${password}\n`, { mode: 0o600, flag: "wx" });
  try {
    await fs.link(tmp, file); // fails if the file already exists: never replace a password
  } finally {
    await fs.rm(tmp, { force: true });
  }
  return password;
}
