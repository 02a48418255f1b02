/**
 * The shape of a CLI command. Commands live in `commands/`, one file each, and are
 * listed in `commands.ts`; `main` finds one by its path (`aggregate list`), parses its
 * options and runs it.
 */

/** Where a command writes; tests pass their own. */
export interface CliIO {
  /** Writes a line (or lines) to standard output. */
  readonly out: (text: string) => void;
  /** Writes a line (or lines) to standard error. */
  readonly err: (text: string) => void;
  /** Directory relative paths are resolved against. */
  readonly cwd: string;
}

/** One option of a command: `--name value` or `--flag`. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  /** Shown in help. */
  readonly description: string;
  /** Placeholder for the value in help, e.g. `<module>`. */
  readonly valueName?: string;
  /** Whether the command fails without it. */
  readonly required?: boolean;
  /** One-letter alias. */
  readonly short?: string;
  /** A string option that may be given several times: its values arrive joined by commas. */
  readonly multiple?: boolean;
}

/** Parsed option values, by option name. */
export type OptionValues = Readonly<Record<string, string | boolean | undefined>>;

/** What a command's `run` receives. */
export interface CommandContext {
  readonly options: OptionValues;
  /** Positionals after the command path. */
  readonly positionals: readonly string[];
  readonly io: CliIO;
}

/** A CLI command. */
export interface Command {
  /** Words that select it, e.g. `['aggregate', 'list']`. */
  readonly path: readonly string[];
  /** One line for `tessera help`. */
  readonly summary: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Runs the command; resolves to the exit code (0 ok, 1 failure, 2 usage). */
  run(context: CommandContext): Promise<number>;
}

/** Thrown by commands for problems with their arguments: printed with usage, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
