import { promises as fs } from "node:fs";
import type { Command } from "commander";
import { loadConfig } from "../../app/config.js";
import type { FleetEntry } from "../../app/console/fleets.js";
import { type RunningConsole, startConsole } from "../../app/console/server.js";
import type { Tasks } from "../../app/console/tasks.js";
import { ROLES, type Role, UserStore } from "../../app/console/users.js";
import { LifeboatError } from "../../core/errors.js";
import { Repository } from "../../repo/repository.js";
import type { CliContext } from "../shell/context.js";
import { resolvePassword } from "../shell/password.js";

export interface UiFlags {
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  insecureListen?: boolean;
}

function parseListen(listen: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m || Number(m[2]) > 65535)
    throw new LifeboatError("USAGE", `--listen ${listen} is not HOST:PORT`, "e.g. --listen 127.0.0.1:8080");
  return { host: m[1]!.replace(/^\[(.*)\]$/, "$1"), port: Number(m[2]) };
}

/** Starts the console for the CLI's repository, password and config file (ui, daemon --ui). */
export async function startConsoleFromCli(
  c: CliContext,
  flags: UiFlags,
  extra: { daemon?: boolean; tasks?: Tasks; fleets?: FleetEntry[] } = {},
): Promise<RunningConsole> {
  const { host, port } = parseListen(flags.listen);
  if (!!flags.tlsCert !== !!flags.tlsKey)
    throw new LifeboatError("USAGE", "--tls-cert and --tls-key go together", "give both, or neither");
  const tls =
    flags.tlsCert && flags.tlsKey
      ? { cert: await fs.readFile(flags.tlsCert), key: await fs.readFile(flags.tlsKey) }
      : undefined;
  const { config } = loadConfig(c.opts.config);
  const loc = c.repoLocation();
  const running = await startConsole({
    host,
    port,
    ...(tls ? { tls } : {}),
    allowInsecure: flags.insecureListen === true,
    repository: loc.url,
    passwordFile: undefined,
    config,
    daemon: extra.daemon ?? false,
    ...(extra.tasks ? { tasks: extra.tasks } : {}),
    ...(extra.fleets ? { fleets: extra.fleets } : {}),
    open: async (url, passwordFile) => {
      if (url === loc.url) return c.openRepo();
      const backend = await c.backend(url);
      if (!(await Repository.exists(backend))) throw Repository.notFound(backend);
      const password = passwordFile ? await resolvePassword({ passwordFile }) : await c.password();
      return Repository.open(backend, password);
    },
  });
  if (running.firstToken) {
    // Shown once: only its scrypt hash is kept.
    c.out.info(`first start: created the console user admin (role admin); its sign-in token is`);
    c.out.info(`  ${running.firstToken}`);
    c.out.info(`keep it now: it is not shown again (only a hash is stored in ${running.usersFile})`);
    c.out.emit({ message_type: "console_user", user: "admin", role: "admin", token: running.firstToken });
  }
  c.out.emit({ message_type: "listening", url: running.url });
  c.out.info(`console at ${running.url}; Ctrl-C stops`);
  return running;
}

export function registerUi(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("ui")
    .description("serve the web console: health of every source, browse, restore, drills, retention")
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:8080")
    .option("--tls-cert <file>", "serve HTTPS with this certificate (PEM)")
    .option("--tls-key <file>", "... and this private key (PEM)")
    .option("--insecure-listen", "allow plain HTTP on an address that is not loopback (behind a TLS proxy)")
    .option("--add-user <name>", "make a user (or give one a new token), print its sign-in token once, exit")
    .option("--role <role>", `with --add-user: ${ROLES.join(", ")}`, "viewer")
    .option("--remove-user <name>", "remove a user and exit")
    .option("--list-users", "list the users and exit")
    .option(
      "--config <file>",
      "config file (default $XDG_CONFIG_HOME/lifeboat/config.json or LIFEBOAT_CONFIG)",
    )
    .addHelpText(
      "after",
      `
Serves the console and its JSON API (docs/api.md) for the repository and config file every
command uses, plus every repository a job of the config writes to. On first start it makes the
user admin and prints its sign-in token once (only an scrypt hash is kept, in
$XDG_STATE_HOME/lifeboat/console/users.json). Roles: viewer (look, download), operator (also
restore, run now, drills, ack), admin (also retention and users). Restores onto this host go
only below console.restoreRoots of the config file. Every restore, download and destructive
action is written to $XDG_STATE_HOME/lifeboat/console/audit.log.

Examples:
  lifeboat ui                                   http://127.0.0.1:8080/
  lifeboat ui --add-user ann --role operator    prints ann's token
  lifeboat ui --listen 0.0.0.0:8443 --tls-cert cert.pem --tls-key key.pem`,
    )
    .action(
      async (
        flags: UiFlags & { addUser?: string; role: string; removeUser?: string; listUsers?: boolean },
        cmd: Command,
      ) => {
        const c = ctx(cmd);
        const users = new UserStore();
        if (flags.addUser) {
          if (!(ROLES as readonly string[]).includes(flags.role))
            throw new LifeboatError("USAGE", `--role ${flags.role} is not one of ${ROLES.join(", ")}`);
          const token = await users.set(flags.addUser, flags.role as Role);
          c.out.info(`user ${flags.addUser} (${flags.role}); sign-in token (shown once):`);
          c.out.result(token);
          c.out.emit({ message_type: "console_user", user: flags.addUser, role: flags.role, token });
          return;
        }
        if (flags.removeUser) {
          if (!(await users.remove(flags.removeUser)))
            throw new LifeboatError("NOT_FOUND", `no console user ${flags.removeUser}`, "see --list-users");
          c.out.info(`removed ${flags.removeUser}`);
          return;
        }
        if (flags.listUsers) {
          const list = await users.list();
          c.out.emit(list.map((u) => ({ name: u.name, role: u.role, created: u.created })));
          for (const u of list) c.out.result(`${u.name}\t${u.role}\t${u.created}`);
          return;
        }
        const running = await startConsoleFromCli(c, flags);
        await new Promise<void>((resolve) => {
          const stop = () => void running.close().then(resolve);
          process.removeAllListeners("SIGINT");
          process.removeAllListeners("SIGTERM");
          process.once("SIGINT", stop);
          process.once("SIGTERM", stop);
        });
      },
    );
}
