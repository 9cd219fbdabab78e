/* Outside the tree, built with pkg-config alone: hello SECRET; prints its port. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <wsa.h>
static wsa_server *srv;
static void stop(int sig) { (void)sig; wsa_server_stop(srv); }
static void hello(wsa_conn *c, json_t *msg, void *ud)
{ (void)msg, (void)ud; wsa_conn_send_new(c, json_pack("{s:s,s:s}", "type", "hi", "uid", wsa_conn_uid(c))); }
int main(int argc, char **argv)
{
	wsa_jwt *jwt; wsa_route *r;
	if (argc != 2 || wsa_jwt_new(&jwt) || wsa_jwt_add_key(jwt, NULL, "HS256", argv[1], strlen(argv[1])) ||
	    wsa_server_new(&srv, NULL) || wsa_set_verifier(srv, wsa_jwt_verifier, jwt) ||
	    wsa_route_add(srv, "/ws/hello", NULL, NULL, NULL, &r) || wsa_route_handle(r, "hello", hello, NULL))
		return 1;
	signal(SIGTERM, stop);
	printf("%d\n", wsa_server_port(srv)), fflush(stdout);
	int rc = wsa_server_run(srv);
	return wsa_server_free(srv), wsa_jwt_free(jwt), rc != WSA_OK;
}
