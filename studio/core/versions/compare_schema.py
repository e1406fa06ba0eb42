"""What differs between two versions before anything runs: their schemas (inputs, outputs, features,
task and classes, each added, removed or changed) and their files (size, opsets, operators).

`schema_diff` lists only what differs, so an empty list means "takes and gives the same"; `facts`
describes one version's file for the side-by-side columns.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from studio.core.model.artifact import ModelArtifact
from studio.core.model.schema import FeatureSpec, ModelSchema, OutputSpec, TensorSpec, shape_text
from studio.core.units import printable

Part = Literal["input", "output", "feature", "task", "classes"]
Change = Literal["added", "removed", "changed"]


class SchemaChange(BaseModel):
    """One difference: `added` exists in B only, `removed` in A only, `changed` in both but
    described differently (`a` and `b` say how)."""

    part: Part
    name: str
    change: Change
    a: str | None = None
    b: str | None = None


def _shape(shape: list) -> str:
    """A symbolic dimension ("N", "unk__1") takes any size, as an unknown one does: renaming it
    changes nothing a caller sees."""
    return shape_text([d if isinstance(d, int) else None for d in shape])


def _tensor(spec: TensorSpec) -> str:
    return f"{spec.dtype} {_shape(spec.shape)}"


def _output(spec: OutputSpec) -> str:
    return f"{spec.role}, {spec.dtype} {_shape(spec.shape)}"


def _feature(spec: FeatureSpec) -> str:
    text = f"{spec.kind}, {spec.dtype}"
    if spec.categories:
        shown = ", ".join(printable(c) for c in spec.categories[:6])
        text += f", categories {shown}{' …' if len(spec.categories) > 6 else ''}"
    return text


def _by_name(part: Part, a: dict[str, str], b: dict[str, str]) -> list[SchemaChange]:
    changes = [SchemaChange(part=part, name=name, change="removed", a=a[name])
               for name in a if name not in b]
    changes += [SchemaChange(part=part, name=name, change="added", b=b[name])
                for name in b if name not in a]
    changes += [SchemaChange(part=part, name=name, change="changed", a=a[name], b=b[name])
                for name in a if name in b and a[name] != b[name]]
    return changes


def schema_diff(a: ModelSchema, b: ModelSchema) -> list[SchemaChange]:
    """Inputs, outputs and features added, removed or changed (type, shape, kind, categories);
    a different task; classes added or removed."""
    changes = _by_name("input", {t.name: _tensor(t) for t in a.inputs},
                       {t.name: _tensor(t) for t in b.inputs})
    changes += _by_name("output", {o.name: _output(o) for o in a.outputs},
                        {o.name: _output(o) for o in b.outputs})
    changes += _by_name("feature", {f.name: _feature(f) for f in a.features},
                        {f.name: _feature(f) for f in b.features})
    if a.task != b.task:
        changes.append(SchemaChange(part="task", name="task", change="changed", a=a.task,
                                    b=b.task))
    classes_a = [str(c) for c in a.class_names or []]
    classes_b = [str(c) for c in b.class_names or []]
    changes += [SchemaChange(part="classes", name=printable(c), change="removed")
                for c in classes_a if c not in classes_b]
    changes += [SchemaChange(part="classes", name=printable(c), change="added")
                for c in classes_b if c not in classes_a]
    return changes


class VersionFacts(BaseModel):
    """One version's file, for its column."""

    side: str
    title: str
    reference: str
    """What the person gave."""
    path: str
    format: str
    file_size: int
    """The file as given (a pickle, a booster, an ONNX file)."""
    onnx_path: str
    onnx_size: int
    sha256: str
    """Of the ONNX file run and served."""
    ir_version: int
    opsets: dict[str, int]
    producer: str
    node_count: int
    parameter_count: int
    operators: dict[str, int]
    task: str


def facts(side: str, title: str, reference: str, artifact: ModelArtifact,
          onnx: ModelArtifact) -> VersionFacts:
    info = onnx.schema.metadata.onnx
    assert info is not None, "facts are taken of the ONNX form"
    return VersionFacts(
        side=side, title=title, reference=reference, path=str(artifact.path),
        format=artifact.format, file_size=artifact.schema.metadata.file_size,
        onnx_path=str(onnx.model_file), onnx_size=onnx.model_file.stat().st_size,
        sha256=onnx.schema.metadata.sha256, ir_version=info.ir_version, opsets=dict(info.opsets),
        producer=printable(" ".join(filter(None, (info.producer, info.producer_version)))),
        node_count=info.node_count, parameter_count=info.parameter_count,
        operators=dict(info.operators), task=onnx.schema.task)


def operators_side_by_side(a: VersionFacts, b: VersionFacts) -> list[tuple[str, int, int]]:
    """(operator, count in A, count in B) for every operator either uses, the most used first."""
    names = sorted(set(a.operators) | set(b.operators),
                   key=lambda op: (-max(a.operators.get(op, 0), b.operators.get(op, 0)), op))
    return [(op, a.operators.get(op, 0), b.operators.get(op, 0)) for op in names]
