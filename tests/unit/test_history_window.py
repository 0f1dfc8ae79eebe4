from continuum.compose import approx_token_count
from continuum.envelope import Participant, ParticipantKind, RoomMessage
from continuum.prompt_sources import history_window

ME = Participant(id="maya", name="Maya", kind=ParticipantKind.PERSONA)
ANN = Participant(id="ann", name="Ann")


def history(n, mine=()):
    return [
        RoomMessage(id=str(i), author=ME if i in mine else ANN, text=f"message {i}")
        for i in range(n)
    ]


def test_stable_part_is_whole_blocks_already_seen_by_the_persona():
    h = history(30, mine={5, 20})
    w = history_window(h, "maya", budget=10_000, count=approx_token_count, block_size=8)
    assert w.start == 0 and w.end == 30
    assert w.stable_end == 16  # seen up to 21 -> two whole blocks of 8
    assert w.stable_end <= 21


def test_unseen_messages_never_enter_the_stable_part():
    h = history(30, mine=())
    w = history_window(h, "maya", budget=10_000, count=approx_token_count, block_size=8)
    assert w.stable_end == 0


def test_over_budget_start_jumps_in_big_steps_and_stays_put():
    starts = set()
    for n in range(60, 90):
        h = history(n, mine={n - 1})
        w = history_window(
            h, "maya", budget=200, count=approx_token_count, block_size=8, drop_blocks=2
        )
        starts.add(w.start)
        assert w.start % 16 == 0
    assert len(starts) <= 3  # the prefix moves rarely
