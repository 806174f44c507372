/*
 * cli.c - see cli.h.
 *
 * strtoul() and strtod() are more generous than a command line should be:
 * both skip leading white space and take a sign (strtoul("-1") is
 * ULONG_MAX, which a range up to ULONG_MAX would let through), and strtod()
 * reads "inf", "nan" and hexadecimal too. So the text is checked first, and
 * the functions only convert what is known to be plain decimal.
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Set once by main() before any option is read; read by every message. */
static const char *prog = "?";

void cli_set_prog(const char *name)
{
	prog = name;
}

static void try_help(void)
{
	fprintf(stderr, "Try '%s --help' for more information.\n", prog);
}

/* "PROG: message", then perhaps the --help hint, then exit. */
static void vexit(int status, bool hint, const char *fmt, va_list ap)
	__attribute__((noreturn, format(printf, 3, 0)));

static void vexit(int status, bool hint, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	if (hint)
		try_help();
	exit(status);
}

void cli_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vexit(CLI_EXIT_FAILURE, false, fmt, ap);
}

void cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vexit(CLI_EXIT_USAGE, true, fmt, ap);
}

void cli_bad(const char *what, const char *arg)
{
	cli_usage_error("invalid %s '%s'", what, arg);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';	/* not isdigit(): no locale, no sign worries */
}

unsigned long cli_ulong(const char *opt, const char *arg, unsigned long min,
			unsigned long max)
{
	char *end;
	unsigned long v;

	/* Digits from the first character on: no space, no sign, not empty. */
	if (!is_digit(arg[0]))
		goto bad;
	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		goto bad;
	return v;
bad:
	cli_usage_error("invalid value '%s' for %s (expected %lu..%lu)", arg, opt, min, max);
}

double cli_double(const char *opt, const char *arg, double min, double max)
{
	char *end;
	double v;

	/*
	 * Starts with a digit or a point, and holds nothing but what a decimal
	 * number with an exponent is made of: this rules out a leading sign,
	 * white space, "inf", "nan" and "0x..." before strtod() sees them. A
	 * misplaced sign or point ("1-2", "1.2.3") stops strtod() early and is
	 * caught as trailing junk.
	 */
	if (!(is_digit(arg[0]) || arg[0] == '.') ||
	    arg[strspn(arg, "0123456789.eE+-")] != '\0')
		goto bad;
	errno = 0;
	v = strtod(arg, &end);
	if (errno != 0 || *end != '\0' || !(v >= min && v <= max))
		goto bad;
	return v;
bad:
	cli_usage_error("invalid value '%s' for %s (expected %g..%g)", arg, opt, min, max);
}
