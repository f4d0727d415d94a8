import { Command, CommanderError, Option } from "commander";
import { applyConfigDefaults, loadConfig } from "../app/config.js";
import { ExitCode, isLifeboatError, LifeboatError } from "../core/errors.js";
import { VERSION } from "../version.js";
import { CliContext, type GlobalOptions } from "./shell/context.js";
import { flushOutput } from "./shell/output.js";

type Register = (program: Command, ctx: (cmd: Command) => CliContext) => void;

/**
 * Every command, in help order, loaded on demand: a command imports only its own modules
 * (loading all of them cost ~0.1 s at every start). Names are the words typed after `lifeboat`.
 */
const COMMANDS: [string[], () => Promise<Register>][] = [
  [["init"], async () => (await import("./commands/init.js")).registerInit],
  [["backup"], async () => (await import("./commands/backup.js")).registerBackup],
  [["snapshots"], async () => (await import("./commands/snapshots.js")).registerSnapshots],
  [["ls"], async () => (await import("./commands/ls.js")).registerLs],
  [["mount"], async () => (await import("./commands/mount.js")).registerMount],
  [["diff"], async () => (await import("./commands/diff.js")).registerDiff],
  [["find"], async () => (await import("./commands/find.js")).registerFind],
  [["stats"], async () => (await import("./commands/stats.js")).registerStats],
  [["dump"], async () => (await import("./commands/dump.js")).registerDump],
  [["restore"], async () => (await import("./commands/restore.js")).registerRestore],
  [["replicate"], async () => (await import("./commands/replicate.js")).registerReplicate],
  [["cat"], async () => (await import("./commands/cat.js")).registerCat],
  [["key"], async () => (await import("./commands/key.js")).registerKey],
  [["check"], async () => (await import("./commands/check.js")).registerCheck],
  [["drill"], async () => (await import("./commands/drill.js")).registerDrill],
  [["status"], async () => (await import("./commands/status.js")).registerStatus],
  [["pull"], async () => (await import("./commands/pull.js")).registerPull],
  [["push"], async () => (await import("./commands/push.js")).registerPush],
  [["export"], async () => (await import("./commands/export.js")).registerExport],
  [["forget"], async () => (await import("./commands/forget.js")).registerForget],
  [["prune"], async () => (await import("./commands/prune.js")).registerPrune],
  [["copy"], async () => (await import("./commands/copy.js")).registerCopy],
  [["repair"], async () => (await import("./commands/repair.js")).registerRepair],
  [["retention"], async () => (await import("./commands/retention.js")).registerRetention],
  [["ack"], async () => (await import("./commands/ack.js")).registerAck],
  [["guard"], async () => (await import("./commands/guard.js")).registerGuard],
  [["serve"], async () => (await import("./commands/serve.js")).registerServe],
  [["pg"], async () => (await import("./commands/pg.js")).registerPg],
  [["fleet"], async () => (await import("./commands/fleet.js")).registerFleet],
  [["run", "daemon"], async () => (await import("./commands/run.js")).registerRun],
  [["ui"], async () => (await import("./commands/ui.js")).registerUi],
];

/**
 * The command word of argv (skipping global options and their values), so only that command is
 * registered; undefined (then all are) for help, typos and anything unusual.
 */
function commandWord(program: Command, argv: string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const t = argv[i]!;
    if (t === "--") return undefined;
    if (!t.startsWith("-")) return t;
    if (t.includes("=")) continue;
    const opt = program.options.find((o) => o.long === t || o.short === t);
    if (opt?.required) i++;
  }
  return undefined;
}

