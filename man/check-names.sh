#!/bin/sh
# Check the man pages against the public header:
# - every function declared with WSA_EXPORT in wsa.h, and every wsa_
#   function-like macro, is named in the NAME section of exactly one
#   man/*.scd page;
# - every wsa_ name in a NAME section is such a function;
# - aliases.txt lists every name of a grouped page but the page's own;
# - wsa_strerror(3) lists exactly the error codes of the WSA_ERRORS table;
# - every page has a full title line.
# Usage: check-names.sh path/to/wsa.h path/to/man
set -eu
header=$1
mandir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Functions, and the function-like macros that stand for one
# (wsa_config_init passes the caller's sizeof).
{
	grep -v '^#' "$header" | grep -o 'WSA_EXPORT[^(]*(' |
		sed 's/.*[ *]\([A-Za-z0-9_]*\)($/\1/'
	sed -n 's/^#define \(wsa_[a-z0-9_]*\)(.*/\1/p' "$header"
} | sort >"$tmp/exported"

: >"$tmp/named"
: >"$tmp/aliases"
for f in "$mandir"/*.scd; do
	page=$(basename "$f" .scd)
	section=${page##*.}
	page=${page%.*}
	awk '/^# NAME/ { n = 1; next } /^# / { n = 0 } n && NF' "$f" |
		sed 's/ - .*//' | tr ',' '\n' | tr -d ' \t' | grep . |
		grep '^wsa_' >"$tmp/page" || true
	cat "$tmp/page" >>"$tmp/named"
	grep -v -x "$page" "$tmp/page" | sed "s/\$/ $section $page/" \
		>>"$tmp/aliases" || true
done
sort "$tmp/named" >"$tmp/named.sorted"

status=0
missing=$(comm -23 "$tmp/exported" "$tmp/named.sorted")
if [ -n "$missing" ]; then
	echo "exported but named in no man page:" $missing
	status=1
fi
twice=$(uniq -d "$tmp/named.sorted")
if [ -n "$twice" ]; then
	echo "named in more than one man page:" $twice
	status=1
fi
stale=$(sort -u "$tmp/named" | comm -13 "$tmp/exported" -)
if [ -n "$stale" ]; then
	echo "named in a man page but not exported:" $stale
	status=1
fi
sort "$tmp/aliases" >"$tmp/aliases.expected"
sort "$mandir/aliases.txt" >"$tmp/aliases.listed"
if ! cmp -s "$tmp/aliases.expected" "$tmp/aliases.listed"; then
	echo "aliases.txt differs from the NAME sections; expected:"
	cat "$tmp/aliases.expected"
	status=1
fi
sed -n 's/.*X(\(WSA_[A-Z_]*\), .*/\1/p' "$header" | sort >"$tmp/codes"
grep -o '^|  WSA_[A-Z_]*' "$mandir/wsa_strerror.3.scd" | sed 's/^|  //' |
	sort >"$tmp/codes.listed"
if ! cmp -s "$tmp/codes" "$tmp/codes.listed"; then
	echo "wsa_strerror(3) error table differs from WSA_ERRORS:"
	diff "$tmp/codes" "$tmp/codes.listed" || true
	status=1
fi
# A page's title line names it, its section and the release (meson
# substitutes @VERSION@), so that it renders with a section name and a
# footer.
for f in "$mandir"/*.scd; do
	page=$(basename "$f" .scd)
	head -n 1 "$f" | grep -q -x "${page%.*}(${page##*.}) \"libwsa @VERSION@\" \"libwsa [A-Z][A-Za-z ]*\"" ||
		{ echo "$f: title line is not NAME(SECTION) \"libwsa @VERSION@\" \"libwsa ...\""; status=1; }
done
if [ "$status" = 0 ]; then
	echo "$(wc -l <"$tmp/exported") exported functions, each on one man page"
fi
exit "$status"
