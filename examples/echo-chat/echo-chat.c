/* echo-chat: the bundled example of libwsa, on threads of its own.
 *
 * Serves /ws/chat: a client logs in with a JWT, then "chat" messages are
 * echoed back, "typing" is logged and "ping" answered by the library. */
#include "echo.h"
#include "example.h"

int main(int argc, char **argv)
{
	static const struct example ex = {"echo-chat", echo_setup, NULL, NULL,
					  false};

	return example_main(argc, argv, &ex);
}
