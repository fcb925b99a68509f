import type { Context } from 'aws-lambda';

/** A Lambda handler as users write them: async, returning a value, or calling `callback`. */
export type LambdaHandler = (event: unknown, context: Context, callback: (error?: unknown, result?: unknown) => void) => unknown;

export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * Calls a user handler the way Lambda's Node runtime does: whichever comes first of the callback and
 * a returned promise settles the invoke. A handler declaring fewer than three parameters that returns a
 * plain value has answered with it.
 */
export function callHandler(handler: LambdaHandler, event: unknown, context: Context): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (failed: boolean, value: unknown): void => {
      if (!settled) {
        settled = true;
        if (failed) {
          reject(value);
        } else {
          resolve(value);
        }
      }
    };
    const callback = (error?: unknown, result?: unknown): void => settle(error !== undefined && error !== null, error ?? result);
    const result = handler(event, context, callback);
    if (isPromiseLike(result)) {
      result.then((value) => settle(false, value), (error: unknown) => settle(true, error));
    } else if (handler.length < 3) {
      settle(false, result);
    }
  });
}
