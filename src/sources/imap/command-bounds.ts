import type { ImapFlow } from "imapflow";
import { LifeboatError } from "../../core/errors.js";

/**
 * Bounds on each IMAP command after login, so a server that logs in fine and then answers
 * garbage, endless junk, a huge literal or nothing at all ends the pull with a clear error within
 * a known time and bounded memory. imapflow times out only a silent socket (after 5 minutes), and
 * a server that keeps talking without ever completing the command is never timed out.
 *
 * Each command gets a byte budget from what it asks for (a LIST: 8 MiB; a FETCH of message
 * sources: their sizes as the server stated them, plus framing); more than that is refused. It
 * fails when nothing arrives for IMAP_IDLE_MS, and when it takes longer than IMAP_MIN_TIME_MS or
 * IMAP_IDLE_MS plus its budget at IMAP_MIN_RATE, whichever is longer (a LIST: 5 min; a FETCH of
 * 100 MiB of messages: 60 + 1776 s). Bytes are counted by imapflow
 * (`client.stats().received`); the connection is closed on failure, which ends the command.
 */
export const IMAP_IDLE_MS = 60_000;
/** Every command may take this long (a server may be slow to open a large folder, saying
 * "* OK still here" meanwhile), and longer when its budget at IMAP_MIN_RATE takes longer. */
export const IMAP_MIN_TIME_MS = 5 * 60_000;
/** Bytes per second a command's answer must at least average (its time bound). */
export const IMAP_MIN_RATE = 64 * 1024;
const MiB = 1024 * 1024;
/** Budgets: fixed slack per command, and what one message line of a FETCH may take. */
export const IMAP_COMMAND_SLACK = MiB;
export const IMAP_LIST_BUDGET = 8 * MiB;
export const IMAP_PER_MESSAGE = 512;
/** imapflow's parser caps (its defaults are 1 GiB a line or literal, 2 GiB a response). */
export const IMAP_MAX_LINE = 64 * MiB;
export const IMAP_MAX_LITERAL = 512 * MiB;
export const IMAP_MAX_RESPONSE = IMAP_MAX_LITERAL + IMAP_MAX_LINE;
const TICK_MS = 250;

/** The budget of a FETCH of message sources whose stated sizes are `sizes`. */
export function sourceBudget(sizes: readonly number[]): number {
  let n = IMAP_COMMAND_SLACK;
  for (const s of sizes) n += Math.min(Math.max(s, 0), IMAP_MAX_LITERAL) * 1.1 + IMAP_PER_MESSAGE;
  return Math.ceil(n);
}

/** The budget of a command that answers one short line per message (FETCH flags, SEARCH). */
export function perMessageBudget(messages: number): number {
  return IMAP_COMMAND_SLACK + Math.max(messages, 0) * IMAP_PER_MESSAGE;
}

/** The last error each client emitted: a command failed by a closed connection reports it. */
const lastErrors = new WeakMap<ImapFlow, unknown>();

/**
 * Keeps what `client` emits as "error" (and so keeps the emitter quiet). imapflow rejects the
 * running command with a bare "NoConnection" when it drops the connection on a protocol error
 * (a literal over the cap, a line too long): that error is the one worth reporting.
 */
export function recordErrors(client: ImapFlow): void {
  client.on("error", (e: unknown) => lastErrors.set(client, e));
}

function why(client: ImapFlow, e: unknown): unknown {
  return (e as { code?: string } | undefined)?.code === "NoConnection" ? (lastErrors.get(client) ?? e) : e;
}

const mib = (n: number) => `${Math.round((n / MiB) * 10) / 10} MiB`;

/**
 * Runs `run` (one or a few imapflow commands answering `what`) under the bounds above. On a
 * breach the connection is closed and a LifeboatError is thrown: SOURCE_UNREADABLE when the
 * server sent more than the budget, UNREACHABLE when it stalled or was too slow.
 */
export function boundedCommand<T>(
  client: ImapFlow,
  /** `host:port`, for messages. */
  where: string,
  what: string,
  budget: number,
  run: () => Promise<T>,
): Promise<T> {
  const received = () => client.stats().received;
  const start = received();
  const t0 = Date.now();
  const limitMs = Math.max(IMAP_MIN_TIME_MS, IMAP_IDLE_MS + Math.ceil((budget / IMAP_MIN_RATE) * 1000));
  let seen = 0;
  let lastAt = t0;
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const settle = () => {
      if (settled) return false;
      settled = true;
      clearInterval(timer);
      return true;
    };
    const fail = (e: LifeboatError) => {
      if (!settle()) return;
      reject(e);
      client.close();
    };
    const timer = setInterval(() => {
      const now = Date.now();
      const got = received() - start;
      if (got > budget)
        return fail(
          new LifeboatError(
            "SOURCE_UNREADABLE",
            `IMAP server ${where} sent more than ${mib(budget)} in answer to ${what}; refused`,
            "check that the address is an IMAP server (and its health); run the pull again",
          ),
        );
      if (got !== seen) {
        seen = got;
        lastAt = now;
      } else if (now - lastAt >= IMAP_IDLE_MS)
        return fail(
          new LifeboatError(
            "UNREACHABLE",
            `IMAP server ${where} sent nothing for ${IMAP_IDLE_MS / 1000} s in answer to ${what}`,
            "check the IMAP server's health and the network; run the pull again",
          ),
        );
      if (now - t0 >= limitMs)
        fail(
          new LifeboatError(
            "UNREACHABLE",
            `IMAP server ${where} did not finish answering ${what} within ${Math.round(limitMs / 1000)} s (${mib(got)} received)`,
            "check the IMAP server's health and the network; run the pull again",
          ),
        );
    }, TICK_MS);
    timer.unref();
    run().then(
      (v) => {
        if (settle()) resolve(v);
      },
      (e: unknown) => {
        if (settle()) reject(why(client, e));
      },
    );
  });
}
