/**
 * The HTTP API of `tessera serve`, as a fastify app over an open {@link Tessera} and its
 * stream runners. JSON everywhere, versioned under `/v1`:
 *
 * - `POST /v1/query`: the online query (`input`, `output`, `now`, `explain`), answered as
 *   {@link Tessera.queryAsync} answers it (Dates as ISO strings);
 * - `GET /v1/features`: features, windows, series, rules and the storage estimate;
 * - `GET /v1/streams`: each stream's counters, rate, lag and committed positions;
 * - `GET /v1/deadletters?source=&limit=&offset=`: kept dead letters, a page at a time;
 * - `POST /v1/offline-query`: a point-in-time query, answered as NDJSON (a line of
 *   outputs, then a line per row) as {@link Tessera.offlineQuery} answers it;
 * - `POST /v1/backfills` (a run, or its plan with `plan: true`), `GET /v1/backfills`,
 *   `GET /v1/backfills/:id` (progress, report or error), `DELETE /v1/backfills/:id`
 *   (cancels it);
 * - `GET /metrics`: Prometheus text; `GET /healthz`, `GET /readyz`.
 *
 * Every route but the health checks asks for the bearer token when one is set. Every
 * bad request gets a 4xx with an {@link ErrorBody} naming the problem.
 */
import { timingSafeEqual } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { OfflineQueryRequest } from '../api/offline.js';
import type { OutputInfo, QueryRequest } from '../api/query.js';
import { BackfillError } from '../batch/backfill.js';
import type { BackfillScheduler } from '../batch/schedules.js';
import { letterJson } from '../cli/commands/deadletters.js';
import { TesseraError } from '../errors.js';
import { requireOptionalPeer } from '../optional-peer.js';
import { aggregateListRows } from '../planner/list.js';
import type { StreamRunner } from '../resolvers/runner.js';
import type { Tessera } from '../tessera.js';
import type { HttpBackfills } from './backfills.js';
import type { ServeLimits } from './limits.js';
import type { TesseraMetrics } from './metrics.js';
import {
  backfillIdSchema,
  backfillSchema,
  deadLettersSchema,
  type ErrorBody,
  noQuerySchema,
  offlineQuerySchema,
  querySchema,
} from './schemas.js';

/** What the app serves. */
export interface ServeContext {
  readonly tessera: Tessera;
  readonly streams: readonly StreamRunner[];
  /** The scheduler of the backfill jobs, when the server runs them. */
  readonly schedules?: BackfillScheduler;
  /** Backfills started over HTTP. */
  readonly backfills: HttpBackfills;
  readonly registry: Registry;
  readonly metrics: TesseraMetrics;
  readonly limits: ServeLimits;
  /** Bearer token every route but the health checks requires; `undefined`: none. */
  readonly token: string | undefined;
  /** Why the server is not ready, or `null` once it is. */
  readonly notReady: () => string | null;
}

/** Engine error codes that mean the request was wrong (400), not the server. */
const CLIENT_ERROR_CODES = new Set([
  'INVALID_QUERY',
  'INVALID_OPTION',
  'INVALID_ARGUMENT',
  'INVALID_BATCH',
  'UNKNOWN_SERIES',
]);

/** Routes that answer without a token (probes). */
const OPEN_ROUTES = new Set(['/healthz', '/readyz']);

interface QueryBody {
  readonly input: Record<string, unknown> | readonly Record<string, unknown>[];
  readonly output: readonly string[];
  readonly now?: string | number;
  readonly explain?: boolean;
}

function errorBody(status: number, code: string, message: string): ErrorBody {
  return { error: { status, code, message } };
}

