import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

/* eslint-disable no-bitwise -- file modes are bit fields */

/**
 * Kind, mode and content hash of every entry under `root`, so two trees compare with `toEqual` and a
 * difference names the path. `modes`: `exact` (our loader restores every bit) or `executable` (only
 * whether a file can run: the packer normalises exec bits and `tar` applies the umask).
 */
export function listing(root: string, modes: 'exact' | 'executable'): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(root, r));
      if (st.isSymbolicLink()) {
        out[r] = `link ${fs.readlinkSync(path.join(root, r))}`;
      } else if (st.isDirectory()) {
        out[r] = 'dir';
        visit(r);
      } else {
        const mode = modes === 'exact' ? (st.mode & 0o777).toString(8) : (st.mode & 0o111 ? 'x' : '-');
        out[r] = `file ${mode} ${createHash('sha256').update(fs.readFileSync(path.join(root, r))).digest('hex')}`;
      }
    }
  };
  visit('');
  return out;
}
