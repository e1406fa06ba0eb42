"""The HTTP ceiling: a bare ASGI app that reads the body and returns a constant JSON.

    python benchmarks/bare_asgi.py --host 127.0.0.1 --port 8000

It runs under the same uvicorn options as Slipway's server (serving_templates/server/
slipway_server/__main__.py): loop and HTTP parser "auto" (uvloop and httptools when installed),
access log off, no Server header, no proxy headers, lifespan on, one process. Whatever Slipway's
/predict costs above this is the price of parsing, validating, inferring and metering.
"""

from __future__ import annotations

import argparse

import uvicorn

BODY = b'{"label":0,"probabilities":{"0":0.5,"1":0.5}}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the whole request body, as any real endpoint must
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    # The options slipway_server passes to uvicorn.Config (loop and http left at "auto").
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="info",
                            access_log=False, lifespan="on", server_header=False,
                            proxy_headers=False)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
