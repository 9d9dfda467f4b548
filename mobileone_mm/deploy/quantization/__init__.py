"""Making a smaller program from a backend's output, one module per method
and backend: ONNX Runtime static int8 (``onnxruntime_int8``), Core ML weight
compression (``coreml_compress``) and 8-bit activations (``coreml_a8w8``),
with the calibration data (``calibration``), the per-layer error
(``error``), the report (``report``), the ``tools/quantize.py`` pipeline
(``pipeline``) and the int8 accuracy study (``study``,
``tools/analysis/quant_accuracy.py``). ncnn has no quantizer here: its int8
tools are C++ programs no wheel ships."""
