"""Test helper shared by the ONNX exporter tests: every node of a graph, ``If`` branches included."""

from __future__ import annotations

import onnx


def all_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Every node of ``graph``, including those inside ``If`` branches (recursively)."""
    out: list[onnx.NodeProto] = []
    for node in graph.node:
        out.append(node)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                out += all_nodes(attr.g)
    return out
