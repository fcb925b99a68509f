import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';

/**
 * A stack's template for a snapshot, with asset, version and archive hashes (which change with every
 * edit of the runtime or app code) replaced, so a snapshot changes only when the template really does.
 */
export function snapshotTemplate(stack: Stack): unknown {
  const json = JSON.stringify(Template.fromStack(stack).toJSON())
    .replace(/[0-9a-f]{64}(\.zip)?/g, '[ASSET HASH]')
    .replace(/CurrentVersion([0-9A-F]{8})[0-9a-f]{32}/g, 'CurrentVersion$1[VERSION HASH]')
    // Slim code: the archive's id and sizes follow its content.
    .replace(/Archive[0-9a-f]{16}[0-9A-F]{8}/g, 'Archive[ARCHIVE HASH]')
    .replace(/"WARM_WEB_SLIM_(SIZE|UNPACKED)":"\d+"/g, '"WARM_WEB_SLIM_$1":"[BYTES]"');
  return JSON.parse(json);
}
