from service.secret import Secret


def test_secret_is_masked_in_str_and_repr() -> None:
    s = Secret("hunter2-very-secret")
    assert "hunter2" not in str(s)
    assert "hunter2" not in repr(s)
    assert "hunter2" not in f"{s!r} {s}"
    assert s.reveal() == "hunter2-very-secret"


def test_secret_equality_compares_values() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert not Secret("")
