import * as path from 'path';
import { CustomResource, Duration, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { functionRoleAndLogs } from './private/function-role';
import { WarmingOptions } from './warmer';
import { WebApp, WebAppLanguage } from './web-app';
import { WebCommand } from './web-command';

/** Lambda's limit, and so the pre-traffic step's: it must run all its commands and answer within it. */
const STEP_MAX = Duration.minutes(15);
/** Beyond the function's timeout, what one command's invoke may take (handlers/pre-traffic INIT_SLACK_MS). */
const INIT_SLACK = Duration.seconds(15);
/** What the warm-up may take (handlers/pre-traffic WARM_BUDGET_MS). */
const WARM_BUDGET = Duration.seconds(115);
/** Kept to answer CloudFormation (handlers/pre-traffic ANSWER_RESERVE_MS) and to start the step. */
const STEP_RESERVE = Duration.seconds(10);
/** CodeDeploy watches at most 10 alarms per deployment group. */
const MAX_ALARMS = 10;

/**
 * How a deploy moves the `live` alias's traffic to the new version.
 */
export class TrafficShifting {
  /**
   * All traffic at once, as soon as the pre-traffic step (migrations, warm-up) has succeeded. No CodeDeploy:
   * with nothing shifted gradually there is nothing an alarm could roll back.
   */
  public static allAtOnce(): TrafficShifting {
    return new TrafficShifting('allAtOnce');
  }

  /**
   * `percent` of the traffic to the new version for `interval`, then the rest (CodeDeploy). An alarm that
   * fires meanwhile moves all traffic back to the old version and fails the deploy.
   *
   * @param percent 1 to 99
   * @param interval whole minutes, 1 to 2880
   */
  public static canary(percent: number, interval: Duration): TrafficShifting {
    return new TrafficShifting('canary', checkPercent('TrafficShifting.canary', percent), checkInterval('TrafficShifting.canary', interval));
  }

  /**
   * `percent` more of the traffic to the new version every `interval` until all of it is there (CodeDeploy).
   * An alarm that fires meanwhile moves all traffic back to the old version and fails the deploy.
   *
   * @param percent 1 to 99
   * @param interval whole minutes, 1 to 2880
   */
  public static linear(percent: number, interval: Duration): TrafficShifting {
    return new TrafficShifting('linear', checkPercent('TrafficShifting.linear', percent), checkInterval('TrafficShifting.linear', interval));
  }

  /** `allAtOnce`, `canary` or `linear`. */
  public readonly kind: string;

  /**
   * The share of the traffic each step moves.
   *
   * @default - undefined for allAtOnce
   */
  public readonly percent?: number;

  /**
   * The time between steps.
   *
   * @default - undefined for allAtOnce
   */
  public readonly interval?: Duration;

  private constructor(kind: string, percent?: number, interval?: Duration) {
    this.kind = kind;
    this.percent = percent;
    this.interval = interval;
  }

  /** The name of the shift, as the README and the errors write it. */
  public toString(): string {
    if (this.kind === 'allAtOnce') return 'TrafficShifting.allAtOnce()';
    const percent = Token.isUnresolved(this.percent) ? 'a token' : String(this.percent);
    return `TrafficShifting.${this.kind}(${percent}, ${this.interval!.toHumanString()})`;
  }
}

function checkPercent(factory: string, percent: number): number {
  if (!Token.isUnresolved(percent) && (!Number.isInteger(percent) || percent < 1 || percent > 99)) {
    throw new Error(`${factory}: percent must be an integer from 1 to 99, got ${percent}`);
  }
  return percent;
}

function checkInterval(factory: string, interval: Duration): Duration {
  if (!interval.isUnresolved()) {
    const seconds = interval.toSeconds({ integral: false });
    if (seconds % 60 !== 0 || seconds < 60 || seconds > 2880 * 60) {
      throw new Error(`${factory}: interval must be whole minutes from 1 to 2880 (2 days), got ${interval.toHumanString()}`);
    }
  }
  return interval;
}

/**
 * What happens when a deploy publishes a new version of a `WarmWebFunction`: commands it runs before
 * any traffic reaches it, and how traffic moves to it.
 */
export interface WebDeploymentOptions {
  /**
   * Commands the NEW version runs, in order, before the `live` alias moves to it, e.g.
   * `[WebCommand.django('migrate', '--noinput')]`. One that fails (a non-zero exit code, an error, a
   * crash or no answer within the function's timeout) fails the deploy: the alias keeps serving the old
   * version and CloudFormation rolls the stack back. They run while the old version still serves, so
   * they must keep the schema usable by it (add a column, drop it in a later deploy).
   *
   * @default - none
   */
  readonly migrations?: WebCommand[];

  /**
   * How traffic moves to the new version once the migrations and the warm-up have succeeded.
   *
   * @default TrafficShifting.allAtOnce()
   */
  readonly trafficShifting?: TrafficShifting;

  /**
   * Alarms that, firing while traffic shifts, move it all back to the old version. Canary and linear
   * shifts only. The new version's own error alarm is always watched; in a `WarmWebStack` so are the
   * function's error-rate and duration alarms. CodeDeploy watches at most 10 alarms.
   *
   * @default - the new version's error alarm (and the stack's, in a WarmWebStack)
   */
  readonly rollbackAlarms?: cloudwatch.IAlarm[];
}

/**
 * Properties of a `WarmWebDeployment`.
 */
export interface WarmWebDeploymentProps extends WebDeploymentOptions {
  /** The alias that the deploy moves; its version is the new one. */
  readonly alias: lambda.Alias;

  /** The app, to check that each command fits it. */
  readonly app: WebApp;

  /**
   * The function's timeout: the longest one command may run.
   *
   * @default Duration.seconds(30)
   */
  readonly timeout?: Duration;

  /**
   * The function's environment (a Django command needs `DJANGO_SETTINGS_MODULE` in it).
   *
   * @default - none
   */
  readonly environment?: Record<string, string>;

  /**
   * The function's warming: with `prewarmOnDeploy` (the default), the pre-traffic step warms the new
   * version's environments before traffic reaches it.
   *
   * @default - not warmed
   */
  readonly warming?: WarmingOptions;
}

/**
 * Migrations before traffic and safe traffic shifting for the `live` alias of a `WarmWebFunction`
 * (which creates it when given `deployment`).
 *
 * A pre-traffic step (a custom resource the alias depends on) invokes the version just published with
 * each migration command and warms its environments; only when it succeeds does CloudFormation move the
 * alias. With a canary or linear shift the move is a CodeDeploy deployment that rolls back when one of the
 * rollback alarms fires.
 */
export class WarmWebDeployment extends Construct {
  /**
   * The CodeDeploy deployment group that shifts the alias.
   *
   * @default - undefined for TrafficShifting.allAtOnce()
   */
  public readonly deploymentGroup?: codedeploy.LambdaDeploymentGroup;

  /**
   * The function of the pre-traffic step.
   *
   * @default - undefined when there is nothing to run or warm before traffic
   */
  public readonly preTrafficFunction?: lambda.Function;

  /**
   * Errors of the new version while traffic shifts (one is enough to roll back).
   *
   * @default - undefined for TrafficShifting.allAtOnce()
   */
  public readonly newVersionErrorsAlarm?: cloudwatch.Alarm;

  /** Whether the pre-traffic step warms each new version (the warmer's own pre-warm is then not needed). */
  public readonly warmsNewVersions: boolean;

  private readonly rollbackAlarms = new Set<cloudwatch.IAlarm>();

  constructor(scope: Construct, id: string, props: WarmWebDeploymentProps) {
    super(scope, id);
    const shifting = props.trafficShifting ?? TrafficShifting.allAtOnce();
    const migrations = props.migrations ?? [];
    const timeout = props.timeout ?? Duration.seconds(30);
    this.warmsNewVersions = props.warming !== undefined && (props.warming.prewarmOnDeploy ?? true);
    validate(props, shifting, migrations, this.warmsNewVersions);

    if (migrations.length > 0 || this.warmsNewVersions) {
      this.preTrafficFunction = this.preTrafficStep(props.alias, migrations, timeout, props.warming);
    }
    if (shifting.kind !== 'allAtOnce') {
      this.deploymentGroup = this.shift(props.alias, shifting);
      this.newVersionErrorsAlarm = this.errorsAlarm(props.alias);
      this.addRollbackAlarm(this.newVersionErrorsAlarm);
      for (const alarm of props.rollbackAlarms ?? []) this.addRollbackAlarm(alarm);
    }
  }

  /**
   * Moves all traffic back to the old version when `alarm` fires during a shift. Canary and linear
   * shifts only; at most 10 alarms, the new version's error alarm included. Adding an alarm again does nothing.
   */
  public addRollbackAlarm(alarm: cloudwatch.IAlarm): void {
    if (!this.deploymentGroup) {
      throw new Error(`${this.node.path}: rollback alarms need trafficShifting canary or linear; all at once there is no shift to roll back`);
    }
    if (this.rollbackAlarms.has(alarm)) return;
    if (this.rollbackAlarms.size >= MAX_ALARMS) {
      throw new Error(`${this.node.path}: CodeDeploy watches at most ${MAX_ALARMS} alarms per deployment, the new version's error alarm included; `
        + `${alarm.node.path} is one too many`);
    }
    this.rollbackAlarms.add(alarm);
    this.deploymentGroup.addAlarm(alarm);
  }

  private preTrafficStep(alias: lambda.Alias, migrations: WebCommand[], timeout: Duration, warming?: WarmingOptions): lambda.Function {
    const stepTimeout = stepTimeoutFor(migrations.length, timeout, this.warmsNewVersions);
    const { role, logGroup } = functionRoleAndLogs(this, { role: 'PreTrafficRole', logGroup: 'PreTrafficLogGroup' }, {
      description: `cdk-warm-web pre-traffic step of ${alias.node.path}: invokes only the version being deployed`,
    });
    const fn = new lambda.Function(this, 'PreTraffic', {
      description: `cdk-warm-web: runs the migrations on and warms each new version of ${alias.node.path} before traffic`,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(path.join(__dirname, '..', 'assets', 'pre-traffic')),
      // One vCPU, as the warmer has: the warm-up's N pings go out as fast as its CPU allows.
      memorySize: 1769,
      timeout: stepTimeout,
      // A retry would run the migrations again after an answer that was lost.
      retryAttempts: 0,
      role,
      logGroup,
    });
    // The exact version being deployed, nothing else: the policy follows each new version.
    const invoke = new iam.Policy(this, 'InvokeNewVersion', {
      roles: [role],
      statements: [new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [alias.version.functionArn] })],
    });
    const step = new CustomResource(this, 'Step', {
      serviceToken: fn.functionArn,
      resourceType: 'Custom::WarmWebPreTraffic',
      serviceTimeout: stepTimeout.plus(Duration.minutes(1)),
      properties: {
        FunctionArn: alias.version.functionArn,
        Commands: migrations.map((c) => c.toEvent()),
        FunctionTimeoutMs: timeout.toMilliseconds(),
        ...(this.warmsNewVersions ? { Warm: warmOf(warming!) } : {}),
      },
    });
    step.node.addDependency(invoke);
    // The alias moves only once the step has succeeded on the version it moves to (its URL and
    // permissions, children of the alias construct, need not wait).
    alias.node.defaultChild!.node.addDependency(step);
    return fn;
  }

  private shift(alias: lambda.Alias, shifting: TrafficShifting): codedeploy.LambdaDeploymentGroup {
    const group = new codedeploy.LambdaDeploymentGroup(this, 'DeploymentGroup', {
      alias,
      deploymentConfig: deploymentConfigOf(this, shifting),
      autoRollback: { failedDeployment: true, stoppedDeployment: true, deploymentInAlarm: true },
    });
    // cdk-nag names this finding `...[Policy::arn:<AWS::Partition>:...]`, an id that Validations.acknowledge
    // refuses (it holds '::' more than once): the acknowledgment goes into the metadata cdk-nag reads.
    group.role.node.addMetadata(Validations.ACKNOWLEDGED_RULES_METADATA_KEY, {
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]':
        'The one managed policy aws-cdk-lib\'s LambdaDeploymentGroup always attaches to its role: AWSCodeDeployRoleForLambdaLimited, '
        + 'CodeDeploy\'s own for shifting Lambda aliases (read and update aliases, invoke only functions named CodeDeployHook_*, '
        + 'which this library does not create).',
    });
    return group;
  }

  private errorsAlarm(alias: lambda.Alias): cloudwatch.Alarm {
    // Through the alias, per executed version: the old version's errors do not roll the new one back.
    const errors = new cloudwatch.Metric({
      namespace: 'AWS/Lambda',
      metricName: 'Errors',
      dimensionsMap: {
        FunctionName: alias.lambda.functionName,
        Resource: `${alias.lambda.functionName}:${alias.aliasName}`,
        ExecutedVersion: alias.version.version,
      },
      statistic: 'Sum',
      period: Duration.minutes(1),
    });
    return errors.createAlarm(this, 'NewVersionErrorsAlarm', {
      alarmDescription: `The version of ${alias.node.path} being deployed failed invokes (crash, timeout): the shift rolls back`,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }
}

function validate(props: WarmWebDeploymentProps, shifting: TrafficShifting, migrations: WebCommand[], warms: boolean) {
  if (props.migrations?.length === 0) {
    throw new Error('WarmWebFunction deployment.migrations must not be empty; omit it to run no command before traffic');
  }
  migrations.forEach((command, i) => {
    const needs = commandNeeds(command, props);
    if (needs) {
      throw new Error(`WarmWebFunction deployment.migrations[${i}]: '${command}' needs ${needs}; `
        + `the app is ${props.app.kind} '${props.app.spec}'${props.app.language === WebAppLanguage.PYTHON ? ' without it' : ''}`);
    }
  });
  if (props.rollbackAlarms && shifting.kind === 'allAtOnce') {
    throw new Error(`WarmWebFunction deployment.rollbackAlarms need trafficShifting canary or linear, got ${shifting}: `
      + 'all at once there is no shift to roll back');
  }
  if (migrations.length === 0 && shifting.kind === 'allAtOnce' && !warms) {
    throw new Error('WarmWebFunction deployment: give migrations or a canary or linear trafficShifting; '
      + 'with neither (and no warming) a deploy is what it is without deployment');
  }
}

/** What a command needs that the app does not have, if anything. */
function commandNeeds(command: WebCommand, props: WarmWebDeploymentProps): string | undefined {
  const python = props.app.language === WebAppLanguage.PYTHON;
  if (command.kind === 'django' && !(python && props.environment?.DJANGO_SETTINGS_MODULE)) {
    return 'a Python Django app (DJANGO_SETTINGS_MODULE in environment)';
  }
  if (command.kind === 'flask' && !python) return 'a Python Flask app';
  return undefined;
}

/** How long the step may run: every command for the whole function timeout, the warm-up, and the answer. */
function stepTimeoutFor(commands: number, timeout: Duration, warms: boolean): Duration {
  if (timeout.isUnresolved()) return STEP_MAX;
  const seconds = commands * (timeout.toSeconds() + INIT_SLACK.toSeconds())
    + (warms ? WARM_BUDGET.toSeconds() : 0) + STEP_RESERVE.toSeconds();
  if (seconds > STEP_MAX.toSeconds()) {
    throw new Error(`WarmWebFunction deployment.migrations: ${commands} command(s) of up to ${timeout.toHumanString()} each `
      + `(the function's timeout, plus ${INIT_SLACK.toHumanString()} for a cold start)${warms ? ' and the warm-up' : ''} `
      + `need ${Duration.seconds(seconds).toHumanString()}, more than the ${STEP_MAX.toHumanString()} the pre-traffic step can run; `
      + 'lower the function\'s timeout or run fewer commands');
  }
  return Duration.seconds(seconds);
}

/** The warm-up of the pre-traffic step: the warmer's pre-warm, on the version instead of the alias. */
function warmOf(warming: WarmingOptions): Record<string, unknown> {
  // Schedules and concurrency exclude each other (WarmingOptions); with a token among the schedules' concurrencies
  // the step gets all of them and takes the largest at deploy time.
  const concurrencies = warming.schedules ? warming.schedules.map((s) => s.concurrency) : [warming.concurrency ?? 1];
  const concurrency = concurrencies.some((c) => Token.isUnresolved(c)) ? concurrencies : Math.max(...concurrencies);
  return { concurrency, holdMs: (warming.holdTime ?? Duration.millis(250)).toMilliseconds() };
}

/** A predefined CodeDeploy configuration when one matches, else one of our own. */
function deploymentConfigOf(scope: Construct, shifting: TrafficShifting): codedeploy.ILambdaDeploymentConfig {
  const percent = shifting.percent!;
  const interval = shifting.interval!;
  if (!Token.isUnresolved(percent) && !interval.isUnresolved() && percent === 10) {
    const predefined: Record<string, codedeploy.ILambdaDeploymentConfig> = {
      'canary 5': codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_5MINUTES,
      'canary 10': codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_10MINUTES,
      'canary 15': codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_15MINUTES,
      'canary 30': codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_30MINUTES,
      'linear 1': codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_1MINUTE,
      'linear 2': codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_2MINUTES,
      'linear 3': codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_3MINUTES,
      'linear 10': codedeploy.LambdaDeploymentConfig.LINEAR_10PERCENT_EVERY_10MINUTES,
    };
    const found = predefined[`${shifting.kind} ${interval.toMinutes()}`];
    if (found) return found;
  }
  const trafficRouting = shifting.kind === 'canary'
    ? codedeploy.TrafficRouting.timeBasedCanary({ percentage: percent, interval })
    : codedeploy.TrafficRouting.timeBasedLinear({ percentage: percent, interval });
  return new codedeploy.LambdaDeploymentConfig(scope, 'DeploymentConfig', { trafficRouting });
}
