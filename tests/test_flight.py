"""Single-flight coalescing with real asyncio tasks."""

from __future__ import annotations

import asyncio

import pytest

from nextmodel_proxy.cache.sharing import FlightFailed, SingleFlight

REQ = b'{"request":"same"}'
EVENTS = [b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"]


async def follower_events(flights, key):
    flight = flights.lead_or_follow(key, REQ)
    assert not flight.is_leader
    return await flight.wait()


async def consume(flight, seen):
    async for event in flight.events():
        seen.append(event)


def watched_flight():
    """A leader for key k and a follower task collecting what it receives into `seen`."""
    flights = SingleFlight(idle_timeout_s=2)
    leader = flights.lead_or_follow("k", REQ)
    seen = []
    return flights, leader, seen, asyncio.create_task(consume(flights.lead_or_follow("k", REQ), seen))


async def test_burst_of_identical_requests_has_one_leader_and_followers_get_every_event():
    flights = SingleFlight(idle_timeout_s=2)
    leader = flights.lead_or_follow("k", REQ)
    assert leader.is_leader
    leader.publish(EVENTS[0])  # published before anyone joined: followers still get it
    followers = [asyncio.create_task(follower_events(flights, "k")) for _ in range(5)]
    await asyncio.sleep(0)
    for event in EVENTS[1:]:
        leader.publish(event)
        await asyncio.sleep(0.001)
    late = asyncio.create_task(follower_events(flights, "k"))  # joins mid-stream
    await asyncio.sleep(0)
    leader.finish(True)
    results = await asyncio.wait_for(asyncio.gather(*followers, late), 2)
    assert all(r == EVENTS for r in results)
    assert len(flights) == 0


async def test_follower_receives_events_as_they_happen():
    flights, leader, seen, task = watched_flight()
    leader.publish(EVENTS[0])
    await asyncio.sleep(0.01)
    assert seen == [EVENTS[0]]  # before the leader finished
    leader.publish(EVENTS[1])
    leader.finish(True)
    await asyncio.wait_for(task, 2)
    assert seen == EVENTS[:2]


async def test_non_stream_leader_hands_followers_its_final_body():
    flights = SingleFlight(idle_timeout_s=2)
    leader = flights.lead_or_follow("k", REQ)
    follower = flights.lead_or_follow("k", REQ)
    task = asyncio.create_task(follower.wait())
    await asyncio.sleep(0)
    leader.finish(True, b'{"id":"x"}')
    assert await asyncio.wait_for(task, 2) == []
    assert follower.final == b'{"id":"x"}'


async def test_failed_leader_fails_followers_after_what_was_published():
    flights, leader, seen, task = watched_flight()
    leader.publish(EVENTS[0])
    await asyncio.sleep(0.01)
    leader.finish(False)
    with pytest.raises(FlightFailed):
        await asyncio.wait_for(task, 2)
    assert seen == [EVENTS[0]]
    assert flights.lead_or_follow("k", REQ).is_leader  # the key was released: the next request leads


async def test_cancelled_leader_releases_the_key_and_fails_followers():
    flights = SingleFlight(idle_timeout_s=2)
    started = asyncio.Event()

    async def lead():
        with flights.lead_or_follow("k", REQ) as flight:
            assert flight.is_leader
            started.set()
            await asyncio.sleep(10)

    leader_task = asyncio.create_task(lead())
    await started.wait()
    follower = asyncio.create_task(follower_events(flights, "k"))
    await asyncio.sleep(0)
    leader_task.cancel()
    with pytest.raises(FlightFailed):
        await asyncio.wait_for(follower, 2)
    assert len(flights) == 0


async def test_follower_of_a_silent_leader_times_out_and_the_key_is_taken_over():
    flights = SingleFlight(idle_timeout_s=0.05)
    stale = flights.lead_or_follow("k", REQ)
    with pytest.raises(FlightFailed):
        await asyncio.wait_for(follower_events(flights, "k"), 2)
    await asyncio.sleep(0.06)
    fresh = flights.lead_or_follow("k", REQ)
    assert fresh.is_leader
    stale.finish(True)  # the stale leader finishing late must not release its successor
    assert len(flights) == 1
    fresh.finish(True)
    assert len(flights) == 0


async def test_different_keys_do_not_coalesce():
    flights = SingleFlight()
    assert flights.lead_or_follow("a", REQ).is_leader and flights.lead_or_follow("b", REQ).is_leader


async def test_a_different_request_on_the_same_key_does_not_follow():
    flights = SingleFlight(idle_timeout_s=2)
    leader = flights.lead_or_follow("k", REQ)
    collided = flights.lead_or_follow("k", b'{"request":"other"}')
    assert collided.is_leader  # goes upstream on its own
    collided.finish(True)
    assert len(flights) == 1  # and cannot release the real leader's key
    assert not flights.lead_or_follow("k", REQ).is_leader
    leader.finish(True)
    assert len(flights) == 0
