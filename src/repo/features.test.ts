import assert from "node:assert/strict";
import { test } from "node:test";
import { memoryBackend } from "../backend/memory.js";
import { LifeboatError } from "../core/errors.js";
import { BlobType } from "./blob.js";
import { ackKind } from "./records-ack.js";
import { Repository } from "./repository.js";

const params = { chunker: { min: 1024, avg: 4096, max: 16384 }, packSize: 64 * 1024 };

async function rejectsWith(p: Promise<unknown>, code: string): Promise<LifeboatError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof LifeboatError, String(e));
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

test("a repository with a read feature this version does not know is refused, with exit 18", async () => {
  const be = memoryBackend();
  const r = await Repository.init(be, "pw", {
    ...params,
    features: { read: ["from-the-future"], write: [] },
  });
  assert.equal(r.config.version, 2);
  await r.close();
  const e = await rejectsWith(Repository.open(be, "pw"), "NEWER_FORMAT");
  assert.match(e.message, /from-the-future/);
  assert.equal(e.exitCode, 18);
});

test("with an unknown write feature, the repository reads and nothing is written", async () => {
  const be = memoryBackend();
  const init = await Repository.init(be, "pw", { ...params, features: { read: [], write: ["w"] } });
  assert.deepEqual(init.config.features, { read: [], write: ["w"] });
  await init.close();
  const before = new Map([...be.objects()].map(([k, v]) => [k, Buffer.from(v)]));
  const r = await Repository.open(be, "pw");
  assert.deepEqual(await r.listSnapshots(), []);
  await rejectsWith(
    r.withWriter((w) => w.saveBlob(BlobType.data, Buffer.from("x"))),
    "NEWER_FORMAT",
  );
  const ack = { snapshot: "s", kind: "ack" as const, time: "t", host: "h", user: "u", note: "" };
  await rejectsWith(r.records.write(ackKind, ack), "NEWER_FORMAT");
  await rejectsWith(r.addKey("other"), "NEWER_FORMAT");
  await r.close();
  assert.deepEqual(
    [...be.objects()].map(([k, v]) => [k, v.toString("hex")]),
    [...before].map(([k, v]) => [k, v.toString("hex")]),
    "nothing was written",
  );
});
