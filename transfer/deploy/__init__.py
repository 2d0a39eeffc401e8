"""Using a trained run: scoring new data (:mod:`~transfer.deploy.predict`) and exporting it
(:mod:`~transfer.deploy.export`) to the float runtimes (:mod:`~transfer.deploy.runtimes`: ONNX, SavedModel, TFLite)
and to FPGA firmware (:mod:`~transfer.deploy.firmware`: hls4ml)."""
