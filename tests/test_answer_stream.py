"""How one LookupStream answers (``numrep.api.lookup_stream.AnswerStream``): each
lookup by its own task, so a slow one holds up no other; the answers ready at the
same moment in one response; no more lookups under way than allowed; a lookup
that fails unexpectedly answered INTERNAL; and a refusal that ends the stream
raised only after the answers already under way are sent. The wire and the
exchange's side are in ``test_lookup_stream``."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc
import pytest

from numrep.api.lookup_stream import AnswerStream
from numrep.core.errors import RateLimited, Unauthenticated
from numrep.v1 import lookup_pb2


def request(*ids: int) -> lookup_pb2.LookupStreamRequest:
    return lookup_pb2.LookupStreamRequest(lookups=[
        lookup_pb2.StreamLookup(id=i, request=lookup_pb2.LookupRequest(number=f"n{i}")) for i in ids])


class Answers:
    """Lookups answered only when the test opens their gate (``release``), or at once."""

    def __init__(self, gated: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.gates = {i: asyncio.Event() for i in gated}
        self.running = 0
        self.most_running = 0
        self.started: list[int] = []

    async def __call__(self, lookup: lookup_pb2.StreamLookup) -> bytes:
        self.started.append(lookup.id)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if lookup.id in self.gates:
                await self.gates[lookup.id].wait()
            return lookup_pb2.LookupStreamResponse(answers=[lookup_pb2.StreamAnswer(id=lookup.id)]).SerializeToString()
        finally:
            self.running -= 1

    def release(self, lookup_id: int) -> None:
        self.gates[lookup_id].set()


async def feed(*messages: lookup_pb2.LookupStreamRequest, then: asyncio.Event | None = None) -> AsyncIterator[lookup_pb2.LookupStreamRequest]:
    for message in messages:
        yield message
    if then is not None:  # the caller keeps its stream open until told
        await then.wait()


def stream(answer: Callable[[lookup_pb2.StreamLookup], Awaitable[bytes]], *, admit: Callable[[], None] = lambda: None,
           recheck: Callable[[], None] = lambda: None, **options: Any) -> AnswerStream:
    return AnswerStream(answer, admit, recheck, **{"lifetime": 60.0, "max_lookups": 100, **options})


def ids_in(response: bytes) -> list[int]:
    return [a.id for a in lookup_pb2.LookupStreamResponse.FromString(response).answers]


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Let the loop run until ``condition`` holds; fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    while not condition():
        assert loop.time() < stop, "the condition never held"
        await asyncio.sleep(0)


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    """``test`` on a new event loop whose callbacks may not fail: asyncio would only log it."""
    async def main() -> Any:
        failures: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: failures.append(context))
        result = await test()
        await asyncio.sleep(0)
        assert failures == [], f"a loop callback failed: {failures}"
        return result

    return asyncio.run(main())


def test_a_slow_lookup_holds_up_no_other():
    async def scenario() -> None:
        answers = Answers(gated={1})
        responses = stream(answers).serve(feed(request(1, 2, 3)))
        first = await asyncio.wait_for(responses.__anext__(), 1)
        assert sorted(ids_in(first)) == [2, 3]
        answers.release(1)
        assert ids_in(await asyncio.wait_for(responses.__anext__(), 1)) == [1]
        with pytest.raises(StopAsyncIteration):
            await responses.__anext__()

    run(scenario)


def test_answers_ready_at_the_same_moment_leave_in_one_response():
    async def scenario() -> list[bytes]:
        return [r async for r in stream(Answers()).serve(feed(request(*range(1, 51))))]

    responses = run(scenario)
    assert sorted(i for r in responses for i in ids_in(r)) == list(range(1, 51))
    assert len(responses) == 1


def test_no_more_lookups_are_under_way_than_allowed_and_all_are_answered():
    async def scenario() -> tuple[list[bytes], Answers]:
        answers = Answers(gated=set(range(1, 9)))

        async def open_gates() -> None:
            for i in range(1, 9):  # each once lookup i and as many after it as may be under way have started
                under_way = min(3, 9 - i)
                await until(lambda: len(answers.started) >= i + under_way - 1 and answers.running >= under_way)
                answers.release(i)

        opener = asyncio.ensure_future(open_gates())
        responses = [r async for r in stream(answers, max_pending=3).serve(feed(request(1, 2, 3), request(4, 5, 6), request(7, 8)))]
        await opener
        return responses, answers

    responses, answers = run(scenario)
    assert sorted(i for r in responses for i in ids_in(r)) == list(range(1, 9))
    assert answers.most_running == 3


def test_a_lookup_that_fails_unexpectedly_is_answered_internal_and_the_stream_goes_on():
    async def broken(lookup: lookup_pb2.StreamLookup) -> bytes:
        if lookup.id == 2:
            raise KeyError("a bug")
        return await Answers()(lookup)

    async def scenario() -> list[bytes]:
        return [r async for r in stream(broken).serve(feed(request(1, 2, 3)))]

    answers = {a.id: a for r in run(scenario) for a in lookup_pb2.LookupStreamResponse.FromString(r).answers}
    assert answers[2].error_code == grpc.StatusCode.INTERNAL.value[0]
    assert answers[2].error_message == "the exchange failed to answer this lookup"
    assert answers[1].error_code == 0 and answers[3].error_code == 0


def test_a_lookup_refused_on_admission_is_answered_with_its_refusal_and_never_started():
    admitted = iter([None, RateLimited("carrier-north is over its lookup rate of 1/s; retry in 0.5 s", 0.5), None])

    def admit() -> None:
        outcome = next(admitted)
        if outcome is not None:
            raise outcome

    answers = Answers()

    async def scenario() -> list[bytes]:
        return [r async for r in stream(answers, admit=admit).serve(feed(request(1, 2, 3)))]

    found = {a.id: a for r in run(scenario) for a in lookup_pb2.LookupStreamResponse.FromString(r).answers}
    assert found[2].error_code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "over its lookup rate" in found[2].error_message
    assert sorted(answers.started) == [1, 3]


def test_a_refusal_that_ends_the_stream_comes_after_the_answers_already_under_way():
    checks = iter([None, Unauthenticated("key revoked", "revoked_key")])
    answers = Answers(gated={1})

    def recheck() -> None:
        outcome = next(checks)
        if outcome is not None:
            answers.release(1)  # lookup 1 is answered only once the key was found revoked
            raise outcome

    async def scenario() -> tuple[list[int], Unauthenticated]:
        seen: list[int] = []
        with pytest.raises(Unauthenticated) as ended:
            async for response in stream(answers, recheck=recheck, recheck_every=0.0).serve(
                    feed(request(1), request(2), request(3))):
                seen.extend(ids_in(response))
        return seen, ended.value

    seen, ended = run(scenario)
    assert seen == [1]  # lookup 1 was under way; the second request met the revoked key
    assert ended.reason == "revoked_key"


def test_a_stream_its_caller_leaves_cancels_the_lookups_under_way():
    async def scenario() -> Answers:
        answers = Answers(gated={1, 2})
        keep_open = asyncio.Event()
        responses = stream(answers).serve(feed(request(1, 2), then=keep_open))
        waiting = asyncio.ensure_future(responses.__anext__())
        await until(lambda: answers.running == 2)
        waiting.cancel()  # as gRPC cancels a handler whose caller went away
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.sleep(0)
        return answers

    assert run(scenario).running == 0


def test_a_stream_open_past_its_lifetime_is_refused_at_its_next_request():
    now = [0.0]

    async def scenario() -> tuple[list[int], Unauthenticated]:
        async def requests() -> AsyncIterator[lookup_pb2.LookupStreamRequest]:
            yield request(1)
            await asyncio.sleep(0.01)
            now[0] = 61.0
            yield request(2)

        seen: list[int] = []
        with pytest.raises(Unauthenticated) as ended:
            async for response in stream(Answers(), clock=lambda: now[0]).serve(requests()):
                seen.extend(ids_in(response))
        return seen, ended.value

    seen, ended = run(scenario)
    assert seen == [1]
    assert ended.reason == "stream_expired"


def test_lookups_answerable_in_place_need_no_task_and_the_rest_still_get_one():
    def now(lookup: lookup_pb2.StreamLookup) -> bytes | None:
        if lookup.id == 2:
            return None  # must wait: answered by its own task
        if lookup.id == 3:
            raise RateLimited("over the rate", 0.1)
        if lookup.id == 4:
            raise KeyError("a bug")
        return lookup_pb2.LookupStreamResponse(answers=[lookup_pb2.StreamAnswer(id=lookup.id)]).SerializeToString()

    answers = Answers()

    async def scenario() -> list[bytes]:
        return [r async for r in stream(answers, answer_now=now).serve(feed(request(1, 2, 3, 4, 5)))]

    found = {a.id: a for r in run(scenario) for a in lookup_pb2.LookupStreamResponse.FromString(r).answers}
    assert sorted(found) == [1, 2, 3, 4, 5]
    assert answers.started == [2]
    assert found[3].error_code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert found[4].error_code == grpc.StatusCode.INTERNAL.value[0]
    assert found[1].error_code == found[2].error_code == found[5].error_code == 0


def test_a_long_request_answered_in_place_gives_the_loop_turns():
    turns = 0

    async def scenario() -> list[bytes]:
        done = asyncio.Event()

        async def count_turns() -> None:
            nonlocal turns
            while not done.is_set():
                turns += 1
                await asyncio.sleep(0)

        counter = asyncio.ensure_future(count_turns())
        now = lambda lookup: lookup_pb2.LookupStreamResponse(answers=[lookup_pb2.StreamAnswer(id=lookup.id)]).SerializeToString()  # noqa: E731
        responses = [r async for r in stream(Answers(), answer_now=now, max_lookups=1000).serve(feed(request(*range(1, 1001))))]
        done.set()
        await counter
        return responses

    responses = run(scenario)
    assert sorted(i for r in responses for i in ids_in(r)) == list(range(1, 1001))
    assert turns >= 1000 // 64  # a turn at least every 64 answers


def test_a_caller_that_reads_no_answers_stops_being_read():
    consumed = 0

    async def requests() -> AsyncIterator[lookup_pb2.LookupStreamRequest]:
        nonlocal consumed
        for start in range(1, 1001, 10):
            consumed += 1
            yield request(*range(start, start + 10))

    async def scenario() -> None:
        now = lambda lookup: lookup_pb2.LookupStreamResponse(answers=[lookup_pb2.StreamAnswer(id=lookup.id)]).SerializeToString()  # noqa: E731
        responses = stream(Answers(), answer_now=now, max_pending=30).serve(requests())
        await responses.__anext__()  # one response taken, then none: as a caller whose window is full
        await asyncio.sleep(0.05)
        await responses.aclose()

    run(scenario)
    assert consumed <= 8  # about two caps' worth of lookups (30 held, 30 in the response not yet taken), not all 100 requests
