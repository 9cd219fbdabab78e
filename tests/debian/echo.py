"""Log in to the installed echo-chat and have a message echoed.

Usage: echo.py URL SECRET. Uses Debian's python3-websockets and PyJWT."""
import asyncio
import json
import sys
import time

import jwt
import websockets


async def main(url, secret):
    token = jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, secret,
                       algorithm="HS256")
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "login", "token": token}))
        auth = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert auth == {"type": "auth", "message": "Authenticated"}, auth
        await ws.send(json.dumps({"type": "chat", "message": "Hello!"}))
        echo = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert echo["type"] == "chat", echo
        assert echo["message"] == "Echo: Hello!", echo
    print("installed echo-chat: login and echo OK")


asyncio.run(main(sys.argv[1], sys.argv[2]))
