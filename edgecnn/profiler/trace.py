"""Parse ONNX Runtime's profiler trace (``SessionOptions.enable_profiling``) and map its nodes to layers.

The trace is a Chrome-trace JSON list. Each executed kernel is an event with ``cat == "Node"``, a name
``<node name>_kernel_time``, a duration ``dur`` in microseconds and ``args`` holding ``op_name`` and
``provider``. Each ``session.run`` is a ``model_run`` event of category ``Session``.

ONNX Runtime renames nodes it rewrites: a fused Conv+Relu keeps the first node's name (or gets a
``_fused``-style suffix), the NCHWc layout transformer names a node after the *output tensor* of the
original node plus ``_nchwc``, and it inserts ``ReorderInput``/``ReorderOutput`` nodes of its own.
:func:`map_to_layers` maps each trace node back to an original node by, in order: exact name; name minus
``_nchwc`` as an original tensor name (-> its producer); the longest original node name that prefixes it;
then, through the optimized model (``SessionOptions.optimized_model_filepath``), its output/input tensors
and the layers of neighbouring nodes. What cannot be mapped is reported as unattributed, never dropped.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import onnx

_SUFFIXES = ("_kernel_time",)
_RENAME_SUFFIXES = ("_nchwc", "_fused", "_token")


@dataclass
class TraceEvent:
    """One kernel execution from the trace."""

    node: str
    op: str
    provider: str
    dur_us: float
    ts_us: float
    run: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_trace(trace: str | os.PathLike | list[dict[str, Any]], skip_runs: int = 1) -> tuple[list[TraceEvent], int]:
    """Kernel events of an ORT profile, each tagged with the index of the ``model_run`` it belongs to.

    The first ``skip_runs`` runs (warm-up: allocation, first-run kernel selection) are dropped. Returns the
    events and the number of runs kept.
    """
    if isinstance(trace, list):
        raw = trace
    else:
        with open(trace) as f:
            raw = json.load(f)
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in raw
                  if e.get("cat") == "Session" and e.get("name") == "model_run")
    events: list[TraceEvent] = []
    for e in raw:
        if e.get("cat") != "Node" or e.get("ph") != "X":
            continue
        name = str(e.get("name", ""))
        if not name.endswith("_kernel_time"):
            continue  # fence_before/fence_after
        ts = float(e.get("ts", 0))
        run = next((i for i, (a, b) in enumerate(runs) if a <= ts <= b), -1)
        if runs and (run < skip_runs):
            continue
        args = e.get("args", {})
        events.append(TraceEvent(node=name[: -len("_kernel_time")], op=str(args.get("op_name", "")),
                                 provider=str(args.get("provider", "")), dur_us=float(e.get("dur", 0)), ts_us=ts,
                                 run=run))
    kept = max(0, len(runs) - skip_runs) if runs else (1 if events else 0)
    return events, kept


def _strip(name: str) -> list[str]:
    """Candidate original names for a renamed node: the name with ORT's suffixes removed one by one."""
    out = [name]
    changed = True
    while changed:
        changed = False
        for suf in _RENAME_SUFFIXES:
            i = out[-1].rfind(suf)
            if i > 0:
                out.append(out[-1][:i])
                changed = True
                break
    return out


def map_to_layers(node_names: list[str], original: onnx.ModelProto, node_layer: dict[str, int],
                  optimized: onnx.ModelProto | None = None) -> dict[str, int | None]:
    """Map trace node names to layer indices (``node_layer``: original node name -> layer)."""
    producer: dict[str, str] = {}
    for nd in original.graph.node:
        for o in nd.output:
            if o:
                producer[o] = nd.name
    by_length = sorted(node_layer, key=len, reverse=True)
    opt_nodes = {nd.name: nd for nd in optimized.graph.node} if optimized is not None else {}
    opt_producer: dict[str, str] = {}
    opt_consumers: dict[str, list[str]] = defaultdict(list)
    for nd in opt_nodes.values():
        for o in nd.output:
            opt_producer[o] = nd.name
        for i in nd.input:
            opt_consumers[i].append(nd.name)

    def direct(name: str) -> int | None:
        for cand in _strip(name):
            if cand in node_layer:
                return node_layer[cand]
            if cand in producer and producer[cand] in node_layer:
                return node_layer[producer[cand]]
        for orig in by_length:  # e.g. "<conv name>_fused_Relu"
            if name.startswith(orig) and len(orig) >= 3:
                return node_layer[orig]
        return None

    result: dict[str, int | None] = {}
    for name in node_names:
        result[name] = direct(name)
    # second pass: through the optimized graph's tensors and neighbours
    for name in node_names:
        if result[name] is not None or name not in opt_nodes:
            continue
        nd = opt_nodes[name]
        found = None
        for t in list(nd.output) + list(nd.input):
            if t in producer and producer[t] in node_layer:
                found = node_layer[producer[t]]
                break
        seen = {name}
        frontier = [name]
        while found is None and frontier:  # walk up to the nearest mapped producer, then down to consumers
            nxt = []
            for n in frontier:
                for t in opt_nodes[n].input:
                    p = opt_producer.get(t)
                    if p and p not in seen:
                        seen.add(p)
                        layer = result.get(p) if p in result else direct(p)
                        if layer is not None:
                            found = layer
                            break
                        nxt.append(p)
                if found is not None:
                    break
            frontier = nxt
        if found is None:
            for t in nd.output:
                for c in opt_consumers.get(t, []):
                    layer = result.get(c) if c in result else direct(c)
                    if layer is not None:
                        found = layer
                        break
                if found is not None:
                    break
        result[name] = found
    return result


def provider_check(events: list[TraceEvent], requested: str) -> dict[str, Any]:
    """Did every node run on ``requested``? Lists the nodes (and their ops) that ran elsewhere."""
    elsewhere: dict[str, tuple[str, str]] = {}
    for e in events:
        if e.provider and e.provider != requested:
            elsewhere[e.node] = (e.op, e.provider)
    ok = not elsewhere
    if ok:
        msg = f"all {len({e.node for e in events})} nodes ran on {requested}"
    else:
        ops = sorted({f"{op} on {prov}" for op, prov in elsewhere.values()})
        msg = (f"{len(elsewhere)} node(s) did not run on {requested}: " + ", ".join(ops[:8])
               + (" ..." if len(ops) > 8 else ""))
    return {"ok": ok, "requested": requested, "message": msg,
            "nodes": [{"node": n, "op": op, "provider": p} for n, (op, p) in sorted(elsewhere.items())]}
