/* A small check harness: CHECK records a failure and goes on; a test
 * program returns check_status() from main. */
#ifndef WSA_TESTS_CHECK_H
#define WSA_TESTS_CHECK_H

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* Atomic: callbacks check on the server's thread too. */
static atomic_int check_failures_;
static atomic_int check_count_;

#define CHECK(cond)                                                            \
	do {                                                                   \
		check_count_++;                                                \
		if (!(cond)) {                                                 \
			check_failures_++;                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
		}                                                              \
	} while (0)

#define CHECK_INT(a, b)                                                        \
	do {                                                                   \
		long long check_a_ = (long long)(a),                           \
			  check_b_ = (long long)(b);                           \
		check_count_++;                                                \
		if (check_a_ != check_b_) {                                    \
			check_failures_++;                                     \
			fprintf(stderr,                                        \
				"%s:%d: %s == %lld, expected %s == %lld\n",    \
				__FILE__, __LINE__, #a, check_a_, #b,          \
				check_b_);                                     \
		}                                                              \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *check_a_ = (a), *check_b_ = (b);                   \
		check_count_++;                                                \
		if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_)) {    \
			check_failures_++;                                     \
			fprintf(stderr,                                        \
				"%s:%d: %s is \"%s\", expected \"%s\"\n",      \
				__FILE__, __LINE__, #a,                        \
				check_a_ ? check_a_ : "(null)",                \
				check_b_ ? check_b_ : "(null)");               \
		}                                                              \
	} while (0)

static inline int check_status(const char *name)
{
	fprintf(stderr, "%s: %d checks, %d failed\n", name,
		atomic_load(&check_count_), atomic_load(&check_failures_));
	return check_failures_ ? 1 : 0;
}

/* The lengths after len that test the codecs' scans (sixteen bytes at a
 * time, in rounds of 64, then eight, then one): each from 0 to 48, then
 * either side of 64 and 128; SCAN_LEN_END after the last, 144. */
#define SCAN_LEN_END ((size_t)-1)
static inline size_t scan_len_next(size_t len)
{
	static const size_t far[] = {63, 64, 65, 79, 80, 127, 128, 129, 144};
	size_t i;

	if (len < 48)
		return len + 1;
	for (i = 0; i < sizeof(far) / sizeof(*far); i++)
		if (far[i] > len)
			return far[i];
	return SCAN_LEN_END;
}

#endif
