import { promises as fs } from "node:fs";
import type { Command } from "commander";
import { startServer } from "../../app/serve/serve.js";
import { hashPassword, loadUsers } from "../../app/serve/users.js";
import { LifeboatError } from "../../core/errors.js";
import type { CliContext } from "../shell/context.js";
import { resolveNewPassword } from "../shell/password.js";

interface ServeFlags {
  path?: string;
  listen: string;
  appendOnly?: boolean;
  htpasswd?: string;
  tokens?: string;
  auth: boolean;
  privateRepos?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  hashPassword?: boolean;
}

export function registerServe(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("serve")
    .description("serve repositories over HTTP(S) for rest: URLs, optionally append-only")
    .option("--path <dir>", "folder holding the repositories (one per top-level folder, or one at the root)")
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:8000")
    .option("--append-only", "store new objects but never delete or replace existing ones")
    .option("--htpasswd <file>", "users: lines user:hash (make hashes with --hash-password, or htpasswd -s)")
    .option("--tokens <file>", "bearer tokens: lines `TOKEN [user]`")
    .option("--no-auth", "no authentication (refused unless listening on a loopback address)")
    .option("--private-repos", "each user may only use the repository named like them (/USER/)")
    .option("--tls-cert <file>", "serve HTTPS with this certificate (PEM)")
    .option("--tls-key <file>", "... and this private key (PEM)")
    .option(
      "--hash-password",
      "print a password hash line for --htpasswd (password from LIFEBOAT_NEW_PASSWORD or a prompt) and exit",
    )
    .addHelpText(
      "after",
      `
Clients use rest:http(s)://USER:PASSWORD@HOST:PORT/REPO (or LIFEBOAT_REST_PASSWORD /
LIFEBOAT_REST_TOKEN). With --append-only a stolen client credential cannot destroy backups:
deletes and overwrites are refused (except the markers of running backups), so forget and
prune must run on the server itself, against the folder: lifeboat -r DIR/REPO forget ... --prune

Examples:
  lifeboat serve --path /srv/lifeboat --listen 0.0.0.0:8000 --htpasswd /etc/lifeboat/users \\
      --append-only --private-repos --tls-cert cert.pem --tls-key key.pem
  echo "alice:$(LIFEBOAT_NEW_PASSWORD=secret lifeboat serve --hash-password)" >> /etc/lifeboat/users`,
    )
    .action(async (flags: ServeFlags, cmd: Command) => {
      const c = ctx(cmd);
      if (flags.hashPassword) {
        c.out.result(hashPassword(await resolveNewPassword(undefined)));
        return;
      }
      if (!flags.path)
        throw new LifeboatError(
          "USAGE",
          "serve needs --path DIR",
          "give the folder that holds the repositories",
        );
      const m = /^(.*):(\d+)$/.exec(flags.listen);
      if (!m)
        throw new LifeboatError(
          "USAGE",
          `--listen ${flags.listen} is not HOST:PORT`,
          "e.g. --listen 127.0.0.1:8000",
        );
      const host = m[1]!.replace(/^\[(.*)\]$/, "$1");
      if (flags.auth && !flags.htpasswd && !flags.tokens)
        throw new LifeboatError(
          "USAGE",
          "serve needs users: --htpasswd FILE or --tokens FILE",
          "or --no-auth when listening on 127.0.0.1 only",
        );
      if (!!flags.tlsCert !== !!flags.tlsKey)
        throw new LifeboatError(
          "USAGE",
          "--tls-cert and --tls-key go together",
          "give both, or neither for plain HTTP",
        );
      const users = flags.auth ? await loadUsers(flags.htpasswd, flags.tokens) : undefined;
      const tls =
        flags.tlsCert && flags.tlsKey
          ? { cert: await fs.readFile(flags.tlsCert), key: await fs.readFile(flags.tlsKey) }
          : undefined;
      const { server, url } = await startServer({
        root: flags.path,
        host,
        port: Number(m[2]),
        appendOnly: flags.appendOnly === true,
        users,
        privateRepos: flags.privateRepos === true,
        ...(tls ? { tls } : {}),
        log: (l) => c.out.debug(l),
      });
      c.out.emit({ message_type: "listening", url, append_only: flags.appendOnly === true });
      c.out.info(`serving ${flags.path} at ${url}${flags.appendOnly ? " (append-only)" : ""}; Ctrl-C stops`);
      // Stop cleanly: finish requests in flight (puts are atomic anyway), then exit 0.
      await new Promise<void>((resolve) => {
        const stop = () => server.close(() => resolve());
        process.removeAllListeners("SIGINT");
        process.removeAllListeners("SIGTERM");
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
    });
}
