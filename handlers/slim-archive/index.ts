import { CopyObjectCommand, PutObjectTaggingCommand, S3Client } from '@aws-sdk/client-s3';
import { CustomResourceEvent, respond } from '../shared/cfn-response';

/** What `SlimCodeAsset` passes: copy the staged CDK asset to its content-addressed key. */
export interface ArchiveProperties {
  readonly SourceBucket: string;
  readonly SourceKey: string;
  readonly Bucket: string;
  readonly Key: string;
}

export const RETIRED_TAG = 'warm-web:retired';

export const s3 = new S3Client({});

/**
 * Create: copy the archive into the code bucket (the key is its hash, so a copy is never overwritten with
 * other bytes). Delete (CloudFormation's clean-up after a deploy replaced the archive, or a stack
 * deletion): tag it retired, so the bucket's lifecycle rule removes it after the rollback window instead
 * of at once.
 */
export async function handler(event: CustomResourceEvent<ArchiveProperties>): Promise<void> {
  const { SourceBucket, SourceKey, Bucket, Key } = event.ResourceProperties;
  const physicalResourceId = `s3://${Bucket}/${Key}`;
  try {
    if (event.RequestType === 'Delete') {
      await s3.send(new PutObjectTaggingCommand({ Bucket, Key, Tagging: { TagSet: [{ Key: RETIRED_TAG, Value: 'true' }] } }));
      return await respond(event, { status: 'SUCCESS', reason: `retired ${physicalResourceId}`, physicalResourceId });
    }
    await s3.send(new CopyObjectCommand({
      Bucket,
      Key,
      CopySource: `${SourceBucket}/${SourceKey.split('/').map(encodeURIComponent).join('/')}`,
      // A rollback re-creates the resource for an archive that may already be retired: un-retire it.
      TaggingDirective: 'REPLACE',
      Tagging: '',
    }));
    return await respond(event, { status: 'SUCCESS', reason: `copied to ${physicalResourceId}`, physicalResourceId });
  } catch (err) {
    const error = err as Error;
    if (event.RequestType === 'Delete' && error.name === 'NoSuchKey') {
      return respond(event, { status: 'SUCCESS', reason: `${physicalResourceId} is already gone`, physicalResourceId });
    }
    return respond(event, { status: 'FAILED', reason: `${event.RequestType} ${physicalResourceId}: ${error.name}: ${error.message}`, physicalResourceId });
  }
}
