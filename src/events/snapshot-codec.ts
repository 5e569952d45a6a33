/**
 * The state snapshot's value codec: any tree of the simulator's in-memory values to JSON and back, without a list of
 * the fields. The write model and the read model are plain data in Maps, Sets, arrays, plain objects and Uint8Arrays,
 * with a few class instances (the slot actors, the read model itself); a field another part of the code adds to them
 * is carried by the walk, with no edit here, and a value the codec cannot carry (an instance of a class nobody
 * registered, a function, a symbol) is an `UnsnapshotableError` naming where it is: the snapshot is then not written,
 * never written without it.
 *
 * The encoding: a primitive (string, boolean, null, finite number other than -0) is itself; everything else is an
 * array whose first element is a tag:
 *
 *   ["o", k1, v1, ...]  plain object (own enumerable string keys; "O" when it was frozen, restored frozen)
 *   ["a", v1, ...]      array ("A" frozen)
 *   ["m", k1, v1, ...]  Map, in insertion order (iteration order is behaviour: C_FindObjects lists in it)
 *   ["s", v1, ...]      Set, in insertion order
 *   ["b", n]            Uint8Array of n bytes, kept out of the tree: the bytes of all of them, in walk order, are
 *                       the encoding's `bytes` (a Buffer comes back as a Uint8Array)
 *   ["u"]               undefined (a member present with the value undefined)
 *   ["n", "NaN" | "Infinity" | "-Infinity" | "-0"]
 *   ["i", "123"]        bigint
 *   ["c", name, data]   an instance of a registered class: `data` is what its codec's encode returned, encoded again
 *   ["k", name, k1, v1, ...]  an instance of a registered plain-fields class: its own fields, restored on its prototype
 *   ["r", id]           the object already met as the id-th (0-based, in walk order): shared references and cycles
 *                       come back shared
 */

/** A value the snapshot cannot carry, and where in the tree it is. */
export class UnsnapshotableError extends Error {
  override readonly name = "UnsnapshotableError";
  constructor(
    readonly path: string,
    what: string,
  ) {
    super(`hsmsim: cannot snapshot ${path}: ${what} (register a codec for it in src/events/snapshot.ts)`);
  }
}

/** A snapshot body that does not decode (damaged, or written by a different version of the codec). */
export class SnapshotFormatError extends Error {
  override readonly name = "SnapshotFormatError";
}

/** How one class's instances become data and back. `decode` gets `encode`'s output, already decoded. */
export interface ClassCodec<T extends object> {
  name: string;
  type: abstract new (...args: never[]) => T;
  encode(v: T): unknown;
  /** An instance of `type`, or its eager form where the instance is a lazy stand-in for one (events/snapshot.ts). */
  decode(data: unknown): object;
}

type Ctor = abstract new (...args: never[]) => object;

export class ValueCodec {
  private readonly byType = new Map<unknown, { name: string; codec?: ClassCodec<object> }>();
  private readonly byName = new Map<string, { proto: object; codec?: ClassCodec<object> }>();

  /** Instances of `codec.type` are stored as `codec.encode(v)`. */
  register<T extends object>(codec: ClassCodec<T>): this {
    const c = codec as unknown as ClassCodec<object>;
    this.add(c.name, c.type, c);
    return this;
  }

  /** Instances of `type` are stored as their own fields, and restored as those fields on `type.prototype`. */
  registerFields(name: string, type: Ctor): this {
    this.add(name, type);
    return this;
  }

  private add(name: string, type: Ctor, codec?: ClassCodec<object>): void {
    if (this.byName.has(name)) throw new RangeError(`codec "${name}" registered twice`);
    this.byType.set(type.prototype, { name, codec });
    this.byName.set(name, { proto: type.prototype as object, codec });
  }

  /** The tree (JSON-ready) and the byte arrays' contents, in walk order. */
  encode(v: unknown, root = "snapshot"): { tree: unknown; bytes: Uint8Array[] } {
    const e = new Encoder(this.byType, root);
    return { tree: e.value(v), bytes: e.bytes };
  }

