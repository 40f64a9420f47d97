"""The last response per listener: what they get while the feature store is unreachable."""

from __future__ import annotations

import threading
from collections import OrderedDict

from apps.ml.schemas import Recommendations

CACHED_USERS = 50_000


class LastResponses:
    """The last response per listener (bounded, least recently used dropped): what a listener
    gets while the feature store is unreachable."""

    def __init__(self, size: int = CACHED_USERS) -> None:
        self.size = size
        self._items: OrderedDict[str, Recommendations] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, user_id: str, response: Recommendations) -> None:
        with self._lock:
            self._items[user_id] = response
            self._items.move_to_end(user_id)
            if len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, user_id: str) -> Recommendations | None:
        with self._lock:
            return self._items.get(user_id)
