/*
 * cron.c — the cron expression parser and next-fire-time search behind baton.cron_next().
 *
 * Standard 5-field syntax (minute hour day-of-month month day-of-week) with
 * "*", ranges "a-b", steps "*\/n", "a-b/n" and "a/n" (= a through the field
 * maximum), lists "a,b", month names JAN-DEC and day names SUN-SAT (any case,
 * 7 is Sunday too), and the @yearly, @annually, @monthly, @weekly, @daily,
 * @midnight and @hourly aliases.  All times are UTC.  As in Vixie cron, when
 * both day-of-month and day-of-week are restricted (neither starts with "*"),
 * a day matches if either matches; otherwise both must.
 */
#include "postgres.h"

#include <ctype.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "baton.h"

/* How far cron_next looks before deciding an expression never fires. */
#define CRON_SEARCH_YEARS 10

/* One field's description: its name in messages, its range and its names. */
typedef struct CronField
{
	const char *name;
	int			min;
	int			max;
	const char *const *names;	/* names[i] is value min + i, or NULL */
} CronField;

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", NULL
};
static const char *const day_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

/* Day-of-week accepts 7 as a second Sunday; it is folded onto 0 after parsing. */
static const CronField cron_fields[5] = {
	{"minute", 0, 59, NULL},
	{"hour", 0, 23, NULL},
	{"day-of-month", 1, 31, NULL},
	{"month", 1, 12, month_names},
	{"day-of-week", 0, 7, day_names},
};

/* A parsed expression: one bit per allowed value of each field. */
typedef struct CronSpec
{
	uint64		bits[5];
	bool		dom_star;		/* day-of-month starts with "*" */
	bool		dow_star;		/* day-of-week starts with "*" */
} CronSpec;

/* The aliases and the 5-field expressions they stand for. */
static const struct
{
	const char *alias;
	const char *expr;
}			cron_aliases[] = {
	{"@yearly", "0 0 1 1 *"},
	{"@annually", "0 0 1 1 *"},
	{"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"},
	{"@daily", "0 0 * * *"},
	{"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
};

/* Raises invalid_parameter_value for a bad field: the message names the expression, the field and the part. */
static void
CheckField(bool ok, const char *expr, const CronField *f, const char *field, const char *part, const char *problem)
{
	if (ok)
		return;
	if (strcmp(field, part) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cron expression \"%s\": %s field \"%s\" %s", expr, f->name, field, problem)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid cron expression \"%s\": %s field \"%s\": \"%s\" %s", expr, f->name, field, part, problem)));
}

/*
 * Parses one value (a number or, where the field has names, a name) at *p and
 * advances *p past it.  Returns false when there is no value there.
 */
static bool
ParseValue(const char **p, const CronField *f, int *value)
{
	const char *s = *p;

	if (isdigit((unsigned char) *s))
	{
		long		v = 0;

		while (isdigit((unsigned char) *s))
		{
			v = v * 10 + (*s - '0');
			if (v > 1000)
				v = 1000;		/* clamp: reported as out of range, never overflows */
			s++;
		}
		*value = (int) v;
		*p = s;
		return true;
	}
	if (f->names != NULL && isalpha((unsigned char) s[0]) && isalpha((unsigned char) s[1]) &&
		isalpha((unsigned char) s[2]) && !isalpha((unsigned char) s[3]))
	{
		for (int i = 0; f->names[i] != NULL; i++)
		{
			if (pg_strncasecmp(s, f->names[i], 3) == 0)
			{
				*value = f->min + i;
				*p = s + 3;
				return true;
			}
		}
	}
	return false;
}

/* Parses one list item ("*", "a", "a-b", with an optional "/n") into bits. */
static void
ParseItem(const char *expr, const CronField *f, const char *field, const char *item, uint64 *bits)
{
	const char *p = item;
	/* "*" and "a/n" stop at Saturday: 7 is only an alias of Sunday. */
	int			top = (f->names == day_names) ? 6 : f->max;
	int			lo,
				hi,
				step = 1;
	char		range[64];

	if (*p == '*')
	{
		lo = f->min;
		hi = top;
		p++;
	}
	else
	{
		CheckField(ParseValue(&p, f, &lo), expr, f, field, item,
				   f->names ? "is not a number or name" : "is not a number");
		hi = lo;
		if (*p == '-')
		{
			p++;
			CheckField(ParseValue(&p, f, &hi), expr, f, field, item,
					   "has a range without an end");
		}
		else if (*p == '/')
			hi = Max(lo, top);	/* "a/n": from a through the maximum */
		snprintf(range, sizeof(range), "is out of range %d-%d", f->min, f->max);
		CheckField(lo >= f->min && lo <= f->max && hi >= f->min && hi <= f->max,
				   expr, f, field, item, range);
		CheckField(lo <= hi, expr, f, field, item, "has a range whose start is after its end");
	}
	if (*p == '/')
	{
		p++;
		CheckField(isdigit((unsigned char) *p) && ParseValue(&p, f, &step), expr, f, field, item,
				   "has a step that is not a number");
		CheckField(step >= 1, expr, f, field, item, "has a step of 0");
	}
	CheckField(*p == '\0', expr, f, field, item, "has unexpected characters");
	for (int v = lo; v <= hi; v += step)
		*bits |= UINT64CONST(1) << v;
}

