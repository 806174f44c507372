/*
 * cli.c - see cli.h.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

const char *cli_prog = "bench";

void cli_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

void cli_bad(const char *what, const char *arg)
{
	fprintf(stderr, "%s: invalid %s '%s'\nTry '%s --help'.\n", cli_prog, what, arg, cli_prog);
	exit(2);
}

double cli_num(const char *what, const char *arg, double min, double max)
{
	char *end;
	double v = strtod(arg, &end);

	if (*arg == '\0' || *end != '\0' || !(v >= min && v <= max))
		cli_bad(what, arg);
	return v;
}
