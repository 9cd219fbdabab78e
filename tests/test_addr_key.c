/* lib/policy/guard.c's address keys: an IPv4 address (or one mapped into
 * IPv6) is written as inet_ntop writes it, for every value a byte can
 * take in every position; an IPv6 address by its /64; anything else has
 * no key. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "check.h"
#include "lib/policy/guard.h"

static void ipv4_case(const unsigned char a[4])
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (void *)&ss;
	struct sockaddr_in6 *in6 = (void *)&ss;
	char want[INET_ADDRSTRLEN], got[WSA_PEER_KEY_LEN];

	memset(&ss, 0, sizeof(ss));
	in->sin_family = AF_INET;
	memcpy(&in->sin_addr, a, 4);
	CHECK(inet_ntop(AF_INET, a, want, sizeof(want)) != NULL);
	memset(got, 'x', sizeof(got));
	CHECK(wsa__addr_key(&ss, got));
	CHECK(!strcmp(got, want));

	memset(&ss, 0, sizeof(ss));
	in6->sin6_family = AF_INET6;
	in6->sin6_addr.s6_addr[10] = in6->sin6_addr.s6_addr[11] = 0xff;
	memcpy(in6->sin6_addr.s6_addr + 12, a, 4);
	memset(got, 'x', sizeof(got));
	CHECK(wsa__addr_key(&ss, got));
	CHECK(!strcmp(got, want));
}

int main(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *in6 = (void *)&ss;
	char got[WSA_PEER_KEY_LEN];

	for (unsigned pos = 0; pos < 4; pos++)
		for (unsigned v = 0; v < 256; v++) {
			unsigned char a[4] = {127, 0, 0, 1};

			a[pos] = (unsigned char)v;
			ipv4_case(a);
		}
	ipv4_case((const unsigned char[]){255, 255, 255, 255});
	ipv4_case((const unsigned char[]){0, 0, 0, 0});
	ipv4_case((const unsigned char[]){100, 10, 9, 199});

	memset(&ss, 0, sizeof(ss));
	in6->sin6_family = AF_INET6;
	CHECK(inet_pton(AF_INET6, "2001:db8:0:12:abcd::1", &in6->sin6_addr));
	CHECK(wsa__addr_key(&ss, got));
	CHECK(!strcmp(got, "2001:db8:0:12::/64"));

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	CHECK(!wsa__addr_key(&ss, got));
	return check_status("test_addr_key");
}
