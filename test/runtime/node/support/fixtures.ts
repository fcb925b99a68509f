import { createRequire } from 'module';
import * as path from 'path';

export const FIXTURES = path.join(__dirname, '..', 'fixtures');

/** Loads a fixture through the same module registry the shim uses, so both see one instance. */
export function loadFixture<T>(file: string): T {
  const full = path.join(FIXTURES, file);
  return createRequire(full)(full) as T;
}
