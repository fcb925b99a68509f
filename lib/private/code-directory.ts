import * as fs from 'fs';
import * as path from 'path';
import { IgnoreStrategy } from 'aws-cdk-lib';

/** Paths no web app needs at run time; always left out of a code package. */
export const ALWAYS_EXCLUDED = ['.git', 'cdk.out', '.venv', '**/.DS_Store'];

/**
 * The directory's own Python bytecode: replaced by bytecode compiled for the function's Python (see
 * bytecode.ts). Without that, zip code leaves it out (a zip asset does not keep mtimes, so timestamp
 * pycs would be stale) and slim archives keep it (the packer keeps mtimes).
 */
export const BYTECODE = ['**/__pycache__', '**/*.pyc'];

/** Checks a code directory exists and is a directory. */
export function checkDirectory(factory: string, directory: string): void {
  const root = path.resolve(directory);
  if (!fs.existsSync(root)) {
    throw new Error(`${factory}: directory '${directory}' does not exist`);
  }
  if (!fs.statSync(root).isDirectory()) {
    throw new Error(`${factory}: '${directory}' is not a directory`);
  }
}

/** The error for a directory left with nothing to deploy. */
export function noFilesError(factory: string, directory: string, exclude: string[]): Error {
  return new Error(`${factory}: directory '${directory}' has no files to deploy (after exclude patterns ${JSON.stringify(exclude)})`);
}

/** Checks a code directory exists and has files after exclusions; returns what it holds. */
export function measureDirectory(factory: string, directory: string, exclude: string[]): { files: number; bytes: number } {
  checkDirectory(factory, directory);
  const root = path.resolve(directory);
  const ignore = IgnoreStrategy.glob(root, exclude);
  let files = 0;
  let bytes = 0;
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (ignore.ignores(full)) continue;
      if (entry.isDirectory()) {
        walk(full);
      } else {
        files += 1;
        bytes += fs.lstatSync(full).size;
      }
    }
  };
  walk(root);
  if (files === 0) {
    throw noFilesError(factory, directory, exclude);
  }
  return { files, bytes };
}
