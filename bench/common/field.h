/* Reading the benchmarks' own replies: flat JSON objects they make. */
#ifndef WSA_BENCH_FIELD_H
#define WSA_BENCH_FIELD_H

#include <stddef.h>

/* The value of the string or number after "key" in a flat JSON text,
 * into v (at most cap - 1 bytes); 0, or -1 if absent. */
int bench_field(const char *json, const char *key, char *v, size_t cap);

#endif
