import * as fs from 'fs';
import * as path from 'path';

/** The Python that runs environment processes in tests: the test venv if there is one. */
export function pythonForTests(): string {
  const venv = path.join(__dirname, '..', '..', '.venv', 'bin', 'python');
  return fs.existsSync(venv) ? venv : 'python3';
}
