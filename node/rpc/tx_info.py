"""Build the client APIs' ``TxInfo`` from a transaction as execution decoded it.

``node.execution.tx.EthTx`` keeps what execution needs and drops the signature; clients
(ethers in particular) also want ``v``, ``r`` and ``s``, so they are read back from the
raw bytes here, off the hot path (only when a client asks for a transaction).
"""

from __future__ import annotations

from node.execution import rlp
from node.execution.tx import LEGACY_TX, EthTx
from node.rpc.chain_view import TxInfo, TxLocation


def signature_of(raw: bytes) -> tuple[int, int, int]:
    """``(v, r, s)`` of a signed legacy or typed transaction, ``v`` as it was sent."""
    fields, _ = rlp.decode_list(raw if raw[0] >= 0xC0 else raw[1:])
    v, r, s = fields[-3:]
    return rlp.decode_uint(v), rlp.decode_uint(r), rlp.decode_uint(s)


def tx_info_from_eth_tx(tx: EthTx, location: TxLocation | None = None) -> TxInfo:
    """The ``TxInfo`` of a decoded transaction; ``location`` None while it is pending."""
    v, r, s = signature_of(tx.raw)
    legacy = tx.tx_type == LEGACY_TX
    return TxInfo(
        hash=tx.hash,
        raw=tx.raw,
        tx_type=tx.tx_type,
        chain_id=tx.chain_id,
        nonce=tx.nonce,
        sender=tx.sender,
        to=tx.to,
        value=tx.value,
        gas=tx.gas_limit,
        gas_price=tx.gas_price if legacy else None,
        max_fee_per_gas=None if legacy else tx.max_fee_per_gas,
        max_priority_fee_per_gas=None if legacy else tx.max_priority_fee_per_gas,
        data=tx.data,
        v=v,
        r=r,
        s=s,
        location=location,
    )
