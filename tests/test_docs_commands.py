"""Documented commands are checked: every ``edgecnn ...`` line in a fenced block of README.md and docs/ is parsed
by the click command it names (an unknown command or option, a missing option value or too many arguments fails),
and a named fast subset runs against tiny fixtures, as Polygraphy runs the commands of its READMEs.

Lines that cannot run here carry a marker comment (``# needs: gpu`` ...): MARKERS lists them, and a line naming
a GPU provider without its marker fails.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import numpy as np
import pytest
from PIL import Image

from edgecnn.cli import cli, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"^(?:\$ )?(?:\S*/)?edgecnn(?:\s|$)")

#: markers for documented lines that cannot run on a CPU-only machine without a cluster
MARKERS = {
    "gpu": "needs an NVIDIA GPU (CUDA or TensorRT): tools/gpu_smoke.sh verifies these on one",
    "cluster": "needs a Ray cluster or object storage",
}
GPU = re.compile(r"--providers?[ =]\S*\b(cuda|tensorrt)\b")


def documented_lines() -> list[tuple[str, str, str]]:
    """(page:line, command text without the program name, marker or '') for every fenced ``edgecnn`` line."""
    found = []
    for page in PAGES:
        fenced, pending, start = False, "", 0
        for no, raw in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.strip()
            if line.startswith("```"):
                fenced = not fenced
                continue
            if not fenced:
                continue
            if pending:
                pending += " " + line
            elif COMMAND.match(line):
                pending, start = line, no
            else:
                continue
            if pending.endswith("\\"):
                pending = pending[:-1]
                continue
            text, _, comment = pending.partition(" #")
            marker = re.search(r"needs: (\w+)", comment)
            words = shlex.split(text.removeprefix("$ "))
            found.append((f"{page.name}:{start}", shlex.join(words[1:]), marker.group(1) if marker else ""))
            pending = ""
    return found


DOCUMENTED = documented_lines()


def parse(argv: list[str]) -> click.Command:
    """Resolve the command of ``argv`` and parse its options as click would (no callbacks, no file checks)."""
    ctx = click.Context(cli, info_name="edgecnn")
    name, cmd, rest = cli.resolve_command(ctx, argv)
    sub = click.Context(cmd, info_name=name, parent=ctx)
    opts, args, _ = cmd.make_parser(sub).parse_args(list(rest))
    if args and not cmd.allow_extra_args:  # the parser fills the arguments; what is left over is too many
        raise click.UsageError(f"too many arguments: {args}")
    for p in cmd.params:
        if isinstance(p, click.Option) and p.name in opts and not p.is_flag and not p.count and opts[p.name] is None:
            raise click.UsageError(f"option {p.opts[0]} needs a value")
    return cmd


def test_docs_hold_documented_commands() -> None:
    assert len(DOCUMENTED) >= 60, "the README and docs/ show the commands in fenced blocks"


@pytest.mark.parametrize(("where", "command", "marker"), DOCUMENTED, ids=[w for w, _, _ in DOCUMENTED])
def test_documented_command_parses(where: str, command: str, marker: str) -> None:
    parse(shlex.split(command))
    if GPU.search(command) and not where.startswith("cli.md"):  # cli.md: --help examples, parsed all the same
        assert marker == "gpu", f"{where}: a GPU command needs the comment '# needs: gpu'"
    assert marker in ("", *MARKERS), f"{where}: unknown marker {marker!r}; known: {sorted(MARKERS)}"


def test_parser_rejects_what_click_rejects() -> None:
    """The check above can fail: unknown commands and options, missing values, extra arguments."""
    for bad in (["frobnicate"], ["export", "resnet18", "--no-such-option"], ["bench", "m.onnx", "--batch"],
                ["inspect", "a.onnx", "b.onnx"]):
        with pytest.raises(click.UsageError):
            parse(bad)


# The fast subset: documented lines run as written, with lenet5 in place of the large zoo models and generated
# images in place of the user's, in a fresh folder with a private cache (~15 s in all).
RUN = [
    "list",
    "export resnet50 -o models/",
    "inspect models/resnet50.onnx",
    "predict models/resnet50.onnx cat.jpg",
    "profile vgg16 --per-layer",
    "export resnet18",
    "inspect resnet18.onnx --json",
    "quantize resnet50 --calib imgs/",
    "profile resnet50 --csv layers.csv",
    "predict resnet18.onnx cat.jpg dog.jpg --top 5",
    "convert squeezenet.onnx -o mobile/",
    "bundle resnet18.onnx -o ship/resnet18",
    "bundle --verify ship/resnet18",
    "doctor --json",
]
SMALL = {"resnet50": "lenet5", "resnet18": "lenet5", "vgg16": "lenet5", "squeezenet": "lenet5"}


def _small(command: str) -> list[str]:
    words = []
    for word in shlex.split(command):
        for big, small in SMALL.items():
            word = re.sub(rf"\b{big}\b", small, word)
        words.append(word)
    return words


def test_run_subset_is_documented() -> None:
    documented = {c for _, c, _ in DOCUMENTED}
    missing = [c for c in RUN if c not in documented]
    assert not missing, f"RUN names lines no page shows any more: {missing}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("documented")
    rng = np.random.default_rng(0)
    (d / "imgs").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(d / "imgs" / f"{i}.png")
    for name in ("cat.jpg", "dog.jpg"):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(d / name)
    return d


def test_documented_subset_runs(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(workdir)
    for command in RUN:
        argv = _small(command)
        try:
            main(argv)
        except SystemExit as e:
            assert e.code in (0, None), f"edgecnn {command} -> exit {e.code}: {capsys.readouterr().err}"
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err, command
        if argv[0] == "convert":  # 'squeezenet.onnx' of byo-onnx.md is any file: lenet5.onnx from the export
            assert (workdir / "mobile" / "lenet5.ort").is_file()
    assert (workdir / "models" / "lenet5.onnx").is_file() and (workdir / "lenet5.int8.onnx").is_file()
    assert (workdir / "layers.csv").read_text().count("\n") > 5
