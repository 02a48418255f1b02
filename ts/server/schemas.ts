/**
 * JSON schemas of the HTTP API's requests, checked by fastify (ajv) before a handler
 * runs; a request that fails one gets 400 with the failing path in its message. What a
 * schema cannot say well (how many keys a query has, whether a feature exists, whether
 * a key has the right type) is checked by the handler and the query planner.
 */

const keyValue = { type: ['number', 'string', 'boolean', 'null'] } as const;

/** `POST /v1/query`. */
export const querySchema = {
  body: {
    type: 'object',
    required: ['input', 'output'],
    additionalProperties: false,
    properties: {
      input: {
        description:
          "The keys: columns ({ 'user.id': [1, 2] }), one key ({ id: 1 }) or rows ([{ id: 1 }])",
        anyOf: [
          {
            type: 'object',
            minProperties: 1,
            additionalProperties: { anyOf: [keyValue, { type: 'array', items: keyValue }] },
          },
          {
            type: 'array',
            minItems: 1,
            items: { type: 'object', minProperties: 1, additionalProperties: keyValue },
          },
        ],
      },
      output: {
        description: "Feature windows by name: 'user.total_7d', 'user.total__604800__@2'",
        type: 'array',
        minItems: 1,
        items: { type: 'string', minLength: 1 },
      },
      now: {
        description: 'The query time: an ISO time with a zone, or Unix milliseconds',
        type: ['string', 'number'],
      },
      explain: { type: 'boolean' },
    },
  },
} as const;

const instant = {
  description: 'An ISO time with a zone, or Unix milliseconds',
  type: ['string', 'number'],
} as const;

/** `POST /v1/backfills`. */
export const backfillSchema = {
  body: {
    type: 'object',
    additionalProperties: false,
    properties: {
      features: {
        description:
          "Features to rebuild ('user.total', 'user.total_spend@2'); default: those with incomplete windows",
        type: 'array',
        minItems: 1,
        items: { type: 'string', minLength: 1 },
      },
      lowerBound: instant,
      upperBound: instant,
      tags: { type: 'array', items: { type: 'string', minLength: 1 } },
      target: {
        description:
          "'online' (the store, the default), 'offline' (offline tiles; both bounds required) or 'both'",
        enum: ['online', 'offline', 'both'],
      },
      allowEmptyTiles: {
        description: 'Offline targets: record a tile for a layout the run found no rows for',
        type: 'boolean',
      },
      plan: { description: 'Answer what the run would do, without running it', type: 'boolean' },
    },
  },
} as const;

/** `GET` and `DELETE /v1/backfills/:id`. */
export const backfillIdSchema = {
  params: {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
  },
  querystring: { type: 'object', additionalProperties: false, properties: {} },
} as const;

/** `POST /v1/offline-query`. */
export const offlineQuerySchema = {
  body: {
    type: 'object',
    required: ['input', 'inputTimes', 'output'],
    additionalProperties: false,
    properties: {
      input: querySchema.body.properties.input,
      inputTimes: {
        description: 'One time per input key: ISO times with a zone, or Unix milliseconds',
        type: 'array',
        items: { type: ['string', 'number'] },
      },
      output: querySchema.body.properties.output,
      plannerOptions: {
        type: 'object',
        additionalProperties: false,
        properties: {
          useMaterializedOfflineQuery: { type: 'boolean' },
          alignOfflineChalkWindowWithMaterialization: { type: 'boolean' },
          useTileStore: { type: 'boolean' },
        },
      },
      tags: { type: 'array', items: { type: 'string', minLength: 1 } },
    },
  },
} as const;

/** `GET /v1/deadletters`. */
export const deadLettersSchema = {
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      source: { type: 'string', minLength: 1 },
      limit: { type: 'string', pattern: '^[1-9][0-9]{0,8}$' },
      offset: { type: 'string', pattern: '^(0|[1-9][0-9]{0,14})$' },
    },
  },
} as const;

/** Routes without parameters refuse any query string parameter. */
export const noQuerySchema = {
  querystring: { type: 'object', additionalProperties: false, properties: {} },
} as const;

/** The JSON body of every error. */
export interface ErrorBody {
  readonly error: {
    /** HTTP status. */
    readonly status: number;
    /** A stable code: `INVALID_QUERY`, `FST_ERR_VALIDATION`, `TOO_MANY_KEYS`, ... */
    readonly code: string;
    /** What was wrong, naming the field, feature, window or limit. */
    readonly message: string;
  };
}
