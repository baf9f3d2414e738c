"""Webhooks: the events the store queues (store/hooks.py, lua/_prelude.lua's ``notify``), sent
signed to every ``STREAMLIMIT_WEBHOOK_URL``, at least once.

``payload`` turns a queue entry into the JSON body, ``signing`` signs it (Standard Webhooks),
``targets`` reads the URLs, ``sender`` makes one attempt, ``backoff`` says when to retry and when
to give up, ``queue`` is what the loop needs of a queue (``redis_queue``, ``memory_queue``), and
``delivery`` is the loop each process runs.
"""