/** Keys of a query input: rows, or the longest column (a scalar is one key). */
function keyCount(input: QueryBody['input']): number {
  if (Array.isArray(input)) return input.length;
  let n = 1;
  for (const value of Object.values(input)) if (Array.isArray(value)) n = Math.max(n, value.length);
  return n;
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (header === undefined || !header.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice('Bearer '.length));
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * Builds the app (not listening yet).
 *
 * @example
 * const app = buildApp(context);
 * await app.listen({ host: '127.0.0.1', port: 8080 });
 */
export function buildApp(context: ServeContext): FastifyInstance {
  const { tessera, limits, metrics, registry } = context;
  const Fastify = requireOptionalPeer<typeof import('fastify')>('fastify', 'tessera serve');
  const app = Fastify({
    bodyLimit: limits.maxBodyBytes,
    // Unknown fields are errors, never dropped silently, and values are never coerced
    // (a key 7 stays a number, so that a string key refuses it).
    ajv: {
      customOptions: {
        removeAdditional: false,
        coerceTypes: false,
        allErrors: false,
        allowUnionTypes: true,
      },
    },
    // The first failing rule, naming the field (and the unknown property, if that is it).
    schemaErrorFormatter: (errors, dataVar) => {
      const e = errors[0];
      if (e === undefined) return new Error(`${dataVar} is not valid`);
      const extra =
        e.keyword === 'additionalProperties'
          ? `: '${String((e.params as { additionalProperty?: unknown }).additionalProperty)}'`
          : '';
      return new Error(`${dataVar}${e.instancePath} ${e.message ?? 'is not valid'}${extra}`);
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  // JSON only: fastify's default text/plain parser would turn a text body into a string.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof TesseraError) {
      const status = CLIENT_ERROR_CODES.has(error.code) ? 400 : error.code === 'CLOSED' ? 503 : 500;
      return reply.status(status).send(errorBody(status, error.code, error.message));
    }
    const status =
      typeof error.statusCode === 'number' && error.statusCode >= 400 ? error.statusCode : 500;
    const code = error.code ?? (status >= 500 ? 'INTERNAL' : 'BAD_REQUEST');
    const message =
      code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? `unsupported content type '${request.headers['content-type'] ?? ''}': send application/json`
        : error.message;
    return reply.status(status).send(errorBody(status, code, message));
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .send(errorBody(404, 'NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );

  const token = context.token;
  if (token !== undefined) {
    app.addHook('onRequest', async (request, reply) => {
      if (OPEN_ROUTES.has(request.url.split('?')[0] ?? '')) return;
      if (!tokenMatches(request.headers.authorization, token)) {
        reply.header('www-authenticate', 'Bearer');
        return reply
          .status(401)
          .send(
            errorBody(
              401,
              'UNAUTHORIZED',
              'this server needs a bearer token: send Authorization: Bearer <token>',
            ),
          );
      }
    });
  }

  app.get('/healthz', { schema: noQuerySchema }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: noQuerySchema }, async (_request, reply) => {
    const problem = context.notReady();
    if (problem === null) return { status: 'ready' };
    return reply.status(503).send(errorBody(503, 'NOT_READY', problem));
  });

  // The outputs part of an answer, serialized once per planned list of outputs: it is
  // most of a small answer's bytes and the same for every request asking for them.
  const outputsJson = new WeakMap<readonly OutputInfo[], string>();
  app.post<{ Body: QueryBody }>('/v1/query', { schema: querySchema }, async (request, reply) => {
    const body = request.body;
    const keys = keyCount(body.input);
    if (keys > limits.maxKeys) {
      throw new RequestError(
        400,
        'TOO_MANY_KEYS',
        `input has ${keys} keys; at most ${limits.maxKeys} per query`,
      );
    }
    if (body.output.length > limits.maxOutputs) {
      throw new RequestError(
        400,
        'TOO_MANY_OUTPUTS',
        `output has ${body.output.length} feature windows; at most ${limits.maxOutputs} per query`,
      );
    }
    const started = process.hrtime.bigint();
    try {
      // Off the event loop: the read runs on a worker thread while the loop parses and
      // answers other requests (reading on the loop instead halved requests/s here).
      const result = await tessera.queryAsync(body as unknown as QueryRequest<readonly string[]>);
      metrics.observeQuery(Number(process.hrtime.bigint() - started) / 1e9);
      let outputs = outputsJson.get(result.outputs);
      if (outputs === undefined) {
        outputs = JSON.stringify(result.outputs);
        outputsJson.set(result.outputs, outputs);
      }
      reply.type('application/json; charset=utf-8');
      return `{"outputs":${outputs},"rows":${JSON.stringify(result.rows)}}`;
    } catch (error) {
      metrics.observeQuery(Number(process.hrtime.bigint() - started) / 1e9, 'error');
      throw error;
    }
  });

  app.post<{ Body: OfflineQueryRequest<readonly string[]> }>(
    '/v1/offline-query',
    { schema: offlineQuerySchema },
    async (request, reply) => {
      const body = request.body;
      if (body.output.length > limits.maxOutputs) {
        throw new RequestError(
          400,
          'TOO_MANY_OUTPUTS',
          `output has ${body.output.length} feature windows; at most ${limits.maxOutputs} per query`,
        );
      }
      // Keys are bounded by the body size alone: training sets are large.
      const result = await tessera.offlineQuery(body);
      const lines = (function* () {
        yield `${JSON.stringify({ outputs: result.outputs })}\n`;
        for (const row of result.rows) {
          yield `${JSON.stringify({ key: row.key, time: row.time, values: row.values })}\n`;
        }
      })();
      return reply.type('application/x-ndjson; charset=utf-8').send(Readable.from(lines));
    },
  );

  app.get('/v1/features', { schema: noQuerySchema }, async () => {
    const plan = tessera.plan;
    return {
      features: plan.features,
      series: plan.series.map((s, i) => ({
        ...tessera.series[i],
        number: s.number,
        retentionMs: s.retentionMs,
        bytesPerKey: s.bytesPerKey,
        rules: s.rules,
      })),
      aggregateList: aggregateListRows(plan),
      storage: {
        bytesPerKey: plan.bytesPerKey,
        perSeries: plan.series.map((s) => ({ series: s.id, bytesPerKey: s.bytesPerKey })),
        store: tessera.stats(),
      },
    };
  });

  app.get('/v1/streams', { schema: noQuerySchema }, async () => ({
    streams: context.streams.map((runner) => ({
      ...runner.metrics(),
      positions: tessera.positions(runner.name),
    })),
  }));

  app.get<{ Querystring: { source?: string; limit?: string; offset?: string } }>(
    '/v1/deadletters',
    { schema: deadLettersSchema },
    async (request) => {
      const { source } = request.query;
      const offset = Number(request.query.offset ?? 0);
      const limit = Number(request.query.limit ?? 100);
      if (limit > limits.maxDeadLetters) {
        throw new RequestError(
          400,
          'LIMIT_TOO_LARGE',
          `limit ${limit} is above the most dead letters per page, ${limits.maxDeadLetters}`,
        );
      }
      const engine = tessera.engine;
      const total = engine.deadLetterCount(source);
      // Pages by position in key order (source, partition, offset): letters are only
      // ever added, by commits, so a page stays where it was.
      const upTo =
        source === undefined ? { limit: offset + limit } : { source, limit: offset + limit };
      const letters = offset < total ? engine.deadLetters(upTo).slice(offset) : [];
      return {
        total,
        offset,
        limit,
        next: offset + letters.length < total ? offset + letters.length : null,
        deadLetters: letters.map(letterJson),
      };
    },
  );

  app.get('/v1/schedules', { schema: noQuerySchema }, async () => ({
    running: context.schedules !== undefined,
    jobs: (context.schedules ?? tessera.scheduleWith({})).status().map((s) => ({
      name: s.job.name,
      schedule: s.job.scheduleText,
      features: s.job.features,
      tags: s.job.tags,
      last: s.last,
      nextMs: s.nextMs,
      running: s.running,
    })),
  }));

  app.post<{ Body: BackfillBody }>(
    '/v1/backfills',
    { schema: backfillSchema },
    async (request, reply) => {
      const { plan, ...given } = request.body;
      let features = given.features;
      if (features === undefined) {
        features = [...new Set(tessera.incompleteWindows().map((w) => w.feature))];
        if (features.length === 0) {
          return { run: null, reason: 'every feature window is complete: nothing to backfill' };
        }
      }
      const options = { ...given, features };
      try {
        if (plan === true) return { plan: await tessera.planBackfill(options) };
        const run = context.backfills.start(options);
        return reply.status(202).header('location', `/v1/backfills/${run.id}`).send({ run });
      } catch (error) {
        // The options were checked before anything ran: a bad one is the request's fault.
        if (error instanceof BackfillError) {
          throw new RequestError(400, 'INVALID_BACKFILL', error.message);
        }
        throw error;
      }
    },
  );

  app.get('/v1/backfills', { schema: noQuerySchema }, async () => ({
    backfills: context.backfills.list(),
  }));

  app.get<{ Params: { id: string } }>(
    '/v1/backfills/:id',
    { schema: backfillIdSchema },
    async (request) => ({ run: knownBackfill(context.backfills, request.params.id) }),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/backfills/:id',
    { schema: backfillIdSchema },
    async (request, reply) => {
      const run = knownBackfill(context.backfills, request.params.id);
      if (!context.backfills.cancel(run.id)) {
        throw new RequestError(409, 'BACKFILL_ENDED', `backfill ${run.id} is ${run.status}`);
      }
      return reply.status(202).send({ run: context.backfills.get(run.id) });
    },
  );

  app.get('/metrics', { schema: noQuerySchema }, async (_request, reply) => {
    const text = await registry.metrics();
    return reply.header('content-type', registry.contentType).send(text);
  });

  return app;
}

interface BackfillBody {
  readonly features?: readonly string[];
  readonly lowerBound?: string | number;
  readonly upperBound?: string | number;
  readonly tags?: readonly string[];
  readonly target?: 'online' | 'offline' | 'both';
  readonly allowEmptyTiles?: boolean;
  readonly plan?: boolean;
}

/** The run `id` names, or a 404 naming it. */
function knownBackfill(backfills: HttpBackfills, id: string) {
  const run = backfills.get(id);
  if (run === undefined) {
    throw new RequestError(404, 'NOT_FOUND', `no backfill ${id} (GET /v1/backfills lists them)`);
  }
  return run;
}

/** A request the server refuses with `statusCode` and a code of its own. */
class RequestError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RequestError';
  }
}
