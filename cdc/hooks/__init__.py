"""VICIdial's outbound URL hooks (``vicidial_url_log``): vocabulary, tracking, rescue.

``types`` (every url_type and its sender), ``response`` (what a logged response says),
``tracker`` (INSERT→UPDATE, never completed), ``config`` (``[hooks]``), ``watch``
(metrics and rescue deliveries, used by the pipeline). Nothing is imported here, so
``cdc.config`` may import ``cdc.hooks.config`` without pulling in the pipeline's layer.
"""