  /** `bytes`: the byte arrays' contents as `encode` listed them, concatenated. */
  decode(tree: unknown, bytes: Uint8Array = new Uint8Array(0)): unknown {
    const d = new Decoder(this.byName, bytes);
    const v = d.value(tree);
    if (d.cursor !== bytes.length) throw new SnapshotFormatError(`snapshot body: ${bytes.length - d.cursor} bytes left over`);
    return v;
  }
}

/** Where the walk is, kept as a stack of steps and spelled out only for an error (building paths costs as much as the walk). */
type Step = "field" | "index" | "key" | "member" | "get" | "codec";

class Encoder {
  private readonly seen = new Map<object, number>();
  private readonly steps: Step[] = [];
  private readonly keys: unknown[] = [];
  readonly bytes: Uint8Array[] = [];
  constructor(
    private readonly byType: Map<unknown, { name: string; codec?: ClassCodec<object> }>,
    private readonly root: string,
  ) {}

  private fail(what: string): never {
    let path = this.root;
    for (let i = 0; i < this.steps.length; i++) {
      const [kind, key] = [this.steps[i], this.keys[i]];
      const k = typeof key === "object" && key !== null ? "…" : String(key);
      path += kind === "field" ? `.${k}` : kind === "index" ? `[${k}]` : kind === "get" ? `.get(${k})` : kind === "codec" ? `<${k}>` : ` ${kind}`;
    }
    throw new UnsnapshotableError(path, what);
  }

  private at(kind: Step, key: unknown, v: unknown): unknown {
    // A primitive needs no step: only objects can fail deeper down, and a primitive's own failure names its step.
    if (typeof v !== "object" && typeof v !== "function" && typeof v !== "symbol") return this.value(v);
    this.steps.push(kind);
    this.keys.push(key);
    const out = this.value(v);
    this.steps.pop();
    this.keys.pop();
    return out;
  }

  value(v: unknown): unknown {
    switch (typeof v) {
      case "string":
      case "boolean":
        return v;
      case "number":
        if (Number.isFinite(v) && !Object.is(v, -0)) return v;
        return ["n", Object.is(v, -0) ? "-0" : String(v)];
      case "undefined":
        return ["u"];
      case "bigint":
        return ["i", v.toString()];
      case "object":
        if (v === null) return null;
        return this.object(v);
      default:
        return this.fail(`a ${typeof v}`);
    }
  }

  private object(v: object): unknown {
    const ref = this.seen.get(v);
    if (ref !== undefined) return ["r", ref];
    this.seen.set(v, this.seen.size);
    const proto = Object.getPrototypeOf(v) as object | null;
    if (proto === Uint8Array.prototype || proto === Buffer.prototype) {
      this.bytes.push(v as Uint8Array);
      return ["b", (v as Uint8Array).length];
    }
    if (proto === Object.prototype) {
      const out: unknown[] = [Object.isFrozen(v) ? "O" : "o"];
      this.fields(v, out);
      return out;
    }
    if (proto === null) return this.fail("an object without a prototype");
    if (Array.isArray(v)) {
      const out: unknown[] = [Object.isFrozen(v) ? "A" : "a"];
      for (let i = 0; i < v.length; i++) out.push(this.at("index", i, v[i]));
      return out;
    }
    if (v instanceof Map) {
      const out: unknown[] = ["m"];
      for (const [k, x] of v) {
        out.push(this.at("key", k, k));
        out.push(this.at("get", k, x));
      }
      return out;
    }
    if (v instanceof Set) {
      const out: unknown[] = ["s"];
      for (const x of v) out.push(this.at("member", x, x));
      return out;
    }
    const reg = this.byType.get(proto);
    if (!reg) return this.fail(`an instance of ${(v as { constructor?: { name?: string } }).constructor?.name ?? "an unknown class"}`);
    if (reg.codec) return ["c", reg.name, this.at("codec", reg.name, reg.codec.encode(v))];
    const out: unknown[] = ["k", reg.name];
    this.fields(v, out);
    return out;
  }

