import assert from "node:assert/strict";
import { PassThrough, Readable } from "node:stream";
import { test } from "node:test";
import { boundBody, S3AnswerError } from "./s3-bounds.js";

async function read(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test("a body within its bound passes through whole", async () => {
  const data = Buffer.alloc(100_000, 7);
  const out = boundBody(Readable.from([data.subarray(0, 60_000), data.subarray(60_000)]), 100_000, {
    stalls: 0,
  });
  assert.ok((await read(out)).equals(data));
});

test("a body past its bound fails, is not retryable, and ends the source", async () => {
  const source = new PassThrough();
  const out = boundBody(source, 1000, { stalls: 0 });
  source.write(Buffer.alloc(600));
  source.write(Buffer.alloc(600));
  const e = await read(out).then(
    () => assert.fail("no error"),
    (x: unknown) => x,
  );
  assert.ok(e instanceof S3AnswerError);
  assert.equal(e.problem, "too-large");
  assert.equal(e.bytes, 1000);
  assert.equal(e.$retryable, undefined);
  assert.equal(source.destroyed, true);
});

test("the HTTP handler's socket timeout is a stall: retryable the first time of a request only", async () => {
  const count = { stalls: 0 };
  const timeout = () =>
    Object.assign(new Error("@smithy/node-http-handler - the request socket timed out after 30000 ms"), {
      name: "TimeoutError",
    });
  const errors: unknown[] = [];
  for (let i = 0; i < 2; i++) {
    const source = new PassThrough();
    const out = boundBody(source, 1000, count);
    source.destroy(timeout());
    errors.push(await read(out).catch((x: unknown) => x));
  }
  const [first, second] = errors as S3AnswerError[];
  assert.equal(first?.problem, "stalled");
  assert.deepEqual(first?.$retryable, {});
  assert.equal(second?.problem, "stalled");
  assert.equal(second?.$retryable, undefined);
});

test("a reset connection is passed on as it is (the SDK's retry handles it)", async () => {
  const source = new PassThrough();
  const out = boundBody(source, 1000, { stalls: 0 });
  const reset = Object.assign(new Error("socket hang up"), { name: "TimeoutError", code: "ECONNRESET" });
  source.destroy(reset);
  assert.equal(await read(out).catch((x: unknown) => x), reset);
});
