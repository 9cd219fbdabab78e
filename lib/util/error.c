/* Error texts and the library version. */
#include "wsa.h"

const char *wsa_strerror(int err)
{
	switch (err) {
#define WSA_ERROR_CASE_(name, value, text)                                     \
	case value:                                                            \
		return text;
		WSA_ERRORS(WSA_ERROR_CASE_)
#undef WSA_ERROR_CASE_
	}
	return "unknown error";
}

unsigned wsa_version(void)
{
	return WSA_VERSION_NUMBER;
}
