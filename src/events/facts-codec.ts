/**
 * A compact binary form of records' facts, in blocks: what the facts cache (facts-cache.ts) holds beside the log so
 * that replay need not parse JSON. Decoding a record's facts from the log's text costs ~2 µs here (`JSON.parse` of
 * ~140 bytes, docs/notes/replay-speed.md); from this form it costs a few hundred nanoseconds.
 *
 * The form is generic (no schema per fact type, so it cannot drift from events/types.ts) and exact: a decoded value
 * is what `JSON.parse(canonicalJson(v))` gives, keys in the same (sorted) order, members whose value is undefined left
 * out, -0 as 0. Each block carries its own tables, so a block decodes alone:
 *
 * - a string of up to 64 UTF-16 units is written once per block and referred to by its index after that (keys,
 *   fact types, token ids and short values repeat in every record);
 * - a longer string that is lowercase hex of whole bytes (sealed values, MACs, attribute values) is written as the
 *   bytes it spells; any other longer string as UTF-8;
 * - an object's shape (its sorted keys and the kind of each value: null, false, true, integer, float, string, other)
 *   is written once per block, then referred to; an object of a shape is read and built by one function per shape
 *   (a literal with the keys in order, each member read as its kind says, constants not written at all), so decoded
 *   objects share V8's hidden classes as JSON.parse's do;
 * - anything the above cannot carry exactly (a string with a lone surrogate, a key "__proto__") is written as its
 *   canonical JSON text.
 *
 * Values that are not JSON (NaN, a Uint8Array, a class instance) throw a TypeError, as canonicalJson does.
 */
import { canonicalJson } from "./chain.js";

const T_NULL = 0;
const T_FALSE = 1;
const T_TRUE = 2;
/** A safe integer >= 0, as a varint. */
const T_UINT = 3;
/** A safe integer < 0: varint of its magnitude. */
const T_NEG = 4;
const T_F64 = 5;
/** A short string, defined: varint byte length, UTF-8; it takes the next index of the block's string table. */
const T_STR_DEF = 6;
const T_STR_REF = 7;
/** Lowercase hex of whole bytes: varint byte count, the bytes. */
const T_HEX = 8;
/** A long string that is not hex: varint byte length, UTF-8. */
const T_STR = 9;
const T_ARR = 10;
/** An object of a new shape: varint key count, each key (a string) and its value's kind, then the values. */
const T_OBJ_DEF = 11;
const T_OBJ_REF = 12;
/** Canonical JSON text: varint byte length, UTF-8. */
const T_JSON = 13;

const MAX_INTERNED = 64;

/**
 * What a member's value is, as a shape records it. A shape is an object's sorted keys with the kind of each value,
 * so constants (null, false, true) take no bytes, and the rest are read without a tag: by a function made for the
 * shape (`typedBuilder`), which reads each member the way its kind says. The tag and the switch per member were a
 * third of decoding.
 */
const K_UNDEF = 0;
const K_NULL = 1;
const K_FALSE = 2;
const K_TRUE = 3;
/** A safe integer >= 0: varint. */
const K_UINT = 4;
/** A safe integer < 0: varint of its magnitude. */
const K_NEG = 5;
const K_F64 = 6;
/** A string: a tagged string value (defined, referred to, hex, long, or JSON). */
const K_STR = 7;
/** Anything else (arrays, objects): a tagged value. */
const K_ANY = 8;
const KINDS = 9;

function kindOf(v: unknown): number {
  switch (typeof v) {
    case "undefined":
      return K_UNDEF;
    case "boolean":
      return v ? K_TRUE : K_FALSE;
    case "number":
      // -0 is a safe integer >= 0 here, and written as 0, as JSON writes it. NaN and the infinities are refused when
      // written.
      return Number.isSafeInteger(v) ? (v >= 0 ? K_UINT : K_NEG) : K_F64;
    case "string":
      return K_STR;
    default:
      return v === null ? K_NULL : K_ANY;
  }
}

interface Shape {
  keys: string[];
  kinds: number[];
}

/**
 * Shapes by an object's own keys in their order and their values' kinds: a trie walked member by member (a Map lookup
 * by the interned key, then the kind), whose node holds the shape. Building a key string per object instead was most
 * of encoding.
 */
