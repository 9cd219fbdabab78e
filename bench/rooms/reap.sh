#!/bin/sh
# What Redis spends on presence in rooms of users, measured by hand (not
# part of bench/run): two chat-room nodes sharing one Redis; ROOMS rooms
# of RECV users (a uid each) on node 2 and one sender each on node 1.
# Prints Redis' own time a join (the join script, from INFO
# commandstats), then SIGKILLs node 2 and prints how long the reap that
# takes its users out held Redis (SLOWLOG: one script, nothing else runs
# meanwhile).
#   bench/rooms/reap.sh [BUILDDIR]   (ROOMS=100 RECV=100 by default)
set -eu
cd "$(dirname "$0")/../.."
B=${1:-build-bench}
ROOMS=${ROOMS:-100}
RECV=${RECV:-100}
S=bench-secret-bench-secret-bench-secret-0123
T=$(mktemp -d)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
R= P1= P2= C=
cleanup() {
	for p in $C $P1 $P2 $R; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
cli() { redis-cli -p "$PORT" "$@"; }
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
	>"$T/redis.log" 2>&1 &
R=$!
i=0
until cli ping >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "no redis" >&2; exit 1; }
	sleep 0.1
done
cli config set slowlog-log-slower-than 1000 >/dev/null
RED="--redis redis://127.0.0.1:$PORT"
# shellcheck disable=SC2086
"$B/examples/chat-room/chat-room" --port 0 --jwt-secret $S $RED \
	--max-connections 12000 >"$T/n1.out" 2>"$T/n1.err" &
P1=$!
# shellcheck disable=SC2086
"$B/examples/chat-room/chat-room" --port 0 --jwt-secret $S $RED \
	--max-connections 12000 >"$T/n2.out" 2>"$T/n2.err" &
P2=$!
sleep 0.5
U1=$(head -1 "$T/n1.out")
U2=$(head -1 "$T/n2.out")
"$B/bench/rooms/wsa-rooms-bench" --secret $S --mode deliver \
	--send-url "$U1" --recv-url "$U2" --rooms "$ROOMS" --receivers "$RECV" \
	--rate 1 --duration 60 --warmup 0 --distinct-uids 1 \
	>"$T/client.out" 2>"$T/client.err" &
C=$!
i=0
until grep -q 'set up in' "$T/client.err"; do
	i=$((i + 1)); [ $i -lt 600 ] || { echo "set-up timed out" >&2; exit 1; }
	sleep 0.2
done
grep 'set up in' "$T/client.err"
sleep 3
echo "joins: $(cli info commandstats | grep '^cmdstat_eval:' | tr -d '\r')"
echo "keys $(cli dbsize), $(cli info memory | grep '^used_memory_human' | tr -d '\r')"
cli slowlog reset >/dev/null
kill -9 "$P2"
P2=
sleep 9
echo "after node 2's SIGKILL: keys $(cli dbsize); scripts over 1 ms (µs):"
# Each entry: id, time (10 digits), duration, then the command.
cli slowlog get 20 | awk '
	n == 2 { d = $0; n = 3; next }
	n == 3 { print "  " d " " $0; n = 0; next }
	/^[0-9]+$/ && length($0) == 10 { n = 2 }'
