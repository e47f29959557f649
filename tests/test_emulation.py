"""Honest timing under emulation, and files prepared for another architecture (no emulator needed: faked inputs).

The detection rule (``edgecnn.runtime.emulation``) on faked machines; the aarch64 features an emulated process sees
(auxiliary vector bits); ``doctor`` and ``bench`` under a faked emulator; ``optimize --target-arch aarch64`` on x86:
int8 with int8 activations, chosen by accuracy and size only, said in the report and the file's metadata.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from cli_helpers import run_cli
from onnx_factory import make_classifier
from tools_helpers import ARM_A76_CPUINFO, XEON_207_CPUINFO

from edgecnn.errors import EdgecnnError
from edgecnn.metadata import decode
from edgecnn.optimize import backends
from edgecnn.optimize.matrix import Candidate, choose_by_size
from edgecnn.runtime import emulation as E
from edgecnn.runtime import precision as PR

X86_HOST = platform.machine().lower() in PR.X86

# --------------------------------------------------------------------------- the rule, on faked machines


def test_native_machines_are_not_emulated() -> None:
    assert not E.detect_emulation(machine="x86_64", cpuinfo=XEON_207_CPUINFO, kernel_arch="x86_64",
                                  comm="python3").emulated
    assert not E.detect_emulation(machine="aarch64", cpuinfo=ARM_A76_CPUINFO, kernel_arch="aarch64",
                                  comm="python3.11").emulated
    # a 32-bit process on a 64-bit kernel of its own family is native (compat mode, not an emulator)
    assert not E.detect_emulation(machine="armv7l", cpuinfo=ARM_A76_CPUINFO, kernel_arch="aarch64").emulated
    assert not E.detect_emulation(machine="i686", cpuinfo=XEON_207_CPUINFO, kernel_arch="x86_64").emulated
    # nothing known beyond the process's own architecture: native
    assert not E.detect_emulation(machine="aarch64").emulated


def test_kernel_of_another_family_means_emulated_even_when_cpuinfo_is_emulated_too() -> None:
    # qemu-user 8.2+ writes an aarch64 /proc/cpuinfo for its guest; the kernel's own architecture still shows
    e = E.detect_emulation(machine="aarch64", cpuinfo=ARM_A76_CPUINFO, kernel_arch="x86_64\n", comm="python3.11")
    assert e.emulated and e.host == "x86" and e.reason == "the kernel is x86_64 and this process aarch64"
    assert e.timing_note.startswith("timings are emulated (the kernel is x86_64")
    assert "not an aarch64 device" in e.timing_note


def test_host_cpuinfo_seen_by_an_aarch64_process_means_emulated() -> None:
    # qemu-user before 8.2 passes the host's x86 /proc/cpuinfo through; kernels before 6.1 have no kernel.arch
    e = E.detect_emulation(machine="aarch64", cpuinfo=XEON_207_CPUINFO, kernel_arch=None)
    assert e.emulated and e.host == "x86" and "/proc/cpuinfo describes an x86 CPU" in e.reason
    # and the reverse: an x86 process shown an Arm cpuinfo (an x86 emulator on an Arm machine)
    assert E.detect_emulation(machine="x86_64", cpuinfo=ARM_A76_CPUINFO).host == "arm"


def test_qemus_own_name_means_emulated() -> None:
    e = E.detect_emulation(machine="aarch64", cpuinfo="", comm="qemu-aarch64-st\n")
    assert e.emulated and e.reason == "this process is qemu-aarch64-st"


def test_the_environment_variable_decides_first() -> None:
    assert E.detect_emulation(machine="x86_64", cpuinfo=XEON_207_CPUINFO, env={"EDGECNN_EMULATED": "1"}).emulated
    assert not E.detect_emulation(machine="aarch64", kernel_arch="x86_64", env={"EDGECNN_EMULATED": "0"}).emulated


def test_families() -> None:
    assert [E.family(a) for a in ("x86_64", "AMD64", "aarch64", "arm64", "armv7l", "riscv64", "mips")] == [
        "x86", "x86", "arm", "arm", "arm", "riscv", None]
    assert E.cpuinfo_family(XEON_207_CPUINFO) == "x86" and E.cpuinfo_family(ARM_A76_CPUINFO) == "arm"
    assert E.cpuinfo_family("processor : 0\n") is None


def test_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGECNN_EMULATED", raising=False)
    assert E.emulation().arch == platform.machine().lower()
    monkeypatch.setenv("EDGECNN_EMULATED", "1")
    assert E.emulation().emulated and E.emulation().reason == "EDGECNN_EMULATED=1"


def test_aarch64_features_from_the_auxiliary_vector() -> None:
    # HWCAP: asimd (bit 1), fphp (9), asimdhp (10), asimddp (20); HWCAP2: i8mm (13), bf16 (14)
    hwcap = (1 << 1) | (1 << 9) | (1 << 10) | (1 << 20)
    assert PR.hwcap_flags(hwcap) == {"asimd", "fphp", "asimdhp", "asimddp"}
    assert PR.hwcap_flags(0, (1 << 13) | (1 << 14)) == {"i8mm", "bf16"}
    feats = PR.CpuFeatures("aarch64", PR.hwcap_flags(hwcap, 1 << 14))
    assert feats.native_bf16 and feats.native_fp16 and "int8 dot product (SDOT/UDOT)" in feats.describe()


# --------------------------------------------------------------------------- doctor and bench under a faked emulator


def test_doctor_says_emulated_and_lists_the_features(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    from edgecnn.runtime import doctor

    fake = E.Emulation(True, "aarch64", "the kernel is x86_64 and this process aarch64", "x86")
    monkeypatch.setattr(E, "emulation", lambda: fake)
    info = doctor.cpu_info()
    assert info["emulated"]["reason"] == fake.reason
    code, out, _ = run_cli(capsys, "doctor")
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("emulated"))
    assert fake.reason in line and "cpu flags above are the ones the emulator announces" in line
    code, out, _ = run_cli(capsys, "doctor", "--json")
    assert json.loads(out)["cpu"]["emulated"]["arch"] == "aarch64"
    monkeypatch.setattr(E, "emulation", lambda: E.Emulation(False, "x86_64"))
    assert doctor.cpu_info()["emulated"] is None


def test_bench_labels_emulated_timings_and_skips_the_peak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    model = make_classifier(tmp_path / "tiny.onnx", size=16)
    monkeypatch.setenv("EDGECNN_EMULATED", "1")
    code, out, err = run_cli(capsys, "bench", model, "--iters", "1", "--warmup", "0", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert any(w.startswith("timings are emulated (EDGECNN_EMULATED=1)") for w in rep["warnings"])
    assert rep["peak"] is None and rep["machine"]["emulated"] == "EDGECNN_EMULATED=1"
    code, out, _ = run_cli(capsys, "bench", model, "--iters", "1", "--warmup", "0")
    assert code == 0 and "timings are emulated" in out
    monkeypatch.setenv("EDGECNN_EMULATED", "0")
    code, out, _ = run_cli(capsys, "bench", model, "--iters", "1", "--warmup", "0", "--json")
    assert code == 0 and not any("emulated" in w for w in json.loads(out)["warnings"])


# --------------------------------------------------------------------------- choosing without timings


def _cand(provider: str, precision: str, file: str, p50: float, size: int, within: bool = True,
          sqnr: float = 40.0) -> Candidate:
    return Candidate(provider, precision, 1, file=file, status="ok", p50_ms=p50, size_bytes=size,
                     within_budget=within, sqnr_db=sqnr)


def test_choose_by_size_ignores_latency() -> None:
    cands = [_cand("cpu", "fp32", "fp32", 10.0, 400, sqnr=float("inf")), _cand("cpu", "fp16", "fp16", 1.0, 200),
             _cand("cpu", "int8", "int8", 50.0, 100), _cand("openvino", "int8", "int8", 2.0, 100, sqnr=45.0),
             _cand("openvino", "bf16", "fp32", 0.5, 400)]
    best = choose_by_size(cands, 1, prefer="cpu")
    assert (best.provider, best.precision) == ("cpu", "int8")  # smallest; same file: the reference backend
    cands[2].within_budget = cands[3].within_budget = False
    assert choose_by_size(cands, 1, prefer="cpu").precision == "fp16"
    cands[1].within_budget = False
    # fp32-sized: the file run at its own precision (fp32), not OpenVINO's bf16 of the same file
    assert (choose_by_size(cands, 1, prefer="cpu").provider, choose_by_size(cands, 1).precision) == ("cpu", "fp32")
    assert choose_by_size([_cand("cpu", "int8", "int8", 1.0, 10, within=False)], 1) is None


def test_target_arch_names_and_activation_types() -> None:
    x86 = {"arch": "x86_64"}
    assert backends.target_arch(None, x86) == "x86_64"
    assert backends.target_arch("arm64", x86) == "aarch64" and backends.target_arch("AMD64", x86) == "x86_64"
    with pytest.raises(EdgecnnError, match="unknown target architecture 'riscv64': choose from aarch64, x86_64"):
        backends.target_arch("riscv64", x86)
    assert backends.int8_activation_type({"arch": "aarch64"}) == "int8"
    assert backends.int8_activation_type(x86) == "uint8"


def test_timings_speak_for_the_target_only_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGECNN_EMULATED", "0")
    assert backends.timing_unusable("x86_64", {"arch": "x86_64"}) is None
    assert "cannot be timed here" in backends.timing_unusable("aarch64", {"arch": "x86_64"})
    monkeypatch.setenv("EDGECNN_EMULATED", "1")
    assert backends.timing_unusable("aarch64", {"arch": "aarch64"}).startswith("timings are emulated")


def _activation_types(path: str | Path) -> set[int]:
    """The element types of the zero points of a QDQ file's activations (initializers named *_zero_point that feed
    a QuantizeLinear)."""
    m = onnx.load(str(path))
    zps = {n.input[2] for n in m.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2}
    return {t.data_type for t in m.graph.initializer if t.name in zps}


@pytest.mark.skipif(not X86_HOST, reason="prepares a file for another architecture from x86")
def test_optimize_for_aarch64_on_x86(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = make_classifier(tmp_path / "tiny.onnx", size=16)
    out = tmp_path / "out"
    code, shown, err = run_cli(capsys, "optimize", model, "--target-arch", "aarch64", "--providers", "cpu",
                               "--precisions", "fp32,int8", "--batch", "1", "--duration", "0.1", "--threads", "1",
                               "-o", out)
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    assert rep["target_arch"] == "aarch64" and rep["int8_activation_type"] == "int8"
    assert rep["chosen_by"] == "accuracy and size" and "cannot be timed here" in rep["timing_note"]
    assert any(n.startswith("chosen by accuracy and size only, not by speed") for n in rep["notes"])
    ch = rep["chosen"]
    ok = [c for c in rep["candidates"] if c["status"] == "ok" and c["within_budget"] and c["batch"] == 1]
    assert ch["size_bytes"] == min(c["size_bytes"] for c in ok)  # the smallest in budget, whatever its speed
    assert "chosen by accuracy and size for aarch64" in shown
    meta = decode({p.key: p.value for p in onnx.load(ch["path"]).metadata_props})["optimize"]
    assert meta["target_arch"] == "aarch64" and meta["chosen_by"] == "accuracy and size"
    assert meta["timings_used"] is False and "cannot be timed here" in meta["timing_note"]
    assert meta["int8_activation_type"] == "int8"
    if ch["file_precision"] == "int8":
        assert _activation_types(ch["path"]) == {onnx.TensorProto.INT8}
    # the int8 candidate was prepared with int8 activations whichever file won
    assert "target aarch64, chosen by accuracy and size" in (out / "report.md").read_text()
    # the same model for this machine: uint8 activations, chosen by latency, timings used
    rep2 = backends_run(model, tmp_path / "native")
    assert rep2["int8_activation_type"] == "uint8" and rep2["chosen_by"] == "latency" and rep2["timing_note"] is None


def backends_run(model: Path, out: Path, **kw: Any) -> dict[str, Any]:
    from edgecnn.optimize import optimize

    return optimize(model, output=out, providers=["cpu"], precisions=["fp32", "int8"], batches=[1], duration=0.1,
                    threads=1, progress=False, **kw)


def test_optimize_under_an_emulator_refuses_to_choose_by_timings(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_classifier(tmp_path / "tiny.onnx", size=16)
    monkeypatch.setenv("EDGECNN_EMULATED", "1")
    rep = backends_run(model, tmp_path / "out")
    assert rep["chosen_by"] == "accuracy and size" and rep["timing_note"].startswith("timings are emulated")
    meta = decode({p.key: p.value for p in onnx.load(rep["chosen"]["path"]).metadata_props})["optimize"]
    assert meta["timings_used"] is False and meta["chosen_by"] == "accuracy and size"


def test_a_file_chosen_without_timings_makes_no_speed_claim() -> None:
    from edgecnn.profiler.provenance import decision_warnings

    decision = {"runtime": "cpu", "precision": "int8", "cpu": "Some x86 CPU", "runtime_versions": {},
                "timings_used": False, "chosen_by": "accuracy and size", "target_arch": "aarch64"}
    assert decision_warnings({"optimize": decision}, provider="cpu", cpu="an Arm core", versions={}) == []
    decision["timings_used"] = True
    assert decision_warnings({"optimize": decision}, provider="cpu", cpu="an Arm core", versions={})


def test_cli_rejects_an_unknown_target(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "optimize", make_classifier(tmp_path / "t.onnx", size=16), "--target-arch",
                           "mips")
    assert code == 2 and "'mips' is not one of 'aarch64', 'x86_64'" in err


def test_emulated_python_finds_no_launcher_in_an_empty_folder(tmp_path: Path) -> None:
    from tools_helpers import tool

    assert tool("check_aarch64").emulated_python(tmp_path) is None
    assert np.isinf(tool("check_aarch64").sqnr_db(np.ones((2, 3)), np.ones((2, 3))))


def test_auto_precision_measures_nothing_under_an_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgecnn.runtime import auto_precision as A
    from edgecnn.runtime.backends import registry

    opened: list[str] = []
    monkeypatch.setenv("EDGECNN_EMULATED", "1")
    decision, runner = A.decide(registry.get("cpu"), ["fp32", "bf16"], key={"cpu": "x"}, metadata={},
                                open_runner=lambda p: opened.append(p))  # type: ignore[arg-type,return-value]
    assert (decision.chosen, decision.source, runner, opened) == ("fp32", "emulated", None, [])
    assert decision.describe().startswith("auto ran fp32 (the reference precision) without measuring: timings are")
