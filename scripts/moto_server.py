"""`moto_server` with DynamoDB requests handled one at a time.

moto's server handles requests on threads, but its DynamoDB backend is not thread-safe:
TransactWriteItems deep-copies the table for rollback while other threads write to it (the request
then fails with HTTP 500 "dictionary changed size during iteration"), and a transaction's condition
checks and writes can interleave with another request's. Real DynamoDB applies each request
atomically. Holding one lock per DynamoDB request restores that; SQS and everything else stay
concurrent, so long polls do not block the table.

moto 5.2.5's TransactWriteItems also deep-copies the whole table once per item of the transaction
(for its rollback), so a 100-item transaction on a table of usage windows took seconds and
gigabytes. One copy per table per transaction is what the rollback needs; the patch below keeps
the first copy of each table and hands it out again within the same transaction.

Usage (what scripts/emulator.sh runs): python moto_server.py -H 127.0.0.1 -p 5055
"""

import copy
import threading

import moto.dynamodb.models as dynamodb_models
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


class _OneCopyPerTable:
    """`copy` as moto's DynamoDB models use it, copying each table once (the originals are kept
    alive for the transaction, so an id is never reused)."""

    def __init__(self):
        self.tables = {}

    def deepcopy(self, x, *args):
        if isinstance(x, dynamodb_models.Table):
            seen = self.tables.get(id(x))
            if seen is None or seen[0] is not x:
                seen = (x, copy.deepcopy(x, *args))
                self.tables[id(x)] = seen
            return seen[1]
        return copy.deepcopy(x, *args)


_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_once_per_table(self, transact_items):
    # Safe to swap the module's `copy`: DynamoDB requests run one at a time (the lock above).
    saved = dynamodb_models.copy
    dynamodb_models.copy = _OneCopyPerTable()
    try:
        return _transact_write_items(self, transact_items)
    finally:
        dynamodb_models.copy = saved


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_once_per_table

if __name__ == "__main__":
    main()
