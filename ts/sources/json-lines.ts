/**
 * {@link JsonLinesSource}: replays a JSON-lines file as a one-partition stream whose
 * offsets are line numbers (0-based). Blank lines are skipped but keep their numbers, so
 * a stored position always names the same line of the same file.
 */
import { type FileHandle, open } from 'node:fs/promises';
import type { PartitionLag, PartitionPosition, Source, SourceMessage } from './source.js';

/** Options of {@link JsonLinesSource}. */
export interface JsonLinesSourceOptions {
  /** Read size (default 1 MiB). */
  chunkBytes?: number;
}

/**
 * A finite source over a file of one JSON message per line.
 *
 * @example
 * const source = new JsonLinesSource('./transactions.jsonl');
 */
export class JsonLinesSource implements Source {
  readonly description: string;
  private file: FileHandle | undefined;
  private readonly chunkBytes: number;
  /** Bytes read but not yet split into complete lines. */
  private rest: Buffer = Buffer.alloc(0);
  /** Complete lines not yet delivered, from `line` on. */
  private pending: Buffer[] = [];
  /** Line number of `pending[0]`. */
  private line = 0;
  /** Line number of the next line to split off `rest`. */
  private nextLine = 0;
  private skipBefore = 0;
  private eof = false;

  constructor(
    readonly path: string,
    options: JsonLinesSourceOptions = {},
  ) {
    this.description = `jsonl:${path}`;
    this.chunkBytes = options.chunkBytes ?? 1 << 20;
  }

  get ended(): boolean {
    return this.eof && this.pending.length === 0 && this.rest.length === 0;
  }

  async start(positions: readonly PartitionPosition[]): Promise<void> {
    await this.file?.close();
    this.file = await open(this.path, 'r');
    this.rest = Buffer.alloc(0);
    this.pending = [];
    this.line = 0;
    this.nextLine = 0;
    this.eof = false;
    this.skipBefore = positions.find((p) => p.partition === 0)?.offset ?? 0;
  }

  async poll(maxMessages: number, _maxWaitMs: number): Promise<SourceMessage[]> {
    const out: SourceMessage[] = [];
    const now = Date.now();
    while (out.length < maxMessages) {
      if (this.pending.length === 0) {
        if (this.eof) {
          if (this.rest.length > 0) {
            // A last line without a newline.
            this.pending.push(this.rest);
            this.line = this.nextLine;
            this.nextLine += 1;
            this.rest = Buffer.alloc(0);
          } else break;
        } else {
          await this.fill();
          continue;
        }
      }
      const value = this.pending.shift();
      const offset = this.line;
      this.line += 1;
      if (value === undefined || offset < this.skipBefore || isBlank(value)) continue;
      out.push({ partition: 0, offset, key: null, value, timestampMs: now });
    }
    return out;
  }

  private async fill(): Promise<void> {
    const file = this.file;
    if (file === undefined) throw new Error(`${this.description}: poll before start`);
    const buffer = Buffer.allocUnsafe(this.chunkBytes);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
    if (bytesRead === 0) {
      this.eof = true;
      return;
    }
    const data =
      this.rest.length > 0
        ? Buffer.concat([this.rest, buffer.subarray(0, bytesRead)])
        : buffer.subarray(0, bytesRead);
    let from = 0;
    for (let i = data.indexOf(10, from); i >= 0; i = data.indexOf(10, from)) {
      const end = i > from && data[i - 1] === 13 ? i - 1 : i;
      this.pending.push(Buffer.from(data.subarray(from, end)));
      from = i + 1;
    }
    this.line = this.nextLine;
    this.nextLine += this.pending.length;
    this.rest = Buffer.from(data.subarray(from));
  }

  async commit(_positions: readonly PartitionPosition[]): Promise<void> {}

  async lag(): Promise<PartitionLag[]> {
    return [];
  }

  async close(): Promise<void> {
    await this.file?.close();
    this.file = undefined;
  }
}

function isBlank(line: Buffer): boolean {
  for (const byte of line) {
    if (byte !== 32 && byte !== 9 && byte !== 13) return false;
  }
  return true;
}
