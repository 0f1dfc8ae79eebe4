import pytest

from continuum.memory.profile import ContactUpdate, ProfileStore, ProfileUpdate


@pytest.fixture
def store(tmp_path):
    return ProfileStore(tmp_path, "maya")


def test_merge_and_snapshot(store):
    assert store.apply(
        {
            "add_hobbies": ["chess", "baking"],
            "reflection": "I like mornings.",
            "contacts": [
                {
                    "person_id": "sam",
                    "name": "Sam",
                    "host_id": "slack:U1",
                    "sentiment_delta": 0.3,
                    "note": "has a cat",
                }
            ],
        }
    )
    p = store.load()
    assert p.hobbies == ("chess", "baking") and p.contacts["sam"].host_ids == ("slack:U1",)
    snap = store.snapshot()
    assert "Hobbies: chess, baking" in snap and "Sam (warm) — has a cat" in snap
    # a small sentiment nudge within the same bucket leaves the snapshot unchanged
    store.apply(ProfileUpdate(contacts=[ContactUpdate(person_id="sam", sentiment_delta=0.05)]))
    assert store.snapshot() == snap
    # persisted, with history
    again = ProfileStore(store.dir.parent.parent, "maya")
    assert again.load() == store.load()
    assert len(list(store.history.glob("*.json"))) == 2


@pytest.mark.parametrize(
    "update",
    [
        {"add_hobbies": ["chess"], "remove_hobbies": ["chess"]},  # contradictory
        {"remove_tastes": ["opera"]},  # not in profile
        {"contacts": [{"person_id": "x", "sentiment_delta": 0.1}]},  # new contact w/o name
        {
            "contacts": [{"person_id": "sam", "name": "Sam"}, {"person_id": "sam", "name": "Sam"}]
        },  # twice in one update
        {"contacts": [{"person_id": "sam", "name": "Sam", "sentiment_delta": 2}]},  # out of range
        {"add_hobbies": "chess"},  # malformed
        {"delete_everything": True},  # unknown field
    ],
)
def test_bad_updates_are_rejected_whole_and_never_corrupt(store, update):
    store.apply({"add_hobbies": ["baking"]})
    before = store.path.read_bytes()
    assert store.apply(update) is None
    assert store.rejected == 1
    assert store.path.read_bytes() == before and store.load().hobbies == ("baking",)


def test_host_id_cannot_belong_to_two_people(store):
    store.apply({"contacts": [{"person_id": "sam", "name": "Sam", "host_id": "discord:1"}]})
    assert (
        store.apply({"contacts": [{"person_id": "ana", "name": "Ana", "host_id": "discord:1"}]})
        is None
    )
