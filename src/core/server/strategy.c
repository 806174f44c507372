/*
 * strategy.c - the table of accept strategies (strategy.h). The first is
 * the default.
 */
#include <config.h>

#include <stddef.h>
#include <string.h>

#include "strategy.h"

static const struct accept_strategy *const strategies[] = {
	&accept_handoff,
	&accept_reuseport,
	&accept_shared,
};

#define N_STRATEGIES (sizeof(strategies) / sizeof(strategies[0]))

const struct accept_strategy *accept_strategy_at(unsigned i)
{
	return i < N_STRATEGIES ? strategies[i] : NULL;
}

const struct accept_strategy *accept_strategy_find(const char *name)
{
	for (size_t i = 0; i < N_STRATEGIES; i++)
		if (strcmp(strategies[i]->name, name) == 0)
			return strategies[i];
	return NULL;
}
