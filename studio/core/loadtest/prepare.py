"""Preparing a load test: the one way the Load page, `slipway load` and `slipway sweep` turn what
the user chose (where the bodies come from, drift, an API key) into a LoadPlan ready to run.

Bodies are made for the model the server describes at GET /schema (asked with the API key), or
for a schema the caller already has; a payload file is sent as it is, without asking the server.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from studio.core.loadtest.payloads import Drift, PayloadError, bodies_for, fetch_schema, fixed_body
from studio.core.loadtest.plan import LoadPlan
from studio.core.model.schema import ModelSchema
from studio.core.serve.client import auth_headers

PayloadSource = Literal["random", "sample", "reference", "file"]


@dataclass(frozen=True)
class PayloadChoice:
    """Where a test's request bodies come from."""

    source: PayloadSource = "random"
    """random: valid rows drawn from the schema; sample: the model's sample request; reference:
    rows of the dataset at `path`; file: the JSON (or JSON Lines) body at `path`, as it is."""
    path: str | Path | None = None
    drifts: tuple[Drift, ...] = ()
    seed: int = 0


def prepare(plan: LoadPlan, payload: PayloadChoice, *, api_key: str | None = None,
            schema: ModelSchema | None = None) -> LoadPlan:
    """A copy of `plan` with its bodies rendered, their description, and the API key's header;
    checked, so a bad plan is refused before anything is sent. Raises PayloadError when the
    bodies cannot be made and LoadTestError for a bad plan."""
    if payload.source == "file":
        if payload.path is None:
            raise PayloadError("A payload file was chosen, but no file was given.")
        if payload.drifts:
            raise PayloadError("A payload file is sent as it is: it cannot be combined with "
                               "reference rows or drift.")
        bodies, label = fixed_body(payload.path), f"the body in {Path(payload.path).name}"
    else:
        plan.check()  # an unusable URL is said as such, not as a failed GET /schema
        model = schema if schema is not None else fetch_schema(plan.url, api_key)
        bodies, label = bodies_for(model, plan.route, payload.source, payload.path,
                                   list(payload.drifts), payload.seed)
    prepared = replace(plan, payloads=bodies, payload_label=label,
                       headers={**plan.headers, **auth_headers(api_key)})
    prepared.check()
    return prepared