interface ShapeNode {
  next: Map<string, (ShapeNode | undefined)[]>;
  /** null: an object of these keys goes as JSON (a key "__proto__", which a literal cannot build). */
  shape?: Shape | null;
}
const newNode = (): ShapeNode => ({ next: new Map() });
const ROOT = newNode();
/** Bounds the trie (facts have a small vocabulary of keys; past this, shapes are computed per object). */
let nodes = 0;
const MAX_NODES = 10_000;

function shapeOf(o: Record<string, unknown>): ShapeNode {
  let node = ROOT;
  for (const k in o) {
    if (!Object.hasOwn(o, k)) continue;
    const kind = kindOf(o[k]);
    let byKind = node.next.get(k);
    if (!byKind) {
      byKind = new Array<ShapeNode | undefined>(KINDS).fill(undefined);
      if (nodes < MAX_NODES) node.next.set(k, byKind);
    }
    let next = byKind[kind];
    if (!next) {
      next = newNode();
      if (nodes < MAX_NODES) {
        nodes++;
        byKind[kind] = next;
      }
    }
    node = next;
  }
  if (node.shape === undefined) {
    const keys = Object.keys(o).filter((k) => o[k] !== undefined);
    keys.sort();
    node.shape = keys.includes("__proto__") ? null : { keys, kinds: keys.map((k) => kindOf(o[k])) };
  }
  return node;
}

/** How a shape's builder reads each kind (`r` is the decoder). */
const READ: readonly string[] = ["", "null", "false", "true", "r.u()", "-r.u()", "r.f()", "r.s()", "r.v()"];
/** One object-building function per shape (by its keys and kinds as JSON). */
const BUILDERS = new Map<string, Builder>();
type Builder = (r: FactsBlockDecoder) => object;

function typedBuilder(shape: Shape): Builder {
  const id = JSON.stringify(shape);
  let b = BUILDERS.get(id);
  if (!b) {
    // Keys are JSON string literals in the source (valid JS string literals); a literal's values are evaluated in
    // order, which is the order the members were written in.
    const members = shape.keys.map((k, i) => `${JSON.stringify(k)}:${READ[shape.kinds[i]!]}`);
    b = new Function("r", `return {${members.join(",")}};`) as Builder;
    if (BUILDERS.size < 4096) BUILDERS.set(id, b);
  }
  return b;
}

/** Whether `s` has no lone surrogate (String.prototype.isWellFormed, Node 20; not in this project's TS lib). */
const wellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** Lowercase hex of whole bytes (a regular expression: V8 runs it as native code, ~5x a charCodeAt loop here). */
const LOWER_HEX = /^(?:[0-9a-f]{2})+$/;
const isLowerHex = (s: string): boolean => LOWER_HEX.test(s);

/** Encodes records' facts into one block. `reset()` starts the next block (new tables). */
export class FactsBlockEncoder {
  private buf: Buffer = Buffer.allocUnsafe(64 * 1024);
  private pos = 0;
  private readonly strings = new Map<string, number>();
  private readonly shapes = new Map<ShapeNode, number>();
  /** Records in the block. */
  records = 0;

  /** Bytes of the block so far. */
  get size(): number {
    return this.pos;
  }

