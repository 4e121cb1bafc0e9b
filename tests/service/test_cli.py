import pytest

from service.cli import build_parser, main


def test_cli_without_command_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "usage: gdpr-gateway" in capsys.readouterr().err


def test_parser_is_named_gdpr_gateway() -> None:
    assert build_parser().prog == "gdpr-gateway"
