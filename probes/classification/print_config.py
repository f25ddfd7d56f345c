"""`probes classify --print-config`: the plan a run would execute, without reading weights or data."""
from __future__ import annotations

from probes.classification.plan import ClassifyPlan
from probes.config_files import dump_config
from probes.run_identity import plan_json


def describe_plan(plan: ClassifyPlan, fmt: str = "py") -> str:
    """The run's plan (resolved config, encoder, preprocessing, heads, run id, protocol) as py or json."""
    from mmengine.config import Config

    values = plan.as_dict()
    return plan_json(values).rstrip("\n") if fmt == "json" else dump_config(Config(values), fmt)
