/**
 * Endpoints that answer garbage, endless streams, huge literals or nothing: a tiny IMAP server
 * (a TCP server on 127.0.0.1 that greets, then answers garbage or a literal that never ends; or
 * logs in and then answers LIST, EXAMINE or FETCH with junk, a literal or silence), a DAV server
 * (HTTP answering endless or malformed XML) and an S3 endpoint (HTTP answering garbage, an
 * endless object body or listing, or a body that trickles). `pull imap://`, `pull dav://` and a
 * backup to the s3: repository must each fail with one clear error line and a documented exit
 * code, within a bounded time and with bounded memory (peak RSS measured with GNU time).
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

/**
 * An IMAP server that logs anyone in and answers every command with OK, except those named in
 * `answers` (LIST, EXAMINE, FETCH, ...), which get the handler instead. A handler that returns
 * true was the hostile one: no more commands are read after it. The LIST imapflow sends during
 * login (for the hierarchy delimiter, `LIST "" ""`) is always answered well.
 */
async function imapAfterLogin(
  answers: Record<string, (socket: net.Socket, tag: string) => boolean>,
): Promise<number> {
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.write("* OK [CAPABILITY IMAP4rev1] hostile IMAP ready\r\n");
    let buffered = "";
    let done = false;
    socket.on("data", (d: Buffer) => {
      buffered += d.toString("latin1");
      let nl = buffered.indexOf("\r\n");
      while (!done && nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 2);
        nl = buffered.indexOf("\r\n");
        const [tag = "*", first = "", second = ""] = line.split(" ");
        const cmd = (first.toUpperCase() === "UID" ? second : first).toUpperCase();
        const h = answers[cmd];
        if (cmd === "LIST" && line.endsWith('"" ""'))
          socket.write(`* LIST (\\Noselect) "/" ""\r\n${tag} OK done\r\n`);
        else if (h) done = h(socket, tag);
        else if (cmd === "CAPABILITY") socket.write(`* CAPABILITY IMAP4rev1\r\n${tag} OK done\r\n`);
        else if (cmd === "LOGIN") socket.write(`${tag} OK [CAPABILITY IMAP4rev1] logged in\r\n`);
        else socket.write(`${tag} OK done\r\n`);
      }
    });
  });
  return listen(server);
}

/** Writes `chunk` for ever: a hostile answer. */
const flood =
  (chunk: Buffer, first = "") =>
  (s: net.Socket) => {
    if (first) s.write(first);
    endless(s, chunk);
    return true;
  };

/** LIST and EXAMINE answers of a server with one folder, INBOX, holding one message. */
const oneFolder = {
  LIST: (s: net.Socket, tag: string) => {
    s.write(`* LIST () "/" INBOX\r\n${tag} OK done\r\n`);
    return false;
  },
  EXAMINE: (s: net.Socket, tag: string) => {
    s.write(`* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 2] n\r\n${tag} OK [READ-ONLY] done\r\n`);
    return false;
  },
};

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

