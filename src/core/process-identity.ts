import { readFileSync } from "node:fs";

/**
 * Who a process is, beyond its pid: on Linux the boot id and the process's start time (clock
 * ticks since boot, field 22 of /proc/PID/stat). Pids are reused — on a busy host with the
 * default pid_max of 32768 within minutes — so a session left by a process killed with -9 must
 * not look alive because an unrelated process got its pid. Undefined where /proc is missing.
 */
export function processIdentity(pid: number): string | undefined {
  try {
    const boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may hold spaces or ")": split after the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const start = fields[19]; // field 22 overall; fields[0] is field 3
    return start ? `${boot}:${start}` : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the process that recorded (`pid`, `proc`) may still run on this host: its pid exists
 * (or belongs to another user) and, when its identity was recorded, still has that identity.
 */
export function mayStillRun(pid: number, proc: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  if (proc === undefined) return true;
  const now = processIdentity(pid);
  return now === undefined || now === proc;
}
