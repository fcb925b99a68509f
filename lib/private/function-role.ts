import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/**
 * A function's own log group and a role that can write to it and nothing else: no managed policy,
 * no account-wide log permissions.
 */
export function functionRoleAndLogs(scope: Construct, ids: { role: string; logGroup: string }, options: {
  readonly description: string;
  readonly retention?: logs.RetentionDays;
}): { role: iam.Role; logGroup: logs.LogGroup } {
  const logGroup = new logs.LogGroup(scope, ids.logGroup, { retention: options.retention ?? logs.RetentionDays.ONE_MONTH });
  const role = new iam.Role(scope, ids.role, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: options.description,
  });
  logGroup.grantWrite(role);
  return { role, logGroup };
}
