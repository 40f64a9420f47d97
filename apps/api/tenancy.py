"""Listeners are namespaced by app. A client names its listeners as it likes ("u1"); the API
stores them, and the model, features and events know them, as "<app>:<id>", the app being its
key's (apps/api/security.py). Two apps' "u1" are two listeners, and no key reaches another
app's: app names never contain ':', so no id one app sends can spell another app's prefix.

Ingested MPD listeners are stored as "mpd:<source>:<pid>": the app `mpd`, whose keys see them
as "<source>:<pid>". Every route maps through these functions, in and out.
"""

from __future__ import annotations

SEPARATOR = ":"


def listener_prefix(app: str) -> str:
    """What every stored id of `app`'s listeners starts with."""
    return app + SEPARATOR


def stored_user_id(app: str, user_id: str) -> str:
    """The stored id of `app`'s listener `user_id`."""
    return listener_prefix(app) + user_id


def client_user_id(app: str, stored: str) -> str | None:
    """The id `app` knows a stored listener by; None if the listener is not `app`'s."""
    prefix = listener_prefix(app)
    return stored[len(prefix) :] if stored.startswith(prefix) else None
