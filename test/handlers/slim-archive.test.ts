import * as http from 'http';
import { AddressInfo } from 'net';
import { CopyObjectCommand, PutObjectTaggingCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { handler, RETIRED_TAG } from '../../handlers/slim-archive';

const s3Mock = mockClient(S3Client);
let server: http.Server;
let url: string;
let answers: Array<Record<string, any>>;

beforeEach(async () => {
  s3Mock.reset();
  answers = [];
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      answers.push(JSON.parse(body));
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterEach(() => new Promise<void>((resolve) => server.close(() => resolve())));

const event = (RequestType: 'Create' | 'Update' | 'Delete') => ({
  RequestType,
  ResponseURL: url,
  StackId: 's',
  RequestId: 'r',
  LogicalResourceId: 'Archive',
  ResourceProperties: { SourceBucket: 'cdk-assets', SourceKey: 'ab cd/1234.slim', Bucket: 'code', Key: 'slim/1234.slim' },
});

test('Create copies the staged archive to its content-addressed key and clears a retired tag', async () => {
  s3Mock.on(CopyObjectCommand).resolves({});
  await handler(event('Create'));
  const [call] = s3Mock.commandCalls(CopyObjectCommand);
  expect(call.args[0].input).toEqual({
    Bucket: 'code', Key: 'slim/1234.slim', CopySource: 'cdk-assets/ab%20cd/1234.slim', TaggingDirective: 'REPLACE', Tagging: '',
  });
  expect(answers).toEqual([expect.objectContaining({ Status: 'SUCCESS', PhysicalResourceId: 's3://code/slim/1234.slim' })]);
});

test('Delete retires the archive instead of deleting it', async () => {
  s3Mock.on(PutObjectTaggingCommand).resolves({});
  await handler(event('Delete'));
  expect(s3Mock.commandCalls(CopyObjectCommand)).toHaveLength(0);
  expect(s3Mock.commandCalls(PutObjectTaggingCommand)[0].args[0].input).toEqual({
    Bucket: 'code', Key: 'slim/1234.slim', Tagging: { TagSet: [{ Key: RETIRED_TAG, Value: 'true' }] },
  });
  expect(answers[0]).toMatchObject({ Status: 'SUCCESS', Reason: 'retired s3://code/slim/1234.slim' });
});

test('Delete of an archive that is already gone succeeds', async () => {
  s3Mock.on(PutObjectTaggingCommand).rejects(Object.assign(new Error('The specified key does not exist.'), { name: 'NoSuchKey' }));
  await handler(event('Delete'));
  expect(answers[0]).toMatchObject({ Status: 'SUCCESS', Reason: 's3://code/slim/1234.slim is already gone' });
});

test('a failed copy fails the deploy with the cause', async () => {
  s3Mock.on(CopyObjectCommand).rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied' }));
  await handler(event('Update'));
  expect(answers[0]).toMatchObject({ Status: 'FAILED', Reason: 'Update s3://code/slim/1234.slim: AccessDenied: Access Denied' });
});
