"""Write our written examples, expanded from ``training_data/templates/``, to ``written.jsonl`` to read them.

The loader (``assistant.redflags.data.written``) expands the templates itself on every load, so the file is only
for reading: ``.venv/bin/python training_data/build_written.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from assistant.redflags.data.written import written_rows

HERE = Path(__file__).resolve().parent
OUT = HERE / "written.jsonl"


def main() -> None:
    rows = written_rows(HERE)
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} examples to {OUT}")


if __name__ == "__main__":
    main()
