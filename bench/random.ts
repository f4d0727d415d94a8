import { createCipheriv } from "node:crypto";

/** Deterministic bytes and text for the datasets: same seed → same bytes on every machine. */

/** AES-128-CTR keystream under a key made from the seed: fast, incompressible, reproducible. */
export function keystream(seed: number, n: number): Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32LE(seed >>> 0, 0);
  return createCipheriv("aes-128-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** xorshift32: cheap deterministic numbers in [0, 1). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

/** An integer in [lo, hi]. */
export function between(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

export function pick<T>(r: () => number, items: readonly T[]): T {
  return items[Math.floor(r() * items.length)]!;
}

const WORDS =
  "the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part".split(
    " ",
  );

/** Words drawn evenly from a small vocabulary (the mixed profile's text; kept byte for byte). */
export function text(r: () => number, bytes: number): string {
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    const w = WORDS[Math.floor(r() * WORDS.length)]!;
    parts.push(w);
    n += w.length + 1;
    if (r() < 0.08) parts.push(".\n");
  }
  return parts.join(" ");
}

const SYLLABLES =
  "ba be bi bo bu ca co cu da de di do fa fe fi fo ga ge go ha he hi ho ja ka ke ki ko la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo wa we wi ya yo za ze st tr pl gr cl ch sh th ng nd rt lt nt".split(
    " ",
  );

/**
 * A vocabulary shaped like English: the common words first, then made-up words of two to four
 * syllables for the long tail. Drawn with a Zipf-like law (see `word`), text made of it
 * compresses about as well as real prose does.
 */
const VOCABULARY: string[] = (() => {
  const r = rng(1234);
  const words = [...WORDS];
  const seen = new Set(words);
  while (words.length < 6000) {
    const n = between(r, 2, 4);
    let w = "";
    for (let i = 0; i < n; i++) w += pick(r, SYLLABLES);
    if (!seen.has(w)) {
      seen.add(w);
      words.push(w);
    }
  }
  return words;
})();

/** One word; the k-th most common comes up about 1/k as often as the first. */
export function word(r: () => number): string {
  return VOCABULARY[Math.floor(Math.exp(r() * Math.log(VOCABULARY.length))) - 1]!;
}

/** A sentence of 4 to 18 words, capitalised, with an occasional comma. */
export function sentence(r: () => number): string {
  const n = between(r, 4, 18);
  const w: string[] = [];
  for (let i = 0; i < n; i++) w.push(word(r) + (i < n - 1 && r() < 0.07 ? "," : ""));
  const s = w.join(" ");
  const end = r() < 0.85 ? "." : r() < 0.6 ? "?" : "!";
  return s.charAt(0).toUpperCase() + s.slice(1) + end;
}

/** Prose of about `bytes` characters, in paragraphs wrapped at 72 columns. */
export function prose(r: () => number, bytes: number): string {
  const lines: string[] = [];
  let total = 0;
  while (total < bytes) {
    const sentences = between(r, 1, 5);
    let para = "";
    for (let i = 0; i < sentences; i++) para += (i > 0 ? " " : "") + sentence(r);
    const wrapped = wrap(para, 72);
    lines.push(...wrapped, "");
    total += para.length + wrapped.length + 1;
  }
  return lines.join("\n");
}

export function wrap(s: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const w of s.split(" ")) {
    if (line.length > 0 && line.length + 1 + w.length > width) {
      out.push(line);
      line = w;
    } else line = line.length > 0 ? `${line} ${w}` : w;
  }
  if (line.length > 0) out.push(line);
  return out;
}
