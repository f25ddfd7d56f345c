"""`probes classify --print-config`: the plan a run would execute, without reading weights or data."""
from __future__ import annotations

from probes.classification.config import ClassifyConfig
from probes.classification.plan import plan_classify
from probes.config_files import dump_config
from probes.run_identity import plan_json


def describe_config(cfg: ClassifyConfig, fmt: str = "py") -> str:
    """The run's plan (resolved config, encoder, preprocessing, heads, run id, protocol) as py or json."""
    from mmengine.config import Config

    plan = plan_classify(cfg).as_dict()
    return plan_json(plan).rstrip("\n") if fmt == "json" else dump_config(Config(plan), fmt)
