/* Logging to the host's sink. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/clock.h"

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

/* ------------------------------------------------- rate-limited lines */

/* What each kind is about, for the line that counts those held back. */
static const char *const peer_line_names[WSA_PL_COUNT] = {
    [WSA_PL_UPGRADE_TOKEN_UNREADABLE] =
	"upgrade refused: unreadable or repeated token",
    [WSA_PL_UPGRADE_LIMIT] = "upgrade refused: connection limits",
    [WSA_PL_UPGRADE_FAILED_LOGINS] =
	"upgrade token refused: too many failed logins",
    [WSA_PL_UPGRADE_UNDECIDED] = "upgrade token: the verifier did not decide",
    [WSA_PL_UPGRADE_REVOKED] = "upgrade token revoked",
    [WSA_PL_UPGRADE_USER_LIMIT] =
	"upgrade refused: max_connections_per_user reached",
    [WSA_PL_UPGRADE_REJECTED] = "upgrade token rejected",
    [WSA_PL_LOGIN_BUDGET] = "login not verified in time",
    [WSA_PL_LOGIN_USER_LIMIT] =
	"login refused: max_connections_per_user reached",
    [WSA_PL_LOGIN_REJECTED] = "login rejected",
    [WSA_PL_FIRST_NOT_LOGIN] = "first message is no login",
    [WSA_PL_LOGIN_TIMEOUT] = "no login in time",
    [WSA_PL_REFRESH_NO_TOKEN] = "refresh without a token",
    [WSA_PL_NO_PONG] = "no pong in time",
    [WSA_PL_QUEUE_FULL] = "send queue full",
    [WSA_PL_RATE_ABUSED] = "closed: rate limit abused",
};

#define WINDOW_MS 1000

static long long now_ms(void)
{
	return (long long)wsa__now_ms();
}

void wsa__log_limits_init(struct wsa_log_limits *l)
{
	memset(l->kind, 0, sizeof(l->kind));
	pthread_mutex_init(&l->lock, NULL);
}

void wsa__log_limits_free(struct wsa_log_limits *l)
{
	pthread_mutex_destroy(&l->lock);
}

/* "NAME: N more in the last S s" for n lines held back over ms. */
static void say_held(const wsa_config *cfg, wsa_log_level level,
		     const char *name, unsigned n, long long ms)
{
	wsa__log(cfg, level, NULL, NULL, "%s: %u more in the last %lld.%lld s",
		 name, n, ms / 1000, ms % 1000 / 100);
}

bool wsa__log_take(const wsa_config *cfg, struct wsa_log_limits *l,
		   enum wsa_peer_line kind, wsa_log_level level)
{
	long long now = now_ms(), since;
	unsigned held = 0;
	bool take;

	pthread_mutex_lock(&l->lock);
	since = l->kind[kind].since_ms;
	take = !since || now - since >= WINDOW_MS;
	if (take) {
		held = l->kind[kind].held;
		l->kind[kind].held = 0;
		l->kind[kind].since_ms = now;
	} else {
		l->kind[kind].held++;
	}
	l->kind[kind].level = level;
	pthread_mutex_unlock(&l->lock);
	/* The flush did not come first (its loop is busy or stopped). */
	if (held)
		say_held(cfg, level, peer_line_names[kind], held, now - since);
	return take;
}

void wsa__log_flush(const wsa_config *cfg, struct wsa_log_limits *l, bool final)
{
	long long now = now_ms(), since;
	wsa_log_level level;
	unsigned held;
	int k;

	for (k = 0; k < WSA_PL_COUNT; k++) {
		pthread_mutex_lock(&l->lock);
		since = l->kind[k].since_ms;
		held = l->kind[k].held;
		level = l->kind[k].level;
		if (held && (final || now - since >= WINDOW_MS)) {
			/* This line is the kind's one for the next second. */
			l->kind[k].held = 0;
			l->kind[k].since_ms = now;
		} else {
			held = 0;
		}
		pthread_mutex_unlock(&l->lock);
		if (held)
			say_held(cfg, level, peer_line_names[k], held,
				 now - since);
	}
}

/* libwebsockets' lines: lws logs process-wide, for every server of the
 * process, so this account is the process's. Kinds are told apart by
 * their text without digits, hashed into a few slots; two kinds that
 * share a slot share its second. */
#define LWS_SLOTS 16

static struct {
	pthread_mutex_t lock;
	struct {
		long long since_ms;
		unsigned held;
		char text[120]; /* the line that opened the second */
	} slot[LWS_SLOTS];
} lws_lines = {.lock = PTHREAD_MUTEX_INITIALIZER};

static unsigned lws_kind(const char *line)
{
	unsigned h = 2166136261u;

	for (; *line; line++)
		if (*line < '0' || *line > '9')
			h = (h ^ (unsigned char)*line) * 16777619u;
	return h % LWS_SLOTS;
}

/* The text of a line without its newline, at most size - 1 bytes. */
static void line_text(char *dst, size_t size, const char *line)
{
	size_t n = strcspn(line, "\n");

	if (n >= size)
		n = size - 1;
	memcpy(dst, line, n);
	dst[n] = '\0';
}

static void lws_say_held(const char *text, unsigned n, long long ms)
{
	fprintf(stderr, "%s (%u more like it in the last %lld.%lld s)\n", text,
		n, ms / 1000, ms % 1000 / 100);
}

void wsa__lws_log(int level, const char *line)
{
	unsigned k = lws_kind(line), held = 0;
	long long now = now_ms(), since;
	char text[120];
	bool take;

	(void)level;
	pthread_mutex_lock(&lws_lines.lock);
	since = lws_lines.slot[k].since_ms;
	take = !since || now - since >= WINDOW_MS;
	if (take) {
		held = lws_lines.slot[k].held;
		memcpy(text, lws_lines.slot[k].text, sizeof(text));
		lws_lines.slot[k].held = 0;
		lws_lines.slot[k].since_ms = now;
		line_text(lws_lines.slot[k].text,
			  sizeof(lws_lines.slot[k].text), line);
	} else {
		lws_lines.slot[k].held++;
	}
	pthread_mutex_unlock(&lws_lines.lock);
	if (held)
		lws_say_held(text, held, now - since);
	if (take)
		fputs(line, stderr);
}

void wsa__lws_log_flush(bool final)
{
	long long now = now_ms(), since;
	char text[120];
	unsigned held;
	int k;

	for (k = 0; k < LWS_SLOTS; k++) {
		pthread_mutex_lock(&lws_lines.lock);
		since = lws_lines.slot[k].since_ms;
		held = lws_lines.slot[k].held;
		if (held && (final || now - since >= WINDOW_MS)) {
			memcpy(text, lws_lines.slot[k].text, sizeof(text));
			lws_lines.slot[k].held = 0;
			lws_lines.slot[k].since_ms = now;
		} else {
			held = 0;
		}
		pthread_mutex_unlock(&lws_lines.lock);
		if (held)
			lws_say_held(text, held, now - since);
	}
}
