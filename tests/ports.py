"""A free local TCP port for the servers tests start (moto S3, vLLM's OpenAI server, a Ray head)."""

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
