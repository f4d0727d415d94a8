import v8 from "node:v8";

/**
 * Asks V8 to collect the old generation once it has grown by 60% instead of letting it reach
 * up to several times what is live. A restore holds a batch of files' plans (2,048 files) long
 * enough for them to outlive the young generation, and each batch then lies dead in the old one:
 * a mail store's restore (30,300 files) went from 33 to 86 MiB of JS heap between two
 * collections. With this its peak went from 171–185 to 148–152 MiB resident, for about 5% more
 * CPU. Not for backups: they promote more and collected this often spent 20–30% more CPU
 * (docs/benchmarks.md). V8 reads the flag at every collection, so setting it at run time works
 * (the young generation's size, `--max-semi-space-size`, can only be set when Node starts: the
 * `lifeboat` command's first line does).
 */
export function collectOldGenerationSooner(): void {
  v8.setFlagsFromString("--heap-growing-percent=60");
}
