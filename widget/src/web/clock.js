// Message times in the visitor's language (see clock.rs), in JavaScript: made from Rust, each
// `Intl` and `Date` call was an import of its own in the wasm and in its glue.

/** A formatter in `locale` with `options`; the browser's default locale for a tag `Intl` rejects; null without `Intl`. */
function make(Kind, locale, options) {
  for (const tag of [locale, undefined]) {
    try {
      return new Intl[Kind](tag, options);
    } catch {}
  }
  return null;
}

const sameDay = (a, b) =>
  a.getDate() === b.getDate() && a.getMonth() === b.getMonth() && a.getFullYear() === b.getFullYear();

/** The `Intl` formatters of one widget. */
export class Clock {
  constructor(locale) {
    const format = (options) => {
      const f = make('DateTimeFormat', locale, options);
      return (d) => {
        try {
          return f ? String(f.format(d)) : '';
        } catch {
          return '';
        }
      };
    };
    this.time = format({ hour: 'numeric', minute: '2-digit' });
    this.day = format({ month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });
    this.long = format({ dateStyle: 'full', timeStyle: 'short' });
    try {
      this.yesterday = String(make('RelativeTimeFormat', locale, { numeric: 'auto' })?.format(-1, 'day') ?? '');
    } catch {
      this.yesterday = '';
    }
  }

  /** The date of an RFC 3339 time, or null for an empty or unreadable one. */
  #date(iso) {
    const d = new Date(iso);
    return iso && !Number.isNaN(d.getTime()) ? d : null;
  }

  /** `iso` as shown under a message: the time today, "yesterday" and the time, else a short date and time. */
  label(iso) {
    const d = this.#date(iso);
    if (!d) return '';
    const now = new Date();
    if (sameDay(d, now)) return this.time(d);
    if (sameDay(d, new Date(now.getTime() - 86400000)) && this.yesterday) return `${this.yesterday} ${this.time(d)}`;
    return this.day(d);
  }

  /** `iso` in full (the tooltip). */
  full(iso) {
    const d = this.#date(iso);
    return d ? this.long(d) : '';
  }
}
