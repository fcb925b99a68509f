import { WebCommand } from '../lib';

describe('WebCommand', () => {
  test('django: the command event carries the arguments', () => {
    const command = WebCommand.django('migrate', '--noinput');
    expect(command.toEvent()).toEqual({ warmWebCommand: { v: 1, kind: 'django', args: ['migrate', '--noinput'] } });
    expect(command.toString()).toBe('django migrate --noinput');
  });

  test('flask', () => {
    expect(WebCommand.flask('db', 'upgrade').toEvent()).toEqual({ warmWebCommand: { v: 1, kind: 'flask', args: ['db', 'upgrade'] } });
  });

  test('function: Python and Node targets, arguments optional', () => {
    expect(WebCommand.function('tasks:rebuild_index', '--full').toEvent())
      .toEqual({ warmWebCommand: { v: 1, kind: 'function', target: 'tasks:rebuild_index', args: ['--full'] } });
    expect(WebCommand.function('jobs/cleanup.run').toEvent())
      .toEqual({ warmWebCommand: { v: 1, kind: 'function', target: 'jobs/cleanup.run', args: [] } });
  });

  test('the event is a copy: changing it does not change the command', () => {
    const command = WebCommand.django('check');
    command.toEvent().warmWebCommand.args.push('--deploy');
    expect(command.args).toEqual(['check']);
  });

  test.each([
    [() => WebCommand.django(), /WebCommand.django: give the command to run/],
    [() => WebCommand.flask(), /WebCommand.flask: give the command to run/],
    [() => WebCommand.django('migrate', 'a\0b'), /WebCommand.django: args\[1\] must be a string without NUL characters, got "a\\u0000b"/],
    [() => WebCommand.function('not a target'), /WebCommand.function: cannot parse target 'not a target'/],
    [() => WebCommand.function('/abs/path.run'), /cannot parse target '\/abs\/path.run'/],
  ])('bad input %#', (make, message) => {
    expect(make).toThrow(message);
  });
});
