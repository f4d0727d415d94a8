import fc from "fast-check";

/**
 * Input generators for the fuzz tests: random bytes, and valid encodings (made by the real
 * encoders) damaged the way storage and hostile writers damage them — bit flips, overwritten
 * bytes, length fields set to extreme values, truncation, extension and splices.
 */

/** Values a length or count field is most likely to be broken into (u32 and u16). */
const EXTREMES = [
  0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe,
  0xffffffff,
];

type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; value: number }
  | { kind: "u32"; at: number; value: number; bigEndian: boolean }
  | { kind: "truncate"; at: number }
  | { kind: "extend"; bytes: Uint8Array }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; length: number }
  | { kind: "splice"; at: number; from: number; start: number; length: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("flip"), at: fc.nat(), bit: fc.nat(7) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("set"), at: fc.nat(), value: fc.nat(255) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("u32"),
      at: fc.nat(),
      value: fc.oneof(fc.constantFrom(...EXTREMES), fc.nat({ max: 0xffffffff })),
      bigEndian: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("truncate"), at: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("extend"), bytes: fc.uint8Array({ maxLength: 600 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("insert"),
      at: fc.nat(),
      bytes: fc.uint8Array({ maxLength: 64 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("delete"),
      at: fc.nat(),
      length: fc.integer({ min: 1, max: 600 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("splice"),
      at: fc.nat(),
      from: fc.nat(),
      start: fc.nat(),
      length: fc.integer({ min: 1, max: 1024 }),
    }),
  },
);

function apply(buf: Buffer, m: Mutation, samples: readonly Buffer[]): Buffer {
  const n = buf.length;
  switch (m.kind) {
    case "flip": {
      if (n === 0) return buf;
      const out = Buffer.from(buf);
      out[m.at % n]! ^= 1 << m.bit;
      return out;
    }
    case "set": {
      if (n === 0) return buf;
      const out = Buffer.from(buf);
      out[m.at % n] = m.value;
      return out;
    }
    case "u32": {
      if (n < 4) return buf;
      const out = Buffer.from(buf);
      const at = m.at % (n - 3);
      if (m.bigEndian) out.writeUInt32BE(m.value, at);
      else out.writeUInt32LE(m.value, at);
      return out;
    }
    case "truncate":
      return buf.subarray(0, m.at % (n + 1));
    case "extend":
      return Buffer.concat([buf, m.bytes]);
    case "insert": {
      const at = m.at % (n + 1);
      return Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at)]);
    }
    case "delete": {
      const at = m.at % (n + 1);
      return Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.length)]);
    }
    case "splice": {
      // A piece of another valid encoding (or of this one) pasted over this one.
      const other = samples[m.from % samples.length]!;
      const start = m.start % (other.length + 1);
      const piece = other.subarray(start, start + m.length);
      const at = m.at % (n + 1);
      return Buffer.concat([buf.subarray(0, at), piece, buf.subarray(at + piece.length)]);
    }
  }
}

/**
 * Makes fast-check print a counterexample buffer as code that recreates it: the text when it
 * is UTF-8, else base64 (its default is a list of numbers, unreadable for a JSON document).
 */
export function printable(buf: Buffer): Buffer {
  const text = buf.toString("utf8");
  const shown = Buffer.from(text, "utf8").equals(buf)
    ? `Buffer.from(${JSON.stringify(text)})`
    : `Buffer.from("${buf.toString("base64")}", "base64")`;
  return Object.assign(buf, { [fc.toStringMethod]: () => shown });
}

/** A text input that prints as `how` (an expression that recreates it) when it is a counterexample. */
export class Text {
  constructor(
    readonly value: string,
    readonly how = JSON.stringify(value),
  ) {}
  [fc.toStringMethod](): string {
    return this.how;
  }
}

/** One of `samples`, damaged by one to four mutations. */
export function mutated(samples: readonly Buffer[]): fc.Arbitrary<Buffer> {
  return fc
    .tuple(fc.nat(samples.length - 1), fc.array(mutation, { minLength: 1, maxLength: 4 }))
    .map(([i, ms]) => printable(ms.reduce((b, m) => apply(b, m, samples), samples[i]!)));
}

