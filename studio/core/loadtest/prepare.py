"""Preparing a load test: the one way the Load page, `slipway load` and `slipway sweep` turn what
the user chose (where the bodies come from, drift, an API key) into a LoadPlan ready to run.

Bodies are made for the model the server describes at GET /schema (asked with the API key), or
for a schema the caller already has; a payload file is sent as it is, without asking the server.
By default they are rows like the server's reference data when it has a reference profile from a
dataset (GET /reference), so that a load test does not look like drift; random valid rows from the
schema otherwise, and the plan's label says which.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from studio.core.loadtest.payloads import (
    Drift,
    PayloadError,
    bodies_for,
    fetch_reference,
    fetch_schema,
    fixed_body,
)
from studio.core.loadtest.plan import LoadPlan
from studio.core.model.schema import ModelSchema
from studio.core.serve.client import auth_headers

PayloadSource = Literal["default", "profile", "random", "sample", "reference", "file"]


@dataclass(frozen=True)
class PayloadChoice:
    """Where a test's request bodies come from."""

    source: PayloadSource = "default"
    """default: rows like the server's reference data when it has some, else random rows;
    profile: rows like the server's reference data (an error when it has none); random: valid
    rows drawn from the schema; sample: the model's sample request; reference: rows of the dataset
    at `path`; file: the JSON (or JSON Lines) body at `path`, as it is."""
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
        name = plan.model
    else:
        plan.check()  # an unusable URL is said as such, not as a failed GET /schema
        model = schema if schema is not None else fetch_schema(plan.url, api_key)
        source, profile = payload.source, None
        if source in ("default", "profile"):
            profile = fetch_reference(plan.url, api_key)
            if profile is None and source == "profile":
                raise PayloadError(f"{plan.url} has no reference data to make rows like.",
                                   "Bundle the model with a reference dataset, or send random "
                                   "rows.")
            source = "profile" if profile is not None else "random"
        bodies, label = bodies_for(model, plan.route, source, payload.path,
                                   list(payload.drifts), payload.seed, profile=profile)
        name = model.name
    prepared = replace(plan, payloads=bodies, payload_label=label, model=name,
                       headers={**plan.headers, **auth_headers(api_key)})
    prepared.check()
    return prepared
