"""`moto_server` with DynamoDB requests handled one at a time.

moto's server handles requests on threads, but its DynamoDB backend is not thread-safe:
TransactWriteItems deep-copies the table for rollback while other threads write to it (the request
then fails with HTTP 500 "dictionary changed size during iteration"), and a transaction's condition
checks and writes can interleave with another request's. Real DynamoDB applies each request
atomically. Holding one lock per DynamoDB request restores that; SQS and everything else stay
concurrent, so long polls do not block the table.

Usage (what scripts/emulator.sh runs): python moto_server.py -H 127.0.0.1 -p 5055
"""

import threading

from moto.moto_server import werkzeug_app
from moto.server import main

_dispatch = werkzeug_app.DomainDispatcherApplication.__call__
_dynamodb = threading.Lock()


def _call(self, environ, start_response):
    # The JSON protocol names the operation in X-Amz-Target, e.g. DynamoDB_20120810.PutItem.
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
        with _dynamodb:
            # Materialise the body inside the lock, then release the response as WSGI requires.
            body = _dispatch(self, environ, start_response)
            try:
                return list(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
    return _dispatch(self, environ, start_response)


werkzeug_app.DomainDispatcherApplication.__call__ = _call

if __name__ == "__main__":
    main()
