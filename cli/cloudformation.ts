// The two CloudFormation reads the CLI needs (GetTemplate, DescribeStackResource), over the Query API and
// signed with the SDK's own SigV4 signer: the package ships the Lambda client only, and these two calls
// do not justify bundling the whole CloudFormation client.
import { createHash, createHmac } from 'crypto';
import type { AwsCredentialIdentity, Provider } from '@aws-sdk/types';
// The SDK's signer, bundled into the CLI with @aws-sdk/client-lambda that depends on it.
// eslint-disable-next-line import/no-extraneous-dependencies
import { SignatureV4 } from '@smithy/signature-v4';

export interface StackReader {
  /** The stack's processed template (as deployed). */
  template(stackName: string): Promise<Record<string, unknown>>;
  /** The physical id of one of the stack's resources. */
  physicalId(stackName: string, logicalId: string): Promise<string>;
}

export class CloudFormationError extends Error {
  constructor(public readonly code: string, message: string) {
    super(message);
  }
}

class Sha256 {
  private readonly hash;
  constructor(secret?: unknown) {
    this.hash = secret ? createHmac('sha256', secret as string) : createHash('sha256');
  }
  update(data: Uint8Array | string): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: '\'' };

function xmlText(xml: string, element: string): string | undefined {
  const match = new RegExp(`<${element}>([\\s\\S]*?)</${element}>`).exec(xml);
  return match?.[1].replace(/&(#x[0-9a-fA-F]+|#\d+|\w+);/g, (whole, entity: string) => {
    if (entity.startsWith('#x')) {
      return String.fromCodePoint(parseInt(entity.slice(2), 16));
    }
    if (entity.startsWith('#')) {
      return String.fromCodePoint(parseInt(entity.slice(1), 10));
    }
    return ENTITIES[entity] ?? whole;
  });
}

export interface QueryStackReaderOptions {
  readonly region: string;
  readonly credentials: Provider<AwsCredentialIdentity>;
  /** @default AWS_ENDPOINT_URL_CLOUDFORMATION, else AWS_ENDPOINT_URL, else the regional endpoint */
  readonly endpoint?: string;
}

/** CloudFormation's Query API: form-encoded POST, XML answer. */
export class QueryStackReader implements StackReader {
  private readonly endpoint: URL;
  private readonly signer: SignatureV4;

  constructor(options: QueryStackReaderOptions) {
    const suffix = options.region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
    this.endpoint = new URL(options.endpoint ?? process.env.AWS_ENDPOINT_URL_CLOUDFORMATION ?? process.env.AWS_ENDPOINT_URL
      ?? `https://cloudformation.${options.region}.${suffix}/`);
    this.signer = new SignatureV4({ service: 'cloudformation', region: options.region, credentials: options.credentials, sha256: Sha256 });
  }

  public async template(stackName: string): Promise<Record<string, unknown>> {
    const xml = await this.call('GetTemplate', { StackName: stackName, TemplateStage: 'Processed' });
    const body = xmlText(xml, 'TemplateBody');
    try {
      return JSON.parse(body ?? '') as Record<string, unknown>;
    } catch {
      throw new CloudFormationError('NotJson', `the template of stack ${stackName} is not JSON (not deployed by the CDK?)`);
    }
  }

  public async physicalId(stackName: string, logicalId: string): Promise<string> {
    const xml = await this.call('DescribeStackResource', { StackName: stackName, LogicalResourceId: logicalId });
    const id = xmlText(xml, 'PhysicalResourceId');
    if (!id) {
      throw new CloudFormationError('NoPhysicalId', `resource ${logicalId} of stack ${stackName} has no physical id yet (status ${xmlText(xml, 'ResourceStatus') ?? 'unknown'})`);
    }
    return id;
  }

  private async call(action: string, params: Record<string, string>): Promise<string> {
    const body = new URLSearchParams({ Action: action, Version: '2010-05-15', ...params }).toString();
    const url = this.endpoint;
    const signed = await this.signer.sign({
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: url.pathname,
      query: {},
      headers: { 'host': url.host, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body,
    });
    // fetch sets Host itself, to the same value that was signed.
    const { host: _host, ...headers } = signed.headers;
    const response = await fetch(url, { method: 'POST', headers, body });
    const xml = await response.text();
    if (!response.ok) {
      const code = xmlText(xml, 'Code') ?? `HTTP ${response.status}`;
      throw new CloudFormationError(code, `CloudFormation ${action}: ${code}: ${xmlText(xml, 'Message') ?? xml.slice(0, 200)}`);
    }
    return xml;
  }
}
