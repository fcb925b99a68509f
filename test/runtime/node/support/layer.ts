import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { build, BuildOptions } from 'esbuild';

const RUNTIME = path.join(__dirname, '..', '..', '..', '..', 'runtime', 'node');

/** The Node layer as the bundle:node-shim task builds it (the slim loader a file of its own), in a temporary folder. */
export interface NodeLayer {
  /** The folder that stands for /opt. */
  readonly dir: string;
  /** warm-web/index.js: the handler file Lambda loads. */
  readonly entry: string;
  remove(): void;
}

export async function buildNodeLayer(): Promise<NodeLayer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'warm-web-layer-'));
  const common: BuildOptions = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'silent' };
  const entry = path.join(dir, 'warm-web', 'index.js');
  await build({ ...common, entryPoints: [path.join(RUNTIME, 'index.ts')], external: ['./slim'], outfile: entry });
  await build({ ...common, entryPoints: [path.join(RUNTIME, 'slim.ts')], outfile: path.join(dir, 'warm-web', 'slim.js') });
  return { dir, entry, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
