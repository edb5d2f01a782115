"""`ise-es serve`: a read-only web viewer of the corpus, sessions, replays and audits.

app      the ASGI application, the Host/CSP guard and the session-index thread
api      the JSON API under /api/ and the page shells
views    what the API returns, assembled from the store's public verbs
queue    the work queue's state (from the fleet package, when present)
static/  the front-end (plain HTML, CSS and JavaScript written for ise-es; no third-party code)
"""

from ise_es.viewer.app import create_app

__all__ = ["create_app"]
