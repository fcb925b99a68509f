import * as path from 'path';
import { FileSystem, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { WebAppLanguage } from './web-app';

interface ShimSpec {
  readonly id: string;
  readonly asset: string;
  readonly handler: string;
  readonly description: string;
  readonly runtimes: lambda.Runtime[];
}

const ASSETS = path.join(__dirname, '..', 'assets');

const SHIMS: Record<WebAppLanguage, ShimSpec> = {
  [WebAppLanguage.PYTHON]: {
    id: 'WarmWebPythonShimLayer',
    asset: path.join(ASSETS, 'python-shim-layer'),
    handler: 'warm_web.handler.handler',
    description: 'cdk-warm-web Python runtime shim (eager INIT, warm pings, WSGI/ASGI adapter)',
    runtimes: [lambda.Runtime.PYTHON_3_12, lambda.Runtime.PYTHON_3_13, lambda.Runtime.PYTHON_3_14],
  },
  [WebAppLanguage.NODE]: {
    id: 'WarmWebNodeShimLayer',
    asset: path.join(ASSETS, 'node-shim-layer'),
    handler: '/opt/warm-web/index.handler',
    description: 'cdk-warm-web Node runtime shim (eager INIT, warm pings, request-listener adapter)',
    runtimes: [lambda.Runtime.NODEJS_22_X, lambda.Runtime.NODEJS_24_X],
  },
};

/**
 * The runtime shim for a language.
 */
export interface Shim {
  /** The function handler that runs the shim. */
  readonly handler: string;
  /** The folder with the shim as a layer holds it (`python/warm_web`, `warm-web/index.js`). */
  readonly directory: string;
  /** Changes whenever the shim's code changes; functions publish a new version when it does. */
  readonly fingerprint: string;
}

const fingerprints = new Map<string, string>();

export function shimFor(language: WebAppLanguage): Shim {
  const spec = SHIMS[language];
  if (!fingerprints.has(spec.asset)) {
    fingerprints.set(spec.asset, FileSystem.fingerprint(spec.asset));
  }
  return { handler: spec.handler, directory: spec.asset, fingerprint: fingerprints.get(spec.asset)! };
}

/** The shim as a layer: one per stack and language, shared by every function that uses it. */
export function shimLayer(scope: Construct, language: WebAppLanguage): lambda.ILayerVersion {
  const spec = SHIMS[language];
  const stack = Stack.of(scope);
  return (stack.node.tryFindChild(spec.id) as lambda.LayerVersion | undefined) ?? new lambda.LayerVersion(stack, spec.id, {
    code: lambda.Code.fromAsset(spec.asset),
    description: spec.description,
    compatibleRuntimes: spec.runtimes,
    compatibleArchitectures: [lambda.Architecture.ARM_64, lambda.Architecture.X86_64],
  });
}