describe("an IMAP server that logs in, then answers garbage, junk or nothing", () => {
  test("endless junk lines in answer to LIST", async () => {
    const port = await imapAfterLogin({
      LIST: flood(Buffer.from("* OK junk\r\n".repeat(20_000))),
    });
    const o = await measured(["pull", `imap://ann@127.0.0.1:${port}`], pullEnv());
    assertClean(
      "imap junk after login",
      o,
      ExitCode.incomplete,
      /IMAP server .* sent more than 8 MiB in answer to LIST; refused/,
    );
  });

  test("garbage in answer to LIST", async () => {
    const port = await imapAfterLogin({ LIST: flood(GARBAGE) });
    const o = await measured(["pull", `imap://ann@127.0.0.1:${port}`], pullEnv());
    assertClean(
      "imap garbage after login",
      o,
      ExitCode.incomplete,
      /IMAP server .* sent more than 8 MiB in answer to LIST; refused/,
    );
  });

  test("a literal of 200 MiB for a message of 10 bytes", async () => {
    // Under imapflow's literal cap (512 MiB here): the FETCH's budget refuses it.
    const port = await imapAfterLogin({
      ...oneFolder,
      FETCH: flood(CHUNK, "* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 10 BODY[] {209715200}\r\n"),
    });
    const o = await measured(["pull", `imap://ann@127.0.0.1:${port}`], pullEnv());
    assertClean(
      "imap literal after login",
      o,
      ExitCode.incomplete,
      /IMAP server .* sent more than 1 MiB in answer to FETCH .*; refused/,
    );
  });

  test("a literal of 1 TiB announced in answer to EXAMINE", async () => {
    const port = await imapAfterLogin({
      LIST: oneFolder.LIST,
      EXAMINE: flood(CHUNK, "* OK [ALERT] {1099511627776}\r\n"),
    });
    const o = await measured(["pull", `imap://ann@127.0.0.1:${port}`], pullEnv());
    assertClean(
      "imap huge literal after login",
      o,
      ExitCode.incomplete,
      /IMAP server .*Literal size \d+ exceeds/,
    );
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
  test("garbage with status 200", async () => {
    const port = await httpServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/xml" });
      res.end(GARBAGE);
    });
    const o = await measured(["backup", await src()], s3Env(port, "garbage"));
    assertClean("s3 garbage", o, ExitCode.failure, /s3:|S3|storage/i);
  });

  test("an endless body", async () => {
    // A listing that names one key file, whose body (like every object's) never ends, sent
    // without a Content-Length.
    const port = await httpServer((req, res) => {
      if (req.url?.includes("list-type=2")) {
        res.writeHead(200, { "content-type": "application/xml" });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bucket</Name><KeyCount>1</KeyCount><IsTruncated>false</IsTruncated><Contents><Key>endless/keys/${"a".repeat(64)}</Key><Size>300</Size></Contents></ListBucketResult>`,
        );
        return;
      }
      res.writeHead(200, { "content-type": "application/octet-stream" });
      // A HEAD answer has no body; one never ended would hold its connection (a stall instead).
      if (req.method === "HEAD") return void res.end();
      endless(res, CHUNK);
    });
    const o = await measured(["backup", await src()], s3Env(port, "endless"));
    assertClean(
      "s3 endless",
      o,
      ExitCode.failure,
      /S3 endpoint .* answered more than 256 MiB for keys\/a+; refused/,
    );
  });

  test("an endless listing", async () => {
    // No config object (HEAD 404), so the repository is looked for by listing the prefix.
    const port = await httpServer((req, res) => {
      if (req.method === "HEAD") {
        res.writeHead(404);
        res.end();
        return;
      }
      res.writeHead(200, { "content-type": "application/xml" });
      res.write('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bucket</Name>');
      endless(res, Buffer.from("<Contents><Key>listing/x</Key><Size>1</Size></Contents>".repeat(4096)));
    });
    const o = await measured(["backup", await src()], s3Env(port, "listing"));
    assertClean(
      "s3 endless listing",
      o,
      ExitCode.failure,
      /S3 endpoint .* answered more than 8 MiB .*; refused/,
    );
  });
});

// Each of these waits out a bound of about a minute, so they run side by side.
describe("servers that stop answering", { concurrency: true }, () => {
  test("an IMAP server that logs in, then answers FETCH with nothing (60 s)", async () => {
    const port = await imapAfterLogin({ ...oneFolder, FETCH: () => true });
    const o = await measured(["pull", `imap://ann@127.0.0.1:${port}`], pullEnv());
    assertClean(
      "imap silent after login",
      o,
      ExitCode.unreachable,
      /IMAP server .* sent nothing for 60 s in answer to FETCH/,
    );
  });

  test("an S3 body that trickles a byte a second (2 × 30 s)", async () => {
    const port = await httpServer((req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      if (req.method === "HEAD") return void res.end();
      const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write("x")), 1000);
      res.on("close", () => clearInterval(t));
    });
    const o = await measured(["backup", await src()], s3Env(port, "trickle"));
    assertClean(
      "s3 trickle",
      o,
      ExitCode.unreachable,
      /S3 endpoint .* stopped answering .*under 1 KiB\/s, twice/,
    );
  });
});
