/**
 * The `tessera` command line. `bin/tessera.mjs` imports the compiled module and calls
 * `main(process.argv.slice(2))`, then exits with the returned code; nothing here calls
 * `process.exit`. Run directly (`node dist/ts/cli/main.js demo`, as `npm run demo`
 * does), the module runs `main` itself.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type CliIO, type Command, type OptionValues, UsageError } from './command.js';
import { commands as defaultCommands } from './commands.js';

/** Standard output and error of the process, relative to its working directory. */
export function processIO(): CliIO {
  return {
    out: (text) => process.stdout.write(`${text}\n`),
    err: (text) => process.stderr.write(`${text}\n`),
    cwd: process.cwd(),
  };
}

/**
 * Runs the CLI with `argv` (without `node` and the script) and resolves to the exit
 * code: 0 success, 1 the command failed (e.g. definitions with errors), 2 usage error.
 *
 * @example
 * process.exitCode = await main(['aggregate', 'list', '--features', './features.js']);
 */
export async function main(
  argv: readonly string[],
  io: CliIO = processIO(),
  commands: readonly Command[] = defaultCommands,
): Promise<number> {
  const words = argv.filter((a) => !a.startsWith('-'));
  if (argv.length === 0 || words[0] === 'help' || (words.length === 0 && isHelp(argv))) {
    const topic = words[0] === 'help' ? words.slice(1) : [];
    const command = topic.length > 0 ? findCommand(commands, topic) : undefined;
    io.out(command ? commandHelp(command) : overview(commands));
    return 0;
  }
  const command = findCommand(commands, words);
  if (command === undefined) {
    io.err(`tessera: unknown command '${words.join(' ')}'`);
    io.err(overview(commands));
    return 2;
  }
  const rest = dropPath(argv, command.path);
  if (isHelp(rest)) {
    io.out(commandHelp(command));
    return 0;
  }
  let options: OptionValues;
  let positionals: string[];
  try {
    ({ options, positionals } = parseOptions(command, rest));
  } catch (e) {
    io.err(`tessera ${command.path.join(' ')}: ${e instanceof Error ? e.message : String(e)}`);
    io.err(commandHelp(command));
    return 2;
  }
  try {
    return await command.run({ options, positionals, io });
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`tessera ${command.path.join(' ')}: ${e.message}`);
      return 2;
    }
    io.err(`tessera ${command.path.join(' ')}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

function isHelp(args: readonly string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

function findCommand(commands: readonly Command[], words: readonly string[]): Command | undefined {
  return [...commands]
    .sort((a, b) => b.path.length - a.path.length)
    .find((c) => c.path.every((w, i) => words[i] === w));
}

/** `argv` without the first occurrence of each word of the command's path. */
function dropPath(argv: readonly string[], path: readonly string[]): string[] {
  const rest = [...argv];
  for (const word of path) {
    const i = rest.indexOf(word);
    if (i >= 0) rest.splice(i, 1);
  }
  return rest;
}

function parseOptions(
  command: Command,
  args: readonly string[],
): { options: OptionValues; positionals: string[] } {
  const spec: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> =
    {};
  for (const [name, o] of Object.entries(command.options)) {
    spec[name] = {
      type: o.type,
      ...(o.short === undefined ? {} : { short: o.short }),
      ...(o.multiple === true ? { multiple: true } : {}),
    };
  }
  const { values, positionals } = parseArgs({
    args: [...args],
    options: spec,
    allowPositionals: true,
    strict: true,
  });
  const options: Record<string, string | boolean | undefined> = {};
  for (const [name, value] of Object.entries(values)) {
    // A `multiple` option's values are joined by commas; another repeated option keeps
    // its last value.
    options[name] = Array.isArray(value)
      ? command.options[name]?.multiple === true
        ? value.join(',')
        : value[value.length - 1]
      : value;
  }
  for (const [name, o] of Object.entries(command.options)) {
    if (o.required === true && options[name] === undefined) {
      throw new UsageError(
        `missing required option --${name}${o.valueName ? ` ${o.valueName}` : ''}`,
      );
    }
  }
  return { options, positionals };
}

function overview(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.path.join(' ').length));
  return [
    'Usage: tessera <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
    '',
    "Run 'tessera <command> --help' for a command's options.",
  ].join('\n');
}

function commandHelp(command: Command): string {
  const flags = Object.entries(command.options).map(([name, o]) => {
    const flag = `--${name}${o.valueName ? ` ${o.valueName}` : ''}`;
    return [
      o.short ? `-${o.short}, ${flag}` : flag,
      `${o.description}${o.required ? ' (required)' : ''}`,
    ];
  });
  const width = Math.max(0, ...flags.map(([f]) => (f ?? '').length));
  return [
    `Usage: tessera ${command.path.join(' ')} [options]`,
    '',
    command.summary,
    '',
    'Options:',
    ...flags.map(([f, d]) => `  ${(f ?? '').padEnd(width)}  ${d}`),
    `  ${'--help'.padEnd(width)}  show this help`,
  ].join('\n');
}

/** True when this module is the process's entry script (not imported). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) process.exitCode = await main(process.argv.slice(2));
