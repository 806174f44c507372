/*
 * usage.h - echoserver's --help text (usage.c).
 */
#ifndef ECHOSERVER_USAGE_H
#define ECHOSERVER_USAGE_H

#include <stdio.h>

void echoserver_usage(FILE *out);

#endif
