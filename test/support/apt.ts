import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * Makes sure the Debian packages a test needs are installed (CI starts from a bare machine and
 * we are root there). `wanted` maps a file the package provides to the package name. Parallel
 * test files may call this at once: apt's own lock is waited for, not failed on.
 */
export function ensurePackages(wanted: Record<string, string>): void {
  const missing = [
    ...new Set(
      Object.entries(wanted)
        .filter(([file]) => !existsSync(file))
        .map(([, pkg]) => pkg),
    ),
  ];
  if (missing.length === 0) return;
  const apt = (args: string[]) =>
    execFileSync("apt-get", ["-o", "DPkg::Lock::Timeout=900", "-o", "Acquire::Retries=3", ...args], {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  try {
    apt(["install", "-y", "--no-install-recommends", ...missing]);
  } catch {
    apt(["update"]);
    apt(["install", "-y", "--no-install-recommends", ...missing]);
  }
}
