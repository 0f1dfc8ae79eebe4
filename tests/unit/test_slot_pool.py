from continuum.backends.base import SlotKey
from continuum.backends.slots import SlotPool


class FakeStore:
    def __init__(self):
        self.seqs: dict[int, list[int]] = {}
        self.saved = 0

    def save(self, seq_id):
        self.saved += 1
        return bytes(self.seqs.get(seq_id, []))

    def restore(self, seq_id, state):
        self.seqs[seq_id] = list(state)
        return True

    def clear(self, seq_id):
        self.seqs.pop(seq_id, None)


def key(name, adapters=()):
    return SlotKey(persona_id=name, adapters=adapters)


def test_lru_hibernation_and_restore():
    store = FakeStore()
    pool = SlotPool(store, n_live=2)
    for name in ("a", "b"):
        slot, restored = pool.acquire(key(name))
        slot.tokens[:] = [ord(name)] * 3
        store.seqs[slot.seq_id] = list(slot.tokens)
        assert not restored
    pool.acquire(key("a"))  # a is now most recent; b is LRU
    slot_c, _ = pool.acquire(key("c"))
    assert set(pool.live_keys()) == {key("a"), key("c")}
    assert pool.hibernated_keys() == [key("b")]
    slot_c.tokens[:] = [1]
    slot_b, restored = pool.acquire(key("b"))  # evicts a, restores b
    assert restored and slot_b.tokens == [ord("b")] * 3
    assert pool.stats.hibernations == 2 and pool.stats.restores == 1


def test_adapter_sets_get_separate_slots():
    pool = SlotPool(FakeStore(), n_live=4)
    s1, _ = pool.acquire(key("maya"))
    s2, _ = pool.acquire(key("maya", ("voice",)))
    assert s1.seq_id != s2.seq_id


def test_hibernation_budget_drops_oldest():
    store = FakeStore()
    pool = SlotPool(store, n_live=1, hibernate_budget_bytes=5)
    for name in "abc":
        slot, _ = pool.acquire(key(name))
        slot.tokens[:] = [1, 2, 3]
        store.seqs[slot.seq_id] = [1, 2, 3]
    assert pool.hibernated_keys() == [key("b")] and pool.stats.drops == 1
    _, restored = pool.acquire(key("a"))
    assert not restored  # its state was dropped: the next turn runs cold
