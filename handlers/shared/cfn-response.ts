// CloudFormation custom resource events and the answer to them, for the library's own handlers.
import * as http from 'http';
import * as https from 'https';

export interface CustomResourceEvent<P = Record<string, unknown>> {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly ResponseURL: string;
  readonly StackId: string;
  readonly RequestId: string;
  readonly LogicalResourceId: string;
  readonly PhysicalResourceId?: string;
  readonly ResourceProperties: P;
}

export function isCustomResourceEvent(event: unknown): event is CustomResourceEvent {
  return typeof event === 'object' && event !== null && 'RequestType' in event && 'ResponseURL' in event;
}

export interface CustomResourceAnswer {
  readonly status: 'SUCCESS' | 'FAILED';
  readonly reason: string;
  readonly physicalResourceId: string;
  readonly data?: Record<string, unknown>;
}

/**
 * PUTs the answer to the pre-signed URL CloudFormation waits on, giving up at `deadlineMs` (epoch ms):
 * the function must not be killed mid-request, and a rejected answer is retried by Lambda's own retry of
 * the failed invoke.
 */
export async function respond(event: CustomResourceEvent<unknown>, answer: CustomResourceAnswer, deadlineMs = Infinity): Promise<void> {
  const body = JSON.stringify({
    Status: answer.status,
    Reason: answer.reason.slice(0, 3000),
    PhysicalResourceId: answer.physicalResourceId,
    StackId: event.StackId,
    RequestId: event.RequestId,
    LogicalResourceId: event.LogicalResourceId,
    Data: answer.data ?? {},
  });
  const url = new URL(event.ResponseURL);
  const client = url.protocol === 'http:' ? http : https;
  const timeout = Number.isFinite(deadlineMs) ? Math.max(1, deadlineMs - Date.now()) : undefined;
  await new Promise<void>((resolve, reject) => {
    const req = client.request(url, { method: 'PUT', headers: { 'content-type': '', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    // A whole-request deadline, not an idle one: a response that trickles must not outlive the function.
    const timer = timeout === undefined ? undefined
      : setTimeout(() => req.destroy(new Error(`custom resource: CloudFormation's response URL did not answer within ${timeout} ms`)), timeout);
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end(body);
  });
}
