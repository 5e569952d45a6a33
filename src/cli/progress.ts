/**
 * Progress bars for the CLI's long walks over a log (issue 5): `hsmsim replay`, `hsmsim audit verify`, and opening a
 * large store (verifying its log, replaying it). A bar is drawn on stderr only when stderr is a terminal and the
 * command was not asked for `--json`; otherwise it is silent, so pipes, files and machines see nothing of it.
 *
 * Drawing is throttled (every `everyMs`, 100 ms) and the clock is read only every 1,024 updates, so a bar costs a
 * loop of a million records a few hundred clock reads. The bar is one line redrawn in place (`\r`, erased to its
 * end), erased again when the walk finishes, so the command's own output starts on a clean line.
 */
/** Where a bar is drawn: process.stderr, or a fake in tests. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): unknown;
}

export interface ProgressOptions {
  /** Default process.stderr. */
  stream?: ProgressStream;
  /** The command prints JSON: no bar. */
  json?: boolean;
  /** Milliseconds (default performance.now). */
  now?: () => number;
  /** Least time between two drawings (default 100 ms). */
  everyMs?: number;
}

export interface Progress {
  /** `done` items of the total are done (call it as often as you like: it is cheap). */
  update(done: number): void;
  /** The walk is over: erase the bar. */
  finish(): void;
}

const SILENT: Progress = { update() {}, finish() {} };

/** A bar labelled `label` over `total` items (0: unknown, shown as a count), or a silent one when not on a terminal. */
export function progress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.json || !stream.isTTY) return SILENT;
  return new Bar(label, total, stream, opts.now ?? (() => performance.now()), opts.everyMs ?? 100);
}

class Bar implements Progress {
  private readonly started: number;
  private last: number;
  private drawn = false;
  private seen = 0;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly stream: ProgressStream,
    private readonly now: () => number,
    private readonly everyMs: number,
  ) {
    this.started = now();
    this.last = this.started;
  }

  update(done: number): void {
    if ((++this.seen & 1023) !== 0) return;
    const t = this.now();
    if (t - this.last < this.everyMs) return;
    this.last = t;
    this.draw(done, t);
  }

  finish(): void {
    if (this.drawn) this.stream.write("\r\x1b[K");
    this.drawn = false;
  }

  private draw(done: number, t: number): void {
    const seconds = (t - this.started) / 1000;
    const rate = seconds > 0 ? ` ${count(done / seconds)}/s` : "";
    let line: string;
    if (this.total > 0) {
      const f = Math.min(1, done / this.total);
      const width = Math.max(10, Math.min(40, (this.stream.columns ?? 80) - this.label.length - 40));
      const full = Math.round(f * width);
      line = `${this.label} [${"#".repeat(full)}${"-".repeat(width - full)}] ${Math.floor(f * 100)}% ${count(done)}/${count(this.total)}${rate}`;
    } else line = `${this.label} ${count(done)}${rate}`;
    this.stream.write(`\r${line}\x1b[K`);
    this.drawn = true;
  }
}

function count(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  return String(Math.round(n));
}
