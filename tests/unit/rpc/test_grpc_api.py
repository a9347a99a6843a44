"""The gRPC client API round-trips submissions, queries and the block stream on 127.0.0.1."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from node.metrics.registry import Metrics
from node.rpc.fake_chain import FakeChain
from node.rpc.grpc_api import ClientApiClient, serve_client_api
from tests.unit.rpc.helpers import (
    ALICE,
    BOB,
    CAROL,
    CHAIN_ID,
    address_bytes,
    funded_chain,
    signed_transfer,
)


async def _serve(chain: FakeChain, metrics: Metrics | None = None) -> tuple[grpc.aio.Server, str]:
    server, port = await serve_client_api(chain, host="127.0.0.1", port=0, metrics=metrics)
    return server, f"127.0.0.1:{port}"


def test_submit_batch_and_queries_round_trip() -> None:
    """A batch is admitted in order; block, transaction, receipt and status read back intact."""
    chain = funded_chain()
    metrics = Metrics(process_metrics=False)

    async def main() -> None:
        server, target = await _serve(chain, metrics)
        try:
            async with ClientApiClient(target) as client:
                raws = [signed_transfer(nonce=0), signed_transfer(BOB, nonce=0), b"\x02junk"]
                results = await client.submit_batch(raws)
                assert [r.accepted for r in results] == [True, True, False]
                assert results[2].reason.startswith("malformed RLP")
                assert chain.submitted_batches == [raws]
                tx_hash = results[0].tx_hash
                assert tx_hash is not None

                latest = await client.get_block(full_txs=True)
                assert latest is not None
                assert latest.info.height == 1
                assert latest.raw_txs == tuple(raws[:2])
                assert latest.info.gas_used == 42_000
                by_hash = await client.get_block(latest.info.hash)
                assert by_hash is not None
                assert by_hash.info == latest.info
                assert by_hash.raw_txs == ()
                assert await client.get_block(99) is None

                tx = await client.get_transaction(tx_hash)
                assert tx is not None
                assert tx.sender == address_bytes(ALICE)
                assert tx.to == address_bytes(CAROL)
                assert tx.location is not None
                assert tx.location.height == 1
                assert tx.raw == raws[0]
                receipt = await client.get_receipt(tx_hash)
                assert receipt == chain.get_receipt(tx_hash)
                assert await client.get_receipt(b"\x00" * 32) is None

                status = await client.status()
                assert status == chain.status()
                assert status.chain_id == CHAIN_ID
        finally:
            await server.stop(None)

    asyncio.run(main())
    sample = metrics.registry.get_sample_value
    assert sample("lanenet_rpc_submitted_txs_total", {"api": "grpc", "outcome": "accepted"}) == 2
    assert sample("lanenet_rpc_submitted_txs_total", {"api": "grpc", "outcome": "rejected"}) == 1


def test_bad_hash_is_invalid_argument() -> None:
    """A hash of the wrong length answers INVALID_ARGUMENT naming the field."""
    chain = funded_chain()

    async def main() -> None:
        server, target = await _serve(chain)
        try:
            async with ClientApiClient(target) as client:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await client.get_receipt(b"\x01\x02")
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "tx_hash" in (caught.value.details() or "")
        finally:
            await server.stop(None)

    asyncio.run(main())


def test_stream_sends_every_executed_block_in_order() -> None:
    """StreamBlocks replays from a start height, then follows execution without gaps; a block
    committed but not yet executed holds the stream back instead of ending it."""
    chain = funded_chain(auto_commit=False)
    chain.commit()
    chain.commit()
    chain.execute()

    async def main() -> None:
        server, target = await _serve(chain)
        try:
            async with ClientApiClient(target) as client:
                stream = client.stream_blocks(start_height=1)
                first = [await anext(stream), await anext(stream)]
                assert [b.height for b in first] == [1, 2]
                await chain.submit_raw_txs([signed_transfer(nonce=0)])
                committed = chain.commit()
                pending = asyncio.ensure_future(anext(stream))
                await asyncio.sleep(0.2)
                assert not pending.done(), "a committed block is streamed only once executed"
                chain.execute()
                third = await asyncio.wait_for(pending, timeout=10)
                assert third.height == 3
                assert third.hash == committed.hash
                assert third.tx_hashes == committed.tx_hashes
                await stream.aclose()

                live = client.stream_blocks()
                waiting = asyncio.ensure_future(anext(live))
                await asyncio.sleep(0.2)
                assert not waiting.done()
                chain.commit()
                chain.execute()
                assert (await asyncio.wait_for(waiting, timeout=10)).height == 4
                await live.aclose()
        finally:
            await server.stop(None)

    asyncio.run(main())
