"""The pure core of Recognize: no Ray, no HTTP, no onnxruntime (tests/unit/test_layout.py).

``vin`` decodes VINs, ``imaging`` turns photo bytes into model input, ``verdict`` turns logits
into a decision, ``taxonomy`` and ``modelfile`` describe the classes and the model-file
contract, ``errors`` and ``reasons`` are the vocabulary every layer shares. ``data/`` holds the
runtime data they read (the taxonomy and the VIN rules), shipped inside the package.
"""
