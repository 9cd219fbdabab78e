/* Flat JSON fields for the benchmarks. See field.h. */
#include "field.h"

#include <stdio.h>
#include <string.h>

int bench_field(const char *json, const char *key, char *v, size_t cap)
{
	char pat[32];
	const char *p;
	size_t n = 0;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(json, pat);
	if (!p)
		return -1;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	if (*p == '"')
		p++;
	while (*p && *p != '"' && *p != ',' && *p != '}' && n + 1 < cap)
		v[n++] = *p++;
	v[n] = 0;
	return 0;
}
