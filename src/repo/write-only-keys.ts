import { isRetained, LifeboatError } from "../core/errors.js";
import { names } from "./config.js";
import { endSession, listPlans, liveSessions, type SessionHandle, startSession } from "./gc-plan.js";
import type { IndexPack } from "./index-file.js";
import { needsFullKey } from "./key-ring.js";
import { planKind } from "./records-gc.js";
import type { Repository } from "./repository.js";
import { SealMode } from "./sealed-object.js";

export interface AddWriteOnlyKeyResult {
  /** The new key's id (its key file is `keys/<id>`). */
  id: string;
  /** Index files that were sealed for full keys only and were replaced by one sealed with the index key. */
  indexFilesResealed: number;
  /** Prune plans rewritten for the same reason. */
  plansResealed: number;
}

/**
 * `key add --write-only`: makes a write-only key (docs/format.md, "Write-only keys"). Nothing
 * stored is re-encrypted; what is rewritten, once:
 * 1. the config, with format feature `write-only` and the new key's public signing key, and
 *    config.wo beside it (the config sealed with the index key, which the new key reads);
 * 2. the index files sealed with the metadata key: one new index file, sealed with the index key
 *    and signed by the owner, supersedes them (as prune does), so the new key can deduplicate;
 * 3. prune plans sealed with the metadata key, written again with the index key (a write-only
 *    key must see every plan, or it could deduplicate against packs about to be deleted);
 * 4. the new key file, last: until it exists, nobody holds the key.
 * Steps 2 and 3 run as a prune does, in a prune session that refuses to start beside another
 * prune, so that no index rewrite races with this one. A crash anywhere leaves a repository that
 * full keys read as before; running the command again finishes the job.
 */
export async function addWriteOnlyKey(repo: Repository, password: string): Promise<AddWriteOnlyKeyResult> {
  if (repo.keyKind !== "full") throw needsFullKey("make write-only keys");
  repo.requireWritable();
  const session = await exclusiveSession(repo);
  try {
    const key = await repo.registerWriteOnlyKey(password);
    const indexFilesResealed = await resealIndex(repo);
    const plansResealed = await resealPlans(repo);
    await repo.storeKeyFile(key.id, key.bytes);
    return { id: key.id, indexFilesResealed, plansResealed };
  } finally {
    await endSession(repo, session).catch(() => {});
  }
}

async function exclusiveSession(repo: Repository): Promise<SessionHandle> {
  const session = await startSession(repo, "prune");
  const other = (await liveSessions(repo)).find((s) => s.kind === "prune" && s.id !== session.id);
  if (other) {
    await endSession(repo, session).catch(() => {});
    throw new LifeboatError(
      "REPO_BUSY",
      `a prune is running on this repository (host ${other.host}, pid ${other.pid}, since ${other.started})`,
      "wait for it to finish, then run this again",
    );
  }
  return session;
}

/** The key mode of a stored sealed object (byte 6 of its envelope), from an 8-byte ranged read. */
async function sealModeOfObject(repo: Repository, name: string): Promise<number | undefined> {
  const head = await repo.backend.get(name, { offset: 0, length: 8 });
  return head.length === 8 ? head[6] : undefined;
}

async function resealIndex(repo: Repository): Promise<number> {
  await repo.reloadIndex(true);
  const files = repo.indexFiles();
  const old = [...files.loaded, ...files.superseded];
  let sealedForFull = 0;
  for (const f of old)
    if ((await sealModeOfObject(repo, names.index(f))) === SealMode.derived) sealedForFull++;
  if (sealedForFull === 0) return 0;
  const packs = new Map<string, IndexPack>();
  for (const f of files.loaded)
    for (const p of (await repo.readIndexFile(f)).packs) if (!packs.has(p.id)) packs.set(p.id, p);
  const written = await repo.writeIndexFile({ supersedes: old, packs: [...packs.values()] });
  for (const f of old) {
    if (f === written) continue;
    // Under Object Lock an old file stays until its retention ends, superseded (never read).
    await repo.backend.delete(names.index(f)).catch((e: unknown) => {
      if (!isRetained(e)) throw e;
    });
  }
  await repo.reloadIndex(true);
  return sealedForFull;
}

async function resealPlans(repo: Repository): Promise<number> {
  let n = 0;
  for (const plan of await listPlans(repo)) {
    if ((await sealModeOfObject(repo, plan.object)) !== SealMode.derived) continue;
    const { id: _id, object: _object, ...record } = plan;
    // The same plan, sealed with the index key; a crash in between leaves both (harmless: a
    // sweep carries out the second one with nothing left to delete).
    await repo.records.write(planKind, record);
    await repo.records.delete(plan.object);
    n++;
  }
  return n;
}
