"""The embedding examples (examples/js, examples/cpp) decide every key of the metadata contract: each key of
edgecnn/metadata.py's KEYS is either honoured or listed as not about the input, in both languages alike. A key
added to the contract fails here until the examples say what they do with it (toolchains not needed)."""

from __future__ import annotations

import re
from pathlib import Path

from edgecnn.metadata import KEYS

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "examples" / "js" / "edgecnn.mjs"
CPP = ROOT / "examples" / "cpp" / "src" / "metadata.hpp"
#: keys the examples handle before the contract lists them: the task and the letterbox of detectors
AHEAD = {"task", "letterbox"}
#: what a detection or segmentation file needs beyond a classifier's keys: honoured since the examples run them
TASK_KEYS = {"task", "resize", "outputs", "nms", "box_format"}


def js_list(name: str) -> list[str]:
    block = re.search(rf"export const {name} = \[(.*?)\];", JS.read_text(), re.S)
    assert block, f"{name} not found in {JS.name}"
    return re.findall(r"'([a-z_0-9]+)'", block.group(1))


def cpp_list(name: str) -> list[str]:
    text = CPP.read_text()
    block = re.search(rf"// {name}:(.*?)(?=\n// [A-Z_]+:|\n\n)", text, re.S)
    assert block, f"{name} not found in {CPP.name}"
    return block.group(1).replace("//", " ").split()


def test_every_contract_key_is_decided_by_the_examples() -> None:
    honoured, ignored = js_list("HONOURED_KEYS"), js_list("IGNORED_KEYS")
    assert not set(honoured) & set(ignored)
    missing = set(KEYS) - set(honoured) - set(ignored)
    assert not missing, f"examples/js/edgecnn.mjs does not say what it does with {sorted(missing)}"
    assert AHEAD <= set(honoured)
    assert TASK_KEYS <= set(honoured), "the examples run detectors and segmenters: their keys are honoured"
    preprocessing = {"input_layout", "input_size", "channels", "mean", "std", "channel_order", "crop_fraction",
                     "io_dtype"}
    assert preprocessing <= set(honoured), "a preprocessing key must be honoured (or refused), never ignored"


def test_cpp_and_js_decide_alike() -> None:
    assert sorted(cpp_list("HONOURED_KEYS")) == sorted(js_list("HONOURED_KEYS"))
    assert sorted(cpp_list("IGNORED_KEYS")) == sorted(js_list("IGNORED_KEYS"))


def test_every_honoured_key_is_read_by_both_examples() -> None:
    src = ROOT / "examples" / "cpp" / "src"
    js, cpp = JS.read_text(), (src / "metadata.cpp").read_text() + (src / "tasks.cpp").read_text()
    for key in js_list("HONOURED_KEYS"):
        assert f"get('{key}')" in js, f"edgecnn.mjs lists {key} as honoured but never reads it"
        assert f'"{key}"' in cpp, f"metadata.cpp and tasks.cpp never read {key}"  # get("key"), or a loop over keys
