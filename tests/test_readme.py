"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "build_video_classifier" in b and "TemporalShift(" in b)
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["model"].output_shape == (None, 174)
    assert namespace["y"].shape == (16, 7, 7, 64)
    assert namespace["tsm"].count_params() == namespace["base"].count_params()


def test_ci_runs_exactly_the_readme_test_command():
    block = next(b for b in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S) if "pytest" in b)
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    commands = [line for line in ci if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == block.strip().splitlines()
