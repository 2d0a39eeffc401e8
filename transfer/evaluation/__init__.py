"""What a run's numbers mean: metrics (:mod:`~transfer.evaluation.metrics`), the physics figures
(:mod:`~transfer.evaluation.physics`), bootstrap intervals (:mod:`~transfer.evaluation.intervals`), the matched
baseline (:mod:`~transfer.evaluation.baseline`), health checks (:mod:`~transfer.evaluation.health`), the plots
(:mod:`~transfer.evaluation.plots`) and the report that puts them together (:mod:`~transfer.evaluation.report`)."""
