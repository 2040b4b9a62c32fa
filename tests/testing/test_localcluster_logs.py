"""A node process's stderr is kept whole in its log file, however long a line (a traceback of
a deep recursion is one JSON line far over asyncio's 64 KiB line limit): a log line must never
stop the cluster's own teardown."""

import asyncio

from ember.testing._localcluster import _drain


async def test_a_line_longer_than_the_stream_limit_is_kept(tmp_path):
    stream = asyncio.StreamReader(limit=1024)
    long = b'{"msg": "' + b"x" * 200_000 + b'"}\n'
    stream.feed_data(b"first\n" + long + b"last\n")
    stream.feed_eof()
    path = tmp_path / "n1.log"
    await _drain(stream, path)
    assert path.read_bytes() == b"first\n" + long + b"last\n"
