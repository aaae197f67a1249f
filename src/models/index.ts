/**
 * Models by name: the server picks one from this map. Each lives in its own file
 * and is loaded only when used.
 */
import { provideChoices } from '../options.js';
import type { ModelFactory, ModelName } from './types.js';

export type { Model, ModelFactory, ModelHost, ModelName, ModelOptions, ModelProcess, ModelStats } from './types.js';

const models: Partial<Record<ModelName, () => Promise<{ default: ModelFactory }>>> = {
  fork: () => import('./fork.js'),
  iterative: () => import('./iterative.js'),
  event: () => import('./event.js'),
  prefork: () => import('./prefork.js'),
  threads: () => import('./threads.js'),
};

/** Names of the models this build provides. */
export function modelNames(): ModelName[] {
  return Object.keys(models) as ModelName[];
}

// The option table's --model choices are this map's names.
provideChoices('model', modelNames);

/** Whether `name` is a model this build provides. */
export function isModelName(name: string): name is ModelName {
  return Object.hasOwn(models, name);
}

/** Load a model's factory by name. */
export async function loadModel(name: ModelName): Promise<ModelFactory> {
  const load = models[name];
  if (!load) throw new Error(`unknown model ${name}`);
  return (await load()).default;
}
