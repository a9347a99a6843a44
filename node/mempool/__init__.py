"""The lane's transaction pool (admission, nonce order, eviction, selection) and the
sender-to-lane routing. Pure: no I/O, no clock, no asyncio.
"""
