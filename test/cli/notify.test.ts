/**
 * Notifications through the CLI, received by a local HTTP receiver, a local SMTP sink and a
 * command hook: a drill's result, a missed schedule (`status --max-age`, exit 5), a failure.
 */
import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import { baseEnv, run, tempDir } from "../support/cli.js";

let dir: string;
let env: Record<string, string>;
const posts: Record<string, unknown>[] = [];
const mails: string[] = [];
let hook: http.Server;
let smtp: net.Server;
let hookUrl: string;
let smtpUrl: string;

/** The smallest SMTP server that accepts mail: enough for nodemailer, records each message. */
function smtpSink(): net.Server {
  return net.createServer((sock) => {
    let data = false;
    let message = "";
    let buffer = "";
    sock.write("220 sink ESMTP\r\n");
    sock.on("data", (d: Buffer) => {
      buffer += d.toString("utf8");
      for (let i = buffer.indexOf("\r\n"); i >= 0; i = buffer.indexOf("\r\n")) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        if (data) {
          if (line === ".") {
            data = false;
            mails.push(message);
            message = "";
            sock.write("250 queued\r\n");
          } else message += `${line}\n`;
          continue;
        }
        const verb = line.split(" ")[0]!.toUpperCase();
        if (verb === "EHLO" || verb === "HELO") sock.write("250-sink\r\n250 8BITMIME\r\n");
        else if (verb === "DATA") {
          data = true;
          sock.write("354 go on\r\n");
        } else if (verb === "QUIT") {
          sock.write("221 bye\r\n");
          sock.end();
        } else sock.write("250 ok\r\n");
      }
    });
    sock.on("error", () => {});
  });
}

before(async () => {
  dir = await tempDir("lifeboat-notify-");
  hook = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      posts.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      res.end("ok");
    });
  });
  await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/`;
  smtp = smtpSink();
  await new Promise<void>((r) => smtp.listen(0, "127.0.0.1", r));
  smtpUrl = `smtp://127.0.0.1:${(smtp.address() as AddressInfo).port}`;
  env = baseEnv({
    LIFEBOAT_REPOSITORY: path.join(dir, "repo"),
    LIFEBOAT_PASSWORD: "n",
    LIFEBOAT_SMTP_URL: smtpUrl,
  });
  const src = path.join(dir, "src");
  await fs.mkdir(src);
  await fs.writeFile(path.join(src, "a.txt"), "notify me\n");
  assert.equal((await run(["init"], { env })).code, 0);
  assert.equal((await run(["backup", src], { env })).code, 0);
});
after(async () => {
  await new Promise((r) => hook.close(r));
  await new Promise((r) => smtp.close(r));
  await fs.rm(dir, { recursive: true, force: true });
});

test("a drill's result goes to the webhook", async () => {
  const r = await run(["--notify-url", hookUrl, "drill"], { env });
  assert.equal(r.code, 0, r.stderr);
  const n = posts.at(-1)!;
  assert.equal(n.event, "drill");
  assert.equal(n.ok, true);
  assert.match(String(n.message), /passed/);
});

test("status --max-age: a missed schedule exits 5 and is e-mailed", async () => {
  const fresh = await run(["status", "--max-age", "1h", "--notify-email", "ops@example.org"], { env });
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.equal(mails.length, 0, "nothing to say while snapshots are recent");
  await new Promise((r) => setTimeout(r, 1100));
  // A zero limit: the snapshot made in before() is now too old.
  const late = await run(["status", "--max-age", "0h", "--notify-email", "ops@example.org"], { env });
  assert.equal(late.code, 5, late.stdout + late.stderr);
  assert.match(late.stderr, /missed schedule/);
  assert.equal(mails.length, 1);
  assert.match(mails[0]!, /Subject: lifeboat PROBLEM: missed-schedule/);
  assert.match(mails[0]!, /To: ops@example\.org/);
});

test("a failed backup runs the notify command with the notice on stdin; a dead webhook is only a warning", async () => {
  const out = path.join(dir, "notice.json");
  const r = await run(
    [
      "--notify-command",
      `cat > ${out}`,
      "--notify-url",
      "http://127.0.0.1:9/",
      "backup",
      path.join(dir, "src"),
    ],
    { env: { ...env, LIFEBOAT_PASSWORD: "wrong" } },
  );
  assert.equal(r.code, 12, r.stderr);
  const notice = JSON.parse(await fs.readFile(out, "utf8"));
  assert.equal(notice.event, "failure");
  assert.equal(notice.command, "backup");
  assert.match(notice.message, /password/);
  assert.match(r.stderr, /warning: notification to http:\/\/127\.0\.0\.1:9\/ failed/);
});
