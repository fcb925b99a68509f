import * as fs from 'fs';
import * as path from 'path';

/**
 * The directory an example deploys: `build/` (the app with its dependencies, made by
 * `examples/package.sh <name>`) when it exists, else the bare `app/` source, which synthesizes
 * but would fail to import its framework once deployed.
 */
export function codeDirectory(exampleDir: string): { directory: string; packaged: boolean } {
  const build = path.join(exampleDir, 'build');
  if (fs.existsSync(build)) {
    return { directory: build, packaged: true };
  }
  return { directory: path.join(exampleDir, 'app'), packaged: false };
}
