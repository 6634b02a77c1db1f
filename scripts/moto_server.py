"""`moto_server` with DynamoDB requests handled one at a time.

moto's server handles requests on threads, but its DynamoDB backend is not thread-safe:
TransactWriteItems deep-copies the table for rollback while other threads write to it (the request
then fails with HTTP 500 "dictionary changed size during iteration"), and a transaction's condition
checks and writes can interleave with another request's. Real DynamoDB applies each request
atomically. Holding one lock per DynamoDB request restores that; SQS and everything else stay
concurrent, so long polls do not block the table.

moto 5.2.5's TransactWriteItems also deep-copies the whole table once per item of the transaction
(for its rollback), so a 100-item transaction on a table of usage windows took seconds and
gigabytes, and even one copy per transaction grows with the table: every callback adds a nonce to
it, so after a few thousand calls each newInstance (one transaction) and each instance save with
its event (another) cost a copy of tens of thousands of items, and a storm of newInstance calls
never caught up. The rollback needs only the items the transaction writes: the patch below keeps
an undo log of those (their state before, or their absence) instead of copying any table, and puts
them back if the transaction fails. DynamoDB requests run one at a time (the lock above), so nothing
else sees the items in between, as with real DynamoDB's atomic transactions.

The server also reports the port it bound: with KOOGALLERY_MOTO_PORT_FILE set, it writes the port
there once it is bound (`-p 0` lets the OS pick one), so scripts/emulator.sh never picks a port for
it to bind later, and knows that what then answers on that port is this server.

Usage (what scripts/emulator.sh runs): python moto_server.py -H 127.0.0.1 -p 5055
"""

import copy
import os
import threading

import werkzeug.serving

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


class _NoTableCopy:
    """`copy` as moto's transact_write_items uses it, without copying the tables (the undo log
    below replaces the copies it would roll back to)."""

    def deepcopy(self, x, *args):
        if isinstance(x, dynamodb_models.Table):
            return x
        return copy.deepcopy(x, *args)


_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _item_key(backend, op_type, op):
    """The key of the item one transaction entry writes, as moto's transact_write_items finds it."""
    if op_type == "Put":
        table = backend.get_table(op["TableName"])
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key
    return op["Key"]


def _transact_with_undo_log(self, transact_items):
    undo = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            key = _item_key(self, op_type, op)
            current = self.get_item(op["TableName"], key)
        except Exception:
            # An entry moto will refuse (no such table, a bad key): the transaction reports it.
            continue
        before = None if current is None else copy.deepcopy(current.to_json()["Attributes"])
        undo.append((op["TableName"], key, before))
    # Safe to swap the module's `copy`: DynamoDB requests run one at a time (the lock above).
    saved = dynamodb_models.copy
    dynamodb_models.copy = _NoTableCopy()
    try:
        return _transact_write_items(self, transact_items)
    except BaseException:
        for table_name, key, before in reversed(undo):
            if before is not None:
                self.put_item(table_name, before)
            elif self.get_item(table_name, key) is not None:
                self.delete_item(table_name, key)
        raise
    finally:
        dynamodb_models.copy = saved


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_with_undo_log

_make_server = werkzeug.serving.make_server


def _make_server_reporting_its_port(*args, **kwargs):
    """werkzeug's make_server (which run_simple calls), then the port it bound: in MOTO_PORT, which
    moto reads for its own URLs, and in the file KOOGALLERY_MOTO_PORT_FILE names (written whole,
    then renamed, so a reader never sees half of it)."""
    server = _make_server(*args, **kwargs)
    os.environ["MOTO_PORT"] = str(server.port)
    port_file = os.environ.get("KOOGALLERY_MOTO_PORT_FILE")
    if port_file:
        partial = f"{port_file}.partial"
        with open(partial, "w", encoding="ascii") as f:
            f.write(f"{server.port}\n")
        os.replace(partial, port_file)
    return server


werkzeug.serving.make_server = _make_server_reporting_its_port

if __name__ == "__main__":
    main()
