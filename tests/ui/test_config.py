"""The TOML config: defaults, errors that say where, and the theme written back."""

from __future__ import annotations

from pathlib import Path

import pytest

from paddler_tui.ui.config import ConfigError, TuiConfig, load_config, save_theme


def test_no_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "config.toml") == TuiConfig()


def test_reads_every_setting(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        'theme = "nord"\ncursor_blink = false\nexport_dir = "~/chats"\n'
        'inference_addr = "10.0.0.5:8061"\nmanagement_addr = "10.0.0.5:8060"\n'
        '[keymap]\n"chat.regenerate" = "f9"\n'
        '[chat]\nsystem_prompt = "Be brief."\nmax_tokens = 256\nenable_thinking = true\n'
    )
    config = load_config(path)
    assert config.theme == "nord"
    assert config.cursor_blink is False
    assert (config.inference_addr, config.management_addr) == ("10.0.0.5:8061", "10.0.0.5:8060")
    assert config.keymap == {"chat.regenerate": "f9"}
    assert (config.chat.system_prompt, config.chat.max_tokens, config.chat.enable_thinking) == (
        "Be brief.",
        256,
        True,
    )
    assert config.resolved_export_dir() == Path("~/chats").expanduser()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("theme = ", "Invalid value"),
        ("them = 'nord'", "them: Extra inputs are not permitted"),
        ("[chat]\nmax_tokens = 0", "chat.max_tokens: Input should be greater than or equal to 1"),
        ("inference_addr = 'localhost'", "inference_addr: Value error, expected HOST:PORT"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).startswith(str(path))
    assert problem in str(raised.value)


def test_saving_the_theme_keeps_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config.toml"
    save_theme(path, "nord")
    assert path.read_text() == 'theme = "nord"\n'
    path.write_text('# my settings\ntheme = "nord"  # dark\n\n[chat]\ntheme = "not this one"\n')
    save_theme(path, "gruvbox")
    assert path.read_text() == (
        '# my settings\ntheme = "gruvbox"\n\n[chat]\ntheme = "not this one"\n'
    )
    assert load_config(path.with_name("missing.toml")).theme is None
