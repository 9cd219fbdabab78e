/* What the host-loop examples share besides echo-chat's: their own
 * repeating timer's period. */
#ifndef WSA_EXAMPLE_TICK_H
#define WSA_EXAMPLE_TICK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Take "--tick-ms N" out of argv (the rest are echo-chat's options);
 * the period in milliseconds, 1000 by default, 0 when N is bad. */
static inline unsigned tick_ms_option(int *argc, char **argv)
{
	unsigned ms = 1000;
	int i, j;

	for (i = 1; i < *argc; i++) {
		char *end;
		unsigned long n;

		if (strcmp(argv[i], "--tick-ms"))
			continue;
		if (i + 1 == *argc)
			return 0;
		n = strtoul(argv[i + 1], &end, 10);
		if (*end || !n || n > 3600000)
			return 0;
		ms = (unsigned)n;
		for (j = i; j + 2 <= *argc; j++)
			argv[j] = argv[j + 2];
		*argc -= 2;
		break;
	}
	return ms;
}

/* The timer's line: the loop serves the host's own work too. */
static inline void tick_print(void)
{
	static unsigned long n;

	printf("tick %lu\n", ++n);
	fflush(stdout);
}

#endif
