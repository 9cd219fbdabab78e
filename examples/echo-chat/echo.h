/* The echo-chat protocol's handlers and page (echo.c). */
#ifndef WSA_EXAMPLE_ECHO_H
#define WSA_EXAMPLE_ECHO_H

#include <wsa.h>

/* Register "chat" and "typing" on route and the page on srv; a wsa_
 * error code. */
int echo_setup(wsa_server *srv, wsa_route *route);

#endif
