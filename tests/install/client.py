"""Log in to the installed-library program and say hello.

Usage: client.py PORT SECRET. Uses Debian's python3-websockets and PyJWT."""
import asyncio
import json
import sys
import time

import jwt
import websockets


async def main(port, secret):
    token = jwt.encode({"uid": "u1", "exp": int(time.time()) + 60}, secret,
                       algorithm="HS256")
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/hello") as ws:
        await ws.send(json.dumps({"type": "login", "token": token}))
        auth = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert auth == {"type": "auth", "message": "Authenticated"}, auth
        await ws.send(json.dumps({"type": "hello", "id": 1}))
        hi = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hi == {"type": "hi", "uid": "u1", "id": 1}, hi
    print("installed library: login and hello OK")


asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
