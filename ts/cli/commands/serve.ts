/**
 * `tessera serve --features <module> --path <store> [--host 127.0.0.1] [--port 8080]`:
 * opens the store once and, in one process, runs every stream resolver the module
 * exports and its scheduled backfills, and answers over HTTP (see `ts/server/app.ts` for
 * the routes). SIGTERM or SIGINT shuts it down gracefully; a second signal exits at once.
 *
 * Offline queries are not served yet.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isStreamResolver, type StreamResolver } from '../../resolvers/stream-resolver.js';
import { bindProblem, DEFAULT_LIMITS, type ServeLimits, TOKEN_ENV } from '../../server/limits.js';
import { TesseraServer } from '../../server/server.js';
import { type Command, type OptionValues, UsageError } from '../command.js';
import { loadFeatureModule } from '../load-features.js';
import { cliTime, clockOption, storePathOption } from '../options.js';

/**
 * The stream resolvers a module exports (directly, or in an exported list or object);
 * its windowed stream resolvers come with the module (`loadFeatureModule`).
 */
async function loadStreamResolvers(path: string, cwd: string): Promise<StreamResolver[]> {
  // Already imported by loadFeatureModule: this is the same module instance.
  const mod = (await import(pathToFileURL(resolve(cwd, path)).href)) as Record<string, unknown>;
  const found = new Set<StreamResolver>();
  const visit = (value: unknown): void => {
    if (isStreamResolver(value)) found.add(value);
  };
  for (const value of Object.values(mod)) {
    if (Array.isArray(value)) value.forEach(visit);
    else if (typeof value === 'object' && value !== null && !isStreamResolver(value)) {
      visit(value);
      for (const v of Object.values(value)) visit(v);
    } else visit(value);
  }
  return [...found];
}

function wholeNumber(
  options: OptionValues,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const value = options[name];
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(
      `--${name} must be a whole number from ${min} to ${max}, got '${String(value)}'`,
    );
  }
  return n;
}

/**
 * `tessera serve`.
 *
 * @example
 * await main(['serve', '--features', './features.js', '--path', '.tessera/store', '--port', '8080']);
 */
export const serve: Command = {
  path: ['serve'],
  summary: 'Run the stream resolvers of a module and answer queries over HTTP, with metrics',
  options: {
    features: {
      type: 'string',
      valueName: '<module>',
      description: 'module exporting the feature classes and stream resolvers',
      required: true,
    },
    path: storePathOption,
    host: {
      type: 'string',
      valueName: '<address>',
      description: 'address to bind (default 127.0.0.1; any other needs a token)',
    },
    port: {
      type: 'string',
      valueName: '<port>',
      description: 'port (default 8080; 0: any free one)',
    },
    token: {
      type: 'string',
      valueName: '<token>',
      description: `bearer token required on every route but /healthz and /readyz (or ${TOKEN_ENV})`,
    },
    'max-body-bytes': {
      type: 'string',
      valueName: '<n>',
      description: `largest request body (default ${DEFAULT_LIMITS.maxBodyBytes})`,
    },
    'max-keys': {
      type: 'string',
      valueName: '<n>',
      description: `most keys per query (default ${DEFAULT_LIMITS.maxKeys})`,
    },
    'max-outputs': {
      type: 'string',
      valueName: '<n>',
      description: `most feature windows per query (default ${DEFAULT_LIMITS.maxOutputs})`,
    },
    clock: clockOption('the engine and stream clock (replays, tests)'),
  },
  async run({ options, io }) {
    const port = wholeNumber(options, 'port', 0, 65_535) ?? 8080;
    const limits: Partial<Record<keyof ServeLimits, number>> = {};
    const max = Number.MAX_SAFE_INTEGER;
    const body = wholeNumber(options, 'max-body-bytes', 1, max);
    if (body !== undefined) limits.maxBodyBytes = body;
    const keys = wholeNumber(options, 'max-keys', 1, max);
    if (keys !== undefined) limits.maxKeys = keys;
    const outputs = wholeNumber(options, 'max-outputs', 1, max);
    if (outputs !== undefined) limits.maxOutputs = outputs;
    const clockMs =
      typeof options.clock === 'string' ? cliTime(options.clock, '--clock') : undefined;
    const token =
      typeof options.token === 'string' ? options.token : process.env[TOKEN_ENV] || undefined;
    const host = typeof options.host === 'string' ? options.host : '127.0.0.1';
    const problem = bindProblem(host, token);
    if (problem !== null) throw new UsageError(problem);

    const modulePath = String(options.features);
    const module = await loadFeatureModule(modulePath, io.cwd);
    const streams = await loadStreamResolvers(modulePath, io.cwd);
    const server = await TesseraServer.start({
      path: resolve(io.cwd, String(options.path)),
      features: module.classes,
      streams,
      windowed: module.windowedResolvers,
      store: {
        batchResolvers: module.batchResolvers,
        onlineResolvers: module.onlineResolvers,
        scheduledBackfills: module.scheduledBackfills,
      },
      host,
      port,
      limits,
      ...(token === undefined ? {} : { token }),
      ...(clockMs === undefined ? {} : { clockMs }),
      onStreamError: (name, error) =>
        io.err(
          `tessera serve: stream ${name} failed: ${error instanceof Error ? error.message : String(error)}`,
        ),
    });
    const all = [...streams, ...module.windowedResolvers];
    io.out(
      `tessera serve: ${server.tessera.path}, ${all.length} stream${all.length === 1 ? '' : 's'} (${all.map((s) => s.name).join(', ') || 'none'}), ${server.schedules?.jobs.length ?? 0} scheduled backfill${server.schedules?.jobs.length === 1 ? '' : 's'}, listening on ${server.url}`,
    );

    let signals = 0;
    const stopped = new Promise<void>((done) => {
      const onSignal = (signal: NodeJS.Signals): void => {
        signals += 1;
        if (signals > 1) {
          io.err(`tessera serve: ${signal} again, exiting without finishing`);
          process.exit(130);
        }
        io.out(`tessera serve: ${signal}, finishing requests and stream batches in flight`);
        server.close().then(done, (error: unknown) => {
          io.err(
            `tessera serve: shutdown failed: ${error instanceof Error ? error.message : String(error)}`,
          );
          done();
        });
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
    await stopped;
    const final = server.streams.map((r) => {
      const m = r.metrics();
      return `${m.resolver}: ${m.messages} messages, ${m.commits} commits, ${m.deadLetters} dead letters`;
    });
    io.out(
      `tessera serve: stopped, store closed${final.length > 0 ? `; ${final.join('; ')}` : ''}`,
    );
    // Everything Tessera opened is closed; what the feature module left running (timers,
    // clients) must not keep a stopped server alive.
    setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
    return 0;
  },
};
