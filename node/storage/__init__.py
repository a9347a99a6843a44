"""Durable storage: the KeyValueStore port and its LevelDB adapter, the key schema, and the
stores built on them (consensus persistence, blocks, receipts, accounts).

``schema``, ``layout``, ``codec`` and ``records`` are pure (bytes in, values out); only
``kv`` touches the disk.
"""
