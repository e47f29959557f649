"""The candidate matrix (runtime x precision x batch) and the choice under an accuracy budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from edgecnn.errors import EdgecnnError
from edgecnn.optimize import backends

OK = "ok"
#: latencies within this fraction of the fastest are a tie (measurement noise); the smaller file wins
TIE_TOLERANCE = 0.02


@dataclass
class Candidate:
    """One runtime x precision x batch, and what was measured for it (the JSON contract's fields)."""

    provider: str
    precision: str
    batch: int
    #: which file runs it: fp32, fp16, int8 or int8-kept-float
    file: str = ""
    kept_float: list[str] = field(default_factory=list)
    status: str = "pending"
    p50_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    throughput: float | None = None
    iters: int | None = None
    build_s: float | None = None
    size_bytes: int | None = None
    peak_rss_bytes: int | None = None
    #: top-1 / top-5 on labelled data (fractions), None without labels
    accuracy: float | None = None
    top5: float | None = None
    #: against the fp32 reference on the same inputs
    agreement: float | None = None
    cosine: float | None = None
    sqnr_db: float | None = None
    #: detection and segmentation files: agreement with fp32 without labels (matched-box F1 at IoU 0.5, share of
    #: pixels whose class agrees), and labelled metrics in points when a task metric is given
    matched_f1: float | None = None
    pixel_agreement: float | None = None
    map50: float | None = None
    map: float | None = None
    miou: float | None = None
    #: what ``p50_ms`` covers: ``graph``, or end to end for a detector (decoding, host NMS) or segmenter (argmax)
    latency_scope: str | None = None
    #: points lost against fp32 (top-1 with labels, else top-1 agreement; a task file's primary metric, else its
    #: agreement)
    accuracy_drop: float | None = None
    within_budget: bool | None = None
    speedup_vs_fp32: float | None = None
    providers_used: list[str] = field(default_factory=list)
    reference: bool = False
    #: the precision the backend verified ran (None: not measured); another than ``precision`` = never chosen
    ran_precision: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """(provider, precision, file): candidates differing only by batch share accuracy."""
        return (self.provider, self.precision, self.file)

    @property
    def name(self) -> str:
        tag = f"{self.provider} {self.precision}"
        if self.kept_float:
            tag += f" ({len(self.kept_float)} kept in float)"
        return f"{tag} b{self.batch}"

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def label_ran(self) -> bool:
        """False when the backend reports another precision than the label (e.g. "fp16" whose outputs equal fp32
        bit for bit): such a row is reported as what ran and never chosen."""
        return self.ran_precision in (None, self.precision)

    def skip(self, reason: str) -> None:
        self.status = f"skipped: {reason}"

    def fail(self, reason: str) -> None:
        self.status = f"failed: {reason}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (an infinite SQNR becomes the string 'inf')."""
        d = asdict(self)
        if d["sqnr_db"] is not None and d["sqnr_db"] == float("inf"):
            d["sqnr_db"] = "inf"
        return d


def parse_choices(values: Sequence[str] | None, known: Sequence[str], what: str) -> list[str]:
    """Validate ``values`` (None: every known one), keeping their order and dropping repeats."""
    if not values:
        return list(known)
    out: list[str] = []
    for v in values:
        v = v.strip().lower()
        if v not in known:
            raise EdgecnnError(f"unknown {what} {v!r}: choose from {', '.join(known)}.")
        if v not in out:
            out.append(v)
    return out


def build_matrix(providers: Sequence[str], precisions: Sequence[str], batches: Sequence[int],
                 runtimes: Mapping[str, str | None], valid: Mapping[str, Mapping[str, str | None]],
                 reference: str = "cpu") -> list[Candidate]:
    """Every candidate in measuring order: the fp32 reference (on backend ``reference``: ONNX Runtime's CPU
    provider, else OpenVINO) first, then every runtime x precision at the primary batch (``batches[0]``), then
    the other batches. A combination that cannot run here is listed once, at the primary batch, as
    ``skipped: <reason>``; a runtime that is not available here is one row with precision ``all``."""
    primary = int(batches[0])
    ref = Candidate(reference, "fp32", primary, file="fp32", reference=True)
    first: list[Candidate] = [ref]
    rest: list[Candidate] = []
    for p in providers:
        if runtimes.get(p) and p != reference:
            gone = Candidate(p, "all", primary)
            gone.skip(str(runtimes[p]))
            first.append(gone)
            continue
        for prec in precisions:
            if (p, prec) == (reference, "fp32"):
                rest.extend(Candidate(p, prec, int(b), file="fp32") for b in batches[1:])
                continue
            reason = valid[p].get(prec)
            c = Candidate(p, prec, primary, file=backends.file_kind(p, prec) if not reason else "")
            if reason:
                c.skip(reason)
                first.append(c)
                continue
            first.append(c)
            rest.extend(Candidate(p, prec, int(b), file=c.file) for b in batches[1:])
    return first + rest


def choose(candidates: Sequence[Candidate], batch: int, *, tie: float = TIE_TOLERANCE) -> Candidate | None:
    """The fastest ``ok`` candidate within budget at ``batch`` (p50) whose label is what ran; among those within
    ``tie`` of the fastest, the smallest file. None when nothing qualifies."""
    pool = [c for c in candidates if c.ok and c.batch == batch and c.within_budget and c.p50_ms is not None
            and c.label_ran]
    if not pool:
        return None
    fastest = min(c.p50_ms for c in pool if c.p50_ms is not None)
    tied = [c for c in pool if c.p50_ms is not None and c.p50_ms <= fastest * (1 + tie)]
    return min(tied, key=lambda c: (c.size_bytes or 0, c.p50_ms))


def choose_by_size(candidates: Sequence[Candidate], batch: int, *, prefer: str | None = None) -> Candidate | None:
    """Without timings that speak for the target (another architecture, an emulator): the smallest file among the
    ``ok`` candidates within budget at ``batch`` whose label is what ran; among files of one size, the one run at
    the file's own precision, then on backend ``prefer`` (the reference), then the best SQNR. None when nothing
    qualifies."""
    pool = [c for c in candidates if c.ok and c.batch == batch and c.within_budget and c.label_ran]
    if not pool:
        return None
    def key(c: Candidate) -> tuple[float, bool, bool, float]:
        file_precision = "int8" if c.file.startswith("int8") else c.file
        return (float(c.size_bytes if c.size_bytes is not None else float("inf")), c.precision != file_precision,
                c.provider != prefer, -float(c.sqnr_db if c.sqnr_db is not None else float("-inf")))

    return min(pool, key=key)
