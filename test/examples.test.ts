import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import { snapshotTemplate } from './snapshot';
import { DatabaseExampleStack } from '../examples/database/app';
import { DjangoExampleStack } from '../examples/django/app';
import { DjangoFullExampleStack } from '../examples/django-full/app';
import { ExpressExampleStack } from '../examples/express/app';
import { FastApiExampleStack } from '../examples/fastapi/app';
import { FastApiImageExampleStack } from '../examples/fastapi-image/app';
import { ProvisionedExampleStack } from '../examples/provisioned/app';
import { SlimExampleStack } from '../examples/slim/app';
import { SnapStartExampleStack } from '../examples/snapstart/app';

const EXAMPLES: Record<string, (app: App) => Stack> = {
  'django': (app) => new DjangoExampleStack(app, 'WarmWebDjango'),
  'fastapi': (app) => new FastApiExampleStack(app, 'WarmWebFastApi'),
  'express': (app) => new ExpressExampleStack(app, 'WarmWebExpress'),
  'provisioned': (app) => new ProvisionedExampleStack(app, 'WarmWebProvisioned'),
  'snapstart': (app) => new SnapStartExampleStack(app, 'WarmWebSnapStart'),
  'fastapi-image': (app) => new FastApiImageExampleStack(app, 'WarmWebFastApiImage'),
  'slim': (app) => new SlimExampleStack(app, 'WarmWebSlim'),
  'database': (app) => new DatabaseExampleStack(app, 'WarmWebDatabase'),
  'django-full': (app) => new DjangoFullExampleStack(app, 'WarmWebDjangoFull'),
};

const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'warm-web-examples-'));
const stacks: Record<string, Stack> = {};
const templateFiles: string[] = [];
for (const [name, make] of Object.entries(EXAMPLES)) {
  const app = new App({ outdir: path.join(outdir, name) });
  const stack = make(app);
  const assembly = app.synth();
  stacks[name] = stack;
  templateFiles.push(path.join(assembly.directory, assembly.getStackByName(stack.stackName).templateFile));
}

describe.each(Object.keys(EXAMPLES))('example %s', (name) => {
  test('synthesizes a web function, its live alias and an endpoint', () => {
    const template = Template.fromStack(stacks[name]);
    const webFunctions = template.findResources('AWS::Lambda::Function', { Properties: { Environment: { Variables: { WARM_WEB_APP: Match.anyValue() } } } });
    expect(Object.keys(webFunctions)).toHaveLength(1);
    template.resourceCountIs('AWS::Lambda::Alias', 1);
    expect(Object.keys(template.findOutputs('*')).filter((o) => /Url[0-9A-F]{8}$/.test(o))).toHaveLength(1);
  });

  test('has no unacknowledged cdk-nag AwsSolutions finding', () => {
    const result = new AwsSolutionsChecks().validateScope(stacks[name]);
    expect(result.violations).toEqual([]);
    expect(result.success).toBe(true);
  });

  test('matches the snapshot', () => {
    expect(snapshotTemplate(stacks[name])).toMatchSnapshot();
  });
});

/**
 * cfn-lint findings accepted for every template, with the reason. Nothing else may be reported.
 */
const CFN_LINT_ACCEPTED: Record<string, string> = {
  W3005: 'aws-cdk-lib adds an explicit DependsOn next to a Ref/GetAtt of the same resource (lambda.Function on its role, '
    + 'the RDS Proxy target group on its cluster); redundant and harmless',
};

test('every example template passes cfn-lint: no errors, no warnings beyond the accepted list', () => {
  const args = ['--format', 'parseable', '--ignore-checks', ...Object.keys(CFN_LINT_ACCEPTED), '--', ...templateFiles];
  const run = spawnSync('cfn-lint', args, { encoding: 'utf-8' });
  if (run.error) {
    throw new Error(`cfn-lint could not run (${run.error.message}); scripts/test-all.sh installs it`);
  }
  expect(run.stdout + run.stderr).toBe('');
  expect(run.status).toBe(0);
});

test('the cdk-nag gate can fail: an outdated runtime is reported', () => {
  const stack = new Stack(new App(), 'Outdated');
  new lambda.Function(stack, 'Fn', {
    runtime: lambda.Runtime.PYTHON_3_9,
    handler: 'index.handler',
    code: lambda.Code.fromInline('def handler(e, c): return 1'),
  });
  const result = new AwsSolutionsChecks().validateScope(stack);
  expect(result.success).toBe(false);
  expect(result.violations.map((v) => v.ruleName)).toContain('AwsSolutions-L1');
});

test('the cfn-lint gate can fail: a broken template is reported', () => {
  const broken = path.join(outdir, 'broken.template.json');
  fs.writeFileSync(broken, JSON.stringify({ Resources: { Fn: { Type: 'AWS::Lambda::Function', Properties: { Runtime: 'python2.1' } } } }));
  const run = spawnSync('cfn-lint', ['--format', 'parseable', '--', broken], { encoding: 'utf-8' });
  expect([2, 6]).toContain(run.status); // cfn-lint: 2 errors, 6 errors and warnings
  expect(run.stdout).toMatch(/:E\d{4}:/);
});
