import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import type { Writable } from "node:stream";
import { CorruptionError, LifeboatError } from "../../core/errors.js";
import { displayName } from "../../core/names.js";
import type { Repository } from "../../repo/repository.js";
import type { SnapshotWithId } from "../../repo/snapshot.js";
import { deviceNumbers, type TreeNode } from "../../repo/tree.js";
import { findByName, resolveSubpath } from "../../snapshot/subpath.js";
import { walkTree } from "../../snapshot/walker.js";
import { resolveInSnapshot } from "./select.js";
import { TarWriter } from "./tar.js";

/** Where dump output goes: resolves when the chunk may be followed by the next one. */
export type Sink = (chunk: Buffer) => Promise<void>;

/** A sink for a stream that honours backpressure and fails if the stream does. */
export function streamSink(stream: Writable): Sink {
  return (chunk) =>
    new Promise<void>((resolve, reject) => {
      const onError = (e: unknown) => reject(e);
      stream.once("error", onError);
      const ok = stream.write(chunk, (e) => {
        if (e) reject(e);
      });
      const done = () => {
        stream.off("error", onError);
        resolve();
      };
      if (ok) done();
      else stream.once("drain", done);
    });
}

/**
 * The content of a file, blob by blob, reading one blob ahead; checks the total against the
 * size the tree records.
 */
export async function* fileContent(repo: Repository, node: TreeNode, what: string): AsyncGenerator<Buffer> {
  const ids = node.content ?? [];
  let next: Promise<Buffer> | undefined = ids[0] ? repo.loadBlob(Buffer.from(ids[0], "hex")) : undefined;
  let n = 0;
  for (let i = 0; i < ids.length; i++) {
    const blob = await next!;
    const following = ids[i + 1];
    next = following ? repo.loadBlob(Buffer.from(following, "hex")) : undefined;
    // A failed read-ahead is reported when it is awaited, not as an unhandled rejection.
    next?.catch(() => {});
    n += blob.length;
    yield blob;
  }
  if (n !== (node.size ?? 0))
    throw new CorruptionError(what, `content has ${n} bytes but the snapshot says ${node.size}`);
}

export type DumpKind = "file" | "tar";

/** Writes the file at `subpath` as it is, or the folder at `subpath` as a tar stream. */
export async function dump(
  repo: Repository,
  snapshot: SnapshotWithId,
  subpath: string,
  sink: Sink,
): Promise<{ kind: DumpKind; bytes: number; entries: number }> {
  const parts = subpath.split("/").filter((p) => p !== "" && p !== ".");
  const clean = `/${parts.join("/")}`;
  const target = await resolveInSnapshot(repo, snapshot, clean);
  if (target.kind === "node") {
    const node = target.node;
    if (node.type === "symlink") {
      throw new LifeboatError(
        "USAGE",
        `${displayName(clean)} is a symbolic link to ${JSON.stringify(displayName(node.target ?? ""))}`,
        "dump the path it points to, or its folder (as a tar archive)",
      );
    }
    if (node.type !== "file") {
      throw new LifeboatError(
        "USAGE",
        `${displayName(clean)} is a ${node.type === "fifo" ? "FIFO" : "device node"}: it has no content`,
        "dump its folder (as a tar archive)",
      );
    }
    let bytes = 0;
    for await (const chunk of fileContent(repo, node, `file ${clean}`)) {
      bytes += chunk.length;
      await sink(chunk);
    }
    return { kind: "file", bytes, entries: 1 };
  }
  let rootNode: TreeNode | undefined;
  if (parts.length > 0) {
    const parent = await resolveSubpath(repo, snapshot, `/${parts.slice(0, -1).join("/")}`);
    if (parent.kind === "dir") rootNode = findByName((await repo.loadTree(parent.tree)).nodes, parts.at(-1)!);
  }
  const base = rootNode?.name ?? parts.at(-1) ?? "";
  return { kind: "tar", ...(await dumpTar(repo, target.tree, base, sink, rootNode)) };
}

/**
 * A folder as a tar stream: entries are named `<base>/...` (or with no prefix when `base` is
 * empty, for the snapshot root). The folder itself gets the metadata of `rootNode` if given.
 */
export async function dumpTar(
  repo: Repository,
  tree: string,
  base: string,
  sink: Sink,
  rootNode?: TreeNode,
): Promise<{ bytes: number; entries: number }> {
  const tar = new TarWriter(async (chunk) => {
    bytes += chunk.length;
    await sink(chunk);
  });
  let bytes = 0;
  let entries = 0;
  const links = new Map<string, string>();
  const meta = (n: TreeNode, name: string) => ({
    name,
    mode: n.mode,
    uid: n.uid,
    gid: n.gid,
    mtime: Number(BigInt(n.mtime) / 1_000_000_000n),
    ...(n.xattrs
      ? { xattrs: n.xattrs.map((x) => ({ name: x.name, value: Buffer.from(x.value, "base64") })) }
      : {}),
  });
  if (base) {
    const now = Math.floor(Date.now() / 1000);
    await tar.addDir(
      rootNode ? meta(rootNode, base) : { name: base, mode: 0o755, uid: 0, gid: 0, mtime: now },
    );
    entries++;
  }
  await walkTree(
    repo,
    tree,
    {
      async node(n, p) {
        const name = p.replace(/^\//, "");
        entries++;
        if (n.type === "dir") {
          await tar.addDir(meta(n, name));
        } else if (n.type === "symlink") {
          await tar.addSymlink(meta(n, name), n.target ?? "");
        } else if (n.type === "fifo") {
          await tar.addSpecial(meta(n, name), "fifo");
        } else if (n.type === "chardev" || n.type === "blockdev") {
          const { major, minor } = deviceNumbers(n.rdev ?? "0");
          await tar.addSpecial({ ...meta(n, name), devmajor: major, devminor: minor }, n.type);
        } else {
          const key = n.links && n.links > 1 && n.inode ? `${n.device ?? ""}:${n.inode}` : undefined;
          const first = key ? links.get(key) : undefined;
          if (first) {
            await tar.addHardLink(meta(n, name), first);
            return undefined;
          }
          await tar.addFile(
            { ...meta(n, name), size: n.size ?? 0 },
            fileContent(repo, n, `file /${displayName(name)}`),
          );
          if (key) links.set(key, name);
        }
        return undefined;
      },
    },
    { path: base ? `/${base}` : "" },
  );
  await tar.finish();
  return { bytes, entries };
}

/**
 * Runs `produce` into a temporary file beside `file` and renames it into place once complete
 * (and flushed), so `file` is either the old content or the whole new one.
 */
export async function writeAtomically(file: string, produce: (sink: Sink) => Promise<void>): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(
    dir,
    `.${path.basename(file).slice(0, 100)}.lifeboat-${randomBytes(6).toString("hex")}`,
  );
  const fh = await fs.open(tmp, "wx", 0o600);
  try {
    await produce(async (chunk) => {
      let off = 0;
      while (off < chunk.length) off += (await fh.write(chunk, off)).bytesWritten;
    });
    await fh.chmod(0o644 & ~process.umask());
    await fh.sync();
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => {});
    await fs.rm(tmp, { force: true });
    throw e;
  }
  try {
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
