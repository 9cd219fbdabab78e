// The public header as a C++ program sees it: compiled by tests/cxx/check
// with g++ -std=c++11 -Wall -Wextra -pedantic -Werror.
#include <wsa.h>

namespace
{

const char *name_of(int err)
{
	switch (err) {
#define NAME_CASE(name, value, text)                                           \
	case name:                                                             \
		return #name;
		WSA_ERRORS(NAME_CASE)
#undef NAME_CASE
	}
	return "?";
}

void reply(const char *const *args, wsa_http_reply *r, void *userdata)
{
	(void)args, (void)userdata;
	if (WSA_HTTP_REPLY_HAS(r, status))
		r->status = 204;
}

void on_open(wsa_conn *conn, void *userdata)
{
	(void)userdata;
	wsa_conn_send_error(conn, name_of(WSA_EINVAL));
}

} // namespace

int main()
{
	wsa_config cfg;
	wsa_server *srv = nullptr;
	wsa_route *route = nullptr;
	wsa_log_level level = WSA_LOG_INFO;

	wsa_config_init(&cfg);
	cfg.log_level = level;
	cfg.max_failed_logins = WSA_UNLIMITED;
	if (wsa_server_new(&srv, &cfg) != WSA_OK ||
	    wsa_route_add(srv, "/ws", on_open, nullptr, nullptr, &route) ||
	    wsa_server_http_get(srv, "/", reply, nullptr))
		return 1;
	wsa_server_close(srv, "x", WSA_CLOSE_GOING_AWAY, nullptr);
	wsa_server_free(srv);
	return wsa_version() >= WSA_VERSION_NUMBER ? 0 : 1;
}
