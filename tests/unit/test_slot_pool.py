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

    def trim(self, seq_id, n):
        self.seqs[seq_id] = self.seqs.get(seq_id, [])[:n]

    def copy(self, src, dst, n):
        self.seqs[dst] = list(self.seqs.get(src, []))[:n]
        return True


def key(name, adapters=(), room=None):
    return SlotKey(persona_id=name, adapters=adapters, room=room)


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


def test_a_persona_entering_a_new_room_starts_from_its_shared_prefix():
    store = FakeStore()
    pool = SlotPool(store, n_live=3, min_shared_tokens=4)
    identity = list(range(100, 140))  # the persona's invariant prefix: 40 tokens
    room1 = [*identity, 1, 2, 3, 4, 5]
    slot1, _ = pool.acquire(key("maya", room="r1"), room1)
    slot1.tokens = room1
    store.seqs[slot1.seq_id] = list(room1)
    room2 = [*identity, 9, 9, 9]
    slot2, restored = pool.acquire(key("maya", room="r2"), room2)
    assert not restored and slot2.tokens == identity  # shared, not re-evaluated
    assert store.seqs[slot2.seq_id] == identity
    assert pool.stats.shared == 1 and pool.stats.shared_tokens == 40
    # another adapter set never shares: its KV would be wrong
    slot3, _ = pool.acquire(key("maya", adapters=("skill",), room="r3"), room2)
    assert slot3.tokens == []


def test_a_hibernated_slot_donates_its_prefix_too():
    store = FakeStore()
    pool = SlotPool(store, n_live=1, min_shared_tokens=4)
    identity = list(range(50))
    slot, _ = pool.acquire(key("otto", room="a"), [*identity, 1])
    slot.tokens = [*identity, 1]
    store.seqs[slot.seq_id] = list(slot.tokens)
    other, _ = pool.acquire(key("juno", room="a"), [7] * 60)  # evicts otto:a (hibernated)
    other.tokens = [7] * 60
    store.seqs[other.seq_id] = list(other.tokens)
    fresh, _ = pool.acquire(key("otto", room="b"), [*identity, 2, 3])
    assert fresh.tokens == identity and store.seqs[fresh.seq_id] == identity
