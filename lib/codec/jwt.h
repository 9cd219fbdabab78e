/* The built-in JWT verifier: internals reachable from the unit tests. */
#ifndef WSA_LIB_JWT_H
#define WSA_LIB_JWT_H

#include <time.h>

#include "wsa.h"

/*
 * wsa_jwt_verify() with the clock read as now (seconds since the epoch),
 * so that tests can place exp and nbf exactly on their boundaries.
 */
int wsa__jwt_verify_at(const wsa_jwt *jwt, const char *token, size_t len,
		       time_t now, json_t **claims);

/* The leeway configured, in seconds. */
unsigned wsa__jwt_leeway(const wsa_jwt *jwt);

#endif /* WSA_LIB_JWT_H */
