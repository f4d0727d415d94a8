/**
 * A stable fraction in [0, 1) for a list of strings: the same inputs give the same number in
 * every process and Node version, so an account's start time and retry jitter are reproducible
 * (and testable) without storing them. cyrb53 (public domain, by bryc): two 32-bit lanes mixed
 * with Murmur-style finalisers, 53 bits out; well spread for ids that differ in one character.
 * Not a cryptographic hash: it only has to spread load.
 */
export function stableFraction(...parts: string[]): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let p = 0; p < parts.length; p++) {
    const s = parts[p]!;
    // A separator that cannot occur in text, so ("ab","c") and ("a","bc") differ.
    const len = s.length;
    for (let i = 0; i <= len; i++) {
      const ch = i < len ? s.charCodeAt(i) : 0x10000 + p;
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const bits53 = 4294967296 * (2097151 & h2) + (h1 >>> 0);
  return bits53 / 2 ** 53;
}
