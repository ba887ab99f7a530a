"""End to end inside one process: a test-pattern track sent over a real aiortc peer connection
on loopback arrives at the other side at the size it was opened at."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools

import av
from _source_helpers import run, take
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from decart_sync import _ice
from decart_sync.media import test_pattern

WIDTH, HEIGHT, FPS = 320, 176, 30


def test_a_pattern_track_crosses_a_peer_connection(
    executor: concurrent.futures.Executor,
) -> None:
    source = test_pattern(width=640, height=352, fps=FPS)

    async def exchange() -> list[av.VideoFrame]:
        config = _ice.rtc_configuration([], loopback=True)
        sender, receiver = RTCPeerConnection(config), RTCPeerConnection(config)
        arrived: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        receiver.on("track", arrived.put_nowait)
        try:
            sender.addTrack(
                source.open_track(width=WIDTH, height=HEIGHT, fps=FPS, executor=executor)
            )
            with _ice.host_addresses(["127.0.0.1"]):
                await sender.setLocalDescription(await sender.createOffer())
                await receiver.setRemoteDescription(sender.localDescription)
                await receiver.setLocalDescription(await receiver.createAnswer())
                await sender.setRemoteDescription(receiver.localDescription)
            candidates = [
                line
                for line in sender.localDescription.sdp.splitlines()
                if line.startswith("a=candidate")
            ]
            assert candidates and all(" 127.0.0.1 " in line for line in candidates)
            remote = await arrived.get()
            assert remote.kind == "video"
            return await take(remote, 5)
        finally:
            await sender.close()
            await receiver.close()

    frames = run(exchange(), timeout=30)
    assert [(f.width, f.height) for f in frames] == [(WIDTH, HEIGHT)] * 5
    pictures = [f.to_ndarray(format="gray") for f in frames]
    assert any((a != b).any() for a, b in itertools.pairwise(pictures))  # it moves
    assert source.frames_sent >= 5
    source.close()
