import v8 from "node:v8";

/**
 * Asks V8 to collect the old generation once it has grown by 60% instead of letting it reach
 * up to several times what is live: for commands that read a snapshot (restore, ls, find,
 * diff) or all of them (check), whose garbage outlives the young generation. A restore holds a batch of files' plans
 * (2,048 files) that long, and each batch then lies dead in the old one: a mail store's restore
 * (30,300 files) went from 33 to 86 MiB of JS heap between two collections. With this its peak
 * went from 171–185 to 148–152 MiB resident, for about 5% more CPU; `ls -l` and `find` of
 * 100,000 files from 150 to 131 MiB; `check --read-data` of 100,000 files 255–264 → 222 MiB
 * and of a million 520 → 428 MiB, for 2–4% more CPU. Not for backups: they promote more, and a first backup
 * collected this often spent 10–40% more CPU (docs/benchmarks.md). V8 reads the flag at every
 * collection, so setting it at run time works (the young generation's size,
 * `--max-semi-space-size`, can only be set when Node starts: the `lifeboat` command's first
 * line does).
 */
export function collectOldGenerationSooner(): void {
  v8.setFlagsFromString("--heap-growing-percent=60");
}
