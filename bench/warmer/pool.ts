// The local Lambda endpoint in a process of its own, as Lambda's service is not on the warmer's CPU:
// answering a released ping must not slow the warmer's dispatch of the rest. Started by harness.ts.
import { LocalFunction, LocalLambda } from '../../local/local-lambda';

type Request = { id: number; op: 'start'; functions: LocalFunction[] } | { id: number; op: 'take' | 'reclaim' | 'arn'; name: string } | { id: number; op: 'stop' };

let local: LocalLambda;
// The bench ended or died: go, and the environments with it (their stdin closes).
process.on('disconnect', () => process.exit(0));
process.on('message', (request: Request) => {
  void (async () => {
    let result: unknown;
    if (request.op === 'start') {
      local = new LocalLambda(request.functions);
      await local.start();
      result = local.endpoint;
    } else if (request.op === 'take') {
      result = local.takeInvocations(request.name);
    } else if (request.op === 'arn') {
      result = local.aliasArn(request.name);
    } else if (request.op === 'reclaim') {
      local.reclaim(request.name);
    } else {
      await local.stop();
    }
    process.send!({ id: request.id, result });
  })();
});
