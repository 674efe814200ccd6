"""An HTTP upstream that SIGKILLs itself while answering its first request, the way a
service process dies mid-request: ``python dying_upstream.py MODE`` prints its port, then

- ``before-answer``: reads the request head and dies without answering;
- ``mid-upload``: reads part of the request body and dies;
- ``mid-answer``: sends the status line, headers and part of a 100 kB body, and dies.
"""

from __future__ import annotations

import os
import signal
import socket
import sys


def main(mode: str) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    print(server.getsockname()[1], flush=True)
    conn, _ = server.accept()
    received = b""
    while b"\r\n\r\n" not in received:
        received += conn.recv(65536)
    if mode == "mid-upload":
        conn.recv(1024)
    elif mode == "mid-answer":
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\n"
            b"Content-Length: 100000\r\n\r\n" + b"PK" * 500
        )
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv[1])