async function buildProgram(argv: string[]): Promise<Command> {
  const program = new Command("lifeboat")
    .version(VERSION)
    .description("Deduplicated, compressed, encrypted backups you can prove you can restore.")
    .addOption(
      new Option("-r, --repo <url>", "repository: a path, or s3:/sftp:/rest: URL").env("LIFEBOAT_REPOSITORY"),
    )
    .option("--password-file <file>", "read the repository password from a file (env LIFEBOAT_PASSWORD_FILE)")
    .option(
      "--password-command <cmd>",
      "run a command that prints the password (env LIFEBOAT_PASSWORD_COMMAND)",
    )
    .option(
      "--config <file>",
      "config file (default $XDG_CONFIG_HOME/lifeboat/config.json; env LIFEBOAT_CONFIG)",
    )
    .option("--json", "machine-readable output: one JSON document per line")
    .option(
      "--retention-days <n>",
      "s3: lock every object written for n days; recorded in the repository once (see `lifeboat retention`; env LIFEBOAT_RETENTION_DAYS)",
    )
    .option("--retention-mode <mode>", "governance (default) or compliance (env LIFEBOAT_RETENTION_MODE)")
    .option("--limit-upload <kib/s>", "cap upload bandwidth, in KiB/s (env LIFEBOAT_LIMIT_UPLOAD)")
    .option("--limit-download <kib/s>", "cap download bandwidth, in KiB/s (env LIFEBOAT_LIMIT_DOWNLOAD)")
    .option("--notify-url <url>", "POST a JSON notice here on failure or anomaly (env LIFEBOAT_NOTIFY_URL)")
    .option(
      "--notify-email <addresses>",
      "e-mail a notice on failure or anomaly (env LIFEBOAT_NOTIFY_EMAIL; server: LIFEBOAT_SMTP_URL)",
    )
    .option(
      "--notify-command <cmd>",
      "run this with a JSON notice on stdin on failure or anomaly (env LIFEBOAT_NOTIFY_COMMAND)",
    )
    .option("-q, --quiet", "print only errors and requested results")
    .option("-v, --verbose", "more detail (repeatable)", (_v, prev: number) => prev + 1, 0)
    .showHelpAfterError("(run with --help for usage)")
    .configureHelp({ sortSubcommands: false })
    .addHelpText(
      "after",
      `
Repository and password come from the options above or from the environment:
  LIFEBOAT_REPOSITORY, LIFEBOAT_PASSWORD, LIFEBOAT_PASSWORD_FILE, LIFEBOAT_PASSWORD_COMMAND.
With no repository, commands use the default local one ($XDG_DATA_HOME/lifeboat/repo), which
\`lifeboat backup PATH\` creates on first use.

Exit codes: 0 ok, 1 failed, 2 bad usage, 3 backup saved but some files unreadable,
4 backup saved but flagged as anomalous (looks like a wipe), 5 missed schedule (status --max-age),
10 no repository, 11 repository already exists, 12 wrong or missing password,
13 snapshot not found or ambiguous, 14 damaged data, 15 repository storage full,
16 storage unreachable, 17 repository busy (another prune), 130 interrupted.

Start here:
  lifeboat backup ~/Documents          back up into the default repository
  lifeboat snapshots                   list what is stored
  lifeboat restore latest --target DIR get it back`,
    );
  const only = commandWord(program, argv);
  program.exitOverride();
  program.hook("preAction", (_program, action) => {
    running = { name: action.name(), ctx: ctx(action) };
  });
  const ctx = (cmd: Command) => new CliContext(cmd.optsWithGlobals() as GlobalOptions);
  const wanted = COMMANDS.filter(([names]) => only !== undefined && names.includes(only));
  for (const [, load] of wanted.length > 0 ? wanted : COMMANDS) (await load())(program, ctx);
  for (const c of program.commands) {
    c.exitOverride();
    for (const sub of c.commands) sub.exitOverride();
  }
  return program;
}

/** The command being run, so a failure can be notified (backups that fail must be noticed). */
let running: { name: string; ctx: CliContext } | undefined;
const NOTIFY_FAILURES = new Set(["backup", "pull", "guard", "drill", "copy", "prune", "forget", "check"]);

function report(e: unknown, json: boolean): number {
  if (e instanceof CommanderError) {
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help")
      return 0;
    return ExitCode.usage; // commander already printed the message
  }
  const err = isLifeboatError(e)
    ? e
    : new LifeboatError(
        "STORAGE_ERROR",
        `unexpected error: ${(e as Error)?.message ?? String(e)}`,
        "please report this with the command you ran",
      );
  flushOutput(); // what the command printed comes before its error
  if (json) {
    process.stderr.write(
      `${JSON.stringify({ message_type: "error", code: err.code, message: err.message, hint: err.hint ?? null })}\n`,
    );
  } else {
    process.stderr.write(`error: ${err.message}${err.hint ? `\n  hint: ${err.hint}` : ""}\n`);
    if (!isLifeboatError(e) && process.env.LIFEBOAT_DEBUG) process.stderr.write(`${(e as Error)?.stack}\n`);
  }
  return err.exitCode;
}

async function main(): Promise<void> {
  const json = process.argv.includes("--json");
  process.on("SIGINT", () => {
    process.stderr.write(
      "\ninterrupted: the repository is consistent; run the same command again to continue\n",
    );
    process.exit(ExitCode.interrupted);
  });
  process.on("SIGTERM", () => process.exit(ExitCode.interrupted));
  // `lifeboat snapshots | head`: a reader that stops early is not an error. The command goes on
  // (a backup still saves its snapshot) with further output dropped.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
    process.stdout.write = (() => true) as typeof process.stdout.write;
  });
  try {
    // The config file's settings become defaults before options are parsed (flags and the
    // environment still win); `--config FILE` anywhere on the line names another file.
    const i = process.argv.indexOf("--config");
    applyConfigDefaults(loadConfig(i > 0 ? process.argv[i + 1] : undefined).config);
    await (await buildProgram(process.argv)).parseAsync(process.argv);
  } catch (e) {
    process.exitCode = report(e, json);
    if (running && NOTIFY_FAILURES.has(running.name) && !(e instanceof CommanderError)) {
      const message = e instanceof Error ? e.message : String(e);
      await running.ctx.notify({ event: "failure", ok: false, command: running.name, message });
    }
  }
}

await main();
