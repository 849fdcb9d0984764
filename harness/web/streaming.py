"""A streaming answer that closes its source when the answer ends in any way (done, client gone, cancelled).

Starlette's StreamingResponse leaves a sync iterator to the garbage collector when the client goes away; a log
follow holds an inotify watch and one of the follow slots (service.log_streams) until it is closed, and a
collector run can be far off. This answer closes the source itself, so its `finally` runs at once.
"""
from __future__ import annotations

from fastapi.responses import StreamingResponse


class ClosingStreamingResponse(StreamingResponse):
    def __init__(self, content, *args, **kwargs):
        self._source = content
        super().__init__(content, *args, **kwargs)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                try:
                    close()
                except ValueError:  # "generator already executing" in a worker thread: it closes when it returns
                    pass
