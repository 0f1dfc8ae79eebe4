import anyio
import pytest

from continuum.backends.base import Priority
from continuum.backends.scheduler import InferenceScheduler
from continuum.errors import BackendBusy, BackendTimeout

pytestmark = pytest.mark.anyio


async def test_analysis_queued_after_renders_runs_first():
    sched = InferenceScheduler()
    order = []
    gate = anyio.Event()

    async def job(name, priority):
        async with sched.turn(priority):
            order.append(name)
            if name == "holder":
                await gate.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(job, "holder", Priority.RENDER)
        await anyio.sleep(0.01)
        for i in range(3):
            tg.start_soon(job, f"render{i}", Priority.RENDER)
            await anyio.sleep(0.01)
        tg.start_soon(job, "analysis", Priority.ANALYSIS)
        await anyio.sleep(0.01)
        gate.set()
    assert order == ["holder", "analysis", "render0", "render1", "render2"]


async def test_backpressure_and_queue_timeout():
    sched = InferenceScheduler(max_queue=1)
    release = anyio.Event()
    errors = []

    async def holder():
        async with sched.turn(Priority.RENDER):
            await release.wait()

    async def waiter(timeout):
        try:
            async with sched.turn(Priority.RENDER, queue_timeout_s=timeout):
                pass
        except (BackendBusy, BackendTimeout) as exc:
            errors.append(type(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await anyio.sleep(0.01)
        tg.start_soon(waiter, 0.2)  # queued, will time out
        await anyio.sleep(0.01)
        tg.start_soon(waiter, None)  # queue full -> busy at once
        await anyio.sleep(0.4)
        release.set()
    assert errors == [BackendBusy, BackendTimeout]
    assert sched.queue_depth == 0
    async with sched.turn(Priority.RENDER, queue_timeout_s=0.1):
        pass  # the gate is free again


async def test_cancelled_waiter_leaves_the_queue():
    sched = InferenceScheduler()
    release = anyio.Event()
    ran = []

    async def holder():
        async with sched.turn(Priority.RENDER):
            await release.wait()

    async def waiter(name):
        async with sched.turn(Priority.RENDER):
            ran.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await anyio.sleep(0.01)
        with anyio.CancelScope() as scope:
            tg.start_soon(waiter, "kept")
            async with anyio.create_task_group() as inner:
                inner.start_soon(waiter, "cancelled")
                await anyio.sleep(0.01)
                inner.cancel_scope.cancel()
        assert not scope.cancel_called
        assert sched.queue_depth == 1
        release.set()
    assert ran == ["kept"]


async def test_background_work_is_asked_to_yield_to_a_more_urgent_waiter():
    import threading

    sched = InferenceScheduler()
    preempt = threading.Event()
    holding = anyio.Event()
    release = anyio.Event()

    async def background():
        async with sched.turn(Priority.BACKGROUND, preempt=preempt):
            holding.set()
            await release.wait()

    async def other(priority):
        async with sched.turn(priority):
            pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(background)
        await holding.wait()
        tg.start_soon(other, Priority.BACKGROUND)  # as urgent as it is: no reason to stop
        await anyio.sleep(0.01)
        assert not preempt.is_set()
        tg.start_soon(other, Priority.RENDER)  # a turn waits: the holder is asked to stop
        await anyio.sleep(0.01)
        assert preempt.is_set() and sched.preempted == 1
        release.set()