  /** The block's bytes (a view: valid until the next add or reset). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  reset(): void {
    this.pos = 0;
    this.records = 0;
    this.strings.clear();
    this.shapes.clear();
  }

  /**
   * Add one record's facts. A value that is not JSON throws a TypeError and leaves the block as it was: the caller
   * may keep adding records (it would not have got here: the store encodes the record's JSON first).
   */
  add(facts: readonly unknown[]): void {
    const pos = this.pos;
    const strings = this.strings.size;
    const shapes = this.shapes.size;
    try {
      this.uint(facts.length);
      for (let i = 0; i < facts.length; i++) this.value(facts[i]);
      this.records++;
    } catch (e) {
      this.pos = pos;
      // Forget what this record defined: a later record must define it again.
      if (this.strings.size > strings) for (const [k, v] of this.strings) if (v >= strings) this.strings.delete(k);
      if (this.shapes.size > shapes) for (const [k, v] of this.shapes) if (v >= shapes) this.shapes.delete(k);
      throw e;
    }
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  private byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  private uint(v: number): void {
    this.room(8);
    const b = this.buf;
    while (v >= 0x80) {
      b[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[this.pos++] = v;
  }

  private utf8(tag: number, s: string): void {
    const n = Buffer.byteLength(s, "utf8");
    this.byte(tag);
    this.uint(n);
    this.room(n);
    this.pos += this.buf.write(s, this.pos, n, "utf8");
  }

  private string(s: string): void {
    if (s.length <= MAX_INTERNED) {
      const known = this.strings.get(s);
      if (known !== undefined) {
        this.byte(T_STR_REF);
        this.uint(known);
        return;
      }
      // UTF-8 cannot carry a lone surrogate (it would come back as U+FFFD); canonical JSON escapes it exactly.
      if (!wellFormed(s)) return this.utf8(T_JSON, JSON.stringify(s));
      this.strings.set(s, this.strings.size);
      return this.utf8(T_STR_DEF, s);
    }
    if (isLowerHex(s)) {
      const n = s.length >> 1;
      this.byte(T_HEX);
      this.uint(n);
      this.room(n);
      this.pos += this.buf.write(s, this.pos, n, "hex");
      return;
    }
    if (!wellFormed(s)) return this.utf8(T_JSON, JSON.stringify(s));
    this.utf8(T_STR, s);
  }

  private value(v: unknown): void {
    switch (typeof v) {
      case "string":
        return this.string(v);
      case "boolean":
        return this.byte(v ? T_TRUE : T_FALSE);
      case "number":
        if (Number.isSafeInteger(v)) {
          // -0 is a safe integer >= 0 here, and written as 0, as JSON writes it.
          if (v >= 0) {
            this.byte(T_UINT);
            this.uint(v);
          } else {
            this.byte(T_NEG);
            this.uint(-v);
          }
          return;
        }
        if (!Number.isFinite(v)) throw new TypeError(`facts codec: ${v} is not a JSON number`);
        this.byte(T_F64);
        this.room(8);
        this.pos = this.buf.writeDoubleLE(v, this.pos);
        return;
      case "undefined":
        // As JSON: an undefined array element (or fact) is null; undefined members never get here.
        return this.byte(T_NULL);
      case "object": {
        if (v === null) return this.byte(T_NULL);
        if (Array.isArray(v)) {
          this.byte(T_ARR);
          this.uint(v.length);
          for (let i = 0; i < v.length; i++) this.value(v[i]);
          return;
        }
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) throw new TypeError(`facts codec: a ${(v as object).constructor?.name ?? "non-plain object"} is not a JSON value`);
        return this.object(v as Record<string, unknown>);
      }
      default:
        throw new TypeError(`facts codec: a ${typeof v} is not a JSON value`);
    }
  }

  private object(o: Record<string, unknown>): void {
    const node = shapeOf(o);
    const shape = node.shape;
    if (!shape) return this.utf8(T_JSON, canonicalJson(o));
    const { keys, kinds } = shape;
    const known = this.shapes.get(node);
    if (known !== undefined) {
      this.byte(T_OBJ_REF);
      this.uint(known);
    } else {
      this.shapes.set(node, this.shapes.size);
      this.byte(T_OBJ_DEF);
      this.uint(keys.length);
      for (let i = 0; i < keys.length; i++) {
        this.string(keys[i]!);
        this.byte(kinds[i]!);
      }
    }
    for (let i = 0; i < keys.length; i++) {
      const v = o[keys[i]!];
      switch (kinds[i]) {
        case K_UINT:
          this.uint(v as number);
          break;
        case K_NEG:
          this.uint(-(v as number));
          break;
        case K_F64:
          if (!Number.isFinite(v)) throw new TypeError(`facts codec: ${String(v)} is not a JSON number`);
          this.room(8);
          this.pos = this.buf.writeDoubleLE(v as number, this.pos);
          break;
        case K_STR:
          this.string(v as string);
          break;
        case K_ANY:
          this.value(v);
          break;
        // null, false, true: the shape says it all.
      }
    }
  }
}

const NO_FACTS: readonly unknown[] = Object.freeze([]);

/** Malformed block bytes: the caller (the facts cache) then reads the log instead. */
export class FactsCodecError extends Error {
  override name = "FactsCodecError";
}

/** Decodes one block's records in order, from bytes [start, end) of `b`. */
export class FactsBlockDecoder {
  private pos: number;
  private readonly strings: string[] = [];
  private readonly shapes: Builder[] = [];

  constructor(
    private readonly b: Buffer,
    start: number,
    private readonly end: number,
  ) {
    this.pos = start;
  }

  /** Whether every byte was read. */
  get done(): boolean {
    return this.pos === this.end;
  }

  /** The next record's facts. */
  next(): unknown[] {
    const n = this.uint();
    if (n === 0) return NO_FACTS as unknown[];
    if (n > this.end - this.pos) throw new FactsCodecError("facts block: a record runs past the block");
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) out[i] = this.value();
    return out;
  }

  // u, f, s, v: what a shape's builder calls to read its members (typedBuilder), in order.

  /** A varint. */
  u(): number {
    return this.uint();
  }

  /** A float64. */
  f(): number {
    return this.b.readDoubleLE(this.span(8));
  }

  /** A tagged value that must be a string. */
  s(): string {
    const v = this.value();
    if (typeof v !== "string") throw new FactsCodecError("facts block: a string member that is not a string");
    return v;
  }

  /** A tagged value. */
  v(): unknown {
    return this.value();
  }

  private uint(): number {
    const b = this.b;
    let v = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= this.end) throw new FactsCodecError("facts block: a number runs past the block");
      const c = b[this.pos++]!;
      v += (c & 0x7f) * scale;
      if (c < 0x80) return v;
      scale *= 0x80;
      if (scale > 2 ** 56) throw new FactsCodecError("facts block: a number is too long");
    }
  }

  private span(n: number): number {
    const s = this.pos;
    if (n > this.end - s) throw new FactsCodecError("facts block: a value runs past the block");
    this.pos = s + n;
    return s;
  }

  /** A length, then that many bytes as a string. */
  private text(encoding: "utf8" | "hex"): string {
    const n = this.uint();
    const s = this.span(n);
    return this.b.toString(encoding, s, s + n);
  }

  private value(): unknown {
    if (this.pos >= this.end) throw new FactsCodecError("facts block: a value runs past the block");
    const tag = this.b[this.pos++]!;
    switch (tag) {
      case T_STR_REF: {
        const s = this.strings[this.uint()];
        if (s === undefined) throw new FactsCodecError("facts block: a string reference to nothing");
        return s;
      }
      case T_UINT:
        return this.uint();
      case T_OBJ_REF: {
        const build = this.shapes[this.uint()];
        if (!build) throw new FactsCodecError("facts block: a shape reference to nothing");
        return build(this);
      }
      case T_TRUE:
        return true;
      case T_FALSE:
        return false;
      case T_NULL:
        return null;
      case T_HEX:
        return this.text("hex");
      case T_STR_DEF: {
        const str = this.text("utf8");
        this.strings.push(str);
        return str;
      }
      case T_OBJ_DEF: {
        const n = this.uint();
        if (n > this.end - this.pos) throw new FactsCodecError("facts block: a shape runs past the block");
        const keys: string[] = [];
        const kinds: number[] = [];
        for (let i = 0; i < n; i++) {
          const k = this.value();
          if (typeof k !== "string") throw new FactsCodecError("facts block: a key that is not a string");
          // The encoder never writes one (it sends such objects as JSON); a literal would set the prototype.
          if (k === "__proto__") throw new FactsCodecError("facts block: a key __proto__ in a shape");
          keys.push(k);
          const kind = this.pos < this.end ? this.b[this.pos++]! : K_UNDEF;
          if (kind === K_UNDEF || kind >= KINDS) throw new FactsCodecError(`facts block: a member of kind ${kind}`);
          kinds.push(kind);
        }
        const build = typedBuilder({ keys, kinds });
        this.shapes.push(build);
        return build(this);
      }
      case T_NEG:
        return -this.uint();
      case T_F64: {
        const s = this.span(8);
        return this.b.readDoubleLE(s);
      }
      case T_STR:
        return this.text("utf8");
      case T_ARR: {
        const n = this.uint();
        if (n > this.end - this.pos) throw new FactsCodecError("facts block: an array runs past the block");
        const a = new Array<unknown>(n);
        for (let i = 0; i < n; i++) a[i] = this.value();
        return a;
      }
      case T_JSON: {
        const text = this.text("utf8");
        try {
          return JSON.parse(text);
        } catch (e) {
          throw new FactsCodecError("facts block: a JSON value that does not parse", { cause: e });
        }
      }
      default:
        throw new FactsCodecError(`facts block: unknown tag ${tag}`);
    }
  }
}
