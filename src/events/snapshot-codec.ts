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
 *   ["b", base64]       Uint8Array (a Buffer comes back as a Uint8Array)
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
  decode(data: unknown): T;
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

  encode(v: unknown, path = "snapshot"): unknown {
    return new Encoder(this.byType).value(v, path);
  }

  decode(x: unknown): unknown {
    return new Decoder(this.byName).value(x);
  }
}

class Encoder {
  private readonly seen = new Map<object, number>();
  constructor(private readonly byType: Map<unknown, { name: string; codec?: ClassCodec<object> }>) {}

  value(v: unknown, path: string): unknown {
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
        return this.object(v, path);
      default:
        throw new UnsnapshotableError(path, `a ${typeof v}`);
    }
  }

  private object(v: object, path: string): unknown {
    const ref = this.seen.get(v);
    if (ref !== undefined) return ["r", ref];
    this.seen.set(v, this.seen.size);
    const proto = Object.getPrototypeOf(v) as object | null;
    if (proto === Object.prototype || proto === null) {
      if (proto === null) throw new UnsnapshotableError(path, "an object without a prototype");
      const out: unknown[] = [Object.isFrozen(v) ? "O" : "o"];
      this.fields(v, path, out);
      return out;
    }
    if (Array.isArray(v)) {
      const out: unknown[] = [Object.isFrozen(v) ? "A" : "a"];
      for (let i = 0; i < v.length; i++) out.push(this.value(v[i], `${path}[${i}]`));
      return out;
    }
    if (v instanceof Map) {
      const out: unknown[] = ["m"];
      for (const [k, x] of v) {
        out.push(this.value(k, `${path} key`));
        out.push(this.value(x, `${path}.get(${typeof k === "object" ? "…" : String(k)})`));
      }
      return out;
    }
    if (v instanceof Set) {
      const out: unknown[] = ["s"];
      for (const x of v) out.push(this.value(x, `${path} member`));
      return out;
    }
    if (v instanceof Uint8Array && (proto === Uint8Array.prototype || proto === Buffer.prototype)) {
      return ["b", Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64")];
    }
    const reg = this.byType.get(proto);
    if (!reg) throw new UnsnapshotableError(path, `an instance of ${(v as { constructor?: { name?: string } }).constructor?.name ?? "an unknown class"}`);
    if (reg.codec) return ["c", reg.name, this.value(reg.codec.encode(v), `${path}<${reg.name}>`)];
    const out: unknown[] = ["k", reg.name];
    this.fields(v, path, out);
    return out;
  }

  private fields(v: object, path: string, out: unknown[]): void {
    if (Object.getOwnPropertySymbols(v).length > 0) throw new UnsnapshotableError(path, "an object with symbol keys");
    for (const k of Object.keys(v)) {
      out.push(k);
      out.push(this.value((v as Record<string, unknown>)[k], `${path}.${k}`));
    }
  }
}

class Decoder {
  private readonly objects: unknown[] = [];
  constructor(private readonly byName: Map<string, { proto: object; codec?: ClassCodec<object> }>) {}

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
        const b = new Uint8Array(Buffer.from(x[1] as string, "base64"));
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
      // defineProperty: a field named __proto__ stays a field.
      Object.defineProperty(o, k, { value: this.value(x[i + 1]), writable: true, enumerable: true, configurable: true });
    }
  }
}
