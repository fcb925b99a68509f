import { TimeZone, Token } from 'aws-cdk-lib';
import { CapacitySchedule } from './provisioned-auto-scaling';
import { WarmSchedule } from './warmer';

const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

/**
 * A stretch of the week with its own number of warm environments.
 */
export interface CalendarPeriod {
  /** Days, as cron writes them: `MON-FRI`, `SAT,SUN`, `WED`. */
  readonly weekDays: string;
  /** First hour of the period, 0–23. */
  readonly startHour: number;
  /** Hour the period ends, 1–24 (exclusive). */
  readonly endHour: number;
  /** Environments wanted during the period. */
  readonly environments: number;
}

/**
 * Options for a weekly calendar.
 */
export interface WeeklyCalendarOptions {
  /** The time zone the hours are in. */
  readonly timeZone: TimeZone;
  /** The periods; they may not overlap. */
  readonly periods: CalendarPeriod[];
  /** Environments wanted outside every period. */
  readonly otherwise: number;
}

/**
 * One weekly calendar of how many environments to keep ready, driving both the warmer and
 * provisioned concurrency, e.g. 20 on weekdays 08–20 Berlin time and 2 otherwise:
 *
 * ```ts
 * const calendar = WarmCalendar.weekly({
 *   timeZone: TimeZone.EUROPE_BERLIN,
 *   periods: [{ weekDays: 'MON-FRI', startHour: 8, endHour: 20, environments: 20 }],
 *   otherwise: 2,
 * });
 * new WarmWebFunction(this, 'Web', {
 *   app: WebApp.wsgi('mysite.wsgi:application'),
 *   code: WebCode.fromDirectory('build'),
 *   provisionedConcurrency: { minCapacity: 2, maxCapacity: 40, schedules: calendar.capacitySchedules() },
 * });
 * new WarmWebFunction(this, 'Admin', {
 *   app: WebApp.wsgi('admin.wsgi:application'),
 *   code: WebCode.fromDirectory('admin'),
 *   warming: { schedules: calendar.warmSchedules() },
 * });
 * ```
 */
export class WarmCalendar {
  /**
   * A calendar that repeats every week.
   */
  public static weekly(options: WeeklyCalendarOptions): WarmCalendar {
    return new WarmCalendar(options);
  }

  /** Environments wanted in each hour of the week: `hours[day][hour]`, day 0 = Sunday. */
  private readonly hours: number[][];
  private readonly timeZone: TimeZone;

  private constructor(options: WeeklyCalendarOptions) {
    checkCount('otherwise', options.otherwise);
    this.timeZone = options.timeZone;
    this.hours = DAYS.map(() => new Array<number>(24).fill(options.otherwise));
    const owner: Array<Array<number | undefined>> = DAYS.map(() => new Array(24).fill(undefined));
    options.periods.forEach((period, i) => {
      checkCount(`periods[${i}].environments`, period.environments);
      const { startHour, endHour } = period;
      if (Token.isUnresolved(startHour) || Token.isUnresolved(endHour)) {
        throw new Error(`WarmCalendar: periods[${i}].startHour and endHour must be numbers known at synth: they set the schedules`);
      }
      if (!Number.isInteger(startHour) || !Number.isInteger(endHour) || startHour < 0 || endHour > 24 || startHour >= endHour) {
        throw new Error(`WarmCalendar: periods[${i}] must have 0 <= startHour < endHour <= 24, got ${period.startHour}-${period.endHour}`);
      }
      for (const day of parseDays(period.weekDays, i)) {
        for (let hour = period.startHour; hour < period.endHour; hour++) {
          const other = owner[day][hour];
          if (other !== undefined) {
            throw new Error(`WarmCalendar: periods[${other}] and periods[${i}] overlap on ${DAYS[day]} at ${hour}:00`);
          }
          owner[day][hour] = i;
          this.hours[day][hour] = period.environments;
        }
      }
    });
  }

  /**
   * Warmer schedules: every 5 minutes, each hour of the week at its number of environments (none in
   * hours that want 0).
   */
  public warmSchedules(): WarmSchedule[] {
    // One schedule per (environments, set of hours) shared by the same days.
    const byValue = new Map<string, { environments: number; hours: number[]; days: number[] }>();
    DAYS.forEach((_, day) => {
      const values = new Set(this.hours[day]);
      for (const environments of values) {
        const hours = this.hours[day].flatMap((v, h) => (v === environments ? [h] : []));
        const key = `${environments}|${hours.join(',')}`;
        const entry = byValue.get(key) ?? { environments, hours, days: [] };
        entry.days.push(day);
        byValue.set(key, entry);
      }
    });
    // Hours that want no environments get no warmer schedule at all.
    return [...byValue.values()].filter((e) => e.environments > 0).map(({ environments, hours, days }) => WarmSchedule.cron({
      minute: '0/5',
      hour: hourList(hours),
      weekDay: days.map((d) => DAYS[d]).join(','),
      timeZone: this.timeZone,
      concurrency: environments,
    }));
  }

  /**
   * Provisioned concurrency actions: at each change of the calendar, the minimum capacity becomes
   * the period's number of environments.
   */
  public capacitySchedules(): CapacitySchedule[] {
    const byChange = new Map<string, { environments: number; hour: number; days: number[] }>();
    DAYS.forEach((_, day) => {
      for (let hour = 0; hour < 24; hour++) {
        const previous = hour > 0 ? this.hours[day][hour - 1] : this.hours[(day + 6) % 7][23];
        const environments = this.hours[day][hour];
        if (environments === previous) continue;
        const key = `${environments}|${hour}`;
        const entry = byChange.get(key) ?? { environments, hour, days: [] };
        entry.days.push(day);
        byChange.set(key, entry);
      }
    });
    return [...byChange.values()].map(({ environments, hour, days }) => CapacitySchedule.cron({
      minute: '0',
      hour: String(hour),
      weekDay: days.map((d) => DAYS[d]).join(','),
      timeZone: this.timeZone,
      minCapacity: environments,
    }));
  }
}

function checkCount(name: string, value: number) {
  if (!Token.isUnresolved(value) && (!Number.isInteger(value) || value < 0)) {
    throw new Error(`WarmCalendar: ${name} must be an integer >= 0, got ${value}`);
  }
}

function parseDays(spec: string, period: number): number[] {
  const days = new Set<number>();
  for (const part of spec.toUpperCase().split(',')) {
    const [from, to] = part.split('-');
    const a = DAYS.indexOf(from);
    const b = to === undefined ? a : DAYS.indexOf(to);
    if (a < 0 || b < 0) {
      throw new Error(`WarmCalendar: periods[${period}].weekDays '${spec}' is not a list of days like MON-FRI or SAT,SUN`);
    }
    for (let d = a; ; d = (d + 1) % 7) {
      days.add(d);
      if (d === b) break;
    }
  }
  return [...days].sort();
}

function hourList(hours: number[]): string {
  // 8,9,10,11 -> 8-11: cron accepts both; ranges keep the expression short.
  const ranges: string[] = [];
  let start = hours[0];
  for (let i = 1; i <= hours.length; i++) {
    if (hours[i] !== hours[i - 1] + 1) {
      const end = hours[i - 1];
      ranges.push(start === end ? `${start}` : `${start}-${end}`);
      start = hours[i];
    }
  }
  return ranges.join(',');
}
