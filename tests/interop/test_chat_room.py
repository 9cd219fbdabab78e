#!/usr/bin/python3
"""Black-box interoperability tests for the chat-room example of libwsa.

The law is /work/shared/PROTOCOL.md, section 6 (rooms), on top of section 2
(login).  The peer side is Debian's python3-websockets (10.4) and PyJWT; the
plumbing (server process, client helpers, token minting) is imported from
test_echo_chat.py next to this file.

Run with the Debian interpreter:

    /usr/bin/python3 tests/interop/test_chat_room.py \
        --chat-room build/examples/chat-room/chat-room

Options: -k SUBSTRING (run only matching cases, may repeat), --list, -v.
The binary may also be given as the environment variable WSA_CHAT_ROOM.
Output: one "PASS name" / "FAIL name" line per case, then a last line
"N passed, N failed"; the exit status is non-zero on any failure.

To show that something does NOT arrive, a case first makes sure the server
has handled the message that could have caused it (the sender got its own
answer, or a ping sent right behind it got its pong), then pings the
connection that must stay quiet: the next thing it receives must be the pong.
"""

import argparse
import asyncio
import contextlib
import itertools
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_echo_chat as base  # noqa: E402  (exits 77 without the packages)

from test_echo_chat import (  # noqa: E402
    ERR_FIRST, ERR_FORMAT, ERR_UNKNOWN, PONG, Failure, StartupFailed,
    check, claims, expect, expect_close, hs, js, recv_json, send)

SECRET = base.SECRET
CASE_TIMEOUT = 20.0
ERR_NOT_IN_ROOM = {"type": "error", "message": "Not in room"}


# --------------------------------------------------------------------------
# per-case context: unique uids and room names, connections closed at the end

_serial = itertools.count(1)


class T:
    def __init__(self, url, binary):
        self.url = url
        self.binary = binary
        self.tag = "c%d" % next(_serial)
        self.conns = []

    def uid(self, name):
        return "%s@%s" % (name, self.tag)

    def room(self, name):
        return "%s#%s" % (name, self.tag)

    async def conn(self, uid, do_login=True):
        """A new connection logged in as uid (a name made unique by uid())."""
        ws = await base.connect(self.url)
        self.conns.append(ws)
        ws.uid = uid
        if do_login:
            await base.login(ws, hs(claims(uid=uid)))
        return ws

    async def close_all(self):
        for ws in self.conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), base.NET_TIMEOUT)


# --------------------------------------------------------------------------
# protocol helpers

def who(ws):
    return getattr(ws, "uid", "?")


async def quiet(*conns):
    """Each connection's next message is the pong to a ping sent now."""
    for ws in conns:
        await send(ws, {"type": "ping"})
        got = await recv_json(ws, what="pong (nothing else expected) on the "
                              "connection of %s" % who(ws))
        check(got == PONG, "connection of %s: expected nothing more (next "
              "message the pong), got %s" % (who(ws), js(got)))


def presence(room, uid, event):
    return {"type": "presence", "room": room, "uid": uid, "event": event}


async def join(ws, room, users, mid=None):
    """Send a join; the answer must be `joined` with exactly these users."""
    msg = {"type": "join", "room": room}
    if mid is not None:
        msg["id"] = mid
    await send(ws, msg)
    got = await recv_json(ws, what="joined %s" % js(room)[:80])
    want_keys = {"type", "room", "users"} | ({"id"} if mid is not None
                                             else set())
    u = got.get("users")
    check(got.get("type") == "joined" and got.get("room") == room and
          isinstance(u, list) and set(got) == want_keys and
          got.get("id") == mid,
          "sent %s: expected {\"type\":\"joined\",\"room\":%s,\"users\":[...]"
          "%s}, got %s" % (js(msg), js(room),
                           "" if mid is None else ",\"id\":%s" % js(mid),
                           js(got)))
    check(all(isinstance(x, str) for x in u), "users not all strings: %s"
          % js(u))
    check(len(u) == len(set(u)), "users lists a uid more than once: %s"
          % js(u))
    check(set(u) == set(users), "sent %s: users %s, expected (any order) %s"
          % (js(msg), js(sorted(u)), js(sorted(users))))
    return got


async def leave(ws, room, mid=None):
    msg = {"type": "leave", "room": room}
    want = {"type": "left", "room": room}
    if mid is not None:
        msg["id"] = mid
        want["id"] = mid
    await send(ws, msg)
    await expect(ws, want)


def check_ts(got):
    ts = got.get("timestamp")
    check(isinstance(ts, int) and not isinstance(ts, bool),
          "timestamp is not an integer: %s" % js(got))
    check(abs(ts - time.time() * 1000) < 300000,
          "timestamp %r is not milliseconds since the epoch near now" % ts)


async def chat(ws, room, message, mid=None):
    """Send a chat; return the sender's copy (checked)."""
    msg = {"type": "chat", "room": room, "message": message}
    if mid is not None:
        msg["id"] = mid
    await send(ws, msg)
    got = await recv_json(ws, what="own chat copy")
    want = {"type": "chat", "room": room, "from": who(ws),
            "message": message, "timestamp": got.get("timestamp")}
    if mid is not None:
        want["id"] = mid
    check(got == want, "sent %s: sender expected %s (timestamp <int ms>), "
          "got %s" % (js(msg), js(want), js(got)))
    check_ts(got)
    return got


async def expect_copy(ws, sender_copy):
    """The fanned-out copy: the sender's copy without its id."""
    want = {k: v for k, v in sender_copy.items() if k != "id"}
    got = await recv_json(ws, what="chat copy")
    check(got == want, "member %s expected %s, got %s"
          % (who(ws), js(want), js(got)))


async def typing(ws, room, is_typing, mid=None):
    msg = {"type": "typing", "room": room, "isTyping": is_typing}
    if mid is not None:
        msg["id"] = mid
    await send(ws, msg)


def typing_msg(room, uid, is_typing):
    return {"type": "typing", "room": room, "userId": uid,
            "isTyping": is_typing}


