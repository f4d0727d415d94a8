/**
 * Endpoints that answer garbage, endless streams or huge literals: a tiny IMAP server (a TCP
 * server on 127.0.0.1 that greets, then answers garbage or a literal that never ends), a DAV
 * server (HTTP answering endless or malformed XML) and an S3 endpoint (HTTP answering garbage
 * or an endless body). `pull imap://`, `pull dav://` and a backup to the s3: repository must
 * each fail with one clear error line and a documented exit code, within a bounded time and
 * with bounded memory (peak RSS measured with GNU time).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { promises as fs } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import path from "node:path";
import { after, describe, test } from "node:test";
import { ExitCode } from "../../src/core/errors.js";
import { baseEnv, CLI, useWorkspace } from "../support/cli.js";

const PW = "the repository password";
/** Generous, for a loaded 2-core machine; the tools' own timeouts are shorter or equal. */
const LIMIT_MS = 120_000;
const RSS_LIMIT_KIB = 1024 * 1024;

const ws = useWorkspace({ password: PW });
const servers: { close(): void }[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** Bytes that are not IMAP, HTTP or XML. */
const GARBAGE = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256));
const CHUNK = Buffer.alloc(256 * 1024, "A");

/** Writes `chunk` to `sink` until it closes (one chunk per turn of the event loop, honouring
 * backpressure, so the server never starves the test runner). */
function endless(sink: NodeJS.WritableStream & { destroyed: boolean }, chunk: Buffer): void {
  let closed = false;
  sink.once("close", () => {
    closed = true;
  });
  const more = () => {
    if (closed || sink.destroyed) return;
    if (sink.write(chunk)) setImmediate(more);
    else sink.once("drain", more);
  };
  more();
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  ms: number;
  maxRssKiB: number;
}

/** Runs the CLI under GNU time; kills its process group after LIMIT_MS + 60 s. */
async function measured(args: string[], env: Record<string, string>): Promise<Outcome> {
  const child = spawn("/usr/bin/time", ["-f", "LIFEBOAT_MAX_RSS_KIB=%M", process.execPath, CLI, ...args], {
    env: { ...baseEnv(), ...env },
    stdio: ["ignore", "ignore", "pipe"],
    detached: true,
  });
  const err: Buffer[] = [];
  child.stderr.on("data", (d: Buffer) => err.push(d));
  const t0 = Date.now();
  const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), LIMIT_MS + 60_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on("close", (c, s) => resolve([c, s])),
  );
  clearTimeout(timer);
  const all = Buffer.concat(err).toString("utf8");
  const m =
    /(?:Command (?:exited with non-zero status|terminated by signal) \d+\n)?LIFEBOAT_MAX_RSS_KIB=(\d+)\n?$/.exec(
      all,
    );
  return {
    code,
    signal,
    stderr: m ? all.slice(0, m.index) : all,
    ms: Date.now() - t0,
    maxRssKiB: m ? Number(m[1]) : Number.NaN,
  };
}

/** The run failed as documented: exit `code`, one `error:` line (and maybe a hint), no crash. */
function assertClean(what: string, o: Outcome, code: number, message: RegExp): void {
  const show = `${what}: exit ${o.code} (signal ${o.signal}) in ${o.ms} ms, peak RSS ${o.maxRssKiB} KiB\n${o.stderr.slice(0, 3000)}`;
  console.log(
    `${what}: exit ${o.code} in ${(o.ms / 1000).toFixed(1)} s, peak RSS ${Math.round(o.maxRssKiB / 1024)} MiB`,
  );
  assert.equal(o.signal, null, show);
  assert.equal(o.code, code, show);
  assert.ok(o.ms < LIMIT_MS, show);
  assert.ok(o.maxRssKiB < RSS_LIMIT_KIB, show);
  const lines = o.stderr.split("\n").filter((l) => l.trim() !== "");
  const errors = lines.filter((l) => l.startsWith("error: "));
  assert.equal(errors.length, 1, show);
  assert.match(errors[0]!, message, show);
  assert.ok(errors[0]!.length < 500, `the error line is ${errors[0]!.length} characters\n${show}`);
  assert.doesNotMatch(o.stderr, /\n\s+at |RangeError|TypeError|call stack|heap out of memory/, show);
}

async function listen(server: net.Server | http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push({ close: () => server.close() });
  return (server.address() as AddressInfo).port;
}

/** An IMAP server that greets, then answers the client's first command with `answer`. */
async function imapServer(answer: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.write("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hostile IMAP ready\r\n");
    socket.once("data", () => answer(socket));
  });
  return listen(server);
}

async function httpServer(handler: http.RequestListener): Promise<number> {
  const server = http.createServer((req, res) => {
    res.on("error", () => {});
    req.on("error", () => {});
    handler(req, res);
  });
  server.keepAliveTimeout = 1000;
  return listen(server);
}

