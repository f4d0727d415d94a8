import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { type ErrorCode, ExitCode, type ExitCodeValue, errnoCode, LifeboatError } from "../core/errors.js";

/**
 * A database source that cannot be read means no snapshot at all: exit 1, not the exit 3 that
 * SOURCE_UNREADABLE gives files ("saved, but some files unreadable").
 */
export class SourceError extends LifeboatError {
  override get exitCode(): ExitCodeValue {
    return this.code === "SOURCE_UNREADABLE" ? ExitCode.failure : super.exitCode;
  }
}

/** A LifeboatError for database sources and targets (see SourceError). */
export function dbError(code: ErrorCode, message: string, hint?: string, cause?: unknown): LifeboatError {
  return new SourceError(code, message, hint, cause);
}

/** The error for a restore into a new database that failed: says whether it was dropped. */
export function failedRestore(
  err: LifeboatError,
  newDb: string,
  dropped: boolean,
  hint: string | undefined,
  cause: unknown,
): LifeboatError {
  return dbError(
    err.code === "SOURCE_UNREADABLE" ? "STORAGE_ERROR" : err.code,
    `restore into database ${newDb} failed: ${err.message}; ${
      dropped
        ? `the incomplete database ${newDb} was dropped`
        : `the database ${newDb} is INCOMPLETE and could not be dropped: drop it before using that name`
    }`,
    hint,
    cause,
  );
}

/**
 * Dump and restore tools (pg_dump, mysqldump, pg_restore, mariadb) run as child processes whose
 * stdout is streamed into a snapshot, or whose stdin is fed from one. A tool that is missing,
 * exits non-zero, or dies on a signal is an error: a dump is never stored, and a restore never
 * reported as good, unless the tool said so with exit code 0.
 */
export interface ToolSpec {
  /** Program to run (a name looked up in PATH, or an absolute path). */
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** What to say when the program is not installed, e.g. "install the Debian package postgresql-client". */
  missingHint: string;
  /** Turns the tool's stderr (and exit code) into a LifeboatError with a one-line message. */
  classify: (stderr: string, code: number | null, signal: NodeJS.Signals | null) => LifeboatError;
}

/** Keeps the last `max` bytes of a stream (a tool's stderr can be long; the end says why). */
class Tail {
  private parts: Buffer[] = [];
  private size = 0;
  constructor(private readonly max = 64 * 1024) {}
  push(b: Buffer): void {
    this.parts.push(b);
    this.size += b.length;
    while (this.size > this.max && this.parts.length > 1) this.size -= this.parts.shift()!.length;
  }
  text(): string {
    return Buffer.concat(this.parts).toString("utf8");
  }
}

/** Environment for tools: messages in English (we match them), never an interactive prompt. */
export function toolEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: "C", LANG: "C", LC_MESSAGES: "C" };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function notInstalled(spec: ToolSpec): LifeboatError {
  return new LifeboatError(
    "NOT_FOUND",
    `${spec.command} is not installed (not found in PATH)`,
    spec.missingHint,
  );
}

interface Running {
  child: ChildProcess;
  stderr: Tail;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function start(spec: ToolSpec, stdin: "pipe" | "ignore"): Promise<Running> {
  const child = spawn(spec.command, spec.args, {
    env: spec.env ?? toolEnv(),
    stdio: [stdin, "pipe", "pipe"],
  });
  const stderr = new Tail();
  child.stderr!.on("data", (d: Buffer) => stderr.push(d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal }));
  });
  // A missing program is reported through 'error' (ENOENT) instead of 'spawn'.
  try {
    await once(child, "spawn");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") throw notInstalled(spec);
    throw dbError("SOURCE_UNREADABLE", `cannot run ${spec.command}: ${(e as Error).message}`);
  }
  // Keep later errors (e.g. EPIPE on stdin) from becoming uncaught exceptions; the exit code
  // decides success.
  child.on("error", () => {});
  return { child, stderr, exit };
}

/** The first meaningful line of a tool's stderr, for one-line error messages. */
export function firstLine(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const err = lines.find((l) => /error|fatal|failed|denied|refused|could not|unknown/i.test(l));
  return (err ?? lines[0] ?? "").slice(0, 500);
}

/**
 * Runs a dump tool and yields its stdout. The iterator ends normally only after the tool exited
 * with code 0; otherwise it throws the classified error. Stopping early kills the tool.
 */
export async function* dumpOutput(spec: ToolSpec): AsyncGenerator<Buffer> {
  const r = await start(spec, "ignore");
  let done = false;
  try {
    for await (const chunk of r.child.stdout! as AsyncIterable<Buffer>) yield chunk;
    const { code, signal } = await r.exit;
    done = true;
    if (code !== 0) throw spec.classify(r.stderr.text(), code, signal);
  } finally {
    if (!done && r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill("SIGTERM");
      await r.exit;
    }
  }
}

/** Runs a tool to completion, collecting stdout (for small queries). */
export async function runTool(spec: ToolSpec, input?: string): Promise<string> {
  const r = await start(spec, input === undefined ? "ignore" : "pipe");
  const out: Buffer[] = [];
  r.child.stdout!.on("data", (d: Buffer) => out.push(d));
  if (input !== undefined) {
    r.child.stdin!.on("error", () => {});
    r.child.stdin!.end(input);
  }
  const { code, signal } = await r.exit;
  if (code !== 0) throw spec.classify(r.stderr.text(), code, signal);
  return Buffer.concat(out).toString("utf8");
}

/**
 * Runs a restore tool with `input` on its stdin (with backpressure). Resolves when the tool
 * exited 0; throws the classified error otherwise (also when reading `input` fails, after
 * stopping the tool).
 */
export async function feedTool(spec: ToolSpec, input: AsyncIterable<Buffer>): Promise<string> {
  const r = await start(spec, "pipe");
  const out: Buffer[] = [];
  r.child.stdout!.on("data", (d: Buffer) => {
    if (out.length < 1000) out.push(d);
  });
  const stdin = r.child.stdin!;
  let exited = false;
  void r.exit.then(() => {
    exited = true;
  });
  let stdinBroken = false;
  let stoppedEarly = false;
  stdin.on("error", () => {
    stdinBroken = true;
  });
  try {
    for await (const piece of input) {
      if (exited || stdinBroken) {
        stoppedEarly = true; // the tool gave up; its exit code says why
        break;
      }
      if (!stdin.write(piece)) {
        await Promise.race([once(stdin, "drain"), r.exit, once(stdin, "close")]);
      }
    }
    stdin.end();
  } catch (e) {
    r.child.kill("SIGTERM");
    await r.exit;
    throw e;
  }
  const { code, signal } = await r.exit;
  if (code !== 0) throw spec.classify(r.stderr.text(), code, signal);
  if (stoppedEarly) {
    throw dbError(
      "STORAGE_ERROR",
      `${spec.command} exited before reading all of its input${r.stderr.text() ? `: ${firstLine(r.stderr.text())}` : ""}`,
    );
  }
  return Buffer.concat(out).toString("utf8");
}