  private fields(v: object, out: unknown[]): void {
    for (const k in v) {
      if (!Object.hasOwn(v, k)) continue;
      out.push(k);
      out.push(this.at("field", k, (v as Record<string, unknown>)[k]));
    }
    // A member under a symbol would be dropped.
    if (Object.getOwnPropertySymbols(v).length > 0) this.fail("an object with symbol keys");
  }
}

class Decoder {
  private readonly objects: unknown[] = [];
  cursor = 0;
  constructor(
    private readonly byName: Map<string, { proto: object; codec?: ClassCodec<object> }>,
    private readonly blob: Uint8Array,
  ) {}

  value(x: unknown): unknown {
    if (x === null || typeof x !== "object") return x;
    if (!Array.isArray(x) || typeof x[0] !== "string") throw new SnapshotFormatError("snapshot body: a value that is neither a primitive nor a tagged array");
    const tag = x[0];
    switch (tag) {
      case "u":
        return undefined;
      case "n":
        return x[1] === "-0" ? -0 : Number(x[1]);
      case "i":
        return BigInt(x[1] as string);
      case "r": {
        const id = x[1] as number;
        if (!(id < this.objects.length)) throw new SnapshotFormatError(`snapshot body: a reference to object ${id} before it`);
        return this.objects[id];
      }
      case "o":
      case "O": {
        const o: Record<string, unknown> = {};
        this.objects.push(o);
        this.fill(o, x, 1);
        return tag === "O" ? Object.freeze(o) : o;
      }
      case "a":
      case "A": {
        const a: unknown[] = [];
        this.objects.push(a);
        for (let i = 1; i < x.length; i++) a.push(this.value(x[i]));
        return tag === "A" ? Object.freeze(a) : a;
      }
      case "m": {
        const m = new Map<unknown, unknown>();
        this.objects.push(m);
        for (let i = 1; i < x.length; i += 2) m.set(this.value(x[i]), this.value(x[i + 1]));
        return m;
      }
      case "s": {
        const s = new Set<unknown>();
        this.objects.push(s);
        for (let i = 1; i < x.length; i++) s.add(this.value(x[i]));
        return s;
      }
      case "b": {
        const n = x[1] as number;
        if (!Number.isSafeInteger(n) || n < 0 || this.cursor + n > this.blob.length) throw new SnapshotFormatError("snapshot body: byte array past the end");
        // A copy, and a plain Uint8Array even when the blob is a Buffer (slice would keep its species).
        const b = new Uint8Array(n);
        b.set(this.blob.subarray(this.cursor, this.cursor + n));
        this.cursor += n;
        this.objects.push(b);
        return b;
      }
      case "c": {
        const reg = this.registered(x[1]);
        if (!reg.codec) throw new SnapshotFormatError(`snapshot body: ${String(x[1])} is not a codec class`);
        const slot = this.objects.length;
        this.objects.push(undefined); // its id is taken now, as the encoder took it; a reference from inside is a cycle
        const v = reg.codec.decode(this.value(x[2]));
        this.objects[slot] = v;
        return v;
      }
      case "k": {
        const reg = this.registered(x[1]);
        if (reg.codec) throw new SnapshotFormatError(`snapshot body: ${String(x[1])} is a codec class`);
        const o = Object.create(reg.proto) as Record<string, unknown>;
        this.objects.push(o);
        this.fill(o, x, 2);
        return o;
      }
      default:
        throw new SnapshotFormatError(`snapshot body: unknown tag ${JSON.stringify(tag)}`);
    }
  }

  private registered(name: unknown): { proto: object; codec?: ClassCodec<object> } {
    const reg = typeof name === "string" ? this.byName.get(name) : undefined;
    if (!reg) throw new SnapshotFormatError(`snapshot body: unknown class ${JSON.stringify(name)}`);
    return reg;
  }

  private fill(o: Record<string, unknown>, x: unknown[], from: number): void {
    for (let i = from; i < x.length; i += 2) {
      const k = x[i];
      if (typeof k !== "string") throw new SnapshotFormatError("snapshot body: a field name that is not a string");
      const v = this.value(x[i + 1]);
      // defineProperty for a field named __proto__, so that it stays a field.
      if (k === "__proto__") Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
      else o[k] = v;
    }
  }
}
