"""Write the README's table of settings from the fields of wae/config.py (``make settings-table``);
tests/test_settings.py fails while the table is stale."""

from __future__ import annotations

from pathlib import Path

from wae.config import settings_table

README = Path(__file__).parents[1] / "README.md"
START = "<!-- settings:start (made from wae/config.py by make settings-table; do not edit) -->"
END = "<!-- settings:end -->"


def main() -> None:
    text = README.read_text()
    before, rest = text.split(START)
    _, after = rest.split(END)
    README.write_text(f"{before}{START}\n{settings_table()}\n{END}{after}")
    print(f"wrote the settings table into {README}")


if __name__ == "__main__":
    main()
