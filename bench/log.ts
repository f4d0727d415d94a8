const start = performance.now();

/** Progress on stderr, each line with the time since the run began (to see where a run's time goes). */
export function log(line: string): void {
  const s = Math.floor((performance.now() - start) / 1000);
  const stamp = `${String(Math.floor(s / 3600))}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  process.stderr.write(`[${stamp}] ${line}\n`);
}
