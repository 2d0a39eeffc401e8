"""Using a trained run: scoring new data (:mod:`~transfer.deploy.predict`), writing the scores as CSV, Parquet or a
ROOT friend tree of the input events (:mod:`~transfer.deploy.score_files`, :mod:`~transfer.deploy.event_identity`)
and exporting it (:mod:`~transfer.deploy.export`) to the float runtimes (:mod:`~transfer.deploy.runtimes`: ONNX,
SavedModel, TFLite) and to FPGA firmware (:mod:`~transfer.deploy.firmware`: hls4ml)."""
