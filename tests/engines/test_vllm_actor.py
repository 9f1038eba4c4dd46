"""The replica pool on a real local Ray with a real (tiny, random-weight) vLLM engine."""

from synth.engines.base import GenerationRequest


def _requests(n: int, prefix: str = "r") -> list[GenerationRequest]:
    return [GenerationRequest(id=f"{prefix}{i}", messages=[{"role": "user", "content": f"Count to {i}."}]) for i in range(n)]


def test_pool_returns_one_completion_per_request_in_order(tiny_pool):
    requests = _requests(20)  # 3 chunks of 8: several in flight at once
    completions = tiny_pool.generate(requests)
    assert [c.id for c in completions] == [r.id for r in requests]
    assert all(c.error is None for c in completions)
    assert all(0 < c.output_tokens <= 16 for c in completions)
    assert all(c.finish_reason in ("stop", "length") for c in completions)


def test_same_request_id_gives_same_text(tiny_pool):
    first = tiny_pool.generate(_requests(3, "same"))
    again = tiny_pool.generate(_requests(3, "same"))
    assert [c.text for c in first] == [c.text for c in again]
    other = tiny_pool.generate(_requests(3, "other"))
    assert [c.text for c in other] != [c.text for c in first]  # per-request seeds differ


def test_over_long_prompt_becomes_an_error_not_a_crash(tiny_pool):
    long = GenerationRequest(id="long", messages=[{"role": "user", "content": "word " * 400}])
    completions = tiny_pool.generate(_requests(2) + [long])
    assert completions[2].id == "long" and completions[2].error == "prompt_too_long"
    assert completions[2].text == ""
    assert all(c.error is None for c in completions[:2])
