// No imports: the console's page reads these types too (src/app/console/api-types.ts).

/** One account of a whole-service restore (`fleet restore --all`). */
export interface AccountOutcome {
  account: string;
  ok: boolean;
  skipped?: boolean;
  snapshot?: string;
  kind?: string;
  seconds: number;
  files?: number;
  rows?: number;
  /** Mail/DAV accounts put back on their server: messages or items added. */
  items?: number;
  error?: string;
}

export interface RestoreAllResult {
  run: string;
  accounts: number;
  restored: number;
  skipped: number;
  failed: number;
  seconds: number;
  results: AccountOutcome[];
}
