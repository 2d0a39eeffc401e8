"""Training one run: its plan (:mod:`~transfer.training.plan`), the runner (:mod:`~transfer.training.runner`),
the stages it trains in (:mod:`~transfer.training.stages`) with their callbacks
(:mod:`~transfer.training.callbacks`), the frozen-feature cache (:mod:`~transfer.training.features`), class weights
and augmentation (:mod:`~transfer.training.inputs`), and the devices it computes on
(:mod:`~transfer.training.devices`)."""
