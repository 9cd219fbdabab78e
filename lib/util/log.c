/* Logging to the host's sink. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *level_name(wsa_log_level level)
{
	switch (level) {
	case WSA_LOG_ERR:
		return "error";
	case WSA_LOG_WARNING:
		return "warning";
	case WSA_LOG_NOTICE:
		return "notice";
	case WSA_LOG_INFO:
		return "info";
	case WSA_LOG_DEBUG:
		return "debug";
	}
	return "log";
}

void wsa__log_stderr(wsa_log_level level, const char *conn_id,
		     const char *route, const char *msg, void *userdata)
{
	(void)userdata;
	if (conn_id)
		fprintf(stderr, "wsa: %s [%s %s] %s\n", level_name(level),
			conn_id, route ? route : "-", msg);
	else
		fprintf(stderr, "wsa: %s %s\n", level_name(level), msg);
}

/* The length of the valid UTF-8 sequence at s (at most n bytes) that is
 * not a control character (C1 controls included), or 0. */
static size_t printable_utf8(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned long cp;

	if (s[0] < 0x80)
		return s[0] >= 0x20 && s[0] != 0x7f;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates, beyond U+10FFFF, C1 controls. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || cp < 0xa0)
		return 0;
	return len;
}

/* Copy src into dst (size bytes, NUL-terminated) with every byte that
 * could forge or garble a line (control characters, a backslash,
 * anything not valid UTF-8) written as \xHH. Text a peer chose (a
 * token's uid, a path, an origin, a reason) reaches log lines, and the
 * sink is promised one line. A line cut short ends in "...". */
static void escape_line(char *dst, size_t size, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)src;
	size_t n = strlen(src), o = 0, k;

	while (n) {
		k = *s == '\\' ? 0 : printable_utf8(s, n);
		if (o + (k ? k : 4) + 4 > size) {
			memcpy(dst + o, "...", 4);
			return;
		}
		if (k) {
			memcpy(dst + o, s, k);
		} else {
			k = 1;
			dst[o] = '\\';
			dst[o + 1] = 'x';
			dst[o + 2] = hex[*s >> 4];
			dst[o + 3] = hex[*s & 15];
			o += 3;
		}
		o += k;
		s += k;
		n -= k;
	}
	dst[o] = '\0';
}

void wsa__log(const wsa_config *cfg, wsa_log_level level, const char *conn_id,
	      const char *route, const char *fmt, ...)
{
	char raw[512], line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(raw))
		memcpy(raw + sizeof(raw) - 4, "...", 4);
	escape_line(line, sizeof(line), raw);
	cfg->log(level, conn_id, route, line, cfg->log_userdata);
}
