import assert from "node:assert/strict";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { localBackend } from "./local.js";
import { throttled } from "./throttle.js";

test("uploads and downloads together stay under the limit", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-throttle-"));
  try {
    const rate = 256 * 1024;
    const b = throttled(localBackend({ path: dir, fsync: false }), { upload: rate, download: rate });
    await b.create();
    const data = Buffer.alloc(128 * 1024, 1);
    const t0 = Date.now();
    // 1 MiB in 8 concurrent puts: the first second's burst covers 256 KiB, the rest takes ~3 s.
    await Promise.all(Array.from({ length: 8 }, (_, i) => b.put(`o${i}`, data)));
    const up = (Date.now() - t0) / 1000;
    assert.ok(up >= 2.5, `1 MiB at 256 KiB/s took only ${up}s`);
    const t1 = Date.now();
    for (let i = 0; i < 4; i++) await b.get(`o${i}`);
    const down = (Date.now() - t1) / 1000;
    assert.ok(down >= 0.9, `512 KiB at 256 KiB/s took only ${down}s`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test("objects written in pieces count against the upload limit too", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "lifeboat-throttle-"));
  try {
    const rate = 512 * 1024;
    const b = throttled(localBackend({ path: dir, fsync: false }), { upload: rate });
    await b.create();
    const w = await b.openWriter!("data");
    const t0 = Date.now();
    // 1.5 MiB in 128 KiB pieces: the first second's burst covers 512 KiB, the rest ~2 s.
    for (let i = 0; i < 12; i++) await w.write(Buffer.alloc(128 * 1024, i));
    await w.commit("data/aa/streamed");
    const up = (Date.now() - t0) / 1000;
    assert.ok(up >= 1.5, `1.5 MiB at 512 KiB/s took only ${up}s`);
    assert.equal((await b.get("data/aa/streamed")).length, 12 * 128 * 1024);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
