/** What a running backup reports; totals arrive once the concurrent scan has finished. */
export interface BackupProgress {
  filesDone: number;
  bytesDone: number;
  totalFiles: number | undefined;
  totalBytes: number | undefined;
  elapsedMs: number;
  /** Bytes per second since the start. */
  rate: number;
  /** Seconds left, when totals are known and something was done. */
  etaSeconds: number | undefined;
  done: boolean;
}

/** Counts work and calls the listener at most every `intervalMs` (and once at the end). */
export class ProgressCounter {
  private filesDone = 0;
  private bytesDone = 0;
  private totalFiles: number | undefined;
  private totalBytes: number | undefined;
  private readonly started = Date.now();
  private last = 0;

  constructor(
    private readonly listener: ((p: BackupProgress) => void) | undefined,
    private readonly intervalMs = 250,
  ) {}

  setTotals(files: number, bytes: number): void {
    this.totalFiles = files;
    this.totalBytes = bytes;
  }

  addBytes(n: number): void {
    this.bytesDone += n;
    this.emit(false);
  }

  addFile(bytes = 0): void {
    this.filesDone++;
    this.bytesDone += bytes;
    this.emit(false);
  }

  finish(): void {
    this.emit(true);
  }

  snapshot(done: boolean): BackupProgress {
    const elapsedMs = Date.now() - this.started;
    const rate = elapsedMs > 0 ? (this.bytesDone * 1000) / elapsedMs : 0;
    let etaSeconds: number | undefined;
    if (this.totalBytes !== undefined && rate > 0) {
      etaSeconds = Math.max(0, (this.totalBytes - this.bytesDone) / rate);
    }
    return {
      filesDone: this.filesDone,
      bytesDone: this.bytesDone,
      totalFiles: this.totalFiles,
      totalBytes: this.totalBytes,
      elapsedMs,
      rate,
      etaSeconds,
      done,
    };
  }

  private emit(done: boolean): void {
    if (!this.listener) return;
    const now = Date.now();
    if (!done && now - this.last < this.intervalMs) return;
    this.last = now;
    this.listener(this.snapshot(done));
  }
}