async def expect_error(ws, msg, error):
    await send(ws, msg)
    want = dict(error)
    if isinstance(msg, dict) and "id" in msg:
        want["id"] = msg["id"]
    got = await recv_json(ws, what=js(want))
    check(got == want, "sent %s: expected %s, got %s"
          % (js(msg), js(want), js(got)))


async def expect_set(ws, wanted):
    """The next len(wanted) messages are these, in any order."""
    got = [await recv_json(ws) for _ in wanted]
    key = js  # compare canonical text
    check(sorted(map(key, got)) == sorted(map(key, wanted)),
          "connection of %s expected (any order) %s, got %s"
          % (who(ws), [js(w) for w in wanted], [js(g) for g in got]))


async def disconnect(ws):
    await asyncio.wait_for(ws.close(), base.NET_TIMEOUT)


# --------------------------------------------------------------------------
# cases

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


# -- join --------------------------------------------------------------------

@case
async def join_alone_users_is_self(t):
    a = await t.conn(t.uid("alice"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await quiet(a)  # no presence about itself


@case
async def join_others_get_presence_join(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await quiet(a, b)


@case
async def join_users_lists_every_uid_in_room(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    c = await t.conn(t.uid("carol"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await join(c, r, [a.uid, b.uid, c.uid])
    await expect(a, presence(r, c.uid, "join"))
    await expect(b, presence(r, c.uid, "join"))
    await quiet(a, b, c)


@case
async def join_second_connection_same_uid_no_presence(t):
    a1 = await t.conn(t.uid("alice"))
    a2 = await t.conn(a1.uid)
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(a1, r, [a1.uid])
    await join(b, r, [a1.uid, b.uid])
    await expect(a1, presence(r, b.uid, "join"))
    await join(a2, r, [a1.uid, b.uid])  # alice listed once
    await quiet(a2, b, a1)  # no presence to anyone


@case
async def join_presence_reaches_every_connection_of_member(t):
    a1 = await t.conn(t.uid("alice"))
    a2 = await t.conn(a1.uid)
    c = await t.conn(t.uid("carol"))
    r = t.room("R")
    await join(a1, r, [a1.uid])
    await join(a2, r, [a1.uid])
    await quiet(a1)
    await join(c, r, [a1.uid, c.uid])
    await expect(a1, presence(r, c.uid, "join"))
    await expect(a2, presence(r, c.uid, "join"))
    await quiet(a1, a2, c)


@case
async def join_again_same_room_joined_again_no_presence(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await join(a, r, [a.uid, b.uid])
    await join(b, r, [a.uid, b.uid])
    await quiet(a, b)
    # still one membership: a chat reaches alice once
    copy = await chat(b, r, "once")
    await expect_copy(a, copy)
    await quiet(a, b)
    # and one leave takes her out
    await leave(a, r)
    await expect(b, presence(r, a.uid, "leave"))
    await expect_error(a, {"type": "chat", "room": r, "message": "x"},
                       ERR_NOT_IN_ROOM)
    await quiet(b)


@case
async def join_before_login_is_refused(t):
    a = await t.conn(t.uid("alice"), do_login=False)
    await send(a, {"type": "join", "room": t.room("R")})
    await expect(a, ERR_FIRST)
    await expect_close(a, 1008)


@case
async def join_pipelined_behind_login(t):
    a = await t.conn(t.uid("alice"), do_login=False)
    r = t.room("R")
    await send(a, {"type": "login", "token": hs(claims(uid=a.uid))})
    await send(a, {"type": "join", "room": r})
    await expect(a, base.AUTH_OK)
    u = await recv_json(a)
    check(u == {"type": "joined", "room": r, "users": [a.uid]},
          "expected joined with users [%s], got %s" % (a.uid, js(u)))


# -- leave -------------------------------------------------------------------

@case
async def leave_sender_left_others_presence_leave(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    c = await t.conn(t.uid("carol"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await join(c, r, [a.uid, b.uid, c.uid])
    await expect_set(a, [presence(r, b.uid, "join"),
                         presence(r, c.uid, "join")])
    await expect(b, presence(r, c.uid, "join"))
    await leave(a, r)
    await expect(b, presence(r, a.uid, "leave"))
    await expect(c, presence(r, a.uid, "leave"))
    await quiet(a, b, c)


@case
async def leave_stops_delivery(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await leave(a, r)
    await expect(b, presence(r, a.uid, "leave"))
    await chat(b, r, "anyone?")
    await typing(b, r, True)
    await quiet(b, a)
    await join(b, r, [b.uid])  # alice no longer listed


@case
async def leave_one_of_two_connections_no_presence(t):
    a1 = await t.conn(t.uid("alice"))
    a2 = await t.conn(a1.uid)
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(a1, r, [a1.uid])
    await join(a2, r, [a1.uid])
    await join(b, r, [a1.uid, b.uid])
    await expect(a1, presence(r, b.uid, "join"))
    await expect(a2, presence(r, b.uid, "join"))
    await leave(a1, r)
    await quiet(b, a2, a1)  # alice still has a connection in the room
    await join(b, r, [a1.uid, b.uid])
    copy = await chat(b, r, "still here?")
    await expect_copy(a2, copy)
    await quiet(a1, a2)
    await leave(a2, r)  # her last connection
    await expect(b, presence(r, a1.uid, "leave"))
    await quiet(b, a1, a2)


@case
async def leave_then_rejoin_presence_join_again(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await leave(a, r)
    await expect(b, presence(r, a.uid, "leave"))
    await join(a, r, [a.uid, b.uid])
    await expect(b, presence(r, a.uid, "join"))
    await quiet(a, b)


@case
async def leave_room_never_joined_not_in_room(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(b, r, [b.uid])
    await expect_error(a, {"type": "leave", "room": r}, ERR_NOT_IN_ROOM)
    await expect_error(a, {"type": "leave", "room": t.room("empty")},
                       ERR_NOT_IN_ROOM)
    await quiet(b, a)


@case
async def leave_twice_second_not_in_room(t):
    a = await t.conn(t.uid("alice"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await leave(a, r)
    await expect_error(a, {"type": "leave", "room": r}, ERR_NOT_IN_ROOM)
    await quiet(a)


# -- chat --------------------------------------------------------------------

@case
async def chat_reaches_sender_and_every_member(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    c = await t.conn(t.uid("carol"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await join(c, r, [a.uid, b.uid, c.uid])
    await expect_set(a, [presence(r, b.uid, "join"),
                         presence(r, c.uid, "join")])
    await expect(b, presence(r, c.uid, "join"))
    copy = await chat(a, r, "Hello room!")
    await expect_copy(b, copy)
    await expect_copy(c, copy)
    copy = await chat(c, r, "Hi alice")
    await expect_copy(a, copy)
    await expect_copy(b, copy)
    await quiet(a, b, c)


@case
async def chat_alone_in_room_gets_own_copy(t):
    a = await t.conn(t.uid("alice"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await chat(a, r, "echo?")
    await quiet(a)


@case
async def chat_both_connections_of_a_user_get_it(t):
    a1 = await t.conn(t.uid("alice"))
    a2 = await t.conn(a1.uid)
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(a1, r, [a1.uid])
    await join(a2, r, [a1.uid])
    await join(b, r, [a1.uid, b.uid])
    await expect(a1, presence(r, b.uid, "join"))
    await expect(a2, presence(r, b.uid, "join"))
    copy = await chat(b, r, "to both")
    await expect_copy(a1, copy)
    await expect_copy(a2, copy)
    copy = await chat(a1, r, "from one")  # own other connection gets it too
    await expect_copy(a2, copy)
    await expect_copy(b, copy)
    await quiet(a1, a2, b)


@case
async def chat_non_members_get_nothing(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    d = await t.conn(t.uid("dave"))  # logged in, in no room
    a2 = await t.conn(a.uid)  # alice's other connection, not in the room
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    copy = await chat(a, r, "members only")
    await expect_copy(b, copy)
    await quiet(d, a2, a, b)


@case
async def chat_message_text_preserved(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    r = t.room("R \u00e9\u2713 \"q\" \\ /")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    for m in ["", "h\u00e9llo \U0001F600 \u4e16\u754c", "line1\nline2\t\"q\"",
              "back\\slash </script>", "x" * 5000, "{\"type\":\"ping\"}"]:
        copy = await chat(a, r, m)
        await expect_copy(b, copy)
    await quiet(a, b)


# -- typing ------------------------------------------------------------------

@case
async def typing_sender_nothing_others_get_it(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    c = await t.conn(t.uid("carol"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await join(c, r, [a.uid, b.uid, c.uid])
    await expect_set(a, [presence(r, b.uid, "join"),
                         presence(r, c.uid, "join")])
    await expect(b, presence(r, c.uid, "join"))
    for flag in (True, False):
        await typing(a, r, flag)
        await quiet(a)  # the sender gets nothing (and it was handled)
        await expect(b, typing_msg(r, a.uid, flag))
        await expect(c, typing_msg(r, a.uid, flag))
    await quiet(a, b, c)


@case
async def typing_second_connection_of_sender_gets_it(t):
    a1 = await t.conn(t.uid("alice"))
    a2 = await t.conn(a1.uid)
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(a1, r, [a1.uid])
    await join(a2, r, [a1.uid])
    await join(b, r, [a1.uid, b.uid])
    await expect(a1, presence(r, b.uid, "join"))
    await expect(a2, presence(r, b.uid, "join"))
    await typing(a1, r, True)
    await quiet(a1)
    await expect(a2, typing_msg(r, a1.uid, True))
    await expect(b, typing_msg(r, a1.uid, True))
    await typing(b, r, False)
    await quiet(b)
    await expect(a1, typing_msg(r, b.uid, False))
    await expect(a2, typing_msg(r, b.uid, False))
    await quiet(a1, a2, b)


@case
async def typing_non_members_get_nothing(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    d = await t.conn(t.uid("dave"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await join(d, t.room("other"), [d.uid])
    await typing(a, r, True)
    await quiet(a)
    await expect(b, typing_msg(r, a.uid, True))
    await quiet(d, b)


# -- not in room -------------------------------------------------------------

async def not_in_room_case(t, msg_of_room):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(b, r, [b.uid])
    await join(a, t.room("mine"), [a.uid])  # in some room, not that one
    await expect_error(a, msg_of_room(r), ERR_NOT_IN_ROOM)
    await expect_error(a, msg_of_room(t.room("nobody-here")),
                       ERR_NOT_IN_ROOM)
    await quiet(b, a)


@case
async def not_in_room_chat(t):
    await not_in_room_case(t, lambda r: {"type": "chat", "room": r,
                                         "message": "hi"})


@case
async def not_in_room_typing(t):
    await not_in_room_case(t, lambda r: {"type": "typing", "room": r,
                                         "isTyping": True})


@case
async def not_in_room_leave(t):
    await not_in_room_case(t, lambda r: {"type": "leave", "room": r})


@case
async def not_in_room_membership_is_per_connection(t):
    a1 = await t.conn(t.uid("alice"))
    a2 = await t.conn(a1.uid)
    r = t.room("R")
    await join(a1, r, [a1.uid])
    await expect_error(a2, {"type": "chat", "room": r, "message": "x"},
                       ERR_NOT_IN_ROOM)
    await expect_error(a2, {"type": "typing", "room": r, "isTyping": True},
                       ERR_NOT_IN_ROOM)
    await expect_error(a2, {"type": "leave", "room": r}, ERR_NOT_IN_ROOM)
    await quiet(a1, a2)


@case
async def not_in_room_after_leave(t):
    a = await t.conn(t.uid("alice"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await leave(a, r)
    await expect_error(a, {"type": "chat", "room": r, "message": "x"},
                       ERR_NOT_IN_ROOM)
    await expect_error(a, {"type": "typing", "room": r, "isTyping": False},
                       ERR_NOT_IN_ROOM)
    await quiet(a)


# -- format (checked before membership) --------------------------------------

# (name, message with ROOM standing for a room name)
FORMAT_CASES = [
    ("join_no_room", {"type": "join"}),
    ("join_room_number", {"type": "join", "room": 5}),
    ("join_room_null", {"type": "join", "room": None}),
    ("join_room_array", {"type": "join", "room": ["ROOM"]}),
    ("join_room_object", {"type": "join", "room": {"name": "ROOM"}}),
    ("join_room_bool", {"type": "join", "room": True}),
    ("leave_no_room", {"type": "leave"}),
    ("leave_room_number", {"type": "leave", "room": 7}),
    ("chat_no_room", {"type": "chat", "message": "hi"}),
    ("chat_room_number", {"type": "chat", "room": 1, "message": "hi"}),
    ("chat_room_null", {"type": "chat", "room": None, "message": "hi"}),
    ("chat_no_message", {"type": "chat", "room": "ROOM"}),
    ("chat_message_number", {"type": "chat", "room": "ROOM", "message": 12}),
    ("chat_message_null", {"type": "chat", "room": "ROOM", "message": None}),
    ("chat_message_object", {"type": "chat", "room": "ROOM",
                             "message": {"text": "hi"}}),
    ("typing_no_room", {"type": "typing", "isTyping": True}),
    ("typing_room_number", {"type": "typing", "room": 3, "isTyping": True}),
    ("typing_no_istyping", {"type": "typing", "room": "ROOM"}),
    ("typing_istyping_string", {"type": "typing", "room": "ROOM",
                                "isTyping": "true"}),
    ("typing_istyping_number", {"type": "typing", "room": "ROOM",
                                "isTyping": 1}),
    ("typing_istyping_null", {"type": "typing", "room": "ROOM",
                              "isTyping": None}),
    ("typing_istyping_wrong_case", {"type": "typing", "room": "ROOM",
                                    "istyping": True}),
]


def subst(obj, room):
    if obj == "ROOM":
        return room
    if isinstance(obj, dict):
        return {k: subst(v, room) for k, v in obj.items()}
    if isinstance(obj, list):
        return [subst(v, room) for v in obj]
    return obj


def make_format_case(name, template):
    async def fn(t):
        a = await t.conn(t.uid("alice"))
        b = await t.conn(t.uid("bob"))
        r = t.room("R")
        await join(b, r, [b.uid])
        # not in the room: still a format error, not "Not in room"
        await expect_error(a, subst(template, r), ERR_FORMAT)
        await quiet(b)
        # in the room: a format error, and the others get nothing
        await join(a, r, [a.uid, b.uid])
        await expect(b, presence(r, a.uid, "join"))
        await expect_error(a, subst(template, r), ERR_FORMAT)
        await quiet(b, a)
    fn.__name__ = "format_" + name
    return fn


for _name, _tmpl in FORMAT_CASES:
    case(make_format_case(_name, _tmpl))


# -- closing -----------------------------------------------------------------

@case
async def close_presence_leave_in_every_room(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    c = await t.conn(t.uid("carol"))
    d = await t.conn(t.uid("dave"))
    r1, r2, r3 = t.room("R1"), t.room("R2"), t.room("R3")
    await join(a, r1, [a.uid])
    await join(a, r2, [a.uid])
    await join(b, r1, [a.uid, b.uid])
    await join(c, r2, [a.uid, c.uid])
    await join(d, r1, [a.uid, b.uid, d.uid])
    await join(d, r2, [a.uid, c.uid, d.uid])
    await join(d, r3, [d.uid])  # a room alice was never in
    await expect_set(a, [presence(r1, b.uid, "join"),
                         presence(r2, c.uid, "join"),
                         presence(r1, d.uid, "join"),
                         presence(r2, d.uid, "join")])
    await expect(b, presence(r1, d.uid, "join"))
    await expect(c, presence(r2, d.uid, "join"))
    await disconnect(a)
    await expect(b, presence(r1, a.uid, "leave"))
    await expect(c, presence(r2, a.uid, "leave"))
    await expect_set(d, [presence(r1, a.uid, "leave"),
                         presence(r2, a.uid, "leave")])
    await quiet(b, c, d)
    await join(b, r1, [b.uid, d.uid])  # alice is gone from the lists
    await join(c, r2, [c.uid, d.uid])


@case
async def close_one_of_two_connections_no_presence(t):
    a1 = await t.conn(t.uid("alice"))
    a2 = await t.conn(a1.uid)
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(a1, r, [a1.uid])
    await join(a2, r, [a1.uid])
    await join(b, r, [a1.uid, b.uid])
    await expect(a1, presence(r, b.uid, "join"))
    await expect(a2, presence(r, b.uid, "join"))
    await disconnect(a1)
    copy = await chat(b, r, "who is left?")  # no presence came before it
    await expect_copy(a2, copy)
    await join(b, r, [a2.uid, b.uid])
    await quiet(b, a2)
    await disconnect(a2)  # alice's last connection
    await expect(b, presence(r, a2.uid, "leave"))
    await quiet(b)
    await join(b, r, [b.uid])


@case
async def close_after_leave_no_second_presence(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    c = await t.conn(t.uid("carol"))
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await leave(a, r)
    await expect(b, presence(r, a.uid, "leave"))
    await disconnect(a)
    await join(c, r, [b.uid, c.uid])
    await expect(b, presence(r, c.uid, "join"))  # not a second leave
    await quiet(b, c)


@case
async def close_before_login_or_in_no_room_harmless(t):
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(b, r, [b.uid])
    x = await t.conn(t.uid("ghost"), do_login=False)
    await disconnect(x)
    y = await t.conn(t.uid("loner"))
    await disconnect(y)
    await quiet(b)
    await join(b, r, [b.uid])


# -- several rooms -----------------------------------------------------------

@case
async def rooms_isolated(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    c = await t.conn(t.uid("carol"))
    r1, r2 = t.room("R1"), t.room("R2")
    await join(a, r1, [a.uid])
    await join(a, r2, [a.uid])
    await join(b, r1, [a.uid, b.uid])
    await expect(a, presence(r1, b.uid, "join"))
    await join(c, r2, [a.uid, c.uid])  # users of R2 only
    await expect(a, presence(r2, c.uid, "join"))
    await quiet(b)  # no presence from the other room
    copy = await chat(a, r1, "to R1")
    await expect_copy(b, copy)
    await quiet(c)
    copy = await chat(a, r2, "to R2")
    await expect_copy(c, copy)
    await quiet(b)
    await typing(b, r1, True)
    await quiet(b)
    await expect(a, typing_msg(r1, b.uid, True))
    await quiet(c, a)
    await expect_error(b, {"type": "chat", "room": r2, "message": "x"},
                       ERR_NOT_IN_ROOM)
    await leave(a, r1)
    await expect(b, presence(r1, a.uid, "leave"))
    await quiet(c)  # leaving R1 says nothing in R2
    copy = await chat(a, r2, "still in R2")
    await expect_copy(c, copy)
    await expect_error(a, {"type": "chat", "room": r1, "message": "x"},
                       ERR_NOT_IN_ROOM)
    await quiet(a, b, c)


@case
async def rooms_names_are_exact(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    r = t.room("Room")
    await join(a, r, [a.uid])
    for other in (r.lower(), r.upper(), r + " ", " " + r):
        await join(b, other, [b.uid])
    await quiet(a)
    await expect_error(a, {"type": "chat", "room": r.lower(),
                           "message": "x"}, ERR_NOT_IN_ROOM)
    await chat(b, r.lower(), "lower")
    await quiet(a)


@case
async def rooms_many_at_once(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    rooms = [t.room("R%d" % i) for i in range(20)]
    for r in rooms:
        await join(a, r, [a.uid])
    for i, r in enumerate(rooms):
        if i % 2 == 0:
            await join(b, r, [a.uid, b.uid])
            await expect(a, presence(r, b.uid, "join"))
    for i, r in enumerate(rooms):
        copy = await chat(a, r, "n%d" % i)
        if i % 2 == 0:
            await expect_copy(b, copy)
    await quiet(a, b)
    await disconnect(a)
    await expect_set(b, [presence(r, a.uid, "leave")
                         for i, r in enumerate(rooms) if i % 2 == 0])
    await quiet(b)


# -- id echo -----------------------------------------------------------------

@case
async def id_chat_only_on_sender_copy(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    a2 = await t.conn(a.uid)
    r = t.room("R")
    await join(a, r, [a.uid])
    await join(a2, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    await expect(a2, presence(r, b.uid, "join"))
    copy = await chat(a, r, "with id", mid=5)
    await expect_copy(b, copy)
    await expect_copy(a2, copy)  # the sender's other connection: no id
    copy = await chat(b, r, "string id", mid="c-1")
    await expect_copy(a, copy)
    await expect_copy(a2, copy)
    await quiet(a, a2, b)


@case
async def id_join_leave_typing(t):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(a, r, [a.uid], mid="j1")
    await join(b, r, [a.uid, b.uid], mid=2)
    await expect(a, presence(r, b.uid, "join"))  # no id on fan-out
    await typing(b, r, True, mid=3)
    await quiet(b)
    await expect(a, typing_msg(r, b.uid, True))
    await leave(b, r, mid=4)
    await expect(a, presence(r, b.uid, "leave"))
    await quiet(a, b)


@case
async def id_on_errors(t):
    a = await t.conn(t.uid("alice"))
    r = t.room("R")
    await expect_error(a, {"type": "chat", "room": r, "message": "x",
                           "id": 9}, ERR_NOT_IN_ROOM)
    await expect_error(a, {"type": "leave", "room": r, "id": "L"},
                       ERR_NOT_IN_ROOM)
    await expect_error(a, {"type": "join", "id": 10}, ERR_FORMAT)
    await expect_error(a, {"type": "typing", "room": r, "id": 11},
                       ERR_FORMAT)
    await quiet(a)


# -- room names and identity --------------------------------------------------
# Section 6 asks only for a string `room`: any JSON string names a room, and
# the room is echoed back exactly as sent.

async def room_name_case(t, r):
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    await join(a, r, [a.uid])
    await join(b, r, [a.uid, b.uid])
    await expect(a, presence(r, b.uid, "join"))
    copy = await chat(a, r, "named")
    await expect_copy(b, copy)
    await leave(b, r)
    await expect(a, presence(r, b.uid, "leave"))
    await quiet(a, b)


@case
async def room_name_unicode_and_punctuation(t):
    await room_name_case(t, t.room("\u00e9\u2713\U0001F600 \"q\" \\ / . * #"))


@case
async def room_name_255_bytes(t):
    r = t.room("")
    await room_name_case(t, r + "x" * (255 - len(r.encode())))


# Room names are non-empty, at most 255 bytes, without NUL (PROTOCOL.md
# section 6); anything else is answered as a bad format and the connection
# goes on.

async def room_name_refused(t, r):
    a = await t.conn(t.uid("alice"))
    for kind in ("join", "leave", "chat", "typing"):
        msg = {"type": kind, "room": r, "message": "m", "isTyping": True}
        await expect_error(a, msg, ERR_FORMAT)
    await quiet(a)


@case
async def room_name_256_bytes_refused(t):
    r = t.room("")
    await room_name_refused(t, r + "x" * (256 - len(r.encode())))


@case
async def join_beyond_128_rooms_too_many_rooms(t):
    # The default limit of rooms per connection. The joins keep to the
    # default message rate (a burst of 50, then 20 a second): pacing, not
    # synchronisation.
    a = await t.conn(t.uid("alice"))
    b = await t.conn(t.uid("bob"))
    for i in range(128):
        if i >= 40:
            await asyncio.sleep(0.055)
        await join(a, t.room("cap%d" % i), [a.uid])
    await asyncio.sleep(0.055)
    await expect_error(a, {"type": "join", "room": t.room("one-more"),
                           "id": 7},
                       {"type": "error", "message": "Too many rooms"})
    await asyncio.sleep(0.055)
    await join(a, t.room("cap0"), [a.uid])  # in it already: joined again
    await asyncio.sleep(0.055)
    await leave(a, t.room("cap0"))
    await asyncio.sleep(0.055)
    r = t.room("one-more")
    await join(b, r, [b.uid])
    await join(a, r, [a.uid, b.uid])
    await expect(b, presence(r, a.uid, "join"))


@case
async def room_name_empty_refused(t):
    await room_name_refused(t, "")


@case
async def room_name_with_nul_refused(t):
    await room_name_refused(t, t.room("nul") + "\u0000tail")


@case
async def identity_sub_when_no_uid(t):
    sub = t.uid("subby")
    a = await t.conn(sub, do_login=False)
    await base.login(a, hs({"sub": sub, "exp": base.now() + 300}))
    b = await t.conn(t.uid("bob"))
    r = t.room("R")
    await join(b, r, [b.uid])
    await join(a, r, [sub, b.uid])
    await expect(b, presence(r, sub, "join"))
    copy = await chat(a, r, "from sub")  # "from" is the sub
    await expect_copy(b, copy)
    await typing(a, r, True)
    await quiet(a)
    await expect(b, typing_msg(r, sub, True))
    await disconnect(a)
    await expect(b, presence(r, sub, "leave"))


@case
async def identity_uid_wins_over_sub(t):
    uid = t.uid("real")
    a = await t.conn(uid, do_login=False)
    await base.login(a, hs({"uid": uid, "sub": t.uid("decoy"),
                            "exp": base.now() + 300}))
    r = t.room("R")
    await join(a, r, [uid])
    await chat(a, r, "who am I")


# -- command line --------------------------------------------------------------

@case
async def cli_secret_from_environment(t):
    s = "e" * 40
    srv = base.Server(t.binary, [], env={"WSA_JWT_SECRET": s},
                      name="env-secret").start()
    try:
        ws = await base.connect(srv.url)
        t.conns.append(ws)
        ws.uid = t.uid("alice")
        await base.login(ws, hs(claims(uid=ws.uid), key=s))
        await join(ws, t.room("R"), [ws.uid])
        bad = await base.connect(srv.url)
        t.conns.append(bad)
        await send(bad, {"type": "login", "token": hs(claims())})  # SECRET
        await base.expect_error_close(bad, base.ERR_AUTH)
    finally:
        await t.close_all()
        rc = srv.stop()
    check(rc == 0, "exit status after SIGTERM: %r" % rc)


@case
async def cli_short_secret_refused(t):
    for args, env in ((["--jwt-secret", "s" * 31], None),
                      ([], {"WSA_JWT_SECRET": "short"})):
        srv = base.Server(t.binary, args, env=env, name="short-secret")
        try:
            srv.start()
        except StartupFailed as e:
            check(e.returncode is not None and e.returncode != 0,
                  "expected a non-zero exit, got %r (%s)" % (e.returncode, e))
            continue
        srv.stop()
        raise Failure("chat-room started (%s) with a short secret (%r %r)"
                      % (srv.url, args, env))


# -- the rest of the route ---------------------------------------------------

@case
async def ping_pong_still_works(t):
    a = await t.conn(t.uid("alice"))
    await base.ping_pong(a)
    await join(a, t.room("R"), [a.uid])
    await base.ping_pong(a)
    await send(a, {"type": "ping", "id": 42})
    await expect(a, {"type": "pong", "id": 42})


@case
async def unknown_type_still_error(t):
    a = await t.conn(t.uid("alice"))
    await join(a, t.room("R"), [a.uid])
    await expect_error(a, {"type": "dance", "room": t.room("R")},
                       ERR_UNKNOWN)
    await expect_error(a, {"type": "joined", "room": t.room("R")},
                       ERR_UNKNOWN)
    await expect_error(a, "not json", ERR_FORMAT)
    await quiet(a)


# -- history and recovery (PROTOCOL.md 6.1) ----------------------------------
# Each case runs a chat-room of its own with --history, at the default
# limits otherwise: senders keep within the default rate (a burst of 50).

class HistoryServer:
    def __init__(self, t, size):
        self.t = t
        self.srv = base.Server(t.binary, ["--jwt-secret", SECRET,
                                          "--history", str(size)],
                               name="chat-room --history %d" % size)

    async def __aenter__(self):
        self.srv.start()
        return self

    async def __aexit__(self, *exc):
        await self.t.close_all()
        rc = self.srv.stop()
        if exc[0] is None:
            check(rc == 0, "exit status after SIGTERM: %r" % rc)

    async def conn(self, name):
        ws = await base.connect(self.srv.url)
        self.t.conns.append(ws)
        ws.uid = self.t.uid(name)
        await base.login(ws, hs(claims(uid=ws.uid)))
        return ws


async def hjoin(ws, room, since=None, missed=None):
    """Join with history on; returns the `joined` (position checked). The
    chats that come before it go into missed (none may, without it), and
    presence then is passed over."""
    msg = {"type": "join", "room": room}
    if since is not None:
        msg["since"] = since
    await send(ws, msg)
    got = await recv_json(ws, what="joined %s" % room)
    # The member is in the room from the join on: presence may come before
    # the answer (a slow server may announce the leave of the connection a
    # reconnecting client replaces only now).
    while missed is not None and got.get("type") in ("chat", "presence"):
        if got["type"] == "chat":
            missed.append(got)
        got = await recv_json(ws, what="joined %s" % room)
    want = {"type", "room", "users", "offset", "epoch"} | (
        {"recovered"} if since is not None else set())
    check(got.get("type") == "joined" and got.get("room") == room and
          set(got) == want and isinstance(got["offset"], int) and
          isinstance(got["epoch"], str) and 0 < len(got["epoch"]) <= 16,
          "sent %s: expected joined with offset and epoch%s, got %s"
          % (js(msg), " and recovered" if since is not None else "",
             js(got)))
    return got


def hchat_ok(got, room, frm, message, offset, epoch):
    want = {"type": "chat", "room": room, "from": frm, "message": message,
            "timestamp": got.get("timestamp"), "offset": offset,
            "epoch": epoch}
    check(got == want, "expected %s, got %s" % (js(want), js(got)))
    check_ts(got)


async def hchat(ws, room, message, mid=None):
    """A chat with history on; returns the sender's copy."""
    msg = {"type": "chat", "room": room, "message": message}
    if mid is not None:
        msg["id"] = mid
    await send(ws, msg)
    got = await recv_json(ws, what="own chat copy")
    # Presence and the other senders' chats may come first.
    while got.get("type") == "presence" or (
            got.get("type") == "chat" and got.get("from") != ws.uid):
        got = await recv_json(ws, what="own chat copy")
    check(got.get("type") == "chat" and got.get("message") == message and
          got.get("id") == mid and isinstance(got.get("offset"), int),
          "sent %s: sender's copy %s" % (js(msg), js(got)))
    return got


async def publish_many(senders, room, n, tag):
    """n chats spread over the senders (each within the default burst),
    each sender's in order; every sender's own copy awaited. Returns the
    copies in offset order."""
    per = -(-n // len(senders))
    check(per <= 40, "test error: %d chats a sender is past the burst" % per)

    async def one(ws, k0, k1):
        return [await hchat(ws, room, "%s-%d" % (tag, k))
                for k in range(k0, k1)]
    parts = await asyncio.gather(*(one(ws, i * per, min(n, (i + 1) * per))
                                   for i, ws in enumerate(senders)))
    return sorted((c for p in parts for c in p), key=lambda c: c["offset"])


async def join_during(ws, room, since, senders, during, count):
    """ws joins room from since while the senders publish `during` more
    chats: it gets every offset after since once, in order (count of
    them), and a joined that says recovered."""
    task = asyncio.ensure_future(publish_many(senders, room, during,
                                              "during"))
    await send(ws, {"type": "join", "room": room, "since": since})
    got, joined = [], None
    while joined is None or len(got) < count:
        m = await recv_json(ws, what="chats around the join (%d so far)"
                            % len(got))
        if m.get("type") == "joined":
            check(joined is None, "joined twice: %s" % js(m))
            joined = m
        elif m.get("type") == "chat":
            got.append(m)
    await task
    offs = [m["offset"] for m in got]
    want = list(range(since["offset"] + 1, since["offset"] + count + 1))
    check(offs == want, "offsets after %d: %s" % (since["offset"], offs))
    check(joined["recovered"] is True, "joined: %s" % js(joined))


@case
async def history_offline_recovers_100_in_order(t):
    async with HistoryServer(t, 200) as h:
        a = await h.conn("alice")
        senders = [await h.conn("s%d" % i) for i in range(4)]
        r = t.room("R")
        first = await hjoin(a, r)
        check(first["offset"] == 0, "a new room's offset: %s" % js(first))
        epoch = first["epoch"]
        for ws in senders:
            await hjoin(ws, r)
        sent = await hchat(senders[0], r, "before")
        got = await recv_json(a, what="the chat before")
        while got.get("type") == "presence":
            got = await recv_json(a, what="the chat before")
        hchat_ok(got, r, senders[0].uid, "before", sent["offset"], epoch)
        seen = got["offset"]
        a.transport.abort()  # the socket cut: no close, no leave message
        copies = await publish_many(senders, r, 100, "missed")
        check([c["offset"] for c in copies] ==
              list(range(seen + 1, seen + 101)),
              "offsets of the 100: %s" % [c["offset"] for c in copies])
        a2 = await h.conn("alice")
        missed = []
        j = await hjoin(a2, r, {"offset": seen, "epoch": epoch}, missed)
        check(len(missed) == 100, "%d chats before joined" % len(missed))
        for c, got in zip(copies, missed):
            hchat_ok(got, r, c["from"], c["message"], c["offset"], epoch)
        check(j["recovered"] is True and j["offset"] == seen + 100 and
              j["epoch"] == epoch, "joined after recovery: %s" % js(j))
        live = await hchat(senders[1], r, "live")
        got = await recv_json(a2, what="the live chat")
        while got.get("type") == "presence":
            got = await recv_json(a2, what="the live chat")
        hchat_ok(got, r, senders[1].uid, "live", seen + 101, epoch)
        check(live["offset"] == seen + 101, "live offset %s" % js(live))
        await quiet(a2)


@case
async def history_join_while_publishing_no_gap_no_duplicate(t):
    """Chats keep coming while a client joins from a position: it gets
    every offset after it once, in order (with --threads 2 too). Each
    sender stays within the default burst of 50."""
    async with HistoryServer(t, 500) as h:
        r = t.room("R")
        senders = [await h.conn("s%d" % i) for i in range(2)]
        epoch = (await hjoin(senders[0], r))["epoch"]
        await hjoin(senders[1], r)
        before = await publish_many(senders, r, 20, "before")
        b = await h.conn("bob")
        await join_during(b, r, {"offset": before[9]["offset"],
                                 "epoch": epoch}, senders, 40, 50)
        await quiet(b)


@case
async def history_sender_copy_has_id_and_position(t):
    async with HistoryServer(t, 10) as h:
        a = await h.conn("alice")
        b = await h.conn("bob")
        r = t.room("R")
        epoch = (await hjoin(a, r))["epoch"]
        await hjoin(b, r)
        await expect(a, presence(r, b.uid, "join"))
        mine = await hchat(a, r, "hi", mid="m1")
        hchat_ok({k: v for k, v in mine.items() if k != "id"}, r, a.uid,
                 "hi", 1, epoch)
        got = await recv_json(b, what="bob's copy")
        hchat_ok(got, r, a.uid, "hi", 1, epoch)  # no "id"
        await quiet(a, b)


@case
async def history_beyond_size_not_recovered(t):
    async with HistoryServer(t, 10) as h:
        a = await h.conn("alice")
        s1, s2 = await h.conn("s1"), await h.conn("s2")
        r = t.room("R")
        epoch = (await hjoin(a, r))["epoch"]
        await hjoin(s1, r)
        await hjoin(s2, r)
        a.transport.abort()
        copies = await publish_many([s1, s2], r, 20, "m")
        a2 = await h.conn("alice")
        # The last 10 are kept: those come, then recovered false.
        missed = []
        j = await hjoin(a2, r, {"offset": 0, "epoch": epoch}, missed)
        check(len(missed) == 10, "%d chats before joined" % len(missed))
        for c, got in zip(copies[10:], missed):
            hchat_ok(got, r, c["from"], c["message"], c["offset"], epoch)
        check(j["recovered"] is False and j["offset"] == 20,
              "joined past the history: %s" % js(j))
        await quiet(a2)


@case
async def history_restart_new_epoch_not_recovered(t):
    r = t.room("R")
    async with HistoryServer(t, 50) as h:
        a = await h.conn("alice")
        epoch = (await hjoin(a, r))["epoch"]
        c = await hchat(a, r, "before the restart")
    async with HistoryServer(t, 50) as h2:
        a2 = await h2.conn("alice")
        j = await hjoin(a2, r, {"offset": c["offset"], "epoch": epoch})
        check(j["recovered"] is False and j["offset"] == 0 and
              j["epoch"] != epoch,
              "joined after a restart without Redis: %s" % js(j))
        await quiet(a2)


@case
async def history_since_malformed(t):
    async with HistoryServer(t, 10) as h:
        a = await h.conn("alice")
        r = t.room("R")
        for since in (5, "x", [], {"offset": -1, "epoch": "e"},
                      {"offset": 1.5, "epoch": "e"},
                      {"offset": "1", "epoch": "e"},
                      {"offset": 1}, {"epoch": "e"},
                      {"offset": 1, "epoch": 7},
                      {"offset": 1, "epoch": "e" * 17}):
            await expect_error(a, {"type": "join", "room": r,
                                   "since": since}, ERR_FORMAT)
        j = await hjoin(a, r, {"offset": 3, "epoch": "e" * 16})
        check(j["recovered"] is False and j["offset"] == 0,
              "joined from another epoch: %s" % js(j))
        await quiet(a)


# --------------------------------------------------------------------------
# runner

def stderr_tail(srv, n=30):
    return "\n".join("    | " + ln
                     for ln in srv.stderr_text().splitlines()[-n:])


class Runner:
    def __init__(self, binary):
        self.binary = binary
        self.srv = None

    def server(self):
        if self.srv is None or not self.srv.alive():
            self.srv = base.Server(self.binary, ["--jwt-secret", SECRET],
                                   name="chat-room").start()
        return self.srv

    async def run_case(self, fn):
        t = None
        t0 = time.monotonic()
        try:
            t = T(self.server().url, self.binary)
            await asyncio.wait_for(fn(t), CASE_TIMEOUT)
            check(self.srv.alive(), "chat-room died (exit %r)"
                  % self.srv.proc.returncode)
            return None
        except asyncio.TimeoutError:
            if time.monotonic() - t0 >= CASE_TIMEOUT - 0.5:
                return "case timed out after %.0f s" % CASE_TIMEOUT
            return "a bounded wait timed out:\n" + \
                traceback.format_exc().rstrip()
        except Failure as e:
            return str(e)
        except StartupFailed as e:
            return "%s\n  stderr:\n%s" % (e, "\n".join(
                "    | " + ln for ln in e.stderr.splitlines()[-30:]))
        except Exception:
            return traceback.format_exc().rstrip()
        finally:
            if t is not None:
                await t.close_all()

    async def run_all(self, cases, verbose):
        passed = failed = 0
        for fn in cases:
            t0 = time.monotonic()
            err = await self.run_case(fn)
            dt = time.monotonic() - t0
            if err is None:
                passed += 1
                print("PASS %s%s" % (fn.__name__,
                                     " (%.2f s)" % dt if verbose else ""),
                      flush=True)
            else:
                failed += 1
                print("FAIL %s (%.2f s)" % (fn.__name__, dt))
                for line in err.splitlines():
                    if len(line) > 600:  # e.g. a 1025-byte room name
                        line = line[:600] + "...[%d chars]" % len(line)
                    print("  " + line)
                if self.srv is not None and verbose:
                    print("  chat-room stderr (last lines):")
                    print(stderr_tail(self.srv))
                sys.stdout.flush()
        if self.srv is not None:
            rc = self.srv.stop()
            name = "teardown_server_exits_0_on_sigterm"
            if rc == 0:
                passed += 1
                print("PASS " + name)
            else:
                failed += 1
                print("FAIL %s\n  exit status %r (None: killed after 5 s)"
                      % (name, rc))
                print(stderr_tail(self.srv))
        return passed, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chat-room", default=os.environ.get("WSA_CHAT_ROOM"))
    ap.add_argument("-k", action="append", default=[],
                    help="run only cases whose name contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    cases = [c for c in CASES
             if not args.k or any(k in c.__name__ for k in args.k)]
    if args.list:
        for c in cases:
            print(c.__name__)
        return 0
    if not args.chat_room or not os.access(args.chat_room, os.X_OK):
        print("chat-room binary not found or not executable: %r "
              "(--chat-room PATH)" % args.chat_room, file=sys.stderr)
        return 2
    runner = Runner(os.path.abspath(args.chat_room))
    start = time.monotonic()
    try:
        passed, failed = asyncio.run(runner.run_all(cases, args.verbose))
        p, f = base.wrapper_verdicts()
        passed, failed = passed + p, failed + f
    finally:
        for srv in base.ALL_SERVERS:
            srv.cleanup()
    if args.verbose:
        print("(%.1f s)" % (time.monotonic() - start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
