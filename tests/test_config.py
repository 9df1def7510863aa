"""intake.toml: defaults, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.core.config import TEMPLATE, Config, Listen, parse
from intake.core.errors import ConfigError

FILE = Path("/srv/intake/intake.toml")


class TestParse:
    def test_the_template_is_the_defaults(self) -> None:
        """What init writes parses to exactly the built-in defaults."""
        parsed = parse(TEMPLATE, FILE)
        defaults = Config(root=FILE.parent, file=FILE)
        assert defaults == parsed

    def test_listen_forms(self) -> None:
        cfg = parse('[sftp]\nlisten = "[::1]:22"\n[ftps]\nlisten = ""\n', FILE)
        assert Listen("::1", 22) == cfg.sftp.listen
        assert not cfg.ftps.listen.enabled

    @pytest.mark.parametrize(
        ("text", "where"),
        [
            ("[sftp]\nlisten = 2222\n", "sftp.listen"),
            ('[sftp]\nlisten = "localhost"\n', "sftp.listen"),
            ('[sftp]\nlisten = "h:99999"\n', "sftp.listen"),
            ("[sftp]\nlogin_timeout = 0\n", "sftp.login_timeout"),
            ('[sftp]\nlogin_timeout = "30"\n', "sftp.login_timeout"),
            ("[sftp]\nlisen = 1\n", "sftp.lisen"),
            ("[sfpt]\n", "sfpt"),
            ('[ftps]\npassive_ports = "10-5"\n', "ftps.passive_ports"),
            ('[ftps]\nrequire_session_reuse = "yes"\n', "ftps.require_session_reuse"),
            ("[vendor]\nport = 70000\n", "vendor.port"),
        ],
    )
    def test_errors_name_file_and_key(self, text: str, where: str) -> None:
        """Every mistake names the file and the dotted key."""
        with pytest.raises(ConfigError) as caught:
            parse(text, FILE)
        assert str(caught.value).startswith(f"{FILE}: {where}: ")

    def test_broken_toml(self) -> None:
        with pytest.raises(ConfigError) as caught:
            parse("[sftp\n", FILE)
        assert "not valid TOML" in str(caught.value)

    def test_relative_paths_are_relative_to_the_instance(self) -> None:
        cfg = parse('[vendor]\nkey = "keys/vendor_key"\n', FILE)
        assert Path("/srv/intake/keys/vendor_key") == cfg.resolve(cfg.vendor.key)
        assert Path("/etc/k") == cfg.resolve("/etc/k")
