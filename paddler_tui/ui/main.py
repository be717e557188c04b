"""``paddler-tui`` with no subcommand: run the app, then stop the embedded default it started."""

from __future__ import annotations

import logging
import sys

from paddler_tui.client.chat.conversation_store import DATABASE_FILENAME
from paddler_tui.net_address import HostPort
from paddler_tui.paths import data_dir, log_dir
from paddler_tui.ui.app import PaddlerTuiApp, TuiOptions
from paddler_tui.ui.config import ConfigError, config_path, load_config

LOG_FILENAME = "tui.log"


def _log_to_file(level: str) -> None:
    """The terminal belongs to the app, so log lines go to a file instead of stderr."""
    directory = log_dir()
    directory.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(directory / LOG_FILENAME, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())


def run_tui(
    inference_addr: HostPort | None,
    management_addr: HostPort | None,
    *,
    default_inference_addr: str,
    default_management_addr: str,
    api_key: str | None,
    log_level: str,
) -> int:
    path = config_path()
    try:
        config = load_config(path)
    except ConfigError as error:
        print(f"paddler-tui: {error}", file=sys.stderr)
        return 2
    _log_to_file(log_level)
    app = PaddlerTuiApp(
        TuiOptions(
            inference_addr=str(inference_addr or config.inference_addr or default_inference_addr),
            management_addr=str(
                management_addr or config.management_addr or default_management_addr
            ),
            start_embedded=inference_addr is None and management_addr is None,
            database_path=data_dir() / DATABASE_FILENAME,
            config_path=path,
            config=config,
            api_key=api_key,
        )
    )
    try:
        app.run()
    finally:
        if app.embedded is not None and app.embedded.launched:
            print("paddler-tui: stopping the embedded cluster…", file=sys.stderr)
            print(app.embedded.stop(), file=sys.stderr)
    return app.return_code or 0
