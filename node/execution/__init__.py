"""Transactions and their execution: keccak, strict RLP, decoding with sender recovery,
account state, the sequential reference executor and the height tracker that trails
consensus. Pure: no I/O, no clock, no asyncio.
"""
