import { Construct } from 'constructs';

/**
 * Context key under which a `WarmWebStack` records its `deletionProtection`, so that databases created
 * anywhere inside it follow the stack's switch unless their own options say otherwise.
 */
export const DELETION_PROTECTION_CONTEXT = '@cdk-warm-web/deletionProtection';

/** Deletion protection for stateful resources created under `scope` whose options leave it open. */
export function deletionProtectionDefault(scope: Construct): boolean {
  const value = scope.node.tryGetContext(DELETION_PROTECTION_CONTEXT);
  return value === undefined ? true : value === true || value === 'true';
}
