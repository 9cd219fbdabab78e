/* The files of examples/web/, embedded at build time (embed.py). */
#ifndef WSA_EXAMPLE_WEB_ASSETS_H
#define WSA_EXAMPLE_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char *path; /* "/NAME" */
	const char *content_type;
	const unsigned char *data;
	size_t len;
};

extern const struct web_asset web_assets[];
extern const size_t web_nassets;

#endif
