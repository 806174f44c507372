/*
 * cli.h - what the benchmark programs' command lines share: fatal errors
 * (exit 1), bad arguments (exit 2, naming the option) and number parsing.
 * Each program sets cli_prog to its name first.
 */
#ifndef ECHOSERVER_BENCH_CLI_H
#define ECHOSERVER_BENCH_CLI_H

extern const char *cli_prog;

__attribute__((noreturn, format(printf, 1, 2))) void cli_die(const char *fmt, ...);
/* "PROG: invalid WHAT 'ARG'" and exit 2. */
__attribute__((noreturn)) void cli_bad(const char *what, const char *arg);
/* A number in [min, max], or cli_bad(). */
double cli_num(const char *what, const char *arg, double min, double max);

#endif
