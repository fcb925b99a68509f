import { Lazy, TimeZone } from 'aws-cdk-lib';
import { WarmCalendar } from '../lib';

const berlin = TimeZone.EUROPE_BERLIN;

describe('WarmCalendar', () => {
  const calendar = WarmCalendar.weekly({
    timeZone: berlin,
    periods: [{ weekDays: 'MON-FRI', startHour: 8, endHour: 20, environments: 20 }],
    otherwise: 2,
  });

  test('warm schedules: every 5 minutes, business hours at 20, the rest of the week at 2', () => {
    const schedules = calendar.warmSchedules()
      .map((s) => ({ expression: s.expression.expressionString, tz: s.expression.timeZone?.timezoneName, n: s.concurrency }));
    expect(schedules).toEqual(expect.arrayContaining([
      { expression: 'cron(0/5 8-19 ? * MON,TUE,WED,THU,FRI *)', tz: 'Europe/Berlin', n: 20 },
      { expression: 'cron(0/5 0-7,20-23 ? * MON,TUE,WED,THU,FRI *)', tz: 'Europe/Berlin', n: 2 },
      { expression: 'cron(0/5 0-23 ? * SUN,SAT *)', tz: 'Europe/Berlin', n: 2 },
    ]));
    expect(schedules).toHaveLength(3);
  });

  test('capacity schedules: the minimum changes where the calendar does', () => {
    const actions = calendar.capacitySchedules().map((s) => s.options);
    expect(actions).toEqual([
      expect.objectContaining({ minute: '0', hour: '8', weekDay: 'MON,TUE,WED,THU,FRI', minCapacity: 20, timeZone: berlin }),
      expect.objectContaining({ minute: '0', hour: '20', weekDay: 'MON,TUE,WED,THU,FRI', minCapacity: 2, timeZone: berlin }),
    ]);
  });

  test('hours that want nothing get no warmer schedule', () => {
    const nightsOff = WarmCalendar.weekly({ timeZone: berlin, periods: [{ weekDays: 'SAT', startHour: 10, endHour: 12, environments: 3 }], otherwise: 0 });
    const schedules = nightsOff.warmSchedules();
    expect(schedules).toHaveLength(1);
    expect(schedules[0].expression.expressionString).toBe('cron(0/5 10-11 ? * SAT *)');
    expect(nightsOff.capacitySchedules().map((s) => [s.options.hour, s.options.minCapacity])).toEqual([['10', 3], ['12', 0]]);
  });

  test('day ranges wrap around the week', () => {
    const weekend = WarmCalendar.weekly({ timeZone: berlin, periods: [{ weekDays: 'FRI-MON', startHour: 0, endHour: 24, environments: 4 }], otherwise: 1 });
    const four = weekend.warmSchedules().find((s) => s.concurrency === 4)!;
    expect(four.expression.expressionString).toBe('cron(0/5 0-23 ? * SUN,MON,FRI,SAT *)');
  });

  test('overlapping periods', () => {
    expect(() => WarmCalendar.weekly({
      timeZone: berlin,
      periods: [{ weekDays: 'MON-FRI', startHour: 8, endHour: 20, environments: 20 }, { weekDays: 'FRI', startHour: 18, endHour: 22, environments: 5 }],
      otherwise: 2,
    })).toThrow(/periods\[0\] and periods\[1\] overlap on FRI at 18:00/);
  });

  test.each([
    [{ weekDays: 'MON', startHour: 9, endHour: 9, environments: 1 }, /periods\[0\] must have 0 <= startHour < endHour <= 24, got 9-9/],
    [{ weekDays: 'MON', startHour: 0, endHour: 25, environments: 1 }, /got 0-25/],
    [{ weekDays: 'MONDAY', startHour: 0, endHour: 1, environments: 1 }, /periods\[0\].weekDays 'MONDAY' is not a list of days/],
    [{ weekDays: 'MON', startHour: 0, endHour: 1, environments: -1 }, /periods\[0\].environments must be an integer >= 0, got -1/],
  ])('invalid period %#', (period, message) => {
    expect(() => WarmCalendar.weekly({ timeZone: berlin, periods: [period], otherwise: 1 })).toThrow(message);
  });

  test('tokenised environments pass; tokenised hours are refused without showing a number', () => {
    const token = Lazy.number({ produce: () => 4 });
    expect(() => WarmCalendar.weekly({ timeZone: berlin, periods: [{ weekDays: 'MON', startHour: 8, endHour: 9, environments: token }], otherwise: token }))
      .not.toThrow();
    const hours = () => WarmCalendar.weekly({ timeZone: berlin, periods: [{ weekDays: 'MON', startHour: token, endHour: 9, environments: 1 }], otherwise: 1 });
    expect(hours).toThrow(/periods\[0\].startHour and endHour must be numbers known at synth/);
    expect(hours).not.toThrow(/e\+/);
  });
});