const pullEnv = () => ({ ...ws.env, LIFEBOAT_SOURCE_PASSWORD: "secret" });

describe("an IMAP server that answers garbage or endless literals", () => {
  test("garbage after the greeting", async () => {
    const port = await imapServer((s) => endless(s, GARBAGE));
    const o = await measured(["pull", `imap://ann@127.0.0.1:${port}`], pullEnv());
    assertClean(
      "imap garbage",
      o,
      ExitCode.unreachable,
      /IMAP server .* did not complete the login within 30 s/,
    );
  });

  test("a literal of 2^63 bytes that never ends", async () => {
    const port = await imapServer((s) => {
      s.write("* CAPABILITY IMAP4rev1 {9223372036854775807}\r\n");
      endless(s, CHUNK);
    });
    const o = await measured(["pull", `imap://ann@127.0.0.1:${port}`], pullEnv());
    assertClean("imap endless literal", o, ExitCode.incomplete, /IMAP server .*Literal size \d+ exceeds/);
  });

  test("a literal of 4 GiB, announced and then sent slowly", async () => {
    const port = await imapServer((s) => {
      s.write("* OK {4294967296}\r\n");
      const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write("x")), 1000);
    });
    const o = await measured(["pull", `imap://ann@127.0.0.1:${port}`], pullEnv());
    assertClean("imap slow literal", o, ExitCode.incomplete, /IMAP server .*Literal size \d+ exceeds/);
  });
});

describe("a DAV server that answers endless or malformed XML", () => {
  const multistatusStart =
    '<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:response><d:href>/x/</d:href><d:propstat><d:prop><d:displayname>';

  test("an endless 207 multistatus", async () => {
    const port = await httpServer((_req, res) => {
      res.writeHead(207, { "content-type": "application/xml; charset=utf-8" });
      res.write(multistatusStart);
      endless(res, CHUNK);
    });
    const o = await measured(["pull", `dav://ann@127.0.0.1:${port}/`], pullEnv());
    assertClean("dav endless", o, ExitCode.incomplete, /answered more than 256 MiB; refused/);
  });

  test("malformed XML", async () => {
    const port = await httpServer((_req, res) => {
      res.writeHead(207, { "content-type": "application/xml" });
      res.end(`${multistatusStart}<d:response><<<&&&;${GARBAGE.toString("latin1")}</d:prop>`);
    });
    const o = await measured(["pull", `dav://ann@127.0.0.1:${port}/`], pullEnv());
    assertClean("dav malformed", o, ExitCode.failure, /DAV|XML/);
  });

  test("a deeply nested document", async () => {
    const port = await httpServer((_req, res) => {
      res.writeHead(207, { "content-type": "application/xml" });
      res.end(`${multistatusStart}${"<d:x>".repeat(1_000_000)}`);
    });
    const o = await measured(["pull", `dav://ann@127.0.0.1:${port}/`], pullEnv());
    assertClean("dav nested", o, ExitCode.failure, /DAV|XML/);
  });
});

describe("an S3 endpoint that answers garbage or an endless body", () => {
  const s3Env = (port: number, repo: string) => ({
    ...baseEnv(),
    LIFEBOAT_PASSWORD: PW,
    LIFEBOAT_REPOSITORY: `s3:http://127.0.0.1:${port}/bucket/${repo}`,
    AWS_ACCESS_KEY_ID: "key",
    AWS_SECRET_ACCESS_KEY: "secret",
    AWS_REGION: "us-east-1",
  });
  const src = async () => {
    const d = path.join(ws.base, "src");
    await fs.mkdir(d, { recursive: true });
    await fs.writeFile(path.join(d, "a.txt"), "some data\n");
    return d;
  };

  test("garbage with status 200", async () => {
    const port = await httpServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/xml" });
      res.end(GARBAGE);
    });
    const o = await measured(["backup", await src()], s3Env(port, "garbage"));
    assertClean("s3 garbage", o, ExitCode.failure, /s3:|S3|storage/i);
  });

  // Found by this test and not fixed yet (docs/reliability.md, "Not done yet"): the SDK's
  // requestTimeout only logs a warning, so a body that never ends is read for ever, in memory.
  // Skipped, not todo: it would hold the quick profile for minutes.
  test(
    "an endless body",
    { skip: "open: an endless S3 body hangs backup (docs/reliability.md)" },
    async () => {
      const port = await httpServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        endless(res, CHUNK);
      });
      const o = await measured(["backup", await src()], s3Env(port, "endless"));
      assertClean("s3 endless", o, ExitCode.failure, /s3:|S3|storage/i);
    },
  );
});