/** Random bytes, sometimes starting with a valid encoding's first bytes (its magic). */
export function randomBytes(samples: readonly Buffer[] = [], maxLength = 4096): fc.Arbitrary<Buffer> {
  const plain = fc.uint8Array({ maxLength }).map((a) => printable(Buffer.from(a)));
  if (samples.length === 0) return plain;
  return fc.oneof(
    plain,
    fc
      .tuple(fc.nat(samples.length - 1), fc.nat(64), fc.uint8Array({ maxLength }))
      .map(([i, keep, rest]) => printable(Buffer.concat([samples[i]!.subarray(0, keep), rest]))),
  );
}

/** What a byte decoder is fed: valid encodings, damaged ones and random bytes. */
export function hostileBytes(samples: readonly Buffer[], maxLength = 4096): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.constantFrom(...samples).map((b) => printable(Buffer.from(b))) },
    { weight: 6, arbitrary: mutated(samples) },
    { weight: 2, arbitrary: randomBytes(samples, maxLength) },
  );
}

// --- JSON documents -------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** JSON values chosen to break a validator: wrong types, extremes, path tricks. */
const nastyJson: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    -0.5,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    1e308,
    -1e308,
    "",
    "0",
    "-1",
    "..",
    "../../etc/passwd",
    "a/b",
    "\u0000",
    "0".repeat(64),
    "f".repeat(64),
    "not a date",
    "1970-01-01T00:00:00Z",
    [],
    {},
    [null],
    ["x"],
    { a: 1 },
  ),
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
);

type Op =
  | { kind: "replace"; at: number; value: Json }
  | { kind: "remove"; at: number }
  | { kind: "add"; at: number; key: string; value: Json };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("replace"), at: fc.nat(), value: nastyJson }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("remove"), at: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("add"),
      at: fc.nat(),
      key: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("__proto__", "constructor", "toString")),
      value: nastyJson,
    }),
  },
);

/** Every container and value in `doc`, as parent + key (the root has none). */
function places(doc: Json): { parent: Json[] | { [k: string]: Json }; key: string | number }[] {
  const out: { parent: Json[] | { [k: string]: Json }; key: string | number }[] = [];
  const walk = (v: Json) => {
    if (Array.isArray(v)) {
      v.forEach((c, i) => {
        out.push({ parent: v, key: i });
        walk(c);
      });
    } else if (v !== null && typeof v === "object") {
      for (const k of Object.keys(v)) {
        out.push({ parent: v, key: k });
        walk(v[k]!);
      }
    }
  };
  walk(doc);
  return out;
}

function applyOp(doc: Json, o: Op): Json {
  const copy = JSON.parse(JSON.stringify(doc)) as Json;
  const at = places(copy);
  if (at.length === 0) return o.kind === "replace" ? o.value : copy;
  const p = at[o.at % at.length]!;
  const parent = p.parent as Record<string | number, Json>;
  if (o.kind === "replace") parent[p.key] = o.value;
  else if (o.kind === "remove") {
    if (Array.isArray(p.parent)) p.parent.splice(p.key as number, 1);
    else delete parent[p.key];
  } else {
    const target = parent[p.key];
    if (Array.isArray(target)) target.push(o.value);
    else if (target !== null && typeof target === "object")
      Object.defineProperty(target, o.key, { value: o.value, enumerable: true, writable: true });
    else parent[p.key] = { [o.key]: o.value };
  }
  return copy;
}

/** A valid JSON document with one to three values replaced, removed or added. */
export function mutatedJson(samples: readonly unknown[]): fc.Arbitrary<string> {
  return fc
    .tuple(fc.nat(samples.length - 1), fc.array(op, { minLength: 1, maxLength: 3 }))
    .map(([i, ops]) => JSON.stringify(ops.reduce((d, o) => applyOp(d, o), samples[i] as Json)));
}

/** What a JSON decoder is fed: valid documents, structurally mutated ones and damaged bytes. */
export function hostileJson(samples: readonly unknown[], maxLength = 4096): fc.Arbitrary<Buffer> {
  const bytes = samples.map((s) => Buffer.from(JSON.stringify(s)));
  return fc.oneof(
    { weight: 4, arbitrary: mutatedJson(samples).map((s) => printable(Buffer.from(s, "utf8"))) },
    { weight: 3, arbitrary: hostileBytes(bytes, maxLength) },
  );
}
