"""Verification on Ray CPU workers, pipelined with generation.

Verifier actors run the stateless filters (rules, LID, code-switching, round trip, LASER) on slice k
while the engine generates slice k+1. The stateful part, the dedup memory and (in the runner) the
per-cell surplus decision, stays in the driver and is applied in slice order, so what is accepted does
not depend on timing or on the number of workers.

Reservations never deadlock a small machine: each actor asks for `verify.num_cpus` (fractional), shrunk
to what the engine left free, down to 0 (then the OS shares the cores). LASER takes a GPU share only
when that much GPU is free when the job starts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

from synth.verify.base import Candidate
from synth.verify.pipeline import Verdict, Verifier

log = logging.getLogger("synth")

AUTO_MAX = 4  # `workers: auto` never starts more: past a few, the driver's ordered commit is the limit
READY_TIMEOUT_S = 120  # a reservation still unplaced after this is dropped (never wait forever)


@dataclass
class VerifierSpec:
    """The arguments of the job's Verifier (picklable): the driver and every worker build the same one
    from them, so no filter can run in one place and not the other."""

    args: tuple
    kwargs: dict = field(default_factory=dict)

    def build(self) -> Verifier:
        return Verifier(*self.args, **self.kwargs)

    def for_workers(self, driver: Verifier) -> "VerifierSpec":
        """The workers' spec: LASER from where the driver found it, never fetched again (no worker probes
        the network or ends up with another encoder than the driver)."""
        args = list(self.args)
        if getattr(driver, "laser", None) is not None and driver.laser.directory is not None:
            args[3] = str(driver.laser.directory)
        return VerifierSpec(tuple(args), {**self.kwargs, "fetch_laser": False})


def _floor(value: float) -> float:
    """Ray accounts resources in 1e-4 units; round down so a share never exceeds what is free."""
    return max(0.0, math.floor(value * 1000) / 1000)


def plan_workers(workers: int | Literal["auto"], num_cpus: float, free_cpus: float) -> tuple[int, float]:
    """(actors, CPUs each): `auto` fills the free CPUs up to AUTO_MAX actors; a reservation larger
    than what is free shrinks to fit (to 0 at worst) instead of waiting forever."""
    if workers == "auto":
        count = max(1, min(AUTO_MAX, int(free_cpus // (num_cpus or 1.0))))
    else:
        count = workers
    if count == 0:
        return 0, 0.0
    return count, _floor(min(num_cpus, max(free_cpus, 0.0) / count))


class Pending:
    """Scores of one slice, on their way back from the workers (or already computed in the driver)."""

    def __init__(self, parts: list, fallback: Verifier):
        self.parts = parts  # [(ObjectRef | list[Verdict], candidates of that part)]
        self.fallback = fallback

    def result(self) -> list[Verdict]:
        import ray

        out: list[Verdict] = []
        for ref, batch in self.parts:
            if isinstance(ref, list):
                out.extend(ref)
                continue
            try:
                out.extend(ray.get(ref))
            except ray.exceptions.RayActorError:
                # the actor is gone for good (restarts used up): scores are deterministic, redo them here
                log.warning("a verifier worker died; scoring its %d rows in the driver", len(batch))
                out.extend(self.fallback.score_filters(batch))
        return out


class VerificationPool:
    """`verify.workers` verifier actors (0: score in the driver, no overlap)."""

    def __init__(self, spec: VerifierSpec, driver: Verifier, workers: int | Literal["auto"] = "auto",
                 num_cpus: float = 0.5, laser_num_gpus: float = 0.0):
        self.driver = driver
        self.actors: list = []
        self.next = 0
        self.num_cpus = self.num_gpus = 0.0
        if workers == 0:
            log.info("verification in the driver (verify.workers: 0): generation waits while each slice is verified")
            return
        import ray

        free = ray.available_resources()
        count, cpus = plan_workers(workers, num_cpus, free.get("CPU", 0.0))
        if cpus < num_cpus:
            log.info("verify.num_cpus %.3g does not fit beside the engine (%.3g CPUs free): "
                     "each verifier reserves %.3g", num_cpus, free.get("CPU", 0.0), cpus)
        gpus = 0.0
        if laser_num_gpus and "laser" in driver.names:  # built from the same spec: runs LASER
            if free.get("GPU", 0.0) >= laser_num_gpus * count:
                gpus = laser_num_gpus
            else:
                log.info("verify.laser_num_gpus: %.3g GPU per verifier is not free; LASER runs on the CPU",
                         laser_num_gpus)
        self.actors = self._start(spec, count, cpus, gpus, timeout=READY_TIMEOUT_S)
        if self.actors is None:  # the free resources were taken meanwhile (another job, a late report)
            log.warning("verifier workers could not be placed within %ds; starting them without reservations",
                        READY_TIMEOUT_S)
            cpus = gpus = 0.0
            self.actors = self._start(spec, count, cpus, gpus, timeout=None)
        self.num_cpus, self.num_gpus = cpus, gpus
        log.info("%d verifier worker(s) ready (%.3g CPU, %.3g GPU each): verification overlaps generation",
                 count, cpus, gpus)

    @staticmethod
    def _start(spec: VerifierSpec, count: int, cpus: float, gpus: float, timeout: float | None) -> list | None:
        """The actors once all are ready, or None if they were not placed within `timeout` (None: wait)."""
        import ray

        actor = ray.remote(VerifierWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=2, max_task_retries=2)
        actors = [actor.remote(spec) for _ in range(count)]
        try:
            ray.get([a.ready.remote() for a in actors], timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            for a in actors:
                ray.kill(a)
            return None
        return actors

    def submit(self, batch: Sequence[Candidate]) -> Pending:
        """Start scoring `batch`; returns at once when workers exist (in the driver: after scoring)."""
        batch = list(batch)
        if not self.actors:
            return Pending([(self.driver.score_filters(batch), batch)], self.driver)
        size = -(-len(batch) // len(self.actors)) if batch else 0
        parts = []
        for start in range(0, len(batch), size or 1):
            part = batch[start:start + size]
            actor = self.actors[self.next % len(self.actors)]
            self.next += 1
            parts.append((actor.score.remote(part), part))
        return Pending(parts, self.driver)

    def shutdown(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []


class VerifierWorker:
    """A Ray actor holding the loaded filters (fastText, LASER encoders once used)."""

    def __init__(self, spec: VerifierSpec):
        from synth.devices import hide_unreserved_gpus

        hide_unreserved_gpus()  # without a GPU share, LASER's torch must not take cuda:0 beside a replica
        self.verifier = spec.build()

    def ready(self) -> bool:
        return True

    def score(self, batch: list[Candidate]) -> list[Verdict]:
        return self.verifier.score_filters(batch)
