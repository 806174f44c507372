/*
 * cli.h - what the programs' command lines share: one way to read a number
 * from an option, and one way to say that an argument is wrong.
 *
 * Used by echoserver, echo-bench and handoff-bench. It is not part of
 * libmtserver or libmtcore: each program compiles it as one of its own
 * sources, because a library does not exit and these functions do. They are
 * for main() and its option parsing only. (examples/chatserver has its own:
 * it must build from its two files and the installed library alone, which
 * tests/test_install.sh checks.)
 *
 * Exit statuses, the same in every program:
 *   1  the system refused (cli_die): out of memory, cannot resolve, ...
 *   2  the command line is wrong (everything else here); the message names
 *      the program, the option and the bad value, then says
 *      "Try 'PROG --help' for more information."
 *
 * main() calls cli_set_prog() once, before it parses anything; the messages
 * start with that name.
 */
#ifndef ECHOSERVER_CLI_H
#define ECHOSERVER_CLI_H

#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2

/* The name the messages start with. `name` must outlive every call. */
void cli_set_prog(const char *name);

/* "PROG: <message>" on stderr, exit 1. */
__attribute__((noreturn, format(printf, 1, 2))) void cli_die(const char *fmt, ...);

/* "PROG: <message>" and the "Try" line on stderr, exit 2. */
__attribute__((noreturn, format(printf, 1, 2))) void cli_usage_error(const char *fmt, ...);

/* "PROG: invalid WHAT 'ARG'" and the "Try" line, exit 2. */
__attribute__((noreturn)) void cli_bad(const char *what, const char *arg);

/*
 * The value of option `opt` (say "--threads"): a decimal integer in
 * [min, max], digits only. A sign, an empty string, anything after the
 * digits, or a value past ULONG_MAX is refused like a value out of range:
 * "PROG: invalid value 'ARG' for OPT (expected MIN..MAX)", exit 2.
 */
unsigned long cli_ulong(const char *opt, const char *arg, unsigned long min,
			unsigned long max);

/*
 * The same for a decimal real number in [min, max] ("0.5", ".5", "1e6").
 * Refused besides: a sign, "inf" and "nan", hexadecimal, and a value too
 * large or too small for a double.
 */
double cli_double(const char *opt, const char *arg, double min, double max);

#endif
