"""The networks: the backbone registry (:mod:`~transfer.models.backbones`: ImageNet backbones and compact
networks, one table), the compact networks trained from scratch (:mod:`~transfer.models.compact`), the classifier
around a backbone (:mod:`~transfer.models.classifier`), the custom layers a saved model holds
(:mod:`~transfer.models.layers`) and which layers train (:mod:`~transfer.models.freezing`)."""
