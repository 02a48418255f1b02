/**
 * The fast path of a declarative stream resolver: when its message schema is a flat zod
 * object of plain strings, numbers and booleans (optional or nullable), the native
 * engine decodes a whole poll of JSON messages into columns in one call, instead of
 * `JSON.parse`, zod and the mapping running once per message.
 *
 * The native decoder only *accepts* messages; whatever it is unsure of (bad JSON, a type
 * mismatch, a missing or null value, an unusual timestamp) goes through the general path,
 * which accepts it or writes the dead letter with its exact reason. So a resolver behaves
 * the same with or without the fast path; `__test__/message-plan.test.ts` checks that on
 * random good and bad messages.
 */
import type { z } from 'zod';
import type {
  MessageFieldDescription,
  MessageOutputKind,
  MessagePlanDescription,
} from '../native.js';
import type { ColumnPlan } from '../planner/types.js';

type PlainType = MessageFieldDescription['type'];

interface ZodInternals {
  _zod?: { def?: Record<string, unknown> };
}

function defOf(schema: unknown): Record<string, unknown> | undefined {
  return (schema as ZodInternals | null)?._zod?.def;
}

/** A field schema as (type, optional, nullable), or `null` when it is not plain. */
function plainField(schema: unknown): Omit<MessageFieldDescription, 'name'> | null {
  let optional = false;
  let nullable = false;
  let def = defOf(schema);
  for (let depth = 0; def !== undefined && depth < 4; depth++) {
    if (def.type === 'optional' || def.type === 'nullable') {
      if (def.type === 'optional') optional = true;
      else nullable = true;
      def = defOf(def.innerType);
      continue;
    }
    // Exactly `{ type }` (and an empty `checks`): no checks, formats, coercion or
    // defaults, whose meaning the native decoder would have to repeat.
    const keys = Object.keys(def).filter(
      (k) => !(k === 'checks' && Array.isArray(def?.checks) && def.checks.length === 0),
    );
    if (keys.length !== 1) return null;
    const type = def.type;
    if (type === 'string' || type === 'number' || type === 'boolean') {
      return { type: type as PlainType, optional, nullable };
    }
    return null;
  }
  return null;
}

/** A value the resolver reads: the message field and the column kind it feeds. */
export interface PlannedRead {
  /** A top-level field name, or `null` when a function reads the value. */
  readonly path: string | null;
  readonly as: ColumnPlan['type']['kind'] | 'dedupe';
  /** A missing or null value is a null (NaN) rather than a bad message. */
  readonly nullable: boolean;
  /** The value is needed (else it is only checked). */
  readonly keep: boolean;
}

/** How the values of one planned read come back from the decoder. */
export type OutputShape = 'number' | 'string';

export interface CompiledMessagePlan {
  readonly description: MessagePlanDescription;
  /** Per planned read, in order. */
  readonly shapes: readonly OutputShape[];
}

/**
 * The native plan of `schema` for `reads`, or `null` when some part is beyond the fast
 * path (the general path then handles every message).
 */
export function compileMessagePlan(
  schema: z.ZodType,
  reads: readonly PlannedRead[],
): CompiledMessagePlan | null {
  const root = defOf(schema);
  if (root === undefined || root.type !== 'object') return null;
  // Unknown keys stripped (the default) and no object-level checks.
  if (root.catchall !== undefined || (Array.isArray(root.checks) && root.checks.length > 0)) {
    return null;
  }
  const shape = root.shape as Record<string, unknown> | undefined;
  if (shape === undefined) return null;
  const fields: MessageFieldDescription[] = [];
  for (const [name, fieldSchema] of Object.entries(shape)) {
    const plain = plainField(fieldSchema);
    if (plain === null) return null;
    fields.push({ name, ...plain });
  }
  const outputs: MessagePlanDescription['outputs'] = [];
  const shapes: OutputShape[] = [];
  for (const read of reads) {
    if (read.path === null || read.path.includes('.')) return null;
    const field = fields.findIndex((f) => f.name === read.path);
    const type = fields[field]?.type;
    if (type === undefined) return null;
    const kind = outputKind(read.as, type);
    if (kind === null) return null;
    // Strings come back as strings, which cannot say null.
    const nullable = read.nullable && kind !== 'string';
    outputs.push({ field, kind, nullable, keep: read.keep });
    shapes.push(kind === 'string' ? 'string' : 'number');
  }
  return { description: { fields, outputs }, shapes };
}

/** The decoder output for a column kind read from a field of `type`, if it has one. */
function outputKind(as: PlannedRead['as'], type: PlainType): MessageOutputKind | null {
  switch (as) {
    case 'float':
      return type === 'number' ? 'float' : null;
    case 'int':
      return type === 'number' ? 'int' : null;
    case 'boolean':
      return type === 'boolean' ? 'boolean' : null;
    case 'datetime':
      return type === 'string' ? 'time' : null;
    case 'string':
      return type === 'string' ? 'string' : null;
    case 'dedupe':
      // A number's dedupe key is its decimal form, which the column keeps exactly; a
      // boolean's would be lost as 1 / 0.
      return type === 'string' ? 'string' : type === 'number' ? 'float' : null;
    default:
      return null;
  }
}
