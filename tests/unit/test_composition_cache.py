from continuum.compose import Section, compose_prompt
from continuum.composition_cache import CompositionCache
from continuum.events import EventLog, HistoryEdited, PersonaUpdated, ProfileUpdated
from continuum.tiers import Tier


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def composed(text="x"):
    return compose_prompt([Section(name="a", tier=Tier.INVARIANT, text=text)])


def test_hits_misses_and_ttl():
    clock = Clock()
    cache = CompositionCache(ttl_s=300, clock=clock)
    key = cache.key("maya", "room", "recipe", ("3", "m1", "m2"))
    calls = []
    compose = lambda: calls.append(1) or composed()  # noqa: E731
    cache.get_or_compose(key, compose)
    cache.get_or_compose(key, compose)
    assert (cache.stats.hits, cache.stats.misses, len(calls)) == (1, 1, 1)
    clock.t = 301
    cache.get_or_compose(key, compose)
    assert cache.stats.expirations == 1 and len(calls) == 2
    other = cache.key("maya", "room", "recipe", ("4", "m2", "m3"))
    cache.get_or_compose(other, compose)
    assert cache.stats.misses == 3
    assert 0 < cache.stats.hit_rate < 1


def test_events_invalidate_only_what_they_touch():
    events = EventLog()
    cache = CompositionCache()
    cache.watch(events, "room1")
    for persona in ("maya", "otto"):
        cache.get_or_compose(cache.key(persona, "room1", "r", ("1",)), composed)
    events.emit(ProfileUpdated(room_id="room1", persona_id="maya"))
    assert len(cache) == 1 and cache.stats.invalidations == 1
    events.emit(PersonaUpdated(room_id="room1", persona_id="otto"))
    assert len(cache) == 0
    cache.get_or_compose(cache.key("maya", "room1", "r", ("1",)), composed)
    events.emit(HistoryEdited(room_id="room1", message_id="m1"))
    assert len(cache) == 0
