import { spawn } from "node:child_process";
import os from "node:os";

/** Where notifications go: a webhook (JSON POST), a command (JSON on stdin), e-mail (SMTP). */
export interface NotifyConfig {
  url?: string | undefined;
  command?: string | undefined;
  /** Recipients, comma-separated. */
  email?: string | undefined;
  /** smtp://USER:PASSWORD@HOST:PORT or smtps://... (default smtp://127.0.0.1:25). */
  smtpUrl?: string | undefined;
  /** Sender address (default lifeboat@HOSTNAME). */
  from?: string | undefined;
}

export interface Notice {
  event: "anomaly" | "failure" | "guard" | "drill" | "missed-schedule";
  /** One line a person can act on. */
  message: string;
  ok: boolean;
  command?: string;
  repository?: string;
  snapshot?: string;
  reasons?: string[];
  /** The exact command that undoes the damage, when there is one. */
  rollback?: string;
}

const TIMEOUT_MS = 15_000;

/**
 * Sends a notice everywhere configured. Never throws: a broken webhook must not turn a good
 * backup into a failed one; the problems are returned for the caller to print.
 */
export async function notify(cfg: NotifyConfig, notice: Notice): Promise<string[]> {
  const body = { ...notice, host: os.hostname(), time: new Date().toISOString(), program: "lifeboat" };
  const problems: string[] = [];
  const jobs: Promise<void>[] = [];
  if (cfg.url) {
    const url = cfg.url;
    jobs.push(
      fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      }).then(
        (r) => {
          if (!r.ok) problems.push(`notification to ${redact(url)} failed: HTTP ${r.status}`);
        },
        (e: unknown) => {
          problems.push(`notification to ${redact(url)} failed: ${(e as Error).message}`);
        },
      ),
    );
  }
  if (cfg.command) {
    const command = cfg.command;
    jobs.push(
      new Promise<void>((resolve) => {
        const child = spawn("/bin/sh", ["-c", command], {
          stdio: ["pipe", "ignore", "ignore"],
          env: {
            ...process.env,
            LIFEBOAT_EVENT: notice.event,
            LIFEBOAT_MESSAGE: notice.message,
            LIFEBOAT_OK: notice.ok ? "1" : "0",
          },
        });
        const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
        child.on("error", (e) => {
          problems.push(`notify command failed: ${e.message}`);
        });
        child.on("close", (code) => {
          clearTimeout(timer);
          if (code !== 0) problems.push(`notify command exited with ${code}`);
          resolve();
        });
        child.stdin.on("error", () => {});
        child.stdin.end(`${JSON.stringify(body)}\n`);
      }),
    );
  }
  if (cfg.email) {
    const email = cfg.email;
    const smtp = cfg.smtpUrl ?? "smtp://127.0.0.1:25";
    jobs.push(
      (async () => {
        try {
          const { default: nodemailer } = await import("nodemailer"); // loaded on first use
          const transport = nodemailer.createTransport(smtp);
          const status = notice.ok ? "ok" : "PROBLEM";
          const sent = transport.sendMail({
            from: cfg.from ?? `lifeboat@${os.hostname()}`,
            to: email,
            subject: `lifeboat ${status}: ${notice.event} on ${body.host}`,
            text: [
              notice.message,
              ...(notice.reasons ?? []).map((r) => `- ${r}`),
              ...(notice.rollback ? ["", `To roll back: ${notice.rollback}`] : []),
              "",
              JSON.stringify(body, null, 2),
            ].join("\n"),
          });
          let timer: NodeJS.Timeout | undefined;
          const timeout = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error("timed out")), TIMEOUT_MS);
          });
          try {
            await Promise.race([sent, timeout]);
          } finally {
            clearTimeout(timer);
          }
          transport.close();
        } catch (e) {
          problems.push(
            `notification e-mail to ${email} via ${redact(smtp)} failed: ${(e as Error).message}`,
          );
        }
      })(),
    );
  }
  await Promise.all(jobs);
  return problems;
}

/** URLs may carry tokens; messages show only scheme, host and path. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "the webhook";
  }
}
