"""privrec.export: the bundle writer, one exporter per format (ONNX, TFLite, Core ML), parity checks."""
