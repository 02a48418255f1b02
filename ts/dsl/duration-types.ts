/**
 * Type-level durations: the seconds spelling of a window literal, computed by the type
 * checker so that `User.total__604800__` and `User.total['604800']` type-check for a
 * feature declaring `'7d'`. Decimal arithmetic on digit tuples (least significant digit
 * first); only whole-second spellings (`w d h m s`, bare integers, `all`/`infinity`) are
 * computed, anything else yields `never` (the runtime still resolves it).
 */

type Digit = '0' | '1' | '2' | '3' | '4' | '5' | '6' | '7' | '8' | '9';

type Ones = {
  '0': [];
  '1': [1];
  '2': [1, 1];
  '3': [1, 1, 1];
  '4': [1, 1, 1, 1];
  '5': [1, 1, 1, 1, 1];
  '6': [1, 1, 1, 1, 1, 1];
  '7': [1, 1, 1, 1, 1, 1, 1];
  '8': [1, 1, 1, 1, 1, 1, 1, 1];
  '9': [1, 1, 1, 1, 1, 1, 1, 1, 1];
};

/** `a + b + carry` for digits, as [digit, carry]. */
type SumTable = [
  ['0', 0],
  ['1', 0],
  ['2', 0],
  ['3', 0],
  ['4', 0],
  ['5', 0],
  ['6', 0],
  ['7', 0],
  ['8', 0],
  ['9', 0],
  ['0', 1],
  ['1', 1],
  ['2', 1],
  ['3', 1],
  ['4', 1],
  ['5', 1],
  ['6', 1],
  ['7', 1],
  ['8', 1],
  ['9', 1],
];

type Lookup<L> = L extends keyof SumTable ? SumTable[L] : never;

type Rev<
  S extends string,
  Acc extends Digit[] = [],
> = S extends `${infer H extends Digit}${infer R}` ? Rev<R, [H, ...Acc]> : Acc;

type Str<D extends Digit[], Acc extends string = ''> = D extends [
  infer H extends Digit,
  ...infer R extends Digit[],
]
  ? Str<R, `${H}${Acc}`>
  : Acc;

type AddRev<
  A extends Digit[],
  B extends Digit[],
  C extends 0 | 1 = 0,
  Acc extends Digit[] = [],
> = A extends []
  ? B extends []
    ? C extends 1
      ? [...Acc, '1']
      : Acc
    : AddRev<['0'], B, C, Acc>
  : B extends []
    ? AddRev<A, ['0'], C, Acc>
    : A extends [infer a extends Digit, ...infer ar extends Digit[]]
      ? B extends [infer b extends Digit, ...infer br extends Digit[]]
        ? Lookup<[...Ones[a], ...Ones[b], ...(C extends 1 ? [1] : [])]['length']> extends [
            infer d extends Digit,
            infer c extends 0 | 1,
          ]
          ? AddRev<ar, br, c, [...Acc, d]>
          : never
        : never
      : never;

type TimesDigit<
  A extends Digit[],
  D extends Digit,
  Acc extends Digit[] = [],
  N extends 1[] = [],
> = N['length'] extends Ones[D]['length']
  ? Acc
  : AddRev<Acc, A> extends infer S extends Digit[]
    ? TimesDigit<A, D, S, [...N, 1]>
    : never;

type MulRev<
  A extends Digit[],
  B extends Digit[],
  Shift extends '0'[] = [],
  Acc extends Digit[] = [],
> = B extends [infer b extends Digit, ...infer br extends Digit[]]
  ? TimesDigit<A, b> extends infer T extends Digit[]
    ? AddRev<Acc, [...Shift, ...T]> extends infer S extends Digit[]
      ? MulRev<A, br, [...Shift, '0'], S>
      : never
    : never
  : Acc;

type UnitSeconds = { w: '604800'; d: '86400'; h: '3600'; m: '60'; s: '1' };

type ReadDigits<S extends string, Acc extends string = ''> = S extends `${infer H extends
  Digit}${infer R}`
  ? ReadDigits<R, `${Acc}${H}`>
  : [Acc, S];

type PartsSeconds<S extends string, Acc extends Digit[] = []> = S extends ''
  ? Acc
  : S extends ` ${infer R}`
    ? PartsSeconds<R, Acc>
    : ReadDigits<S> extends [infer N extends string, infer Rest extends string]
      ? N extends ''
        ? never
        : Rest extends `ms${string}`
          ? never
          : Rest extends `${infer U extends keyof UnitSeconds}${infer R2}`
            ? PartsSeconds<R2, AddRev<Acc, MulRev<Rev<N>, Rev<UnitSeconds[U]>>>>
            : never
      : never;

type StripZeros<S extends string> = S extends `0${infer R}`
  ? R extends ''
    ? '0'
    : StripZeros<R>
  : S;

type AllDigits<S extends string> = S extends `${Digit}${infer R}`
  ? R extends ''
    ? true
    : AllDigits<R>
  : false;

/**
 * The seconds spelling of a window literal, as used in canonical names: `Seconds<'7d'>`
 * is `'604800'`, `Seconds<'1h30m'>` is `'5400'`, `Seconds<'all'>` and
 * `Seconds<'36500d'>` are `'all'`. `never` for spellings the type checker does not
 * compute (milliseconds, invalid text); for a non-literal `string` it is `string`.
 */
export type Seconds<W extends string> = string extends W
  ? string
  : W extends 'all' | 'infinity'
    ? 'all'
    : AllDigits<W> extends true
      ? StripZeros<W>
      : [PartsSeconds<W>] extends [never]
        ? never
        : StripZeros<Str<PartsSeconds<W>>> extends infer R extends string
          ? R extends '3153600000'
            ? 'all'
            : R
          : never;

/**
 * Every key under which a window can be asked for in code: the declared spelling and
 * its seconds spelling (`'7d' | '604800'`); `'all'` and `'infinity'` are interchangeable.
 */
export type WindowKey<W extends string> =
  | W
  | Seconds<W>
  | (W extends 'all' | 'infinity' ? 'all' | 'infinity' : never);

/** The window names produced by the `days` / `hours` / `minutes` keyword forms. */
export type KeywordWindows<
  D extends readonly number[],
  H extends readonly number[],
  M extends readonly number[],
> = `${D[number]}d` | `${H[number]}h` | `${M[number]}m`;
