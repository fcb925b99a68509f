import { Token, Tokenization } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/**
 * A validation error that names the construct (its path) before the message, which names the prop and
 * the value: `Prod/Web: memorySize must be ..., got 64`.
 */
export function propError(scope: IConstruct, message: string): Error {
  return new Error(`${scope.node.path}: ${message}`);
}

/**
 * A number for a message or a description: a token becomes its string form (a reference that resolves
 * at synth), never the huge negative number it is encoded as.
 */
export function num(value: number): string {
  return Token.isUnresolved(value) ? Tokenization.stringifyNumber(value) : String(value);
}
