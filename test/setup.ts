// Snapshot serializer: asset hashes change with every edit of the runtime code, so they are scrubbed
// from template snapshots and the snapshots show only what a reviewer should see change.
const ASSET_HASH = /[0-9a-f]{64}(\.zip)?/;

expect.addSnapshotSerializer({
  test: (value: unknown) => typeof value === 'string' && ASSET_HASH.test(value),
  print: (value: unknown) => JSON.stringify((value as string).replace(new RegExp(ASSET_HASH, 'g'), '[ASSET HASH]')),
});
