/**
 * Argument helpers shared by the subcommands: util.parseArgs with every failure
 * turned into one UsageError line that names the argument.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';
import { MAX_SECONDS } from '../options.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs, strict, with UsageErrors naming the command and the argument. */
export function parse<T extends Options>(
  command: string,
  argv: string[],
  options: T,
): {
  values: { [K in keyof T]?: T[K]['type'] extends 'boolean' ? boolean : T[K] extends { multiple: true } ? string[] : string };
  positionals: string[];
} {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true }) as never;
  } catch (err) {
    const e = err as Error & { code?: string };
    const m = /'([^']+)'/.exec(e.message);
    const arg = m?.[1] ?? '';
    switch (e.code) {
      case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
        throw new UsageError(`${command}: unknown option ${arg} (see tcpkit ${command} --help)`);
      case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
        const name = /--[\w-]+/.exec(e.message)?.[0] ?? arg;
        if (/ambiguous/.test(e.message)) {
          throw new UsageError(`${command}: ${name} needs a value; a value starting with "-" is written ${name}=VALUE`);
        }
        if (/does not take an argument/.test(e.message)) throw new UsageError(`${command}: ${name} takes no value`);
        throw new UsageError(`${command}: ${name} needs a value`);
      }
      default:
        throw new UsageError(`${command}: ${e.message}`);
    }
  }
}

/** An integer option within bounds, or undefined when absent. */
export function intOption(
  name: string,
  value: string | undefined,
  { min = 0, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UsageError(`--${name}: must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/**
 * A non-negative number of seconds (fractions allowed), at most MAX_SECONDS (what a
 * timer holds, as for serve's durations), or undefined when absent.
 */
export function secondsOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(value) || Number(value) > MAX_SECONDS) {
    throw new UsageError(`--${name}: must be a number of seconds >= 0 and <= ${MAX_SECONDS}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/** One of a fixed set of words, or undefined when absent. */
export function choiceOption<T extends string>(name: string, value: string | undefined, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(`--${name}: must be one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}