/* Parses one field (a comma list of items) into spec->bits[i]. */
static void
ParseField(const char *expr, int i, const char *field, CronSpec *spec)
{
	const CronField *f = &cron_fields[i];
	char	   *copy = pstrdup(field);
	char	   *item = copy;

	spec->bits[i] = 0;
	for (;;)
	{
		char	   *comma = strchr(item, ',');

		if (comma != NULL)
			*comma = '\0';
		CheckField(*item != '\0', expr, f, field, field, "has an empty list item");
		ParseItem(expr, f, field, item, &spec->bits[i]);
		if (comma == NULL)
			break;
		item = comma + 1;
	}
	pfree(copy);
}

/* Parses a whole expression (or alias) into spec; raises a clear error when it is malformed. */
static void
ParseCron(const char *expr, CronSpec *spec)
{
	const char *text = expr;
	char	   *copy;
	char	   *fields[5];
	int			n = 0;
	char	   *p;

	while (isspace((unsigned char) *text))
		text++;
	if (*text == '@')
	{
		size_t		len = strcspn(text, " \t\r\n");
		const char *rest = text + len;
		int			i;

		while (isspace((unsigned char) *rest))
			rest++;
		for (i = 0; i < (int) lengthof(cron_aliases); i++)
			if (strlen(cron_aliases[i].alias) == len && pg_strncasecmp(text, cron_aliases[i].alias, len) == 0)
				break;
		if (i < (int) lengthof(cron_aliases) && *rest != '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid cron expression \"%s\": alias \"%.*s\" must be the whole expression",
							expr, (int) len, text)));
		if (i == (int) lengthof(cron_aliases))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid cron expression \"%s\": unknown alias \"%.*s\" (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)",
							expr, (int) len, text)));
		text = cron_aliases[i].expr;
	}

	copy = pstrdup(text);
	p = copy;
	for (;;)
	{
		while (isspace((unsigned char) *p))
			*p++ = '\0';
		if (*p == '\0')
			break;
		if (n < 5)
			fields[n] = p;
		n++;
		while (*p != '\0' && !isspace((unsigned char) *p))
			p++;
	}
	if (n != 5)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cron expression \"%s\": expected 5 fields (minute hour day-of-month month day-of-week), found %d",
						expr, n)));
	for (int i = 0; i < 5; i++)
		ParseField(expr, i, fields[i], spec);
	spec->dom_star = fields[2][0] == '*';
	spec->dow_star = fields[4][0] == '*';
	/* 7 is Sunday too. */
	if (spec->bits[4] & (UINT64CONST(1) << 7))
		spec->bits[4] = (spec->bits[4] & ~(UINT64CONST(1) << 7)) | UINT64CONST(1);
	pfree(copy);
}

/* Does bit v of a field's set hold? */
static inline bool
Has(uint64 bits, int v)
{
	return (bits & (UINT64CONST(1) << v)) != 0;
}

/* Days in a month of the proleptic Gregorian calendar. */
static int
DaysInMonth(int year, int month)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
		return 29;
	return days[month - 1];
}

/* Does the day match, with the day-of-month OR day-of-week rule when both are restricted? */
static bool
DayMatches(const CronSpec *spec, int year, int month, int mday)
{
	bool		dom = Has(spec->bits[2], mday);
	bool		dow = Has(spec->bits[4], j2day(date2j(year, month, mday)));

	if (!spec->dom_star && !spec->dow_star)
		return dom || dow;
	return dom && dow;
}

/*
 * Finds the first minute strictly after `after` that matches spec.  Walks
 * forward field by field (month, day, hour, minute), jumping to the start of
 * the next unit on a mismatch, so it takes at most a few thousand steps.
 * Returns false when nothing matches within CRON_SEARCH_YEARS (e.g. 30 Feb).
 */
static bool
CronNext(const CronSpec *spec, TimestampTz after, TimestampTz *next)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			y,
				mo,
				d,
				h,
				mi,
				last_year;

	if (timestamp2tm(after, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	y = tm.tm_year;
	mo = tm.tm_mon;
	d = tm.tm_mday;
	h = tm.tm_hour;
	mi = tm.tm_min + 1;			/* strictly after: the next whole minute */
	last_year = y + CRON_SEARCH_YEARS;

	for (;;)
	{
		/* Carry overflowing units into the next larger one. */
		if (mi > 59)
			mi = 0, h++;
		if (h > 23)
			h = 0, d++;
		if (mo <= 12 && d > DaysInMonth(y, mo))
			d = 1, mo++;
		if (mo > 12)
			mo = 1, y++;
		if (y > last_year)
			return false;

		if (!Has(spec->bits[3], mo))
		{
			mo++, d = 1, h = 0, mi = 0;
			continue;
		}
		if (!DayMatches(spec, y, mo, d))
		{
			d++, h = 0, mi = 0;
			continue;
		}
		if (!Has(spec->bits[1], h))
		{
			h++, mi = 0;
			continue;
		}
		if (!Has(spec->bits[0], mi))
		{
			mi++;
			continue;
		}
		break;
	}

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y;
	tm.tm_mon = mo;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	if (tm2timestamp(&tm, 0, NULL, next) != 0 || !IS_VALID_TIMESTAMP(*next))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return true;
}

PG_FUNCTION_INFO_V1(baton_cron_next);

/*
 * baton.cron_next(expr text, after timestamptz): the first time strictly after
 * `after` matching the expression, in UTC; NULL when none within 10 years.
 */
Datum
baton_cron_next(PG_FUNCTION_ARGS)
{
	char	   *expr = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TimestampTz after = PG_GETARG_TIMESTAMPTZ(1);
	CronSpec	spec;
	TimestampTz next;

	ParseCron(expr, &spec);
	if (TIMESTAMP_NOT_FINITE(after))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("baton.cron_next: after must be a finite timestamp")));
	if (!CronNext(&spec, after, &next))
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(next);
}
