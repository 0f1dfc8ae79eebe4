from continuum.thinking import split_think


def test_split_think():
    assert split_think("<think>a</think>Hi <think> b </think>there") == ("Hi there", ["a", "b"])
    assert split_think("Answer.<think>cut off by max tok") == ("Answer.", ["cut off by max tok"])
    assert split_think("plain") == ("plain", [])
