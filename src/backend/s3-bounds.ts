import { Readable, Transform } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";

/**
 * Bounds on what an S3 endpoint may answer, so a hostile or broken one (a body that never ends,
 * one that trickles, a server that stops mid-answer) ends in a clear error within a known time
 * and bounded memory. The SDK's own `requestTimeout` only logs a warning, and its retries would
 * read an endless body five times over, in memory.
 *
 * - A request that receives no byte for `S3_IDLE_MS`, or under `S3_MIN_RATE` bytes a second over
 *   a window of that length, has stalled. A stalled request is tried twice in all (the SDK's
 *   retry for the answers it reads itself, `s3Backend().get` for object bodies): a stalled
 *   server makes a command fail after about 2 × 30 s.
 * - Answers the SDK reads itself (listings, errors, HEAD) are refused past `S3_MAX_ANSWER`; an
 *   object body past what was asked, its Content-Length, or `S3_MAX_UNDECLARED` when the server
 *   gives no length (S3 always does). A refused answer is not retried.
 */
export const S3_IDLE_MS = 30_000;
/** Bytes per second below which a body counts as stalled (averaged over S3_IDLE_MS). */
export const S3_MIN_RATE = 1024;
const MiB = 1024 * 1024;
/** A listing page of 1000 keys is about 0.4 MiB; error documents and HEAD answers are tiny. */
export const S3_MAX_ANSWER = 8 * MiB;
/** Pack offsets are u32 in the format: no object lifeboat reads is larger. */
export const S3_MAX_OBJECT = 2 ** 32;
/** An object body without a Content-Length is read at most this far. */
export const S3_MAX_UNDECLARED = 256 * MiB;
/** How often the watchdog looks at a body. */
const TICK_MS = 1000;

export type S3AnswerProblem = "too-large" | "stalled" | "slow";

/** What a bounded body reports; `s3Error` turns it into a LifeboatError. */
export class S3AnswerError extends Error {
  readonly problem: S3AnswerProblem;
  /** The byte bound that was passed ("too-large"), or the bytes seen in the last window ("slow"). */
  readonly bytes: number;
  /** Read by the SDK's retry: set only on the first stall of a request. */
  $retryable?: { throttling?: boolean };
  /** Set so the SDK's deserializer neither rewrites the message nor marks it retryable by status. */
  $metadata: { attempts?: number } = {};

  constructor(problem: S3AnswerProblem, bytes: number, retryable: boolean) {
    super(
      problem === "too-large"
        ? `answer longer than ${bytes} bytes`
        : problem === "stalled"
          ? `no data for ${S3_IDLE_MS / 1000} s`
          : `${bytes} bytes in ${S3_IDLE_MS / 1000} s`,
    );
    this.name = "S3AnswerError";
    this.problem = problem;
    this.bytes = bytes;
    if (retryable) this.$retryable = {};
  }
}

/** Counts the stalls of one request (all its attempts); the first one may be retried. */
export interface StallCount {
  stalls: number;
}

/** The HTTP handler's inactivity timeout (`socketTimeout`); it also names a reset connection
 * (ECONNRESET, EPIPE) "TimeoutError", which the SDK's retry handles as before. */
function isTimeout(e: unknown): boolean {
  const err = e as { name?: string; code?: string; message?: string } | undefined;
  return err?.name === "TimeoutError" && err.code === undefined && /timed out after/.test(err.message ?? "");
}

/** A stall error: retryable the first time for this request, not after. */
function stalled(count: StallCount, problem: "stalled" | "slow", bytes: number): S3AnswerError {
  count.stalls++;
  return new S3AnswerError(problem, bytes, count.stalls === 1);
}

/**
 * Wraps a response body: fails it with an S3AnswerError once more than `limit` bytes arrived, or
 * when it stalls (see above). Destroying the returned stream destroys `source` (which ends the
 * request). A socket timeout of the HTTP handler on `source` becomes a stall as well.
 */
export function boundBody(source: Readable, limit: number, count: StallCount): Readable {
  let total = 0;
  let windowBytes = 0;
  let windowStart = Date.now();
  let lastByte = Date.now();
  let done = false;
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      total += chunk.length;
      windowBytes += chunk.length;
      lastByte = Date.now();
      if (total > limit) cb(new S3AnswerError("too-large", limit, false));
      else cb(null, chunk);
    },
    destroy(err, cb) {
      stop();
      if (!source.destroyed) source.destroy();
      cb(err);
    },
  });
  const timer = setInterval(() => {
    const now = Date.now();
    // A reader that does not take what arrived is not the server's fault.
    if (out.readableLength >= out.readableHighWaterMark) {
      lastByte = now;
      windowStart = now;
      windowBytes = 0;
      return;
    }
    if (now - lastByte >= S3_IDLE_MS) out.destroy(stalled(count, "stalled", 0));
    else if (now - windowStart >= S3_IDLE_MS) {
      if (windowBytes < (S3_MIN_RATE * S3_IDLE_MS) / 1000) out.destroy(stalled(count, "slow", windowBytes));
      windowStart = now;
      windowBytes = 0;
    }
  }, TICK_MS);
  timer.unref();
  function stop() {
    if (done) return;
    done = true;
    clearInterval(timer);
  }
  source.once("end", stop);
  source.on("error", (e) => out.destroy(isTimeout(e) ? stalled(count, "stalled", 0) : e));
  source.pipe(out);
  return out;
}

/**
 * Adds the bounds to every request of `client`: the HTTP handler's socket timeout (before the
 * answer's headers) counts as a stall, and every response body is wrapped by `boundBody` — with
 * S3_MAX_OBJECT for a successful GetObject (whose body `get` reads with tighter bounds of its
 * own) and S3_MAX_ANSWER for everything else. The middleware sits innermost in the deserialize
 * step, so it runs once per attempt and the SDK's retry sees its errors.
 */
export function addAnswerBounds(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => {
      const count: StallCount = { stalls: 0 };
      return async (args) => {
        let result: Awaited<ReturnType<typeof next>>;
        try {
          result = await next(args);
        } catch (e) {
          // The second stall of a request is final: not `TimeoutError`, so not retried again.
          if (isTimeout(e) && ++count.stalls > 1) throw new S3AnswerError("stalled", 0, false);
          throw e;
        }
        const response = result.response as { statusCode?: number; body?: unknown };
        if (response.body instanceof Readable) {
          const ok = (response.statusCode ?? 0) >= 200 && (response.statusCode ?? 0) < 300;
          const limit = ok && context.commandName === "GetObjectCommand" ? S3_MAX_OBJECT : S3_MAX_ANSWER;
          response.body = boundBody(response.body, limit, count);
        }
        return result;
      };
    },
    { step: "deserialize", priority: "low", name: "lifeboatAnswerBounds" },
  );
}
