"""Recording as a fleet job: work specs in the store's queue, and workers that claim them with
leases, record them, and settle each item by the retry policy.

    spec.py     what travels in the queue (WorkSpec) and its content digest
    worker.py   the worker: claims, heartbeats, sessions in flight, reclaims, drain and stop
    status.py   the queue's state for `ise-es queue` and the viewer

Stages meet only at the store: a worker on any machine needs nothing but the store's URL.
"""
