import type { Command } from "commander";
import { LifeboatError } from "../../core/errors.js";
import { findSnapshot } from "../../repo/find-snapshot.js";
import type { CliContext } from "../shell/context.js";

export function registerCat(program: Command, ctx: (c: Command) => CliContext): void {
  program
    .command("cat")
    .description("print a repository object, decrypted: config | snapshot ID | tree ID | blob ID")
    .argument("<type>", "config, snapshot, tree or blob")
    .argument("[id]", "object id (snapshot ids may be a prefix or `latest`)")
    .action(async (type: string, id: string | undefined, _f: unknown, cmd: Command) => {
      const c = ctx(cmd);
      const need = () => {
        if (!id) throw new LifeboatError("USAGE", `cat ${type} needs an id`);
        return id;
      };
      const hex = (s: string) => {
        if (!/^[0-9a-f]{64}$/.test(s))
          throw new LifeboatError("USAGE", `${JSON.stringify(s)} is not a 64-character hex id`);
        return s;
      };
      const repo = await c.openRepo();
      try {
        switch (type) {
          case "config":
            process.stdout.write(`${JSON.stringify(repo.config, null, 2)}\n`);
            break;
          case "snapshot": {
            const { id: sid, ...snap } = await findSnapshot(repo, need());
            process.stdout.write(`${JSON.stringify({ id: sid, ...snap }, null, 2)}\n`);
            break;
          }
          case "tree":
            process.stdout.write(`${JSON.stringify(await repo.loadTree(hex(need())), null, 2)}\n`);
            break;
          case "blob":
            process.stdout.write(await repo.loadBlob(Buffer.from(hex(need()), "hex")));
            break;
          default:
            throw new LifeboatError(
              "USAGE",
              `unknown object type ${JSON.stringify(type)}`,
              "use config, snapshot, tree or blob",
            );
        }
      } finally {
        await repo.close();
      }
    });
}
